"""`neurflow-kb debug` on the built-in world classifier (shipped weights) with a circuit artifact: on a
bee the model predicts bee and the bee circuit fires; the printed JSON matches the Python API (itself
checked against the definition in tests/unit), the HTML explanation is written, and mismatched circuits
or options are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurflow_kb import NeurFlow, NeurFlowConfig
from neurflow_kb.debug import debug_image
from neurflow_kb.models import get_adapter
from neurflow_kb.viewer import from_circuit
from neurflow_kb.world import CLASS_NAMES, generate
from neurflow_kb_dev.cli_runs import invoke, one_line_error

#: End to end (a circuit of the world classifier): not in the fast suite.
pytestmark = pytest.mark.slow

BEE = CLASS_NAMES.index("bee")


@pytest.fixture(scope="module")
def world_case(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("debug-cli")
    adapter = get_adapter("world")
    data = generate(24, seed=11, classes=["bee", "wasp", "ladybug"])
    circuit = NeurFlow(NeurFlowConfig(tau=4, top_k=10, ig_steps=8, max_nodes_per_layer=10)).fit(
        adapter, data.tensor(), BEE, progress=False)
    probe = generate(1, seed=99, classes=["bee"]).pil()[0]
    image = root / "bee.png"
    probe.save(image)
    return adapter, circuit, circuit.save(root / "artifact"), image


def test_debug_cli_matches_the_api_and_writes_html(world_case, tmp_path: Path) -> None:
    adapter, circuit, art, image = world_case
    out = tmp_path / "why.html"
    run = invoke(["debug", str(image), "--model", "world", "--artifact", str(art), "--json", "-o", str(out)])
    assert run.exit_code == 0, run.stderr
    got = json.loads(run.stdout)
    expected = debug_image(adapter, image, from_circuit(circuit))
    assert got["class"] == BEE and got["predicted"] == expected.predicted == BEE   # the class defaults to it
    assert sum(g["fires"] for g in got["groups"]) >= 1
    assert got["image"] == expected.image_key and got["image"].startswith("sha256:")
    by_gid = {g["gid"]: g for g in got["groups"]}
    assert set(by_gid) == set(expected.scores["gid"])
    for row in expected.scores.itertuples(index=False):
        assert by_gid[row.gid]["score"] == pytest.approx(row.score, rel=1e-5)
        assert by_gid[row.gid]["crop"] == row.crop and by_gid[row.gid]["fires"] == row.fires
    assert [p["gid"] for p in got["path"]] == expected.path["gid"].tolist()
    assert out.is_file() and "Strongest path to the class" in out.read_text()

    # the text report
    args = ["debug", str(image), "--model", "world", "--artifact", str(art), "--class", "bee", "-o", str(out)]
    text = invoke(args)
    assert text.exit_code == 0, text.output
    assert "groups fire (score >= 0.8)" in text.output and "strongest path to the class:" in text.output
    assert f"-> class {BEE} 'bee'" in text.output and f"predicted {BEE} 'bee'" in text.output


def test_debug_cli_refuses_a_circuit_of_another_class_or_model(world_case, tmp_path: Path) -> None:
    _, _, art, image = world_case
    base = ["debug", str(image), "--model", "world", "--artifact", str(art)]
    for extra, needle in ((["--class", "wasp"], f"explains class {BEE}"),
                          (["--weights", "random"], "but --model/--weights give world (random (seed 0)"),
                          (["--floor", "0"], "floor")):
        res = invoke([*base, *extra])
        assert res.exit_code == 2, res.output
        assert res.output.count("\n") == 1 and needle in res.output
    one_line_error(invoke([*base, "--save"]), "--save writes to the")
    missing = invoke(["debug", str(tmp_path / "nope.png"), "--model", "world", "--artifact", str(art)])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
