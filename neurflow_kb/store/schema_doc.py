"""`docs/schema.md`, generated from the schema code: every node label, relationship type, property and
type (`cypher/schema.ladybug.cypher` through `store.schema`), the constraints and indexes of
`cypher/schema.cypher`, worked Cypher examples that run unchanged on both stores, and the dialect notes.

    python -m neurflow_kb.store.schema_doc            # rewrite docs/schema.md
    python -m neurflow_kb.store.schema_doc --check    # exit 1 when docs/schema.md is stale

The meanings below are the one hand-written part: `render` refuses a label, relationship type or
property without one, so the document cannot fall behind the schema silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schema import cypher_dir, query_names, schema, schema_statements

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
COMMAND = "python -m neurflow_kb.store.schema_doc"

#: What each node label and relationship type is.
LABELS: dict[str, str] = {
    "Model": "A model with one set of weights (the same architecture with other weights is another Model).",
    "Layer": "A layer of a model's chain (bottom to top), shared by all runs of that model.",
    "Neuron": "One unit (channel) of a layer; the top layer's neurons are the class logits.",
    "Class": "An output class of a model.",
    "Run": "One class circuit (a NeurFlow run): written completely or not visible (`status`).",
    "NeuronGroup": "A group of core neurons of one layer in one run; carries its share of the class.",
    "Concept": "A concept text of a vocabulary that groups are labelled with.",
    "Image": "An image debugged against a circuit (`neurflow-kb debug --save`).",
    "Encoder": "How to load a label encoder (CLIP) again, and the digest of its weights.",
    "HAS_LAYER": "A model's layers.",
    "HAS_NEURON": "A layer's neurons.",
    "HAS_CLASS": "A model's classes.",
    "UNIT": "The output neuron (logit) of a class.",
    "EXPLAINS": "The class a run explains.",
    "HAS_GROUP": "The groups of a run.",
    "AT_LAYER": "The layer a group lives in.",
    "MEMBER_OF": "A core neuron's membership in a group (per sub-concept).",
    "INFLUENCES": "Neuron-level circuit edge: a lower core neuron's attribution to an upper one (one run).",
    "DRIVES": "Group-level circuit edge (lower group -> upper group, top groups -> class), with shares.",
    "LABELED": "A concept label of a group (ranked, per vocabulary, encoder and method).",
    "ACTIVATES": "A group firing on an image (image debugging).",
    "RESEMBLES": "Derived: a group of another model explaining the same class, close by CLIP embedding.",
}

#: What each property holds ("Label.property").
PROPS: dict[str, str] = {
    "Model.key": "`name@weights` (weights = a content id such as `sha256:...`, `random`, or a tag)",
    "Model.name": "the model's name as `neurflow-kb models` lists it",
    "Model.arch": "architecture (e.g. the torchvision class)",
    "Model.weights": "id of the weights, from their content",
    "Model.num_classes": "number of output classes",
    "Layer.key": "`model key/layer name`",
    "Layer.model": "Model key",
    "Layer.name": "module name in the model (e.g. `layer4`)",
    "Layer.depth": "position in the chain, 0 = bottom",
    "Layer.channels": "number of neurons",
    "Neuron.key": "`model key/layer/index`",
    "Neuron.model": "Model key",
    "Neuron.layer": "layer name",
    "Neuron.index": "channel index (backtick it: `` n.`index` ``)",
    "Class.key": "`model key/index`",
    "Class.model": "Model key",
    "Class.index": "class index (output unit)",
    "Class.name": "class name, when known",
    "Run.key": "content hash of everything that determines the circuit",
    "Run.model": "Model key",
    "Run.target_class": "class index the run explains",
    "Run.class_name": "that class's name",
    "Run.status": "`complete`, or `writing` while it is written (queries look at complete runs only)",
    "Run.layers": "the layer chain, bottom to top",
    "Run.config": "NeurFlow configuration (JSON text)",
    "Run.data_fingerprint": "hash of the input images (file identity)",
    "Run.versions": "package versions (JSON text)",
    "Run.seed": "random seed",
    "Run.timings": "seconds per stage (JSON text)",
    "Run.written_at": "when the run was written (UTC, ISO 8601)",
    "Run.n_groups": "number of groups",
    "Run.n_nodes": "number of circuit nodes",
    "Run.n_edges": "number of neuron-level edges",
    "Run.digest": "hash of the tables the run was written from (re-writing other tables is refused)",
    "NeuronGroup.key": "`run key/layer/index`",
    "NeuronGroup.run": "Run key",
    "NeuronGroup.model": "Model key",
    "NeuronGroup.target_class": "class index of the run",
    "NeuronGroup.layer": "layer name",
    "NeuronGroup.depth": "layer depth, 0 = bottom",
    "NeuronGroup.index": "group number within the layer (backtick it: `` g.`index` ``)",
    "NeuronGroup.size": "circuit nodes (neuron, sub-concept) in the group",
    "NeuronGroup.n_neurons": "distinct neurons in the group",
    "NeuronGroup.silhouette": "clustering silhouette of the group (null for a single group)",
    "NeuronGroup.influence": "the paper's summed path weight to the class",
    "NeuronGroup.abs_influence": "the same over absolute weights",
    "NeuronGroup.share": "signed share of the class flowing through the group (negative: against it)",
    "NeuronGroup.abs_share": "share of the class flowing through the group; a layer's groups sum to 1",
    "NeuronGroup.n_exemplars": "exemplar crops of the group",
    "NeuronGroup.thumbnails": "up to 8 representative exemplar crops (base64 PNG)",
    "NeuronGroup.embedding": "CLIP image embedding of the group (for text search)",
    "NeuronGroup.embedding_encoder": "Encoder key of that embedding",
    "Concept.key": "`vocabulary/text`",
    "Concept.text": "the concept",
    "Concept.vocabulary": "vocabulary name (`broad`, `imagenet`, a file's name, ...)",
    "Image.key": "content hash of the image",
    "Image.uri": "where the image was read from",
    "Image.label": "true class index, when known",
    "Image.predicted": "class index the model predicted",
    "Encoder.key": "the encoder id labels carry (`ViT-B-32/openai`, `local-dir:world_clip`, ...)",
    "Encoder.kind": "`pretrained` (open_clip tag), `checkpoint` (a file or folder) or `local` (registered)",
    "Encoder.model": "open_clip architecture, or the registered local encoder's name",
    "Encoder.pretrained": "open_clip pretrained tag (kind `pretrained`)",
    "Encoder.path": "absolute path of the checkpoint file or folder (kind `checkpoint`)",
    "Encoder.digest": "`sha256:...` of the weights' tensors: another encoder under the same id is refused",
    "MEMBER_OF.subconcept": "sub-concept of the neuron that the group holds",
    "MEMBER_OF.activation": "mean activation of that sub-concept's exemplars",
    "INFLUENCES.run": "Run key (neurons are shared by runs; the edge is one run's)",
    "INFLUENCES.subconcept": "sub-concept of the upper neuron",
    "INFLUENCES.weight": "attribution of the lower neuron to the upper one",
    "INFLUENCES.importance": "importance of the lower neuron among the upper one's core neurons",
    "DRIVES.weight": "summed neuron-edge weight between the two groups (to the class: the influence)",
    "DRIVES.abs_weight": "the same over absolute weights",
    "DRIVES.share": "signed share of the class passed along this edge",
    "DRIVES.abs_share": "share of the class passed along this edge",
    "LABELED.score": "label score (contrastive or CLIP probability, by method)",
    "LABELED.rank": "1 = best label of the group",
    "LABELED.method": "how labels were ranked (`contrast...`, `mean`)",
    "LABELED.encoder": "Encoder key",
    "ACTIVATES.score": "how strongly the group fires on the image",
    "ACTIVATES.crop": "index of the crop that fires it",
    "RESEMBLES.cosine": "cosine of the two groups' CLIP embeddings",
    "RESEMBLES.encoder": "Encoder key of those embeddings",
    "RESEMBLES.rank": "1 = the closest group of the other run",
}

#: Labels without relationships, and what refers to them by key.
REFERENCED = {"Encoder": "none; `LABELED.encoder`, `NeuronGroup.embedding_encoder` and `RESEMBLES.encoder` "
                         "hold its key"}

_NEO4J_TYPES = {"STRING": "String", "INT64": "Integer", "DOUBLE": "Float", "STRING[]": "List<String>",
                "FLOAT[]": "List<Float>"}


@dataclass(frozen=True)
class Example:
    """A worked Cypher example: the question, the query (one spelling for both stores) and parameters
    that fit the demo's knowledge base (`neurflow-kb demo`: model `world`, classes bee, wasp, ...)."""

    name: str
    question: str
    cypher: str
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""


