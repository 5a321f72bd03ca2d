"""Label benchmark: contrastive labels against mean-embedding labels, on the same world circuits.

Labelling is measured apart from grouping: each group's exemplar crops are read against the planted-
concept world's masks (`region_concepts`), giving the group's dominant concept (the one its exemplars
share most; ties all count) and its purity (that share). For every method, on the same circuits:

- accuracy: the group's top label is one of its own dominant concepts (not just any concept of its class);
- majority: the top label is shown by at least half of its exemplars (the old, looser rule);
- coverage: the share of a class's 4 planted concepts (shape, colour, texture, part) named by the top
  labels of its groups, and its ceiling: the best coverage if every group were named by one of its
  dominant concepts (a matching of groups to concepts), also over the classes whose ceiling is >= 0.75;
- backgrounds: top labels that name a background (a nuisance), and how many of those are dominant.

Circuit sets (all seeded): `demo` are the 12 circuits `neurflow-kb demo` builds (8 images per class,
seeds 1000+c); `demo-b`, `demo-c` the same settings on other images; `fidelity`, `fidelity-b` the
settings of benchmarks/fidelity.py (20 images per class). Methods: `mean-photo` (the mean embedding with
the seven photo prompts: the labels before contrast, as the demo had them), `mean` (the same with the
tiny CLIP's own prompts), `contrast` (the default: clip-contrast-run-0.75, own prompts) and ablations.
Also what the tiny CLIP can see (AUROC per concept kind, over the thumbnails) and the cost per group with
a ViT-B-32 (random init: the architecture's cost, not its labels) and the 1,792-concept broad vocabulary.

Prints one JSON line per (set, method), one per method over all sets, one for CLIP visibility and one for
the cost; writes the generated part of docs/labels.md.

    python benchmarks/labels.py                     # all (about 10 min on this shared CPU)
    python benchmarks/labels.py --sets demo --no-docs --no-cost
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # neurflow_kb_dev (not installed)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "labels.md"
START, END = "<!-- labels-benchmark:start -->", "<!-- labels-benchmark:end -->"


@dataclass(frozen=True)
class CircuitSet:
    """World circuits of all 12 classes under one setting: images per class, data seed base, engine."""

    name: str
    images: int
    seed: int
    engine: str                    # 'demo' (as `neurflow-kb demo`) or 'fidelity' (as benchmarks/fidelity.py)


SETS = (CircuitSet("demo", 8, 1000, "demo"), CircuitSet("demo-b", 8, 11000, "demo"),
        CircuitSet("demo-c", 8, 12000, "demo"), CircuitSet("fidelity", 20, 1000, "fidelity"),
        CircuitSet("fidelity-b", 20, 13000, "fidelity"))
# (name, method, prompts): 'photo' = the seven default templates, 'own' = the tiny CLIP's training prompts
METHODS = (("mean-photo", "mean", "photo"), ("mean", "mean", "own"), ("contrast", "contrast", "own"),
           ("contrast-w0.5", "clip-contrast-run-0.5", "own"), ("contrast-w1", "clip-contrast-run-1", "own"),
           ("contrast-layer", "clip-contrast-layer-0.75", "own"), ("contrast-photo", "contrast", "photo"))
MAIN = ("mean-photo", "mean", "contrast")


def engine(kind: str) -> Any:
    """The NeurFlow engine of a setting (the demo's, or the fidelity benchmark's)."""
    from neurflow_kb import NeurFlow, NeurFlowConfig

    if kind == "demo":
        return NeurFlow(tau=4, top_k=16, max_nodes_per_layer=8, strategy="fast")
    return NeurFlow(NeurFlowConfig(tau=8, top_k=30, ig_steps=16, max_nodes_per_layer=8, seed=0,
                                   class_filter="predicted"))


def circuits(s: CircuitSet, cache: Path | None) -> list[tuple[int, Any, Any]]:
    """(class, circuit, WorldBatch) of every world class, fitted (or read from `cache`)."""
    from neurflow_kb import Circuit
    from neurflow_kb.models import get_adapter
    from neurflow_kb.world import CLASS_NAMES, generate

    adapter = get_adapter("world")
    out = []
    for c in range(len(CLASS_NAMES)):
        batch = generate(s.images, seed=s.seed + c, classes=[c])
        where = cache / s.name / f"{c:02d}" if cache else None
        if where is not None and (where / "manifest.json").is_file():
            circuit = Circuit.load(where)
        else:
            circuit = engine(s.engine).fit(adapter, batch.tensor(), c, progress=False)
            if where is not None:
                circuit.save(where)
        out.append((c, circuit, batch))
    return out


def evaluate(s: CircuitSet, fitted: list[tuple[int, Any, Any]], clip: Any) -> tuple[list[dict], dict]:
    """Every method on one set: one summary row per method, and per-group rows (for pooling)."""
    from neurflow_kb.labels import DEFAULT_TEMPLATES, label_circuit
    from neurflow_kb.world import BACKGROUNDS, CONCEPTS, WORLD_CLASSES
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES
    from neurflow_kb_dev.fidelity import (
        coverage_ceiling,
        exemplar_concepts,
        group_exemplars,
        group_truth,
        label_evaluation,
        planted_coverage,
    )

    prompts = {"photo": DEFAULT_TEMPLATES, "own": CONCEPT_TEMPLATES}
    truths = {c: group_truth(group_exemplars(circ), exemplar_concepts(circ, batch), CONCEPTS)
              for c, circ, batch in fitted}
    per_class: list[dict] = []
    groups: list[pd.DataFrame] = []
    for name, method, prompt in METHODS:
        for c, circ, _ in fitted:
            lab = label_circuit(circ, clip, list(CONCEPTS), top_n=1, templates=prompts[prompt], method=method)
            top = {(int(r.depth), int(r.group)): str(r.concept) for r in lab.labels.itertuples(index=False)}
            planted = WORLD_CLASSES[c].concepts
            ev = label_evaluation(truths[c], top, planted, BACKGROUNDS)
            ev["class"], ev["method"], ev["set"] = c, name, s.name
            groups.append(ev)
            per_class.append({"set": s.name, "method": name, "class": c,
                              "coverage": planted_coverage(ev["label"], planted),
                              "coverage_right": planted_coverage(ev.loc[ev["right"], "label"], planted),
                              "ceiling": coverage_ceiling(truths[c], planted, "dominant"),
                              "ceiling_majority": coverage_ceiling(truths[c], planted, "majority"),
                              "method_id": lab.labels["method"].iloc[0]})
    return per_class, {"groups": pd.concat(groups, ignore_index=True)}


def summarize(groups: pd.DataFrame, classes: pd.DataFrame) -> dict[str, Any]:
    """The figures of one method over some sets."""
    allowed = classes[classes["ceiling"] >= 0.75]
    return {"groups": int(len(groups)), "accuracy": _r(groups["right"].mean()),
            "majority": _r(groups["majority"].mean()), "label_share": _r(groups["share"].mean()),
            "coverage": _r(classes["coverage"].mean()),
            "coverage_right": _r(classes["coverage_right"].mean()), "ceiling": _r(classes["ceiling"].mean()),
            "ceiling_majority": _r(classes["ceiling_majority"].mean()),
            "classes_ceiling_075": int(len(allowed)), "classes": int(len(classes)),
            "coverage_where_ceiling_075": _r(allowed["coverage"].mean()),
            "backgrounds": int(groups["background"].sum()),
            "backgrounds_dominant": int(groups["background_right"].sum()),
            "purity": _r(groups["purity"].mean())}


def _r(v: Any, nd: int = 3) -> Any:
    return None if v is None or not np.isfinite(v) else round(float(v), nd)


def clip_visibility(fitted_sets: list[list[tuple[int, Any, Any]]], clip: Any) -> dict[str, Any]:
    """How well the tiny CLIP's per-crop zero-shot probability tells a shown concept from an absent one,
    per concept kind (AUROC over thumbnails x concepts of that kind)."""
    from sklearn.metrics import roc_auc_score

    from neurflow_kb.labels import group_thumbnail_crops
    from neurflow_kb.labels.labeling import softmax_scores
    from neurflow_kb.world import CONCEPT_KIND, CONCEPTS
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES
    from neurflow_kb_dev.fidelity import exemplar_concepts

    text = clip.encode_concepts(list(CONCEPTS), CONCEPT_TEMPLATES).astype(np.float64)
    scores: dict[str, list[float]] = {}
    truth: dict[str, list[bool]] = {}
    for fitted in fitted_sets:
        for _, circ, batch in fitted:
            thumbs = group_thumbnail_crops(circ).drop_duplicates("crop")
            shown = exemplar_concepts(circ, batch)
            prob = softmax_scores(clip.encode_images(list(thumbs["png"])).astype(np.float64) @ text.T,
                                  clip.logit_scale)
            for row, crop in zip(prob, thumbs["crop"], strict=True):
                for j, concept in enumerate(CONCEPTS):
                    kind = CONCEPT_KIND[concept]
                    scores.setdefault(kind, []).append(float(row[j]))
                    truth.setdefault(kind, []).append(concept in shown[int(crop)])
    return {kind: _r(roc_auc_score(truth[kind], scores[kind])) for kind in scores}


def cost(groups: int = 24, per_group: int = 8, prompts: int = 64) -> dict[str, Any]:
    """Seconds per group of a ViT-B-32 (random init, on this CPU) with the broad vocabulary: the image
    tower on a group's thumbnails, then ranking by the mean method and by the contrast."""
    import open_clip
    import torch

    from neurflow_kb.labels import ClipEncoder, contrast_scores, load_vocabulary
    from neurflow_kb.labels.labeling import group_embedding, softmax_scores
    from neurflow_kb.world import generate

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    clip = ClipEncoder(model, preprocess, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32/random-init")
    vocab = load_vocabulary("broad")
    images = generate(groups * per_group, seed=7).pil()
    t0 = time.perf_counter()
    emb = clip.encode_images(images).astype(np.float64)
    image_s = (time.perf_counter() - t0) / groups
    t0 = time.perf_counter()
    clip.encode_texts([f"a photo of {c}." for c in vocab.concepts[:prompts]])
    text_s = (time.perf_counter() - t0) / prompts
    rng = np.random.default_rng(0)
    text = rng.standard_normal((len(vocab), emb.shape[1]))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    parts = [emb[i * per_group:(i + 1) * per_group] for i in range(groups)]
    t0 = time.perf_counter()
    sim = np.stack([group_embedding(e) for e in parts]).astype(np.float64) @ text.T
    np.argsort(-softmax_scores(sim, 100.0), axis=1)
    mean_s = (time.perf_counter() - t0) / groups
    t0 = time.perf_counter()
    _, contrast = contrast_scores([e @ text.T for e in parts], 100.0, [("run",)] * groups)
    np.argsort(-contrast, axis=1)
    contrast_s = (time.perf_counter() - t0) / groups
    templates = 7
    return {"clip": "ViT-B-32 (random init)", "threads": torch.get_num_threads(), "vocabulary": len(vocab),
            "thumbnails_per_group": per_group, "groups": groups,
            "image_tower_s_per_group": _r(image_s), "rank_mean_ms_per_group": _r(1000 * mean_s, 2),
            "rank_contrast_ms_per_group": _r(1000 * contrast_s, 2),
            "text_tower_s_per_prompt": _r(text_s, 4),
            "vocabulary_text_s_once": _r(text_s * len(vocab) * templates, 0)}


# --------------------------------------------------------------------------------------------------
# report


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else f"{v}" for v in row) + " |")
    return "\n".join(lines)


