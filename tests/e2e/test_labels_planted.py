"""Labels through the CLI with a tiny open_clip model trained on the planted world (`--clip-checkpoint`):
groups whose exemplar crops share a planted concept get that concept's name."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import PLANTED_CLASSES, Planted
from planted import VOCABULARY

from neurflow_kb import Circuit
from neurflow_kb_dev.cli_runs import invoke

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow


def planted_concepts(circuit: Circuit, planted: Planted) -> dict[tuple[int, int], list[str | None]]:
    """The planted concept of every representative crop of each group, read from the pixels."""
    ex = circuit.exemplars[circuit.exemplars["representative"]]
    nodes = circuit.nodes[["depth", "neuron", "subconcept", "group"]]
    ex = ex.merge(nodes, on=["depth", "neuron", "subconcept"])
    ex = ex.sort_values(["depth", "group", "activation", "crop"], ascending=[True, True, False, True])
    ex = ex.drop_duplicates(["depth", "group", "crop"]).groupby(["depth", "group"]).head(8)
    out: dict[tuple[int, int], list[str | None]] = {}
    for r in ex.itertuples(index=False):
        out.setdefault((int(r.depth), int(r.group)), []).append(
            planted.world.crop_concept(int(r.image), int(r.top), int(r.left), int(r.size)))
    return out


def test_groups_sharing_a_planted_concept_get_its_name(planted: Planted, tmp_path: Path) -> None:
    vocab = tmp_path / "planted.txt"
    vocab.write_text("\n".join(VOCABULARY) + "\n")
    dirs = []
    for cls in PLANTED_CLASSES:
        art = tmp_path / f"class-{cls}"
        shutil.copytree(planted.artifacts[cls], art)
        dirs.append(art)
    run = invoke(["label", *dirs, "--clip-checkpoint", planted.clip_dir, "--vocabulary", vocab,
                  "--top-n", "3"])
    assert run.exit_code == 0, run.stderr
    assert run.stdout.count("labelled ") == 2 and "local-dir:tiny-clip" in run.stdout

    checked, right, concepts = 0, 0, set()
    for art in dirs:
        circuit = Circuit.load(art)
        labels = circuit.labels
        assert set(labels["encoder"]) == {"local-dir:tiny-clip"}
        assert set(labels["vocabulary"]) == {"planted"} and set(labels["rank"]) == {1, 2, 3}
        emb = np.stack(circuit.group_embeddings["embedding"].map(np.asarray))
        assert emb.shape == (len(circuit.groups), 32)
        assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
        top = {(int(r.depth), int(r.group)): r.concept for r in labels[labels["rank"] == 1].itertuples()}
        for key, crops in planted_concepts(circuit, planted).items():
            concept, n = Counter(crops).most_common(1)[0]
            if concept is None or n < 0.8 * len(crops) or len(crops) < 2:
                continue                          # exemplars do not share one planted concept
            checked += 1
            concepts.add(concept)
            right += top[key] == concept
    assert checked >= 6, f"only {checked} groups share a planted concept"
    assert len(concepts) >= 3, concepts               # several different concepts, not one colour everywhere
    assert right == checked, f"{right} of {checked} groups got their planted concept"