EXAMPLES: tuple[Example, ...] = (
    Example("models", "Which models are in the knowledge base, and how many complete runs each?", """
MATCH (m:Model)-[:HAS_CLASS]->(:Class)<-[:EXPLAINS]-(r:Run)
WHERE r.status = 'complete'
RETURN m.key AS model, m.name AS name, m.num_classes AS classes, count(r) AS runs
ORDER BY model"""),
    Example("runs", "Which class circuits (runs) does a model have?", """
MATCH (r:Run)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete' AND c.model STARTS WITH ($model + '@')
RETURN c.`index` AS class, c.name AS class_name, r.key AS run, r.n_groups AS groups,
       r.n_nodes AS nodes, size(r.layers) AS layers
ORDER BY class, run""", {"model": "world"}),
    Example("drivers", "Which groups drive class X? (each layer's shares add up to 100%)", """
MATCH (r:Run)-[:EXPLAINS]->(c:Class {name: $class})
WHERE r.status = 'complete'
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)
RETURN g.layer AS layer, g.depth AS depth, g.`index` AS grp, round(g.abs_share, 4) AS share,
       round(g.share, 4) AS net, g.size AS nodes
ORDER BY depth DESC, share DESC, grp
LIMIT 12""", {"class": "bee"}),
    Example("top_influences", "Which groups feed the class output directly, and how strongly?", """
MATCH (g:NeuronGroup)-[d:DRIVES]->(c:Class {name: $class})
RETURN g.key AS group_key, g.layer AS layer, round(d.weight, 4) AS influence,
       round(d.abs_share, 4) AS share
ORDER BY share DESC, group_key""", {"class": "bee"}),
    Example("upstream", "What drives one group? (walk DRIVES backwards one layer)", """
MATCH (r:Run)-[:EXPLAINS]->(:Class {name: $class})
MATCH (r)-[:HAS_GROUP]->(hi:NeuronGroup)
WHERE hi.layer = $layer AND hi.`index` = $group_index
MATCH (lo:NeuronGroup)-[d:DRIVES]->(hi)
RETURN lo.layer AS layer, lo.`index` AS grp, round(d.weight, 4) AS weight,
       round(d.abs_share, 4) AS share_passed
ORDER BY share_passed DESC, grp""", {"class": "bee", "layer": "layer4", "group_index": 0}),
    Example("two_step_paths", "The strongest two-step paths into the class (products of edge weights)", """
MATCH (a:NeuronGroup)-[d1:DRIVES]->(b:NeuronGroup)-[d2:DRIVES]->(c:Class {name: $class})
RETURN a.layer AS lower_layer, a.`index` AS lower_grp, b.layer AS upper_layer, b.`index` AS upper_grp,
       round(d1.weight * d2.weight, 6) AS path_weight
ORDER BY abs(path_weight) DESC, lower_layer, lower_grp, upper_layer, upper_grp
LIMIT 10""", {"class": "bee"},
            note="Fixed-length paths spell out each hop; for any length Neo4j has `reduce()` and Ladybug "
                 "`list_product(properties(rels(p), 'weight'))` (see the dialect notes). Influence over "
                 "all paths is already stored on each group (`influence`, `share`)."),
    Example("labels_of_class", "What do the strongest groups of class X look like? (rank-1 labels)", """
MATCH (r:Run)-[:EXPLAINS]->(:Class {name: $class})
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE l.rank = 1
RETURN g.layer AS layer, g.`index` AS grp, round(g.abs_share, 4) AS share, k.text AS concept,
       round(l.score, 4) AS score, l.encoder AS encoder
ORDER BY share DESC, layer, grp, encoder
LIMIT 10""", {"class": "bee"}),
    Example("concept_search", "Where is a concept represented? (labels search across models and classes)", """
MATCH (g:NeuronGroup)-[l:LABELED]->(k:Concept)
WHERE toLower(k.text) = toLower($concept) AND l.rank <= 2
MATCH (r:Run)-[:HAS_GROUP]->(g)
MATCH (r)-[:EXPLAINS]->(c:Class)
WHERE r.status = 'complete'
RETURN g.model AS model, c.name AS class_name, g.layer AS layer, g.`index` AS grp, l.rank AS rank,
       round(l.score, 4) AS score, round(g.abs_share, 4) AS share
ORDER BY score DESC, share DESC, model, class_name, layer, grp
LIMIT 10""", {"concept": "stripes"}),
    Example("shared_neurons", "Which neurons do two classes' circuits share, per layer?", """
MATCH (ra:Run)-[:EXPLAINS]->(:Class {name: $class_a})
MATCH (rb:Run)-[:EXPLAINS]->(:Class {name: $class_b})
WHERE ra.status = 'complete' AND rb.status = 'complete' AND ra.model = rb.model
MATCH (ra)-[:HAS_GROUP]->(ga:NeuronGroup)<-[:MEMBER_OF]-(n:Neuron)-[:MEMBER_OF]->(gb:NeuronGroup)
WHERE gb.run = rb.key
RETURN n.layer AS layer, count(DISTINCT n) AS shared_neurons, count(DISTINCT ga) AS groups_a,
       count(DISTINCT gb) AS groups_b
ORDER BY layer""", {"class_a": "bee", "class_b": "wasp"}),
    Example("group_members", "Which neurons (and sub-concepts) make up the groups of one layer?", """
MATCH (r:Run)-[:EXPLAINS]->(:Class {name: $class})
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)<-[m:MEMBER_OF]-(n:Neuron)
WHERE g.layer = $layer
RETURN g.`index` AS grp, n.`index` AS neuron, m.subconcept AS subconcept,
       round(m.activation, 4) AS activation
ORDER BY grp, neuron, subconcept
LIMIT 20""", {"class": "bee", "layer": "layer4"}),
    Example("neuron_influences", "The strongest neuron-level edges into the class unit", """
MATCH (r:Run)-[:EXPLAINS]->(c:Class {name: $class})
MATCH (c)-[:UNIT]->(u:Neuron)
MATCH (n:Neuron)-[i:INFLUENCES]->(u)
WHERE i.run = r.key
RETURN n.layer AS layer, n.`index` AS neuron, i.subconcept AS subconcept, round(i.weight, 5) AS weight,
       round(i.importance, 5) AS importance
ORDER BY abs(weight) DESC, neuron, subconcept
LIMIT 10""", {"class": "bee"},
            note="INFLUENCES is stored forward only on Ladybug: walk it lower -> upper (or upper <- lower), "
                 "never undirected."),
    Example("layer_summary", "How is a class's evidence spread over layers and groups?", """
MATCH (r:Run)-[:EXPLAINS]->(:Class {name: $class})
MATCH (r)-[:HAS_GROUP]->(g:NeuronGroup)-[:AT_LAYER]->(l:Layer)
RETURN l.name AS layer, l.depth AS depth, l.channels AS channels, count(g) AS groups,
       sum(g.n_neurons) AS core_neurons, round(max(g.abs_share), 4) AS top_share
ORDER BY depth DESC""", {"class": "bee"}),
    Example("encoders", "Which CLIP encoders labelled the groups, and how are they loaded again?", """
MATCH (e:Encoder)
RETURN e.key AS encoder, e.kind AS kind, e.model AS model, e.pretrained AS pretrained,
       e.digest AS digest
ORDER BY encoder"""),
)