def bee_labels(groups: pd.DataFrame, circuit: Any, clip: Any) -> pd.DataFrame:
    """The demo's bee groups per method: their top labels (counts), how many are right, and the planted
    concepts among each group's first two labels (what the demo prints)."""
    from neurflow_kb.labels import DEFAULT_TEMPLATES, label_circuit
    from neurflow_kb.world import CLASS_NAMES, CONCEPTS, WORLD_CLASSES
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES

    bee = groups[(groups["set"] == "demo") & (groups["class"] == CLASS_NAMES.index("bee"))]
    planted = WORLD_CLASSES[CLASS_NAMES.index("bee")].concepts
    rows = []
    for name, method, prompt in METHODS:
        if name not in MAIN:
            continue
        part = bee[bee["method"] == name]
        templates = DEFAULT_TEMPLATES if prompt == "photo" else CONCEPT_TEMPLATES
        two = label_circuit(circuit, clip, list(CONCEPTS), top_n=2, templates=templates, method=method).labels
        rows.append({"method": name, "bee groups": len(part),
                     "top labels": ", ".join(f"{k} x{v}" for k, v in Counter(part["label"]).most_common()),
                     "right": int(part["right"].sum()),
                     "planted concepts in the first two labels": ", ".join(
                         c for c in planted if c in set(two["concept"]))})
    return pd.DataFrame(rows)


