"""Named knowledge-base queries returning pandas DataFrames (in the spirit of neuprint-python's
`fetch_*`). Each runs the Cypher file `cypher/queries/NAME.cypher` with parameters only, on either
store, and returns the same rows on both.

`store` may be an open `GraphStore`, or a path / Neo4j URI opened read-only for the call. A class is
an index (309), a name ('bee') or a Class key; a model is a name ('resnet50') or a key
('resnet50@IMAGENET1K_V1'). Unknown names raise `UserError`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from .errors import UserError
from .store import BaseStore, is_neo4j_uri, open_store
from .store.schema import query_text

log = logging.getLogger(__name__)

StoreLike = BaseStore | str | Path
ClassLike = int | str


@contextlib.contextmanager
def opened_store(store: StoreLike) -> Iterator[BaseStore]:
    """The store itself, or one opened read-only from a path or Neo4j URI (closed afterwards)."""
    if isinstance(store, BaseStore):
        yield store
        return
    text = str(store)
    if is_neo4j_uri(text):
        st = open_store(neo4j_uri=text, read_only=True)
    else:
        st = open_store(text, read_only=True)
    try:
        yield st
    finally:
        st.close()


def run_named(store: BaseStore, query: str, **params: Any) -> pd.DataFrame:
    """Run the query file `cypher/queries/NAME.cypher` (its Ladybug twin on Ladybug) with `params`."""
    log.debug("named query %s", query)
    return store.run_query(query_text(query, store.dialect), params)


def _model_keys(store: BaseStore, model: str | None) -> list[str]:
    df = run_named(store, "model_keys")
    if df.empty:
        raise UserError("the knowledge base has no models yet; add circuits with `neurflow-kb ingest` or "
                        "`neurflow-kb load`")
    if model is None:
        return df["model"].tolist()
    hit = df[(df["model"] == model) | (df["name"] == model)]
    if hit.empty:   # any spelling of the canonical name ('EfficientNet-Lite0', 'torchvision:resnet18')
        from .model_names import same_model

        hit = df[[same_model(model, n) or same_model(model, k) for n, k in zip(df["name"], df["model"],
                                                                                 strict=True)]]
    if hit.empty:
        raise UserError(f"unknown model {model!r}; the knowledge base has {', '.join(df['model'])} "
                        "(see `neurflow-kb query models`)")
    return hit["model"].tolist()


_INDEX = re.compile(r"-?[0-9]+")


def class_index(cls: ClassLike) -> int | None:
    """The class index a class argument gives (an int, or ASCII digits), None when it is a class name.
    Numbers beyond a 64-bit integer name no class and raise `UserError` (one line)."""
    if isinstance(cls, bool) or not (isinstance(cls, int) or _INDEX.fullmatch(str(cls).strip())):
        return None
    index = int(str(cls).strip()) if not isinstance(cls, int) else cls
    if not -(2**63) <= index < 2**63:
        shown = str(cls).strip()
        raise UserError(f"class {shown[:30]}{'...' if len(shown) > 30 else ''} is not a class index (too "
                        "large); give an index 0..classes-1 or a class name (`neurflow-kb query classes`)")
    return index


def _class_keys(store: BaseStore, cls: ClassLike, models: list[str]) -> list[str]:
    index, name = -1, str(cls)
    number = class_index(cls)
    if number is not None:
        index, name = number, ""
    df = run_named(store, "class_keys", models=models, idx=index, name=name)
    if df.empty:
        where = models[0] if len(models) == 1 else f"{len(models)} models"
        raise UserError(f"unknown class {cls!r} in {where}; give a class index or name "
                        "(see `neurflow-kb query classes`)")
    return df["class_key"].tolist()


def class_run_keys(store: BaseStore, cls: ClassLike, model: str | None) -> list[str]:
    """Run keys of class `cls` (index or name) in `store`, of one model or of all."""
    return _class_keys(store, cls, _model_keys(store, model))


def short_group_key(model: str, cls: int, class_name: str | None, layer: str, index: int) -> str:
    """The readable form of a group key, ``MODEL/CLASS/LAYER/INDEX`` (``world/bee/layer3/0``): the model's
    name without its weights id, the class name (its index when it has none or the name holds a '/')."""
    name = str(class_name) if class_name and "/" not in str(class_name) else str(int(cls))
    return f"{str(model).split('@')[0]}/{name}/{layer}/{int(index)}"


def resolve_group(store: BaseStore, key: str) -> str:
    """The stored key of a group given as stored (``RUN/LAYER/INDEX``) or in its readable form
    ``MODEL/CLASS/LAYER/INDEX`` (any spelling of the model name, class by index or name), when that
    names one complete run; otherwise `UserError`."""
    text = str(key).strip()
    if not run_named(store, "group", key=text).empty:
        return text
    parts = text.split("/")
    if len(parts) < 4 or not _INDEX.fullmatch(parts[-1]):
        raise UserError(f"unknown group {text[:120]!r}; give MODEL/CLASS/LAYER/INDEX (e.g. "
                        "world/bee/layer3/0) or the group_key of `neurflow-kb query drivers`")
    model, cls, layer, index = parts[0], "/".join(parts[1:-2]), parts[-2], parts[-1]
    models = _model_keys(store, model)
    runs = run_named(store, "runs", models=models, classes=_class_keys(store, cls, models))
    if len(runs) != 1:
        listed = ", ".join(runs["run"].astype(str)) or "none"
        raise UserError(f"group {text[:120]!r}: class {cls!r} of {model} has {len(runs)} complete runs "
                        f"({listed}); give RUN/LAYER/INDEX with one of them")
    full = f"{runs['run'].iloc[0]}/{layer}/{int(index)}"
    if run_named(store, "group", key=full).empty:
        raise UserError(f"unknown group {text[:120]!r}: run {runs['run'].iloc[0]} has no group {int(index)} "
                        f"in layer {layer!r} (see `neurflow-kb query drivers {cls} --model {model}`)")
    return full


def drivers(store: StoreLike, cls: ClassLike, model: str | None = None, layer: str | None = None,
            limit: int = 20) -> pd.DataFrame:
    """Groups driving class `cls`, ranked by their share of it (`abs_share`; the shares of a layer sum to
    1), with the signed `share` and the paper's summed `influence` beside it (optionally one `layer`);
    `group` is the readable key (``MODEL/CLASS/LAYER/INDEX``) that `group`, `path` and `images` take too."""
    with opened_store(store) as st:
        keys = class_run_keys(st, cls, model)
        df = run_named(st, "drivers", classes=keys, layer=layer or "", limit=int(limit))
    if df.empty:
        return df.assign(group=pd.Series([], dtype=object))
    df["group"] = [short_group_key(*row) for row in zip(df["model"], df["class"], df["class_name"],
                                                         df["layer"], df["group_index"], strict=True)]
    return df


def circuit(store: StoreLike, cls: ClassLike, model: str | None = None,
            min_weight: float = 0.0, min_share: float = 0.0) -> pd.DataFrame:
    """The group circuit of class `cls`: DRIVES edges of its run(s) with |weight| >= `min_weight` and
    abs_share (the part of the class's share the edge passes down) >= `min_share`, strongest first."""
    with opened_store(store) as st:
        keys = class_run_keys(st, cls, model)
        return run_named(st, "circuit", classes=keys, min_weight=float(min_weight),
                         min_share=float(min_share))


@dataclass
class GroupInfo:
    """One group: `summary` (one row), `members`, `labels`, `upstream` and `downstream` frames."""

    summary: pd.DataFrame
    members: pd.DataFrame
    labels: pd.DataFrame
    upstream: pd.DataFrame
    downstream: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"summary": self.summary, "members": self.members, "labels": self.labels,
                "upstream": self.upstream, "downstream": self.downstream}