@dataclass(frozen=True)
class Rule:
    """A constraint or index of `schema.cypher`."""

    name: str
    kind: str
    owner: str
    props: tuple[str, ...]


_RULE_RE = re.compile(r"CREATE (CONSTRAINT|(?:RANGE |TEXT |VECTOR )?INDEX) (\w+) IF NOT EXISTS FOR "
                      r"(?:\(\w+:(\w+)\)|\(\)-\[\w+:(\w+)\]-\(\)) (?:REQUIRE|ON) \(?([^)]*?)\)?"
                      r"(?: IS UNIQUE)?(?: OPTIONS .*)?$", re.S)


def neo4j_rules() -> list[Rule]:
    """Constraints and indexes of `cypher/schema.cypher`, in file order."""
    out = []
    for stmt in schema_statements("neo4j"):
        m = _RULE_RE.match(stmt)
        if not m:
            raise ValueError(f"schema_doc cannot read this schema.cypher statement: {stmt[:80]}")
        kind = m.group(1).lower()
        if kind == "constraint":
            kind = "unique constraint"
        elif kind == "index":
            kind = "range index"
        props = tuple(p.strip().split(".", 1)[1].strip("`") for p in m.group(5).split(","))
        out.append(Rule(m.group(2), kind, m.group(3) or m.group(4), props))
    return out


