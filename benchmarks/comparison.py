"""Comparison benchmark: does circuit similarity follow the planted ground truth, and do two architectures
share the planted concepts?

On the planted-concept world, for each shipped model (`world`, a ResNet-style CNN, and `world_plain`, a
plain CNN without skip connections): the circuits of all 12 classes (the settings of benchmarks/fidelity.py),
labelled by the world's tiny CLIP, on two sets of images: the selection set (seed 1000 + class, on which
the similarity measures were chosen) and a fresh set (seed 5000 + class, the confirmation). Then

- class similarity (`neurflow_kb.compare`, what `query similar` returns) by neurons and by concepts for the
  66 class pairs against the number of planted attributes the two classes share (Spearman), per model and
  set; as a control without any circuit, the same overlap of the CLIP concept distributions of the class
  images themselves;
- the same similarities against the model's confusion between the two classes, from its predictions on a
  fresh world set (Spearman, reported whatever it is);
- both models' circuits in one knowledge base (embedded store): `query compare CLASS --models
  world,world_plain` for every class, counting the classes whose planted concepts are all among the
  concepts used by both models, and the background (nuisance) concepts that show up.

Prints one JSON line per model and one for the cross-model comparison; writes the comparison section of
docs/fidelity.md (between its markers, the rest of the file untouched) and docs/figures/comparison_*.png.

    python benchmarks/comparison.py                   # both models, all classes, two sets (about 10 min)
    python benchmarks/comparison.py --no-docs         # numbers only
    python benchmarks/comparison.py --cache DIR       # keep / reuse the labelled circuits in DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fidelity import Settings as FidelitySettings  # noqa: E402  (the circuits of benchmarks/fidelity.py)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # neurflow_kb_dev (not installed)

BEGIN = "<!-- comparison:begin (benchmarks/comparison.py writes this section) -->"
END = "<!-- comparison:end -->"
MODELS = ("world", "world_plain")


@dataclass
class Settings(FidelitySettings):
    """benchmarks/fidelity.py's circuit settings with 16 nodes per layer and 30 images per class (at 8
    nodes and 20 images the similarity of the world CNN tracked the attributes less: Spearman 0.41 against
    0.47), plus the confusion set and the labels kept per group."""

    max_nodes: int = 16
    circuit_images: int = 30
    confusion_images: int = 2400
    labels_per_group: int = 5
    selection_seed: int = 1000         # images of class c: seed + c (benchmarks/fidelity.py's)
    fresh_seed: int = 5000             # the confirmation set


def adapter_of(name: str) -> Any:
    from neurflow_kb.world import world_adapter, world_plain_adapter

    return world_adapter() if name == "world" else world_plain_adapter()


def circuits_of(name: str, s: Settings, clip: Any, log: Any, seed: int = 1000,
                cache: Path | None = None) -> list[Any]:
    """The labelled circuits of all 12 world classes of one model (images: seed `seed` + class; 1000 is
    benchmarks/fidelity.py's). With `cache`, circuits are read from / saved to
    `cache/<model>-<seed>-<class>` (a cached circuit of other settings stops the run)."""
    from neurflow_kb import Circuit, NeurFlow
    from neurflow_kb.labels import label_circuit
    from neurflow_kb.world import CLASS_NAMES, CONCEPTS, generate
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES

    adapter = adapter_of(name)
    out = []
    for cls in range(len(CLASS_NAMES)):
        t0 = time.perf_counter()
        where = cache / f"{name}-{seed}-{cls}" if cache else None
        if where is not None and where.is_dir():
            cached = Circuit.load(where)
            want = asdict(s.neurflow())
            stale = [k for k in ("tau", "top_k", "ig_steps", "max_nodes_per_layer", "seed", "class_filter")
                     if cached.manifest["config"].get(k) != want[k]]
            if stale or cached.manifest.get("n_images", 0) > s.circuit_images:
                what = ", ".join(stale) or "images"
                raise SystemExit(f"{where} was computed with other settings ({what}); remove it or pass "
                                 "another --cache")
            out.append(cached)
            log(f"{name} class {cls} ({CLASS_NAMES[cls]}): cached {where}")
            continue
        images = generate(s.circuit_images, seed=seed + cls, classes=[cls]).tensor()
        circuit = NeurFlow(s.neurflow()).fit(adapter, images, cls, progress=False)
        # the default (contrastive) labels with the prompts the tiny CLIP was trained with, as the demo
        labelled = label_circuit(circuit, clip, vocabulary=list(CONCEPTS), top_n=s.labels_per_group,
                                 templates=CONCEPT_TEMPLATES)
        if where is not None:
            labelled.save(where)
        out.append(labelled)
        log(f"{name} class {cls} ({CLASS_NAMES[cls]}): {time.perf_counter() - t0:.0f} s")
    return out


def shared_attributes(a: int, b: int) -> int:
    """How many of shape, colour, texture and part two world classes have in common."""
    from neurflow_kb.world import WORLD_CLASSES

    return sum(x == y for x, y in zip(WORLD_CLASSES[a].concepts, WORLD_CLASSES[b].concepts, strict=True))


def confusion(name: str, s: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric confusion of every class pair on fresh world images: from the predictions,
    (C[i,j] + C[j,i]) / (n_i + n_j); and the soft version from the predicted probabilities, the mean
    probability of class j on images of class i and of i on images of j."""
    import torch

    from neurflow_kb.world import CLASS_NAMES, generate

    batch = generate(s.confusion_images, seed=9000)
    model = adapter_of(name).model
    with torch.no_grad():
        x = batch.tensor()
        prob = torch.cat([model(x[i:i + 256]).softmax(1) for i in range(0, len(x), 256)]).numpy()
    y = np.asarray(batch.labels)
    k = len(CLASS_NAMES)
    c = np.zeros((k, k))
    np.add.at(c, (y, prob.argmax(1)), 1)
    n = c.sum(1)
    hard = (c + c.T) / (n[:, None] + n[None, :])
    p = np.stack([prob[y == i].mean(0) for i in range(k)])
    return hard, (p + p.T) / 2


def image_concepts(seed: int, s: Settings, clip: Any) -> np.ndarray:
    """Control without a circuit: per class, the mean CLIP zero-shot distribution over the world concepts
    of its circuit images ([classes, concepts])."""
    from neurflow_kb.labels.images import to_pil
    from neurflow_kb.labels.labeling import softmax_scores
    from neurflow_kb.world import CLASS_NAMES, CONCEPTS, generate
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES

    text = clip.encode_concepts(list(CONCEPTS), CONCEPT_TEMPLATES).astype(float)
    out = []
    for cls in range(len(CLASS_NAMES)):
        images = [to_pil(x) for x in generate(s.circuit_images, seed=seed + cls, classes=[cls]).images]
        sim = clip.encode_images(images).astype(float) @ text.T
        out.append(softmax_scores(sim, clip.logit_scale).mean(0))
    return np.stack(out)


def pair_table(name: str, set_name: str, circuits: list[Any], conf: tuple[np.ndarray, np.ndarray],
               images: np.ndarray) -> pd.DataFrame:
    """One row per class pair: similarity by neurons and by concepts (and their per-layer parts), the
    image-concept control, shared attributes, confusion (from predictions, and from probabilities)."""
    from neurflow_kb.compare import circuit_similarity, concept_similarity
    from neurflow_kb.world import CLASS_NAMES

    rows = []
    for a, b in combinations(range(len(circuits)), 2):
        score, parts = circuit_similarity(circuits[a], circuits[b])
        by_concepts, cparts = concept_similarity(circuits[a], circuits[b])
        layers = {f"overlap_{lay}": v for lay, v in zip(parts["layer"], parts["overlap"], strict=True)}
        layers.update({f"concepts_{lay}": v for lay, v in zip(cparts["layer"], cparts["overlap"],
                                                               strict=True)})
        rows.append({"model": name, "set": set_name, "a": CLASS_NAMES[a], "b": CLASS_NAMES[b],
                     "shared": shared_attributes(a, b), "similarity": score,
                     "concept_similarity": by_concepts,
                     "image_concepts": float(np.minimum(images[a], images[b]).sum()),
                     "confusion": float(conf[0][a, b]), "soft_confusion": float(conf[1][a, b]), **layers})
    return pd.DataFrame(rows)


#: The similarity columns of the pair table: what `query similar` computes, and the control.
MEASURES = {"similarity": "neurons", "concept_similarity": "concepts", "image_concepts": "images (control)"}
SETS = ("selection", "fresh")


def measure_lines(pairs: pd.DataFrame) -> dict[str, Any]:
    """Spearman of every measure against shared attributes and confusion, for one model and set."""
    out: dict[str, Any] = {}
    for col in MEASURES:
        suffix = "" if col == "similarity" else "_" + MEASURES[col].split()[0]
        out[f"spearman_shared{suffix}"] = round(spearman(pairs["shared"], pairs[col]), 3)
        if col != "image_concepts":
            out[f"spearman_confusion{suffix}"] = round(spearman(pairs["confusion"], pairs[col]), 3)
            out[f"spearman_soft_confusion{suffix}"] = round(spearman(pairs["soft_confusion"], pairs[col]), 3)
            out[f"mean_{col}_by_shared"] = {int(k): round(float(v), 4) for k, v in
                                            pairs.groupby("shared")[col].mean().items()}
    return out


def spearman(x: Any, y: Any) -> float:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


MIN_SHARES = (0.0, 0.01)


def cross_model(circuits: dict[str, list[Any]], log: Any) -> pd.DataFrame:
    """`query compare` for every class over one knowledge base holding both models' labelled circuits:
    per class and `--min-share` threshold, the planted and background concepts among those used by both."""
    from neurflow_kb import queries
    from neurflow_kb.store import LadybugStore
    from neurflow_kb.world import BACKGROUNDS, WORLD_CLASSES

    rows = []
    with tempfile.TemporaryDirectory() as tmp, LadybugStore(Path(tmp) / "kb.lbug") as st:
        for name in MODELS:
            st.write_circuits(circuits[name])
        log(f"knowledge base: {st.counts()['RESEMBLES']} RESEMBLES relationships")
        for cls, wc in enumerate(WORLD_CLASSES):
            for min_share in MIN_SHARES:
                out = queries.compare(st, wc.name, list(MODELS), min_share=min_share)
                con = out["concepts"].set_index("concept")
                both = con[con["used_by"] == "both"]
                g = out["groups"]
                share = {c: f"{con.loc[c, 'share_a']:.0%}/{con.loc[c, 'share_b']:.0%}" for c in both.index}
                rows.append({
                    "class": cls, "name": wc.name, "min_share": min_share, "planted": list(wc.concepts),
                    "planted_in_both": [f"{c} {share[c]}" for c in wc.concepts if c in both.index],
                    "n_planted_in_both": sum(c in both.index for c in wc.concepts),
                    "all_planted_in_both": all(c in both.index for c in wc.concepts),
                    "other_in_both": [f"{c} {share[c]}" for c in both.index
                                      if c not in wc.concepts and c not in BACKGROUNDS],
                    "background_in_both": [f"{c} {share[c]}" for c in both.index if c in BACKGROUNDS],
                    "world_only": sorted(con.index[con["used_by"] == f"{MODELS[0]} only"]),
                    "world_plain_only": sorted(con.index[con["used_by"] == f"{MODELS[1]} only"]),
                    "matched_groups": int((g["used_by"] == "both").sum()), "groups": len(g)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# report


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in r) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(str(x) for x in v) or "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def plot(pairs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 7), sharey="row")
    rng = np.random.default_rng(0)
    for row, col in enumerate(("similarity", "concept_similarity")):
        for ax, name in zip(axes[row], MODELS, strict=True):
            rhos = []
            for set_name, offset, fill in (("selection", -0.15, True), ("fresh", 0.15, False)):
                p = pairs[(pairs["model"] == name) & (pairs["set"] == set_name)]
                x = p["shared"] + offset + rng.uniform(-0.08, 0.08, len(p))
                colour = "C0" if name == "world" else "C1"
                ax.scatter(x, p[col], s=16, alpha=0.7, label=set_name, color=colour if fill else "none",
                           edgecolors=colour)
                rhos.append(spearman(p["shared"], p[col]))
            means = pairs[pairs["model"] == name].groupby("shared")[col].mean()
            ax.plot(means.index, means.values, "k-o", lw=1, ms=4, label="mean of both sets")
            ax.set_title(f"{name}, by {MEASURES[col]}: Spearman {rhos[0]:.2f} / {rhos[1]:.2f}", fontsize=9)
            ax.set_xticks(sorted(pairs["shared"].unique()))
            if row == 1:
                ax.set_xlabel("planted attributes the two classes share")
            ax.legend(loc="upper left", fontsize=7)
        axes[row][0].set_ylabel(f"similarity by {MEASURES[col]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(lines: dict[str, Any], pairs: pd.DataFrame, cross: pd.DataFrame, s: Settings, seconds: float,
            figure: str) -> str:
    """The markdown of the comparison section."""
    sel = pairs[pairs["set"] == "selection"]
    rows, conf_rows, layer_rows = [], [], []
    for name in MODELS:
        for set_name in SETS:
            line = lines[name] if set_name == "selection" else lines[name]["fresh"]
            rows.append({"model": name, "set": f"{set_name} (seed {line['seed']} + class)",
                         "Spearman by neurons": line["spearman_shared"],
                         "Spearman by concepts": line["spearman_shared_concepts"],
                         "control: image concepts": line["spearman_shared_images"]})
        line = lines[name]
        conf_rows.append({"model": name, "test accuracy": line["test_accuracy"],
                          "pairs ever confused": line["confused_pairs"],
                          "neurons ~ confusion": line["spearman_confusion"],
                          "neurons ~ soft confusion": line["spearman_soft_confusion"],
                          "concepts ~ confusion": line["spearman_confusion_concepts"],
                          "concepts ~ soft confusion": line["spearman_soft_confusion_concepts"]})
        p = sel[sel["model"] == name]
        for c in [c for c in p.columns if c.startswith("overlap_")]:
            lay = c[len("overlap_"):]
            if p[c].notna().any():
                layer_rows.append({"model": name, "layer": lay,
                                   "Spearman, neurons": spearman(p["shared"], p[c]),
                                   "mean, neurons": p[c].mean(),
                                   "Spearman, concepts": spearman(p["shared"], p[f"concepts_{lay}"]),
                                   "mean, concepts": p[f"concepts_{lay}"].mean()})
    summary = pd.DataFrame(rows)
    by_shared = sel.groupby(["model", "shared"]).agg(
        pairs=("similarity", "size"), neurons_mean=("similarity", "mean"), neurons_min=("similarity", "min"),
        neurons_max=("similarity", "max"), concepts_mean=("concept_similarity", "mean"),
        concepts_min=("concept_similarity", "min"), concepts_max=("concept_similarity", "max")).reset_index()
    shown = ["model", "a", "b", "shared", "similarity", "concept_similarity", "confusion", "soft_confusion"]
    top = sel.sort_values("similarity", ascending=False).groupby("model").head(5)[shown]
    top_c = sel.sort_values("concept_similarity", ascending=False).groupby("model").head(5)[shown]
    conf = sel.sort_values("soft_confusion", ascending=False).groupby("model").head(3)[shown]
    kinds = attribute_table(sel)
    note = reading(lines, sel)
    c = lines["cross_model"]
    cross_rows = cross[["name", "min_share", "planted_in_both", "other_in_both", "background_in_both",
                        "world_only", "world_plain_only", "matched_groups", "groups"]]
    totals = "; ".join(
        f"with `--min-share {k.split('=')[1]}`: all four planted concepts in both for "
        f"**{v['classes_all_planted_in_both']} of 12** classes, at least three for "
        f"{v['classes_3_of_4_planted_in_both']}, {v['planted_in_both']} of 48 planted concepts in both, "
        f"a background concept in both for {v['classes_with_background_in_both']} classes"
        for k, v in c.items() if k.startswith("min_share"))
    parts = [
        BEGIN, "", "## Comparing circuits: class similarity and two architectures", "",
        _models_note(), "",
        f"Generated by `python benchmarks/comparison.py` ({seconds / 60:.1f} min on this shared CPU, "
        f"torch threads {s.threads}). Circuits of all 12 classes of both shipped world models "
        f"(tau {s.tau}, top_k {s.top_k}, {s.ig_steps} IG steps, at most {s.max_nodes} nodes "
        f"per layer, {s.circuit_images} images per class), every group labelled by the tiny world CLIP "
        "(the default contrastive labels, top 5, the CLIP's own prompts, the world's 19 concepts as "
        "vocabulary), on two sets of images: the **selection** set (seed "
        f"{s.selection_seed} + class), on which the concept measure and its settings were chosen, and a "
        f"**fresh** set (seed {s.fresh_seed} + class, same settings), looked at only after the choice, as "
        "the confirmation (figures: selection / fresh). The cross-model comparison and the detail tables "
        "use the selection set.", "",
        "**Class similarity** (`neurflow-kb query similar`, `neurflow_kb.compare`), two measures with the "
        "same form, the mean over the layers below the class layer of a per-layer share-weighted overlap "
        "sum_u min(p_a(u), p_b(u)): **by neurons** (the default), each group spreads its share of the class "
        "(`abs_share`) evenly over its member nodes, so p(u) is the share routed through neuron u; **by "
        "concepts** (`--by concepts`), each group's share is split among its labels (rank <= 5) in "
        "proportion to their scores, as `query compare` does, so p(u) is the share concept u carries. "
        "Control without any circuit: the same overlap of the class images' own CLIP concept distributions "
        "(the mean zero-shot distribution over the 19 concepts of the circuit images). Ground truth: the "
        "number of planted attributes (shape, colour, texture, part) two classes share (0 to 3); the "
        "target is a Spearman correlation >= 0.5 over the 66 pairs, for each model, on the fresh set.", "",
        _md_table(summary), "",
        f"![similarity against shared attributes]({figure})", "",
        note, "",
        "The variants tried before keeping these two measures (weighted Jaccard, cosine, other neuron "
        "masses, node caps, concept profiles over the run, with the class layer, CLIP-embedding matching of "
        "groups), with their figures, are listed in docs/decisions.md (\"Comparing circuits\").", "",
        "Confusion: (C[a,b] + C[b,a]) / (n_a + n_b) of the model's predictions on "
        f"{s.confusion_images} fresh world images (seed 9000); the classifiers are so accurate that almost "
        "every pair has none, so the soft confusion (the mean probability the model gives each class on the "
        "other's images) is given beside it (Spearman against each similarity, selection set):", "",
        _md_table(pd.DataFrame(conf_rows)), "",
        "Each layer's overlap alone (selection set):", "", _md_table(pd.DataFrame(layer_rows)), "",
        "Mean similarity of the pairs that share an attribute of each kind, and of those that do not "
        "(selection set):", "", _md_table(kinds), "",
        "Similarity by number of shared attributes (selection set):", "", _md_table(by_shared), "",
        "Most similar pairs by neurons:", "", _md_table(top), "",
        "Most similar pairs by concepts:", "", _md_table(top_c), "",
        "Most confused pairs (soft confusion):", "", _md_table(conf), "",
        "**Two architectures** (`neurflow-kb query compare CLASS --models world,world_plain`): both models' "
        "circuits in one knowledge base. A concept's share in a run: each group's share of the class split "
        "among its labels (top 5) by score, summed, averaged over layers; a concept is used when its share "
        "exceeds `--min-share`. Groups of the two models are matched by the cosine of their CLIP embeddings "
        "(RESEMBLES, top 3 per group, cosine >= 0.5). Backgrounds (sky, grass, sand, snow) are nuisances, "
        "independent of the class, listed where they appear; shares are given as world/world_plain.", "",
        totals + ".", "",
        _md_table(cross_rows), "", END]
    return "\n".join(parts)


def attribute_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per model and attribute kind: mean similarity (by neurons, by concepts) of the pairs sharing it and
    of the others."""
    from neurflow_kb.world import CLASS_KINDS, CLASS_NAMES, WORLD_CLASSES

    idx = {n: i for i, n in enumerate(CLASS_NAMES)}
    rows = []
    for name, p in pairs.groupby("model", sort=False):
        for k, kind in enumerate(CLASS_KINDS):
            same = np.array([WORLD_CLASSES[idx[a]].concepts[k] == WORLD_CLASSES[idx[b]].concepts[k]
                             for a, b in zip(p["a"], p["b"], strict=True)])
            rows.append({"model": name, "attribute": kind, "pairs sharing it": int(same.sum()),
                         "neurons, shared": float(p["similarity"][same].mean()),
                         "neurons, not shared": float(p["similarity"][~same].mean()),
                         "concepts, shared": float(p["concept_similarity"][same].mean()),
                         "concepts, not shared": float(p["concept_similarity"][~same].mean())})
    return pd.DataFrame(rows)


def reading(lines: dict[str, Any], pairs: pd.DataFrame) -> str:
    """A paragraph that reads the numbers of this run (`pairs`: the selection set)."""
    def figures(key: str) -> str:
        return ", ".join(f"{m} {lines[m][key]:.2f} / {lines[m]['fresh'][key]:.2f}" for m in MODELS)

    def verdict(key: str) -> str:
        ok = all(lines[m][key] >= 0.5 and lines[m]["fresh"][key] >= 0.5 for m in MODELS)
        fresh = all(lines[m]["fresh"][key] >= 0.5 for m in MODELS)
        return ("reaches 0.5 on both sets for both models" if ok else
                "reaches 0.5 on the fresh set for both models" if fresh else "stays below 0.5")

    control_higher = all(line["spearman_shared_images"] > line["spearman_shared_concepts"]
                         for m in MODELS for line in (lines[m], lines[m]["fresh"]))
    kinds = attribute_table(pairs)
    kinds["gap"] = kinds["neurons, shared"] - kinds["neurons, not shared"]
    gaps, examples = [], []
    for m in MODELS:
        k = kinds[kinds["model"] == m].sort_values("gap")
        big, small = k.iloc[-1], k.iloc[0]
        yes, no = "neurons, shared", "neurons, not shared"
        gaps.append(f"{m}: {big['attribute']} {big[yes]:.2f} against {big[no]:.2f}, {small['attribute']} "
                    f"{small[yes]:.2f} against {small[no]:.2f}")
        p = pairs[pairs["model"] == m]
        lo = p[p["shared"] == p["shared"].max()].sort_values("similarity").iloc[0]
        hi = p[p["shared"] == 0].sort_values("similarity").iloc[-1]
        examples.append(f"{m}: {lo['a']}/{lo['b']} share {int(lo['shared'])} attributes at "
                        f"{lo['similarity']:.2f} by neurons ({lo['concept_similarity']:.2f} by concepts), "
                        f"{hi['a']}/{hi['b']} share none at {hi['similarity']:.2f} "
                        f"({hi['concept_similarity']:.2f})")
    neurons, concepts = "spearman_shared", "spearman_shared_concepts"
    more = ", more than the circuits by concepts" if control_higher else ""
    return (f"Reading (Spearman, selection / fresh): by neurons ({figures(neurons)}) the similarity "
            f"{verdict(neurons)}; by concepts ({figures(concepts)}) it {verdict(concepts)}. Neuron overlap "
            "rises with the shared attributes but the attributes do not weigh the same for these models "
            f"(largest and smallest gap by neurons: {'; '.join(gaps)}), and classes differing in colour "
            f"route their share through colour-specific neurons ({'; '.join(examples)}). The concept "
            "measure does not care which neurons carry a concept. **But the control says how much of that "
            "is the data**: the class images' own concept distributions, without any model, give "
            f"{figures('spearman_shared_images')}{more}. Every image of a world class shows all four of its "
            "attributes and a group's labels come from crops of those images, so on this world the concept "
            "similarity largely reflects what the classes' images show: reaching 0.5 with it is no evidence "
            "that the circuits follow the attributes beyond their data. It says which classes rest on the "
            "same concepts; whether a model solves them with the same units is what the neuron measure "
            "answers.")


def _models_note() -> str:
    """Where the second model comes from (its shipped training record)."""
    from neurflow_kb.world.plain import PLAIN_FILE

    rec = json.loads(PLAIN_FILE.with_suffix(".json").read_text())
    return ("The second world model, `world_plain` (`neurflow_kb.world.WorldPlainNet`), is a plain "
            "convolutional net without skip connections: four blocks `block1`..`block4` of two 3x3 "
            "convolutions (batch norm, ReLU; the widths and resolutions of `WorldNet`) and `fc`, "
            f"{PLAIN_FILE.stat().st_size / 1e6:.1f} MB, trained by "
            "`python -m neurflow_kb_dev.world_train plain` "
            f"(seed {rec['config']['seed']}, one thread, {rec['metrics']['cpu_seconds']:.0f} s of CPU, "
            f"{rec['train_seconds']:.0f} s on this shared machine) to {rec['metrics']['test_accuracy']:.3f} "
            "test accuracy; load it with `get_adapter(\"world-plain\")` or "
            "`neurflow_kb.world.world_plain_adapter()`.")


def report(doc: Path, lines: dict[str, Any], pairs: pd.DataFrame, cross: pd.DataFrame, s: Settings,
           seconds: float) -> None:
    """The figure and the comparison section of `doc`."""
    figures = doc.parent / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    plot(pairs, figures / "comparison_similarity.png")
    write_section(doc, section(lines, pairs, cross, s, seconds, "figures/comparison_similarity.png"))
    print(f"wrote the comparison section of {doc}", file=sys.stderr)


def write_section(doc: Path, text: str) -> None:
    """Replace the comparison section of `doc` (between the markers), or append it."""
    old = doc.read_text() if doc.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print one JSON line per model and one for the cross-model comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-docs", action="store_true", help="do not write docs/fidelity.md and the figure")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "fidelity.md")
    p.add_argument("--save", type=Path, default=None, help="also save the pair and class tables (CSV) here")
    p.add_argument("--report-from", type=Path, default=None,
                   help="re-render the section from a folder written by --save (no computation)")
    p.add_argument("--cache", type=Path, default=None,
                   help="read the labelled circuits from this folder when there, save them there otherwise")
    args = p.parse_args(argv)
    if args.report_from:
        meta = json.loads((args.report_from / "run.json").read_text())
        pairs = pd.read_csv(args.report_from / "pairs.csv")
        cross = pd.read_json(args.report_from / "classes.json", orient="records")
        report(args.out, meta["lines"], pairs, cross, Settings(**meta["settings"]), meta["seconds"])
        return 0

    import torch

    from neurflow_kb.labels import load_clip
    from neurflow_kb.world import world_clip_dir
    from neurflow_kb_dev.world_train import classifier_accuracy

    torch.set_num_threads(args.threads)
    s = Settings(threads=args.threads)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    clip = load_clip(checkpoint=world_clip_dir())
    seeds = {"selection": s.selection_seed, "fresh": s.fresh_seed}
    images = {k: image_concepts(seed, s, clip) for k, seed in seeds.items()}
    circuits, lines, tables = {}, {}, []
    for name in MODELS:
        t0 = time.perf_counter()
        conf = confusion(name, s)
        per_set = {}
        for set_name, seed in seeds.items():
            labelled = circuits_of(name, s, clip, log, seed=seed, cache=args.cache)
            if set_name == "selection":
                circuits[name] = labelled
            pairs = pair_table(name, set_name, labelled, conf, images[set_name])
            tables.append(pairs)
            per_set[set_name] = {"seed": seed, **measure_lines(pairs)}
        acc = classifier_accuracy(adapter_of(name).model, n=1000, seed=4000)
        lines[name] = {"benchmark": "comparison", "model": name, "test_accuracy": round(acc, 4),
                       "pairs": len(pairs), "confused_pairs": int((pairs["confusion"] > 0).sum()),
                       **per_set["selection"], "fresh": per_set["fresh"],
                       "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(lines[name]), flush=True)
    pairs = pd.concat(tables, ignore_index=True)
    cross = cross_model(circuits, log)
    lines["cross_model"] = {"benchmark": "comparison", "models": list(MODELS)}
    for min_share, part in cross.groupby("min_share"):
        lines["cross_model"][f"min_share={min_share:g}"] = {
            "classes_all_planted_in_both": int(part["all_planted_in_both"].sum()),
            "classes_3_of_4_planted_in_both": int((part["n_planted_in_both"] >= 3).sum()),
            "planted_in_both": int(part["n_planted_in_both"].sum()),
            "classes_with_background_in_both": int((part["background_in_both"].map(len) > 0).sum())}
    lines["cross_model"]["matched_groups"] = int(cross.loc[cross["min_share"] == 0, "matched_groups"].sum())
    lines["cross_model"]["groups"] = int(cross.loc[cross["min_share"] == 0, "groups"].sum())
    print(json.dumps(lines["cross_model"]), flush=True)
    seconds = time.perf_counter() - started
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        pairs.to_csv(args.save / "pairs.csv", index=False)
        cross.to_json(args.save / "classes.json", orient="records", indent=1)
        (args.save / "run.json").write_text(json.dumps({"lines": lines, "settings": asdict(s),
                                                         "seconds": seconds}, indent=1))
    if not args.no_docs:
        report(args.out, lines, pairs, cross, s, seconds)
    log(json.dumps({"settings": asdict(s), "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
