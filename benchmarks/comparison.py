"""Comparison benchmark: does circuit similarity follow the planted ground truth, and do two architectures
share the planted concepts?

On the planted-concept world, for each shipped model (`world`, a ResNet-style CNN, and `world_plain`, a
plain CNN without skip connections): the circuits of all 12 classes (the settings of benchmarks/fidelity.py),
labelled by the world's tiny CLIP. Then

- class similarity (`neurflow_kb.compare`, what `query similar` returns) for the 66 class pairs against
  the number of planted attributes the two classes share (Spearman), per model;
- the same similarity against the model's confusion between the two classes, from its predictions on a
  fresh world set (Spearman, reported whatever it is);
- both models' circuits in one knowledge base (embedded store): `query compare CLASS --models
  world,world_plain` for every class, counting the classes whose planted concepts are all among the
  concepts used by both models, and the background (nuisance) concepts that show up.

Prints one JSON line per model and one for the cross-model comparison; writes the comparison section of
docs/fidelity.md (between its markers, the rest of the file untouched) and docs/figures/comparison_*.png.

    python benchmarks/comparison.py                   # both models, all classes (about 10 min here)
    python benchmarks/comparison.py --no-docs         # numbers only
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


def adapter_of(name: str) -> Any:
    from neurflow_kb.world import world_adapter, world_plain_adapter

    return world_adapter() if name == "world" else world_plain_adapter()


def circuits_of(name: str, s: Settings, clip: Any, log: Any, seed: int = 1000,
                cache: Path | None = None) -> list[Any]:
    """The labelled circuits of all 12 world classes of one model (images: seed `seed` + class; 1000 is
    benchmarks/fidelity.py's). With `cache`, circuits are read from / saved to
    `cache/<model>-<seed>-<class>` (settings are part of the circuit key, checked on read)."""
    from neurflow_kb import Circuit, NeurFlow
    from neurflow_kb.labels import label_circuit
    from neurflow_kb.world import CLASS_NAMES, CONCEPTS, generate
    from neurflow_kb.world.clip import CONCEPT_TEMPLATES

    adapter = adapter_of(name)
    out = []
    for cls in range(len(CLASS_NAMES)):
        t0 = time.perf_counter()
        where = cache / f"{name}-{seed}-{cls}" if cache else None
        images = generate(s.circuit_images, seed=seed + cls, classes=[cls]).tensor()
        if where is not None and where.is_dir():
            cached = Circuit.load(where)
            out.append(cached)
            log(f"{name} class {cls} ({CLASS_NAMES[cls]}): cached {where}")
            continue
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


def pair_table(name: str, circuits: list[Any], conf: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
    """One row per class pair: similarity (and its per-layer parts), shared attributes, confusion (from
    predictions, and from probabilities)."""
    from neurflow_kb.compare import circuit_similarity
    from neurflow_kb.world import CLASS_NAMES

    rows = []
    for a, b in combinations(range(len(circuits)), 2):
        score, parts = circuit_similarity(circuits[a], circuits[b])
        layers = {f"overlap_{lay}": v for lay, v in zip(parts["layer"], parts["overlap"], strict=True)}
        rows.append({"model": name, "a": CLASS_NAMES[a], "b": CLASS_NAMES[b],
                     "shared": shared_attributes(a, b), "similarity": score,
                     "confusion": float(conf[0][a, b]), "soft_confusion": float(conf[1][a, b]), **layers})
    return pd.DataFrame(rows)


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

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes, MODELS, strict=True):
        p = pairs[pairs["model"] == name]
        x = p["shared"] + rng.uniform(-0.12, 0.12, len(p))
        ax.scatter(x, p["similarity"], s=18, alpha=0.7, color="C0" if name == "world" else "C1")
        means = p.groupby("shared")["similarity"].mean()
        ax.plot(means.index, means.values, "k-o", lw=1, ms=4, label="mean")
        rho = spearman(p["shared"], p["similarity"])
        ax.set_title(f"{name}: Spearman {rho:.2f} (66 pairs)")
        ax.set_xlabel("planted attributes the two classes share")
        ax.set_xticks(sorted(p["shared"].unique()))
        ax.legend(loc="upper left")
    axes[0].set_ylabel("circuit similarity")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section(lines: dict[str, Any], pairs: pd.DataFrame, cross: pd.DataFrame, s: Settings, seconds: float,
            figure: str) -> str:
    """The markdown of the comparison section."""
    per_layer = [c for c in pairs.columns if c.startswith("overlap_")]
    rows, layer_rows = [], []
    for name in MODELS:
        p = pairs[pairs["model"] == name]
        rows.append({"model": name, "test accuracy": lines[name]["test_accuracy"],
                     "Spearman(similarity, shared attributes)": lines[name]["spearman_shared"],
                     "Spearman(similarity, confusion)": lines[name]["spearman_confusion"],
                     "pairs ever confused": lines[name]["confused_pairs"],
                     "Spearman(similarity, soft confusion)": lines[name]["spearman_soft_confusion"]})
        for c in per_layer:
            if p[c].notna().any():
                layer_rows.append({"model": name, "layer": c[len("overlap_"):],
                                   "Spearman(overlap, shared attributes)": spearman(p["shared"], p[c]),
                                   "mean overlap": float(p[c].mean())})
    summary = pd.DataFrame(rows)
    by_shared = pairs.groupby(["model", "shared"])["similarity"].agg(["count", "mean", "min", "max"])
    by_shared = by_shared.reset_index()
    top = (pairs.sort_values("similarity", ascending=False).groupby("model").head(5)
           [["model", "a", "b", "shared", "similarity", "confusion", "soft_confusion"]])
    conf = pairs.sort_values("soft_confusion", ascending=False).groupby("model").head(3)[
        ["model", "a", "b", "shared", "similarity", "confusion", "soft_confusion"]]
    kinds = attribute_table(pairs)
    note = reading(lines, pairs)
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
        "(the default contrastive labels, top 5, the CLIP's own prompts).", "",
        "**Class similarity** (`neurflow-kb query similar`, `neurflow_kb.compare`): each group spreads its "
        "share of the class (`abs_share`) evenly over its member nodes, so every neuron of a layer carries a "
        "mass and the masses of a layer sum to 1; the overlap of two classes at a layer is the share both "
        "route through the same neurons, sum over neurons of min(p_a, p_b); the similarity is the mean "
        "overlap over the layers below the class layer. Ground truth: the number of planted attributes "
        "(shape, colour, texture, part) two classes share (0 to 3). Confusion: (C[a,b] + C[b,a]) / "
        "(n_a + n_b) of the model's "
        f"predictions on {s.confusion_images} fresh world images (seed 9000); the classifiers are so "
        "accurate that almost every pair has none, so the soft confusion (the mean probability the model "
        "gives each class on the other's images) is reported beside it.", "",
        _md_table(summary), "",
        f"![similarity against shared attributes]({figure})", "",
        "Each layer's overlap alone:", "", _md_table(pd.DataFrame(layer_rows)), "",
        "Mean similarity of the pairs that share an attribute of each kind, and of those that do not:", "",
        _md_table(kinds), "", note, "",
        "Mean similarity by number of shared attributes:", "", _md_table(by_shared), "",
        "Most similar pairs:", "", _md_table(top), "",
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
    """Per model and attribute kind: mean similarity of the pairs sharing it and of the others."""
    from neurflow_kb.world import CLASS_KINDS, CLASS_NAMES, WORLD_CLASSES

    idx = {n: i for i, n in enumerate(CLASS_NAMES)}
    rows = []
    for name, p in pairs.groupby("model", sort=False):
        for k, kind in enumerate(CLASS_KINDS):
            same = np.array([WORLD_CLASSES[idx[a]].concepts[k] == WORLD_CLASSES[idx[b]].concepts[k]
                             for a, b in zip(p["a"], p["b"], strict=True)])
            rows.append({"model": name, "attribute": kind, "pairs sharing it": int(same.sum()),
                         "mean similarity, shared": float(p["similarity"][same].mean()),
                         "mean similarity, not shared": float(p["similarity"][~same].mean())})
    return pd.DataFrame(rows)


def reading(lines: dict[str, Any], pairs: pd.DataFrame) -> str:
    """A paragraph that reads the numbers of this run."""
    rhos = ", ".join(f"{m} {lines[m]['spearman_shared']:.2f}" for m in MODELS)
    verdict = "reaches" if all(lines[m]["spearman_shared"] >= 0.5 for m in MODELS) else "stays below"
    kinds = attribute_table(pairs)
    kinds["gap"] = kinds["mean similarity, shared"] - kinds["mean similarity, not shared"]
    gaps, examples = [], []
    for m in MODELS:
        k = kinds[kinds["model"] == m].sort_values("gap")
        big, small = k.iloc[-1], k.iloc[0]
        yes, no = "mean similarity, shared", "mean similarity, not shared"
        gaps.append(f"{m}: {big['attribute']} {big[yes]:.2f} against {big[no]:.2f}, {small['attribute']} "
                    f"{small[yes]:.2f} against {small[no]:.2f}")
        p = pairs[pairs["model"] == m]
        lo = p[p["shared"] == p["shared"].max()].sort_values("similarity").iloc[0]
        hi = p[p["shared"] == 0].sort_values("similarity").iloc[-1]
        examples.append(f"{m}: {lo['a']}/{lo['b']} share {int(lo['shared'])} attributes at "
                        f"{lo['similarity']:.2f}, {hi['a']}/{hi['b']} share none at {hi['similarity']:.2f}")
    return (f"Reading: similarity rises with the number of shared attributes in both models, but the rank "
            f"correlation ({rhos}) {verdict} 0.5. The attributes do not weigh the same for these models "
            f"(largest and smallest gap: {'; '.join(gaps)}), and classes that share attributes can still "
            f"route their share through different neurons ({'; '.join(examples)}).")


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
    circuits, lines, tables = {}, {}, []
    for name in MODELS:
        t0 = time.perf_counter()
        circuits[name] = circuits_of(name, s, clip, log)
        pairs = pair_table(name, circuits[name], confusion(name, s))
        tables.append(pairs)
        acc = classifier_accuracy(adapter_of(name).model, n=1000, seed=4000)
        lines[name] = {"benchmark": "comparison", "model": name, "test_accuracy": round(acc, 4),
                       "pairs": len(pairs),
                       "spearman_shared": round(spearman(pairs["shared"], pairs["similarity"]), 3),
                       "spearman_confusion": round(spearman(pairs["confusion"], pairs["similarity"]), 3),
                       "confused_pairs": int((pairs["confusion"] > 0).sum()),
                       "spearman_soft_confusion": round(spearman(pairs["soft_confusion"],
                                                                 pairs["similarity"]), 3),
                       "mean_similarity_by_shared": {int(k): round(float(v), 4) for k, v in
                                                     pairs.groupby("shared")["similarity"].mean().items()},
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