def _missing_descriptions() -> list[str]:
    sch = schema()
    missing = [n for n in (*sch.nodes, *sch.rels) if n not in LABELS]
    for label, table in sch.nodes.items():
        missing += [f"{label}.{p}" for p in table.columns if f"{label}.{p}" not in PROPS]
    for rtype, rel in sch.rels.items():
        missing += [f"{rtype}.{p}" for p in rel.columns if f"{rtype}.{p}" not in PROPS]
    return missing


def _param_flag(name: str, value: Any) -> str:
    text = json.dumps(value)
    return f"--param {name}={text}" if isinstance(value, int | float) else f"--param {name}='{text}'"


def render() -> str:
    """The whole of docs/schema.md."""
    missing = _missing_descriptions()
    if missing:
        raise ValueError(f"schema_doc has no description of {', '.join(missing)}: add it to LABELS / PROPS")
    sch = schema()
    rules = neo4j_rules()
    by_owner: dict[tuple[str, str], list[Rule]] = {}
    for r in rules:
        for p in r.props:
            by_owner.setdefault((r.owner, p), []).append(r)
    lines = [
        "# Knowledge-base schema",
        "",
        f"<!-- Generated by `{COMMAND}` from neurflow_kb/store/schema.py, cypher/schema.ladybug.cypher and",
        "     cypher/schema.cypher; do not edit by hand (a test fails when this file is stale). -->",
        "",
        "Both stores hold the same graph: the embedded Ladybug file (`--store`, the default) and Neo4j",
        "(`--neo4j`). Every node has one label and a unique string `key`; relationships point the way",
        "information flows (lower layer -> upper layer -> class). Queries only look at runs whose `status`",
        "is `complete`. The named queries the Python API and the CLI use are in",
        "[`cypher/queries/`](../neurflow_kb/cypher/queries/) (a `.ladybug.cypher` twin where the dialects",
        "differ); the DDL is [`cypher/schema.cypher`](../neurflow_kb/cypher/schema.cypher) (Neo4j) and",
        "[`cypher/schema.ladybug.cypher`](../neurflow_kb/cypher/schema.ladybug.cypher) (Ladybug).",
        "",
        "Contents: [nodes](#nodes) · [relationships](#relationships) · [constraints and indexes]"
        "(#constraints-and-indexes) · [worked examples](#worked-examples) · [dialect differences]"
        "(#dialect-differences)",
        "",
        "## Nodes",
        "",
        "| label | what it is | relationships |",
        "|---|---|---|",
    ]
    for label in sch.nodes:
        out_ = [f"`{t}` to `{b}`" for t, rel in sch.rels.items() for a, b in rel.pairs if a == label]
        in_ = [f"`{t}` from `{a}`" for t, rel in sch.rels.items() for a, b in rel.pairs if b == label]
        rels = ", ".join([*out_, *in_]) or REFERENCED.get(label, "")
        lines.append(f"| `{label}` | {LABELS[label]} | {rels} |")
    for label, table in sch.nodes.items():
        lines += ["", f"### {label}", "", LABELS[label], "",
                  "| property | Ladybug type | Neo4j type | index | meaning |", "|---|---|---|---|---|"]
        for i, (prop, typ) in enumerate(table.props):
            idx = ["primary key" if i == 0 else "",
                   *(f"{r.kind} `{r.name}`" for r in by_owner.get((label, prop), []))]
            lines.append(f"| `{prop}` | `{typ}` | {_NEO4J_TYPES.get(typ, typ)} | "
                         f"{', '.join(x for x in idx if x)} | {PROPS[f'{label}.{prop}']} |")
    lines += ["", "## Relationships", "",
              "| type | from -> to | properties | what it is |", "|---|---|---|---|"]
    for rtype, rel in sch.rels.items():
        pairs = ", ".join(f"`{a}`->`{b}`" for a, b in rel.pairs)
        props = ", ".join(f"`{p}`" for p in rel.columns) or "-"
        lines.append(f"| `{rtype}` | {pairs} | {props} | {LABELS[rtype]} |")
    for rtype, rel in sch.rels.items():
        if not rel.props:
            continue
        lines += ["", f"### {rtype}", "", LABELS[rtype], "",
                  "| property | Ladybug type | Neo4j type | index | meaning |", "|---|---|---|---|---|"]
        for prop, typ in rel.props:
            idx = ", ".join(f"{r.kind} `{r.name}`" for r in by_owner.get((rtype, prop), []))
            lines.append(f"| `{prop}` | `{typ}` | {_NEO4J_TYPES.get(typ, typ)} | {idx} | "
                         f"{PROPS[f'{rtype}.{prop}']} |")
    lines += ["", "## Constraints and indexes", "",
              "Neo4j (`cypher/schema.cypher`, applied by `neurflow-kb init` and every write). Ladybug",
              "declares tables instead: each node table's first property is its primary key (unique,",
              "indexed), and text search ranks embeddings by brute force (`array_cosine_similarity`).", "",
              "| name | kind | on | properties |", "|---|---|---|---|"]
    for r in rules:
        lines.append(f"| `{r.name}` | {r.kind} | `{r.owner}` | {', '.join(f'`{p}`' for p in r.props)} |")
    lines += ["", "## Worked examples", "",
              "Each query runs unchanged on both stores (a test runs them on Ladybug and Neo4j and compares",
              "the rows). The parameters fit the demo's knowledge base (`neurflow-kb demo`: the world model,",
              "classes bee, wasp, ...); from the command line pass them with `--param`:", "",
              "```bash",
              "neurflow-kb cypher \"$(cat query.cypher)\" --param class='\"bee\"' --json",
              "```"]
    for i, ex in enumerate(EXAMPLES, start=1):
        lines += ["", f"### {i}. {ex.question}", "", "```cypher", ex.cypher.strip(), "```"]
        if ex.params:
            lines += ["", "Parameters: " + " ".join(f"`{_param_flag(k, v)}`" for k, v in ex.params.items())]
        if ex.note:
            lines += ["", ex.note]
    twins = [f"`{n}`" for n in query_names() if (cypher_dir() / "queries" / f"{n}.ladybug.cypher").is_file()]
    lines += ["", "## Dialect differences", "",
              "The same Cypher runs on both stores when it keeps to the common part. Where they differ:", "",
              "| topic | Neo4j | Ladybug (embedded) | portable spelling |", "|---|---|---|---|",
              *DIALECT_ROWS, "",
              "Named queries with a `.ladybug.cypher` twin in `cypher/queries/`: " + ", ".join(twins) + ".",
              ""]
    return "\n".join(lines)


