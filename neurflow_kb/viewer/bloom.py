"""Neo4j Bloom perspective and Neo4j Browser style sheet, generated from the graph schema.

    python -m neurflow_kb.viewer.bloom    # writes cypher/bloom/neurflow.json, cypher/browser/style.grass

The perspective has one category per node label (colour, size, caption keys, every schema property with
its data type; bulky ones such as thumbnails and embeddings excluded from the inspector), one entry per
relationship type (DRIVES sized by the share of the class it passes down, INFLUENCES by weight, RESEMBLES
by cosine, red for negative weights), NeuronGroup nodes sized by their share of the class (`abs_share`),
and search phrases ("templates") that run the knowledge base's questions as parameterised Cypher
returning nodes, relationships and paths for Bloom to draw (class similarity as virtual SIMILAR_TO
relationships from APOC, which the Docker image ships). Keys, names and timestamps are fixed, so regenerating
gives the same file.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store.schema import cypher_dir, schema

VERSION = "2.15.0"
CREATED_AT = 1735689600000              # 2025-01-01, fixed so that the generated file is stable
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/neurflow-kb/perspective")

# label -> (colour, size, caption property keys)
NODE_STYLE: dict[str, tuple[str, float, list[str]]] = {
    "Model": ("#4C8EDA", 3.0, ["name"]),
    "Layer": ("#8DCC93", 2.0, ["name"]),
    "Neuron": ("#D9C8AE", 0.5, ["layer", "index"]),
    "Class": ("#F16667", 3.0, ["name", "index"]),
    "Run": ("#C990C0", 1.5, ["class_name"]),
    "NeuronGroup": ("#57C7E3", 1.5, ["layer", "index"]),
    "Concept": ("#FFC454", 1.5, ["text"]),
    "Image": ("#F79767", 2.0, ["uri"]),
    "Encoder": ("#A5ABB6", 1.0, ["key"]),
}
#: Properties too bulky or too internal for Bloom's inspector.
EXCLUDED = {"thumbnails", "embedding", "config", "versions", "timings", "data_fingerprint", "layers"}
REL_COLOUR = {"DRIVES": "#4C8EDA", "INFLUENCES": "#A5ABB6", "LABELED": "#FFC454", "ACTIVATES": "#F79767",
              "MEMBER_OF": "#D9C8AE", "RESEMBLES": "#E08A00"}
NEGATIVE = "#F16667"
_DTYPES = {"STRING": "string", "INT64": "bigint", "DOUBLE": "number", "FLOAT": "number", "BOOL": "boolean"}


def _dtype(t: str) -> str:
    return "array" if t.endswith("[]") else _DTYPES.get(t, "string")


@dataclass(frozen=True)
class Param:
    """A search-phrase parameter with Bloom's suggestion source (label and property to autocomplete)."""

    name: str
    label: str
    prop: str
    example: Any
    data_type: str = "string"


@dataclass(frozen=True)
class Phrase:
    """A Bloom search phrase: the text people type (with $params), Cypher returning graph elements, and
    which `neurflow_kb.queries` helper it mirrors."""

    text: str
    cypher: str
    params: tuple[Param, ...] = ()
    helper: str = ""
    description: str = ""
    examples: dict[str, Any] = field(default_factory=dict)


_CLASS = Param("class", "Class", "name", "toy1")
_GROUP = Param("group", "NeuronGroup", "key", None)
_CLASS_WHERE = "(c.name = $class OR c.key = $class OR toString(c.`index`) = $class)"
_MODEL_A = Param("model_a", "Model", "name", "toy")
_MODEL_B = Param("model_b", "Model", "name", "twin")