def group(store: StoreLike, key: str) -> GroupInfo:
    """A neuron group by key (`RUN/LAYER/INDEX` or `MODEL/CLASS/LAYER/INDEX`): members, labels, exemplar
    counts, up/downstream groups."""
    with opened_store(store) as st:
        key = resolve_group(st, key)
        summary = run_named(st, "group", key=key)
        parts = [run_named(st, q, key=key) for q in
                 ("group_members", "group_labels", "group_upstream", "group_downstream")]
        return GroupInfo(summary, *parts)


def concept(store: StoreLike, text: str, model: str | None = None) -> pd.DataFrame:
    """Groups labelled with concept `text` (empty until labels have been written)."""
    with opened_store(store) as st:
        return run_named(st, "concept", text=text, models=_model_keys(st, model))


def shared(store: StoreLike, cls_a: ClassLike, cls_b: ClassLike, model: str | None = None,
           by: str = "neuron", encoder: str | None = None, ranks: int = 5) -> pd.DataFrame:
    """Neurons in groups of both classes' runs with the group pairs sharing them (`by='neuron'`), one
    row per pair of groups with the number and list of shared neurons (`by='pair'`), or the circuit
    similarity of the two classes with its per-layer parts, by neurons (`by='layer'`) or by concepts
    (`by='concepts'`, labels of one CLIP `encoder` up to rank `ranks`; see `similarity`)."""
    if by not in ("neuron", "pair", "layer", "concepts"):
        raise UserError(f"by must be 'neuron', 'pair', 'layer' or 'concepts' (got {by!r})")
    if by in ("layer", "concepts"):
        return similarity(store, cls_a, cls_b, model=model, by="neurons" if by == "layer" else "concepts",
                          encoder=encoder, ranks=ranks)
    with opened_store(store) as st:
        models = _model_keys(st, model)
        df = run_named(st, "shared", classes_a=_class_keys(st, cls_a, models),
                       classes_b=_class_keys(st, cls_b, models))
    if by == "neuron" or df.empty:
        return df
    pairs = df.groupby(["group_a", "group_b"], sort=False).agg(
        layer=("layer", "first"), depth=("depth", "first"), shared=("neuron", "size"),
        neurons=("neuron", lambda s: sorted(int(x) for x in s)), share_a=("share_a", "first"),
        share_b=("share_b", "first"), influence_a=("influence_a", "first"),
        influence_b=("influence_b", "first")).reset_index()
    return pairs.sort_values(["shared", "depth", "group_a", "group_b"],
                             ascending=[False, False, True, True]).reset_index(drop=True)