def report(lines: list[dict[str, Any]], pooled: dict[str, dict[str, Any]], bee: pd.DataFrame,
           visibility: dict[str, Any], cost_line: dict[str, Any] | None, seconds: float) -> str:
    """The generated part of docs/labels.md."""
    cols = ["accuracy", "majority", "label_share", "coverage", "coverage_right", "ceiling",
            "coverage_where_ceiling_075",
            "backgrounds", "backgrounds_dominant", "purity"]
    main = pd.DataFrame([{"set": ln["set"], "method": ln["method"], "groups": ln["groups"],
                          **{k: ln[k] for k in cols}} for ln in lines if ln["method"] in MAIN])
    allm = pd.DataFrame([{"method": m, "groups": v["groups"], **{k: v[k] for k in cols}}
                         for m, v in pooled.items()])
    demo = {ln["method"]: ln for ln in lines if ln["set"] == "demo"}
    p, c, mp = pooled["mean"], pooled["contrast"], pooled["mean-photo"]
    n_allowed = p["classes_ceiling_075"]
    parts = [
        START,
        "",
        "<!-- generated by `python benchmarks/labels.py`; do not edit by hand -->",
        "",
        f"Settings: 5 circuit sets x 12 world classes ({p['groups']} groups; `demo` is exactly what "
        "`neurflow-kb demo` builds), vocabulary = the world's 19 concept words, the tiny world CLIP, "
        f"top-1 labels, seeded; {seconds / 60:.1f} min on this shared 2-core CPU. Columns: accuracy = the "
        "top label is one of the group's dominant concepts (the one its exemplar crops share most, from "
        "the masks; ties all count); majority = shown by at least half of its exemplars (the old rule); "
        "label_share = share of its exemplars showing the label; coverage = share of a class's 4 planted "
        "concepts named by its groups' top labels (coverage_right: named by a group whose dominant concept "
        "it is); ceiling = the best coverage if every group were named "
        "by one of its dominant concepts; coverage_where_ceiling_075 = coverage over the classes whose "
        "ceiling is at least 0.75; backgrounds = top labels naming a background (backgrounds_dominant: of "
        "those, the group's dominant concept); purity = mean share of a group's exemplars showing its "
        "dominant concept.",
        "",
        "Per circuit set (the three main methods):",
        "",
        _md(main),
        "",
        "All sets together (ablations included: the contrast weight w, the same-layer reference, the "
        "contrast with the photo prompts):",
        "",
        _md(allm),
        "",
        *(["The demo's *bee* (its planted concepts circle, yellow, striped, antenna):", "", _md(bee), ""]
          if len(bee) else []),
        "What the tiny CLIP sees (AUROC of its per-crop zero-shot probability for a shown against an absent "
        "concept, over all thumbnails): " + ", ".join(f"{k} {v}" for k, v in visibility.items()) + ".",
        "",
        f"Summary: on the demo's circuits the labels before this change (mean embedding, photo prompts) "
        f"name {demo['mean-photo']['coverage']} of a class's planted concepts with "
        f"{demo['mean-photo']['backgrounds']} background labels (accuracy {demo['mean-photo']['accuracy']}); "
        f"the tiny CLIP's own prompts alone give {demo['mean']['coverage']} (accuracy "
        f"{demo['mean']['accuracy']}), the contrast {demo['contrast']['coverage']} (accuracy "
        f"{demo['contrast']['accuracy']}, {demo['contrast']['backgrounds']} backgrounds). Over all "
        f"{p['groups']} groups: coverage {mp['coverage']} -> {p['coverage']} (own prompts) -> "
        f"{c['coverage']} (contrast), {c['coverage_where_ceiling_075']} on the {n_allowed} of "
        f"{p['classes']} classes whose ceiling allows 0.75; accuracy {mp['accuracy']} -> {p['accuracy']} -> "
        f"{c['accuracy']}; majority {mp['majority']} -> {p['majority']} -> {c['majority']}. The ceiling "
        f"is {p['ceiling']} (groups' mean purity {p['purity']}).",
    ]
    if cost_line:
        k = cost_line
        parts += ["", f"Cost per group ({k['clip']}, {k['threads']} CPU thread, {k['vocabulary']} concepts, "
                  f"{k['thumbnails_per_group']} thumbnails): image tower {k['image_tower_s_per_group']} s; "
                  f"ranking {k['rank_mean_ms_per_group']} ms (mean) vs {k['rank_contrast_ms_per_group']} ms "
                  f"(contrast); once per vocabulary and prompt set: the text tower, "
                  f"{k['text_tower_s_per_prompt']} s per prompt, about {k['vocabulary_text_s_once']:.0f} s "
                  "for 1,792 concepts x 7 prompts on this CPU."]
    parts += ["", END]
    return "\n".join(parts)