SEARCH_PHRASES: tuple[Phrase, ...] = (
    Phrase("Models", """MATCH (m:Model)
OPTIONAL MATCH (m)-[h:HAS_CLASS]->(c:Class)<-[e:EXPLAINS]-(r:Run)
WHERE r.status = 'complete'
RETURN m, h, c, e, r""", helper="models / classes / runs",
           description="every model with the classes that have a circuit"),
    Phrase("Drivers of class $class", f"""MATCH (r:Run)-[e:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND {_CLASS_WHERE}
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)
WITH c, g ORDER BY g.abs_share DESC, g.key LIMIT 25
OPTIONAL MATCH (g)-[d:DRIVES]->(c)
RETURN c, g, d""", (_CLASS,), "drivers", "the 25 groups with the largest share of the class"),
    Phrase("Circuit of class $class", f"""MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND {_CLASS_WHERE}
MATCH (r)-[:HAS_GROUP]->(a:NeuronGroup)-[d:DRIVES]->(b)
RETURN a, d, b""", (_CLASS,), "circuit", "the whole group circuit, lower groups up to the class"),
    Phrase("Group $group", """MATCH (g:NeuronGroup)
WHERE g.key = $group
OPTIONAL MATCH (n:Neuron)-[m:MEMBER_OF]->(g)
OPTIONAL MATCH (g)-[l:LABELED]->(k:Concept)
OPTIONAL MATCH (u:NeuronGroup)-[du:DRIVES]->(g)
OPTIONAL MATCH (g)-[dd:DRIVES]->(v)
OPTIONAL MATCH (g)-[x:RESEMBLES]-(h:NeuronGroup)
RETURN g, n, m, l, k, u, du, dd, v, x, h""", (_GROUP,), "group",
           "a group's member neurons, concept labels, up/downstream groups and the groups of other models "
           "it resembles"),
    Phrase("Concept $concept", """MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE toLower(k.text) = toLower($concept) OR k.key = $concept
MATCH (r:Run)-[:HAS_GROUP]->(g)
WHERE r.status = 'complete'
MATCH (r)-[e:EXPLAINS]->(c:Class)
RETURN k, l, g, c""", (Param("concept", "Concept", "text", None),), "concept",
           "groups labelled with a concept and the classes whose circuits they belong to"),
    Phrase("Shared by $class_a and $class_b", """MATCH (ra:Run)-[:EXPLAINS]->(ca:Class)
WHERE ra.status = 'complete'
  AND (ca.name = $class_a OR ca.key = $class_a OR toString(ca.`index`) = $class_a)
MATCH (rb:Run)-[:EXPLAINS]->(cb:Class)
WHERE rb.status = 'complete' AND rb.key <> ra.key
  AND (cb.name = $class_b OR cb.key = $class_b OR toString(cb.`index`) = $class_b)
MATCH (ra)-[:HAS_GROUP]->(ga:NeuronGroup)<-[ma:MEMBER_OF]-(n:Neuron)-[mb:MEMBER_OF]->(gb:NeuronGroup)
WHERE gb.run = rb.key
RETURN ga, ma, n, mb, gb""", (Param("class_a", "Class", "name", "toy1"),
                               Param("class_b", "Class", "name", "toy2")), "shared",
           "neurons in groups of both classes' circuits"),
    Phrase("Classes similar to $class", f"""MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND {_CLASS_WHERE}
MATCH (r)-[:HAS_GROUP]->(ga:NeuronGroup)<-[:MEMBER_OF]-(n:Neuron)
WHERE ga.depth < size(r.layers) - 1
WITH r, c, n, ga.layer AS layer, sum(ga.abs_share / ga.size) AS pa
MATCH (n)-[:MEMBER_OF]->(gb:NeuronGroup)<-[:HAS_GROUP]-(rb:Run)-[:EXPLAINS]->(cb:Class)
WHERE rb.status = 'complete' AND rb.model = r.model AND cb <> c
WITH r, c, cb, rb, n, pa, sum(gb.abs_share / gb.size) AS pb
WITH r, c, cb, rb, sum(CASE WHEN pa < pb THEN pa ELSE pb END) AS overlap
WITH c, cb, overlap / (size(r.layers) - 2) AS similarity
ORDER BY similarity DESC, cb.key LIMIT 10
CALL apoc.create.vRelationship(c, 'SIMILAR_TO', {{similarity: similarity}}, cb) YIELD rel
RETURN c, rel, cb""", (_CLASS,), "similar",
           "the 10 classes of the same model whose circuits route the most share through the same neurons "
           "(virtual SIMILAR_TO relationships carrying the similarity)"),
    Phrase("Classes sharing concepts with $class", f"""MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND {_CLASS_WHERE}
MATCH (r)-[:HAS_GROUP]->(:NeuronGroup)-[l0:LABELED]->(:Concept)
WHERE l0.rank = 1
WITH r, c, l0.encoder AS encoder, count(*) AS labelled
ORDER BY labelled DESC, encoder
WITH r, c, collect(encoder)[0] AS encoder
MATCH (rb:Run)-[:EXPLAINS]->(cb:Class)
WHERE rb.status = 'complete' AND rb.model = r.model AND cb <> c
  AND EXISTS {{ MATCH (rb)-[:HAS_GROUP]->(:NeuronGroup)-[lb:LABELED]->(:Concept)
               WHERE lb.rank = 1 AND lb.encoder = encoder }}
UNWIND [r, rb] AS run
MATCH (run)-[:HAS_GROUP]->(g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE g.depth < size(run.layers) - 1 AND l.encoder = encoder AND l.rank <= 5
WITH r, c, rb, cb, run, g, k.text AS concept, max(l.score) AS score
WITH r, c, rb, cb, run, g, concept, CASE WHEN score > 0 THEN score ELSE 0.0 END AS score
WITH r, c, rb, cb, run, g, collect([concept, score]) AS labels, sum(score) AS total
WHERE total > 0
UNWIND labels AS x
WITH r, c, rb, cb, run, g.layer AS layer, x[0] AS concept, sum(g.abs_share * x[1] / total) AS mass
WITH r, c, rb, cb, layer, concept, sum(CASE WHEN run = r THEN mass ELSE 0.0 END) AS pa,
     sum(CASE WHEN run = rb THEN mass ELSE 0.0 END) AS pb
WITH r, c, cb, sum(CASE WHEN pa < pb THEN pa ELSE pb END) AS overlap
WITH c, cb, overlap / (size(r.layers) - 2) AS similarity
ORDER BY similarity DESC, cb.key LIMIT 10
CALL apoc.create.vRelationship(c, 'SIMILAR_TO', {{similarity: similarity, by: 'concepts'}}, cb) YIELD rel
RETURN c, rel, cb""", (_CLASS,), "similar",
           "the 10 classes of the same model whose circuits rest on the same concepts (`query similar --by "
           "concepts`: each group's share split among its labels of rank <= 5 by score; the encoder that "
           "labelled most of the class's groups), as virtual SIMILAR_TO relationships"),
    Phrase("Compare class $class in $model_a and $model_b", f"""MATCH (ma:Model), (mb:Model)
WHERE (ma.name = $model_a OR ma.key = $model_a) AND (mb.name = $model_b OR mb.key = $model_b)
MATCH (ra:Run)-[:EXPLAINS]->(c:Class)
WHERE ra.status = 'complete' AND ra.model = ma.key AND {_CLASS_WHERE}
MATCH (rb:Run)-[:EXPLAINS]->(cb:Class)
WHERE rb.status = 'complete' AND rb.model = mb.key
  AND (cb.name = c.name OR (c.name IS NULL AND cb.`index` = c.`index`))
MATCH (ra)-[:HAS_GROUP]->(ga:NeuronGroup)-[x:RESEMBLES]-(gb:NeuronGroup)<-[:HAS_GROUP]-(rb)
OPTIONAL MATCH (ga)-[la:LABELED]->(ka:Concept)
WHERE la.rank = 1
OPTIONAL MATCH (gb)-[lb:LABELED]->(kb:Concept)
WHERE lb.rank = 1
RETURN ga, x, gb, la, ka, lb, kb""", (_CLASS, _MODEL_A, _MODEL_B), "compare",
           "the groups of one class in two models that resemble each other (CLIP embedding cosine), with "
           "their best concept labels"),
    Phrase("Path from group $group", """MATCH p = (g:NeuronGroup)-[:DRIVES*1..16]->(:Class)
WHERE g.key = $group AND all(d IN relationships(p) WHERE d.weight > 0)
WITH p, reduce(s = 1.0, d IN relationships(p) | s * d.weight) AS strength
ORDER BY strength DESC LIMIT 1
RETURN p""", (_GROUP,), "path",
           "the positive DRIVES path from a group to its class with the largest product of weights"),
    Phrase("Images through group $group", """MATCH (g:NeuronGroup)
WHERE g.key = $group
MATCH (i:Image)-[a:ACTIVATES]->(g)
RETURN i, a, g""", (_GROUP,), "debug --save",
           "images whose debugging found the group firing (neurflow-kb debug --save)"),
)