def _runs_of(store: BaseStore, cls: ClassLike, models: list[str]) -> pd.DataFrame:
    """Complete runs of class `cls` in `models` (run, model, class, class_name); an error when none."""
    keys = _class_keys(store, cls, models)
    df = run_named(store, "runs", models=models, classes=keys)
    if df.empty:
        where = models[0] if len(models) == 1 else f"{len(models)} models"
        raise UserError(f"class {cls!r} has no complete circuit in {where}; compute it with "
                        "`neurflow-kb ingest` or `neurflow-kb load`")
    return df


SIMILARITY_COLUMNS = ["model", "run_a", "run_b", "layer", "depth", "overlap", "neurons_a", "neurons_b",
                      "shared"]
#: What class similarity compares: the neurons the circuits route their share through (the default), or
#: the concepts (CLIP labels) that carry it.
SIMILARITY_BY = ("neurons", "concepts")


def _check_by(by: str, ranks: int) -> str:
    if by not in SIMILARITY_BY:
        raise UserError(f"by must be 'neurons' or 'concepts' (got {by!r})")
    if int(ranks) < 1:
        raise UserError(f"ranks must be >= 1 (got {ranks})")
    return "neuron" if by == "neurons" else "concept"


def _pick_encoder(store: BaseStore, runs: Sequence[str], encoder: str | None, what: str) -> str:
    """The CLIP encoder whose labels count for `runs`: `encoder`, or the one that labelled them all; a
    one-line error when they have none in common or several."""
    encs = run_named(store, "label_encoders", runs=list(runs))
    common = sorted(set.intersection(*(set(encs[encs["run"] == r]["encoder"]) for r in runs)))
    if encoder is None:
        if not common:
            raise UserError(f"{what} needs the runs labelled with the same CLIP encoder; label them with "
                            "`neurflow-kb label` (one --clip-* choice for all)")
        if len(common) > 1:
            raise UserError(f"the runs are labelled by several encoders ({', '.join(common)}); pick one with "
                            "--encoder")
        return common[0]
    if encoder not in common:
        raise UserError(f"the runs are not all labelled by {encoder!r} (common: "
                        f"{', '.join(common) or 'none'})")
    return encoder