def write_doc(section: str, path: Path = DOC) -> None:
    """Replace the generated part of docs/labels.md (between the markers)."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} lacks the markers {START} / {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + section + tail)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print JSON lines; write docs/labels.md unless --no-docs."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default=",".join(s.name for s in SETS))
    p.add_argument("--cache", type=Path, default=None, help="keep fitted circuits here (and reuse them)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-docs", action="store_true")
    p.add_argument("--no-cost", action="store_true")
    args = p.parse_args(argv)

    import torch

    from neurflow_kb.labels import load_clip
    from neurflow_kb.world import world_clip_dir

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    clip = load_clip(checkpoint=world_clip_dir())
    wanted = args.sets.split(",")
    unknown = [w for w in wanted if w not in {s.name for s in SETS}]
    if unknown:
        raise SystemExit(f"unknown sets {unknown}; choose from {', '.join(s.name for s in SETS)}")
    classes, groups, fitted_sets, names = [], [], [], []
    for s in SETS:
        if s.name not in wanted:
            continue
        fitted = circuits(s, args.cache)
        fitted_sets.append(fitted)
        names.append(s.name)
        per_class, res = evaluate(s, fitted, clip)
        classes += per_class
        groups.append(res["groups"])
        print(f"set {s.name} done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    cls, grp = pd.DataFrame(classes), pd.concat(groups, ignore_index=True)
    lines = []
    for (set_name, method), part in grp.groupby(["set", "method"], sort=False):
        c = cls[(cls["set"] == set_name) & (cls["method"] == method)]
        line = {"benchmark": "labels", "set": set_name, "method": method, "method_id": c["method_id"].iloc[0],
                **summarize(part, c)}
        lines.append(line)
        print(json.dumps(line), flush=True)
    pooled = {}
    for method, part in grp.groupby("method", sort=False):
        pooled[method] = summarize(part, cls[cls["method"] == method])
        print(json.dumps({"benchmark": "labels", "set": "all", "method": method, **pooled[method]}),
              flush=True)
    visibility = clip_visibility(fitted_sets, clip)
    print(json.dumps({"benchmark": "labels-clip-visibility", "auroc": visibility}), flush=True)
    cost_line = None
    if not args.no_cost:
        cost_line = cost()
        print(json.dumps({"benchmark": "labels-cost", **cost_line}), flush=True)
    seconds = time.perf_counter() - started
    if not args.no_docs:
        from neurflow_kb.world import CLASS_NAMES

        demo = dict(zip(names, fitted_sets, strict=True)).get("demo")
        bee = bee_labels(grp, demo[CLASS_NAMES.index("bee")][1], clip) if demo else pd.DataFrame()
        write_doc(report(lines, pooled, bee, visibility, cost_line, seconds))
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