def _category(i: int, label: str) -> dict[str, Any]:
    colour, size, captions = NODE_STYLE[label]
    props = schema().nodes[label].props
    rules = []
    if label == "NeuronGroup":      # a group is drawn as large as its share of the class
        rules = [_rule("NeuronGroup-share", type="range", basedOn="abs_share", applySize=True, minSize=1,
                       maxSize=4, minSizeValue=0, maxSizeValue=1)]
    return {
        "id": i, "name": label, "labels": [label], "createdAt": CREATED_AT, "lastEditedAt": CREATED_AT,
        "color": colour, "size": size, "icon": "no-icon", "textSize": 1, "textAlign": "top",
        "captionKeys": captions,
        "captions": [{"key": k, "type": "property", "isCaption": True, "inTooltip": True, "styles": []}
                     for k in captions],
        "properties": [{"name": p, "exclude": p in EXCLUDED, "isCaption": p in captions,
                        "dataType": _dtype(t)} for p, t in props],
        "hiddenProperties": [p for p, _ in props if p in EXCLUDED],
        "styleRules": rules,
    }


def _rule(rid: str, **kw: Any) -> dict[str, Any]:
    base = {"id": rid, "createdAt": CREATED_AT, "type": "single", "dataType": "number", "existingField": True,
            "applyColor": False, "applySize": False, "applyCaption": False, "captions": [], "disabled": False,
            "includeEmptyValue": False}
    base.update(kw)
    return base


