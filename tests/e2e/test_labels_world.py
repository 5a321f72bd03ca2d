"""Labels on the planted-concept world (neurflow_kb.world): a circuit of the shipped world classifier,
labelled through the CLI with the world's tiny CLIP (`--clip-checkpoint`, open_clip folder); groups whose
exemplar crops share planted concepts (read from the generator's masks) are named with one of them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from neurflow_kb import Circuit, NeurFlow, NeurFlowConfig
from neurflow_kb.models import get_adapter
from neurflow_kb.world import CONCEPTS, generate, region_concepts, world_clip_dir
from neurflow_kb_dev.cli_runs import invoke

#: End to end (trained worlds, a browser): not in the fast suite.
pytestmark = pytest.mark.slow

# bee (yellow striped circle with an antenna) among wasps and ladybugs: its circuit must tell yellow
# stripes from red dots, so its groups split by planted concept
CLASSES = ("bee", "wasp", "ladybug")


def shared_concepts(circuit: Circuit, data) -> dict[tuple[int, int], tuple[int, set[str]]]:
    """Per group: number of exemplar thumbnails and the planted concepts visible in >= 80% of them."""
    ex = circuit.exemplars[circuit.exemplars["representative"]]
    nodes = circuit.nodes[["depth", "neuron", "subconcept", "group"]]
    ex = ex.merge(nodes, on=["depth", "neuron", "subconcept"])
    ex = ex.sort_values(["depth", "group", "activation", "crop"], ascending=[True, True, False, True])
    ex = ex.drop_duplicates(["depth", "group", "crop"]).groupby(["depth", "group"]).head(8)
    out = {}
    for (d, g), df in ex.groupby(["depth", "group"]):
        seen = Counter(c for r in df.itertuples(index=False) for c in region_concepts(
            data.concepts[r.image], data.object_masks[r.image], data.part_masks[r.image], r.top, r.left,
            r.size))
        out[(int(d), int(g))] = (len(df), {c for c, n in seen.items() if n >= 0.8 * len(df)})
    return out


@pytest.mark.slow
def test_world_groups_are_named_by_their_shared_planted_concepts(tmp_path: Path) -> None:
    adapter = get_adapter("world")
    data = generate(36, seed=123, classes=list(CLASSES))
    config = NeurFlowConfig(tau=4, top_k=12, ig_steps=8, class_filter="all", max_nodes_per_layer=12,
                            max_groups=12)
    circuit = NeurFlow(config).fit(adapter, data.tensor(), adapter.class_names.index("bee"),
                                   layers=adapter.layers[-4:], progress=False)
    art = circuit.save(tmp_path / "bee")
    vocab = tmp_path / "world.txt"
    vocab.write_text("\n".join(CONCEPTS) + "\n")
    run = invoke(["label", art, "--clip-checkpoint", world_clip_dir(), "--vocabulary", vocab,
                  "--template", "{}", "--template", "a photo of {}", "--top-n", "3"])
    assert run.exit_code == 0, run.stderr
    labelled = Circuit.load(art)
    assert labelled.manifest["labels"]["templates"] == ["{}", "a photo of {}"]
    firsts = labelled.labels[labelled.labels["rank"] == 1]
    top = {(int(r.depth), int(r.group)): r.concept for r in firsts.itertuples()}
    checked = {k: shared for k, (n, shared) in shared_concepts(labelled, data).items() if n >= 2 and shared}
    assert len(checked) >= 4, checked
    wrong = {k: (top[k], sorted(shared)) for k, shared in checked.items() if top[k] not in shared}
    assert not wrong, f"groups named with a concept their exemplars do not share: {wrong}"
    assert len({top[k] for k in checked}) >= 2          # e.g. 'dotted' for ladybug parts, 'striped' for bee