def _concept_masses(store: BaseStore, runs: Sequence[str], encoder: str, ranks: int) -> pd.DataFrame:
    """`compare.concept_masses` of some runs from their stored labels."""
    from .compare import best_labels, concept_masses

    rows = run_named(store, "compare_groups", runs=sorted(runs), encoder=encoder, ranks=int(ranks))
    return concept_masses(best_labels(rows))


def similarity(store: StoreLike, cls_a: ClassLike, cls_b: ClassLike, model: str | None = None,
               by: str = "neurons", encoder: str | None = None, ranks: int = 5) -> pd.DataFrame:
    """Circuit similarity of two classes of one model, per layer: the share both circuits route through
    the same neurons (`overlap`, see `neurflow_kb.compare`), with a last row `layer='(mean)'` holding the
    similarity itself (the mean over the layers below the class). One block per pair of their runs.
    `by='concepts'`: the same overlap of the concepts that carry the share (labels of one CLIP `encoder`
    up to rank `ranks`); the count columns are then `concepts_a`, `concepts_b`."""
    from .compare import layer_overlaps, neuron_masses, similarity_score

    unit = _check_by(by, ranks)
    with opened_store(store) as st:
        models = _model_keys(st, model)
        ra, rb = _runs_of(st, cls_a, models), _runs_of(st, cls_b, models)
        runs = sorted(set(ra["run"]) | set(rb["run"]))
        if unit == "neuron":
            masses = neuron_masses(run_named(st, "similar_members", runs=runs))
        else:
            masses = _concept_masses(st, runs, _pick_encoder(st, runs, encoder, "similarity by concepts"),
                                     ranks)
    counts = [f"{unit}s_a", f"{unit}s_b"]
    frames = []
    a: Any
    b: Any
    for a in ra.itertuples(index=False):
        for b in rb.itertuples(index=False):
            if a.model != b.model or a.run == b.run:
                continue
            parts = layer_overlaps(masses, a.run, b.run, unit=unit)
            mean = {"layer": "(mean)", "depth": None, "overlap": similarity_score(parts),
                    **{c: int(parts[c].sum()) for c in counts}, "shared": int(parts["shared"].sum())}
            block = pd.concat([parts, pd.DataFrame([mean])], ignore_index=True)
            block.insert(0, "run_b", b.run)
            block.insert(0, "run_a", a.run)
            block.insert(0, "model", a.model)
            frames.append(block)
    if not frames:
        raise UserError(f"classes {cls_a!r} and {cls_b!r} have no runs of one model to compare; pass --model")
    cols = [c.replace("neuron", unit) if c.startswith("neurons_") else c for c in SIMILARITY_COLUMNS]
    return pd.concat(frames, ignore_index=True)[cols]


def similar(store: StoreLike, cls: ClassLike, model: str | None = None, top: int = 10, by: str = "neurons",
            encoder: str | None = None, ranks: int = 5) -> pd.DataFrame:
    """The classes of the same model whose circuits route the most share through the same neurons as
    class `cls` does: `similarity` (mean over layers of the per-layer overlap) and one column per layer.
    `by='concepts'`: the classes whose circuits rest on the same concepts (labels of one CLIP `encoder` up
    to rank `ranks`), among the runs of the model labelled by that encoder."""
    from .compare import MEMBER_COLUMNS, neuron_masses, ranked_similar

    if int(top) < 1:
        raise UserError(f"top must be >= 1 (got {top})")
    if _check_by(by, ranks) == "concept":
        return _similar_by_concepts(store, cls, model, int(top), encoder, int(ranks))
    with opened_store(store) as st:
        models = _model_keys(st, model)
        own = _runs_of(st, cls, models)
        members = run_named(st, "similar_members", runs=own["run"].tolist())
        neurons = sorted({f"{m}/{lay}/{n}" for m, lay, n in zip(
            own.set_index("run").loc[members["run"], "model"], members["layer"], members["neuron"],
            strict=True)})
        others = run_named(st, "similar_candidates", neurons=neurons, runs=own["run"].tolist(),
                           models=sorted(set(own["model"])))
    frames = []
    for r in own.to_dict("records"):
        cand = others[(others["model"] == r["model"]) & (others["class"] != r["class"])]
        rows = pd.concat([members[members["run"] == r["run"]][MEMBER_COLUMNS], cand[MEMBER_COLUMNS]],
                         ignore_index=True)
        info = cand[["run", "model", "class", "class_name"]].drop_duplicates("run")
        ranked = ranked_similar(neuron_masses(rows), r["run"], info).head(int(top))
        ranked.insert(0, "of_run", r["run"])
        frames.append(ranked)
    return pd.concat(frames, ignore_index=True)


