"""`neurflow-kb debug` on a built-in model (ResNet-18, seeded random weights) with a circuit artifact:
the printed JSON matches the Python API (itself checked against the definition in tests/unit), the
HTML explanation is written, and mismatched circuits are refused with one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import CLI

from neurflow_kb import NeurFlow, NeurFlowConfig
from neurflow_kb.cli.engine_cmds import demo_images
from neurflow_kb.data import load_images
from neurflow_kb.debug import debug_image
from neurflow_kb.models import get_adapter
from neurflow_kb.viewer import from_circuit

LAYERS = ["layer4.1", "fc"]


@pytest.fixture(scope="module")
def resnet_case(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("debug-cli")
    photos = demo_images(root / "photos")
    adapter = get_adapter("resnet18", weights="random", layers=LAYERS, seed=0)
    images = load_images([photos / "chelsea.png", photos / "chelsea_face.png"], adapter.preprocess)
    circuit = NeurFlow(NeurFlowConfig(tau=3, top_k=6, ig_steps=4, class_filter="all",
                                      granularities=(1.0, 0.5))).fit(adapter, images, 7, progress=False)
    return adapter, circuit, circuit.save(root / "artifact"), photos


def test_debug_cli_matches_the_api_and_writes_html(resnet_case, tmp_path: Path) -> None:
    adapter, circuit, art, photos = resnet_case
    image = photos / "chelsea_zoom.png"
    out = tmp_path / "why.html"
    run = subprocess.run([CLI, "debug", str(image), "--model", "resnet18", "--weights", "random", "--layers",
                          ",".join(LAYERS), "--artifact", str(art), "--class", "7", "--json", "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    expected = debug_image(adapter, image, from_circuit(circuit))
    assert got["class"] == 7 and got["predicted"] == expected.predicted
    assert got["image"] == expected.image_key and got["image"].startswith("sha256:")
    by_gid = {g["gid"]: g for g in got["groups"]}
    assert set(by_gid) == set(expected.scores["gid"])
    for row in expected.scores.itertuples(index=False):
        assert by_gid[row.gid]["score"] == pytest.approx(row.score, rel=1e-5)
        assert by_gid[row.gid]["crop"] == row.crop and by_gid[row.gid]["fires"] == row.fires
    assert [p["gid"] for p in got["path"]] == expected.path["gid"].tolist()
    assert out.is_file() and "Strongest path to the class" in out.read_text()

    text = subprocess.run([CLI, "debug", str(image), "--model", "resnet18", "--weights", "random", "--layers",
                           ",".join(LAYERS), "--artifact", str(art), "--class", "7", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert text.returncode == 0, text.stderr
    assert "groups fire (score >= 0.8)" in text.stdout and "strongest path to the class:" in text.stdout
    assert f"-> class 7 '{circuit.manifest['class_name']}'" in text.stdout


def test_debug_cli_refuses_a_circuit_of_another_class_or_model(resnet_case, tmp_path: Path) -> None:
    _, _, art, photos = resnet_case
    image = str(photos / "chelsea.png")
    base = [CLI, "debug", image, "--model", "resnet18", "--layers", ",".join(LAYERS), "--artifact", str(art)]
    for extra, needle in ((["--weights", "random", "--class", "8"], "explains class 7"),
                          (["--weights", "random", "--class", "7", "--save"], "--save writes to the"),
                          (["--weights", "random", "--seed", "0", "--class", "7", "--floor", "0"], "floor")):
        run = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=300)
        assert run.returncode == 2, run.stderr
        assert run.stderr.count("\n") == 1 and needle in run.stderr and "Traceback" not in run.stderr
    missing = subprocess.run([CLI, "debug", str(tmp_path / "nope.png"), "--model", "resnet18", "--artifact",
                              str(art)], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