#: Checked against Neo4j 5.26 and Ladybug 0.22 (tests/integration/test_schema_doc.py runs the
#: portable spellings on both).
DIALECT_ROWS = [
    "| `index` property | `n.index` works | `INDEX` is a keyword: `n.index` fails to parse | `` n.`index` `` "
    "(raw Cypher through neurflow-kb gets `n.index` backticked on Ladybug automatically) |",
    "| `reduce()`, list comprehensions | available | not available | `list_reduce`, `list_product`, "
    "`properties(rels(p), 'weight')` on Ladybug; fixed-length paths with explicit hops on both |",
    "| several labels `(n:A:B)` | A **and** B | A **or** B (one label per node) | one label per pattern |",
    "| `labels(n)`, `type(r)` | a list, a string | `labels(n)` / `label(n)` a string; no `type()`: "
    "`label(r)` | name the label or type in the pattern |",
    "| undirected `-[:INFLUENCES]-` | works | refused (stored forward only) | a direction: `->` or `<-` |",
    "| `toString`, `toInteger`, `split`, `head`, `stDev` | available | not available: `cast(x AS STRING)`, "
    "`cast(x AS INT64)`, `string_split`, `list_extract` instead | return the values as they are |",
    "| `shortestPath()` | available | `-[:T* SHORTEST 1..k]->` | compare stored `influence` / `share` "
    "instead |",
    "| precedence of `STARTS WITH` / `CONTAINS` | binds looser than `+` | binds tighter: `a STARTS WITH $b + "
    "'x'` is `(a STARTS WITH $b) + 'x'` | parenthesise: `a STARTS WITH ($b + 'x')` |",
    "| keywords as parameter names | `$group`, `$index` work | parse errors | `$group_index`, `$idx` |",
    "| `sum()` of integers | Integer | INT128 (a Python `Decimal` in results) | the same in Cypher; "
    "convert in Python |",
    "| `id(n)` | an integer (deprecated; `elementId`) | a struct {offset, table} | use `key` |",
    "| vector search | `db.index.vector.queryNodes('group_embedding', ...)` | "
    "`array_cosine_similarity(g.embedding, CAST($q AS FLOAT[n]))` | `neurflow-kb query search` / "
    "`queries.search` |",
    "| procedures, APOC, `datetime()` | available | not available (and refused read-only) | - |",
    "| schema | constraints and indexes, any property | tables declared first; unknown properties fail |"
    " the properties listed above |",
]


def main(argv: list[str] | None = None) -> int:
    """Write docs/schema.md (or, with --check, exit 1 when the committed file differs)."""
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="Exit 1 when the file is stale; write nothing.")
    ap.add_argument("-o", "--out", type=Path, default=DOC_PATH,
                    help="File to write (default docs/schema.md).")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        have = args.out.read_text() if args.out.is_file() else ""
        if have != text:
            print(f"{args.out} is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(EXAMPLES)} examples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