def _similar_by_concepts(store: StoreLike, cls: ClassLike, model: str | None, top: int,
                         encoder: str | None, ranks: int) -> pd.DataFrame:
    """`similar(by='concepts')`: every other class of the model whose run carries labels of the encoder."""
    from .compare import ranked_similar

    with opened_store(store) as st:
        models = _model_keys(st, model)
        own = _runs_of(st, cls, models)
        encoder = _pick_encoder(st, own["run"].tolist(), encoder, "similar by concepts")
        runs = run_named(st, "runs", models=sorted(set(own["model"])), classes=[])
        encs = run_named(st, "label_encoders", runs=runs["run"].tolist())
        runs = runs[runs["run"].isin(encs.loc[encs["encoder"] == encoder, "run"])]
        masses = _concept_masses(st, runs["run"].tolist(), encoder, ranks)
    frames = []
    for r in own.to_dict("records"):
        info = runs[(runs["model"] == r["model"]) & (runs["class"] != r["class"])]
        ranked = ranked_similar(masses, r["run"], info[["run", "model", "class", "class_name"]],
                                unit="concept").head(top)
        ranked.insert(0, "of_run", r["run"])
        frames.append(ranked)
    return pd.concat(frames, ignore_index=True)


COMPARE_FRAMES = ("runs", "concepts", "groups")


def compare(store: StoreLike, cls: ClassLike, models: Sequence[str], encoder: str | None = None,
            min_share: float = 0.0, ranks: int = 5) -> dict[str, pd.DataFrame]:
    """Class `cls` in two models (labelled with one CLIP encoder): `concepts` used by both, by A only and
    by B only, and `groups` paired across the models by RESEMBLES (embedding cosine), then the groups of
    either that resemble nothing in the other; `runs` names A and B.

    A concept's share in a run: each group's share of the class (abs_share) split among its labels of rank
    <= `ranks` in proportion to their scores, summed over the groups, over the run's layers (a run's
    concepts add up to 1); its depth: the share-weighted relative depth of those groups (0 = input side,
    1 = the class). A concept is used when its share exceeds `min_share`."""
    from .compare import best_labels, compare_concepts, compare_groups

    names = [m.strip() for m in models if m and m.strip()]
    if len(names) != 2:
        raise UserError(f"compare needs two models, e.g. --models world,world-plain (got {list(models)!r})")
    if int(ranks) < 1:
        raise UserError(f"ranks must be >= 1 (got {ranks})")
    with opened_store(store) as st:
        picked = []
        for name in names:
            runs = _runs_of(st, cls, _model_keys(st, name))
            if len(runs) > 1:
                listed = ", ".join(runs["run"])
                raise UserError(f"class {cls!r} has {len(runs)} runs in {name} ({listed}); keep one per "
                                "model")
            picked.append(runs.iloc[0])
        if picked[0]["model"] == picked[1]["model"]:
            raise UserError(f"{names[0]} and {names[1]} are the same model; compare two different models "
                            "(for two classes of one model use `query similar` or `query shared`)")
        run_keys = [str(p["run"]) for p in picked]
        encoder = _pick_encoder(st, run_keys, encoder, "compare")
        labels = run_named(st, "compare_groups", runs=run_keys, encoder=encoder, ranks=int(ranks))
        links = run_named(st, "compare_links", runs=run_keys)
    links = links[links["encoder"] == encoder]
    labels["rel_depth"] = labels["depth"] / labels["top_depth"].where(labels["top_depth"] > 0, 1)
    labels = best_labels(labels)         # a concept once per group (several vocabularies may give it)
    # per group, its best label names it in the group table
    groups = labels.drop_duplicates("group_key").sort_values(["run", "depth", "group_index"])
    label_a, label_b = (str(p["model"]).split("@")[0] for p in picked)
    if label_a == label_b:
        label_a, label_b = str(picked[0]["model"]), str(picked[1]["model"])
    runs_df = pd.DataFrame({"side": ["A", "B"], "model": [str(p["model"]) for p in picked],
                            "name": [label_a, label_b], "run": run_keys,
                            "class": [int(p["class"]) for p in picked],
                            "class_name": [p["class_name"] for p in picked], "encoder": encoder})
    concepts = compare_concepts(labels[labels["run"] == run_keys[0]], labels[labels["run"] == run_keys[1]],
                                label_a, label_b, min_share=float(min_share))
    pairs = compare_groups(groups[groups["run"] == run_keys[0]].reset_index(drop=True),
                           groups[groups["run"] == run_keys[1]].reset_index(drop=True), links, label_a,
                           label_b)
    return {"runs": runs_df, "concepts": concepts, "groups": pairs}