def _weight_rules(rtype: str) -> list[dict[str, Any]]:
    """Width from the share passed down (abs_share) or |weight| (abs_weight, weight), red for negative
    weights."""
    cols = schema().rels[rtype].columns
    size_key = next(k for k in ("abs_share", "abs_weight", "weight") if k in cols)
    return [
        _rule(f"{rtype}-width", type="range", basedOn=size_key, applySize=True, minSize=1, maxSize=12,
              minSizeValue=0, maxSizeValue=1),
        _rule(f"{rtype}-negative", basedOn="weight", condition="less", value="0", applyColor=True,
              color=NEGATIVE),
    ]


def _relationship(rtype: str) -> dict[str, Any]:
    rel = schema().rels[rtype]
    rules = _weight_rules(rtype) if "weight" in rel.columns else []
    if rtype == "LABELED":
        rules = [_rule("LABELED-width", type="range", basedOn="score", applySize=True, minSize=1, maxSize=8,
                       minSizeValue=0, maxSizeValue=1)]
    if rtype == "RESEMBLES":
        rules = [_rule("RESEMBLES-width", type="range", basedOn="cosine", applySize=True, minSize=1,
                       maxSize=8, minSizeValue=0.5, maxSizeValue=1)]
    caption = _caption(rel.columns)
    return {
        "id": rtype, "name": rtype, "color": REL_COLOUR.get(rtype, "#A5ABB6"), "size": 1, "textSize": 1,
        "textAlign": "top", "captionKeys": [caption] if caption else [],
        "captions": [{"key": caption or rtype, "type": "property" if caption else "relationship",
                      "isCaption": True, "inTooltip": True, "styles": []}],
        "properties": [{"propertyKey": p, "type": rtype, "dataType": _dtype(t)} for p, t in rel.props],
        "styleRules": rules,
    }


def _caption(columns: list[str]) -> str | None:
    """The property a relationship is captioned with: the share it passes, else weight, score, cosine."""
    return next((k for k in ("abs_share", "weight", "score", "cosine") if k in columns), None)