def path(store: StoreLike, group_key: str, max_steps: int = 64) -> pd.DataFrame:
    """Strongest path from a group up to its class: at each step follow the DRIVES edge maximising
    weight x influence of its target (a class counts 1); ties go to the smaller key."""
    with opened_store(store) as st:
        group_key = resolve_group(st, group_key)
        s = run_named(st, "group", key=group_key).iloc[0]
        rows = [{"step": 0, "node": group_key, "kind": "NeuronGroup", "layer": s["layer"],
                 "weight": None, "influence": float(s["influence"]), "score": None}]
        key, seen = group_key, {group_key}
        for step in range(1, max_steps + 1):
            nxt = run_named(st, "path_step", key=key)
            if nxt.empty:
                break
            nxt = nxt.assign(score=nxt["weight"] * nxt["influence"])
            best = nxt.sort_values(["score", "target"], ascending=[False, True]).iloc[0]
            rows.append({"step": step, "node": best["target"], "kind": best["target_kind"],
                         "layer": best["layer"], "weight": float(best["weight"]),
                         "influence": float(best["influence"]), "score": float(best["score"])})
            if best["target_kind"] == "Class" or best["target"] in seen:
                break
            key = best["target"]
            seen.add(key)
    return pd.DataFrame(rows, columns=["step", "node", "kind", "layer", "weight", "influence", "score"])


class TextEncoder(Protocol):
    """What `search` needs of a CLIP model (e.g. `neurflow_kb.labels.ClipEncoder`)."""

    encoder: str

    def encode_concepts(self, concepts: Sequence[str], templates: Sequence[str] = ...) -> Any: ...


SEARCH_COLUMNS = ["group_key", "model", "class", "class_name", "layer", "group_index", "similarity",
                  "share", "influence", "labels"]


def embedding_encoders(store: StoreLike, model: str | None = None) -> pd.DataFrame:
    """The encoders (and vector sizes) the groups of complete runs are embedded with, with group counts."""
    with opened_store(store) as st:
        return run_named(st, "embedding_encoders", models=_model_keys(st, model))


def _check_recorded(store: Any, recipe: Any) -> None:
    """Refuse a CLIP whose id the store records with other weights (a different encoder, same name)."""
    if recipe is None:
        return
    recorded = store.encoders()
    row = recorded[recorded["key"] == recipe.encoder]
    if len(row):
        recipe.check_recorded(row.iloc[0].to_dict(), store.describe())      # labels.recipes.EncoderRecipe


def search(store: StoreLike, text: str | Sequence[float], clip: TextEncoder | None = None, *,
           encoder: str | None = None, model: str | None = None, limit: int = 10,
           templates: Sequence[str] | None = None) -> pd.DataFrame:
    """Groups ranked by cosine similarity between their CLIP image embedding and `text` (embedded with
    `clip`, prompt-ensembled like the labels), or a ready `vector` of `encoder`; each row carries the
    class the group's run explains, the group's influence on it and its rank-1 labels."""
    if isinstance(text, str):
        if clip is None:
            raise UserError("searching by text needs the CLIP model the groups were embedded with")
        encoder = clip.encoder
        vector = [float(v) for v in (clip.encode_concepts([text], templates) if templates
                                     else clip.encode_concepts([text]))[0]]
    else:
        vector = [float(v) for v in text]
        if not encoder:
            raise UserError("a search vector needs the name of its encoder (encoder=...)")
    if int(limit) < 1:
        raise UserError(f"limit must be >= 1 (got {limit})")
    with opened_store(store) as st:
        models = _model_keys(st, model)
        encs = run_named(st, "embedding_encoders", models=models)
        if encs.empty:
            raise UserError("no group has a CLIP embedding yet; label the knowledge base first "
                            "(`neurflow-kb label`, or `neurflow-kb ingest --label`)")
        mine = encs[encs["encoder"] == encoder]
        if mine.empty:
            have = ", ".join(sorted(set(encs["encoder"].astype(str))))
            raise UserError(f"the groups are embedded with {have}, not {encoder}; search with the same CLIP "
                            "(--clip-model / --clip-pretrained / --clip-checkpoint)")
        _check_recorded(st, getattr(clip, "recipe", None))
        if len(vector) not in set(int(d) for d in mine["dim"]):
            raise UserError(f"the query vector has {len(vector)} values but {encoder} embeddings have "
                            f"{int(mine['dim'].iloc[0])}")
        if st.dialect == "ladybug":
            dim = int(len(vector))
            cypher = query_text("search", "ladybug").replace("__DIM__", str(dim))
            df = st.run_query(cypher, {"vector": vector, "dim": dim, "encoder": encoder, "models": models,
                                       "limit": int(limit)})
        else:
            count = "MATCH (g:NeuronGroup) WHERE g.embedding IS NOT NULL RETURN count(g) AS n"
            total = int(st.run_query(count)["n"].iloc[0])
            candidates = max(1, min(total, max(1000, 50 * int(limit))))
            df = run_named(st, "search", vector=vector, encoder=encoder, models=models,
                           candidates=candidates, limit=int(limit))
    if df.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in SEARCH_COLUMNS})
    df = df[SEARCH_COLUMNS].copy()
    df["labels"] = [sorted(v or []) for v in df["labels"]]
    df["similarity"] = df["similarity"].astype(float)
    return df.reset_index(drop=True)


def images(store: StoreLike, group_key: str) -> pd.DataFrame:
    """Images that route through a group: those whose debugging (`debug --save`) found it firing."""
    with opened_store(store) as st:
        return run_named(st, "group_images", key=resolve_group(st, group_key))


def models(store: StoreLike) -> pd.DataFrame:
    """Models in the knowledge base with their layer count and number of complete runs."""
    with opened_store(store) as st:
        return run_named(st, "models")


def classes(store: StoreLike, model: str | None = None) -> pd.DataFrame:
    """Classes with at least one complete run (optionally of one model)."""
    with opened_store(store) as st:
        return run_named(st, "classes", models=_model_keys(st, model))


def runs(store: StoreLike, model: str | None = None, cls: ClassLike | None = None) -> pd.DataFrame:
    """Complete runs, optionally of one model and / or one class."""
    with opened_store(store) as st:
        mk = _model_keys(st, model)
        keys = _class_keys(st, cls, mk) if cls is not None else []
        return run_named(st, "runs", models=mk, classes=keys)


__all__ = ["class_run_keys", "opened_store", "drivers", "circuit", "group", "resolve_group",
           "short_group_key", "GroupInfo", "concept", "shared", "similarity", "similar", "compare", "path",
           "models", "classes", "runs", "run_named", "search", "embedding_encoders", "TextEncoder", "images"]