def _template(i: int, phrase: Phrase) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(NAMESPACE, phrase.text)), "name": phrase.text.split(" $")[0],
        "text": phrase.text, "cypher": phrase.cypher, "description": phrase.description,
        "createdAt": CREATED_AT + i, "isUpdateQuery": False, "hasCypherErrors": False,
        "params": [{"name": f"${p.name}", "dataType": p.data_type, "suggestionLabel": p.label,
                    "suggestionProp": p.prop, "suggestionBoolean": False, "collapsed": False, "cypher": None}
                   for p in phrase.params],
    }


def perspective() -> dict[str, Any]:
    """The Bloom perspective (export format) for the neurflow-kb schema."""
    sch = schema()
    labels = list(sch.nodes)
    rel_types = list(sch.rels)
    path_segments = [{"source": s, "relationshipType": t, "target": d}
                     for t, rel in sch.rels.items() for s, d in rel.pairs]
    return {
        "name": "neurflow-kb", "id": str(uuid.uuid5(NAMESPACE, "neurflow-kb")), "version": VERSION,
        "type": "STANDARD_PERSPECTIVE", "createdAt": CREATED_AT, "lastEditedAt": CREATED_AT,
        "categories": [_category(i, label) for i, label in enumerate(labels, start=1)],
        "labels": {label: [{"propertyKey": p, "type": label, "dataType": _dtype(t)}
                           for p, t in sch.nodes[label].props] for label in labels},
        "relationshipTypes": [_relationship(t) for t in rel_types],
        "hiddenRelationshipTypes": [], "hiddenCategories": [], "hideUncategorisedData": False,
        "templates": [_template(i, p) for i, p in enumerate(SEARCH_PHRASES)],
        "sceneActions": [], "parentPerspectiveId": None, "isAuto": False,
        "palette": {"colors": [NODE_STYLE[label][0] for label in labels], "currentIndex": 0},
        "metadata": {"pathSegments": path_segments,
                     "indexes": [{"label": label, "type": "native", "propertyKeys": ["key"]}
                                 for label in labels]},
    }


def style_grass() -> str:
    """Neo4j Browser style sheet (GraSS): colour and caption per label, DRIVES captioned with its weight."""
    lines = ["node {", "  diameter: 50px;", "  color: #A5ABB6;", "  border-color: #9AA1AC;",
             "  border-width: 2px;", "  text-color-internal: #FFFFFF;", "  font-size: 10px;", "}",
             "relationship {", "  color: #A5ABB6;", "  shaft-width: 1px;", "  font-size: 8px;",
             "  padding: 3px;", "  text-color-external: #000000;", "  text-color-internal: #FFFFFF;",
             '  caption: "<type>";', "}"]
    for label, (colour, size, captions) in NODE_STYLE.items():
        caption = " ".join("{" + k + "}" for k in captions)
        lines += [f"node.{label} {{", f"  color: {colour};", f"  border-color: {colour};",
                  f"  diameter: {int(30 + 15 * size)}px;", "  text-color-internal: #1D2330;",
                  f'  caption: "{caption}";', "}"]
    for rtype, rel in schema().rels.items():
        key = _caption(rel.columns)
        cap = "{" + key + "}" if key else "<type>"
        width = "3px" if rtype == "DRIVES" else "1px"
        lines += [f"relationship.{rtype} {{", f"  color: {REL_COLOUR.get(rtype, '#A5ABB6')};",
                  f"  shaft-width: {width};", f'  caption: "{cap}";', "}"]
    return "\n".join(lines) + "\n"


def write(root: str | Path | None = None) -> tuple[Path, Path]:
    """Write `bloom/neurflow.json` and `browser/style.grass` under `root` (default: the cypher folder)."""
    base = Path(root) if root else cypher_dir()
    bloom = base / "bloom" / "neurflow.json"
    grass = base / "browser" / "style.grass"
    bloom.parent.mkdir(parents=True, exist_ok=True)
    grass.parent.mkdir(parents=True, exist_ok=True)
    bloom.write_text(json.dumps(perspective(), indent=2) + "\n")
    grass.write_text(style_grass())
    return bloom, grass


def main() -> None:
    bloom, grass = write()
    print(f"wrote {bloom} ({len(SEARCH_PHRASES)} search phrases) and {grass}")


if __name__ == "__main__":
    main()
