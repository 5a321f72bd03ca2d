"""`neurflow-kb circuit`: end to end as the installed console script on a real pretrained model offline
(the command's real-subprocess smoke test; tests/integration/test_cli_smoke.py has the other commands'),
and bad input in-process (same group, same exit code and stderr as the console script)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from neurflow_kb import Circuit
from neurflow_kb_dev.cli_runs import console, invoke, one_line_error

FAST = ["--tau", "2", "--top-k", "6", "--ig-steps", "8", "--filter", "all", "--quiet",
        "--layers", "_blocks.14,_blocks.15,_fc"]


@pytest.fixture(scope="module")
def cat_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cats")
    Image.fromarray(data.chelsea()).save(folder / "chelsea.png")
    Image.fromarray(np.ascontiguousarray(data.chelsea()[:, ::-1])).save(folder / "flipped.jpg")
    return folder


@pytest.mark.slow          # the real-subprocess smoke test of `circuit`
def test_circuit_command_on_efficientnet_lite0(cat_folder, tmp_path) -> None:
    out = tmp_path / "lite0-285"
    proc = console(["circuit", "--model", "efficientnet-lite0", "--images", cat_folder, "--class", "285",
                    "--out", out, *FAST], env={"HF_HUB_OFFLINE": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Egyptian cat" in proc.stdout and "_blocks.15" in proc.stdout
    circuit = Circuit.load(out)
    assert circuit.target_class == 285 and circuit.manifest["n_images"] == 2
    assert set(circuit.groups["layer"]) == {"_fc", "_blocks.15"}


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "resnet9000"], "unknown model"),
    (["--layers", "_blocks.15,_nope,_fc"], "_nope"),
    (["--class", "1000"], "out of range"),
    (["--images", "EMPTY"], "no images"),
    (["--images", "CORRUPT"], "broken.jpg"),
    (["--tau", "400"], "tau 400 exceeds"),
])
def test_circuit_command_bad_input(cat_folder, tmp_path, args, message) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    options = {"--model": "efficientnet-lite0", "--images": str(cat_folder), "--class": "285",
               "--layers": "_blocks.15,_fc"}
    replace = {"EMPTY": str(empty), "CORRUPT": str(corrupt)}
    options.update({args[0]: replace.get(args[1], args[1])})
    out = tmp_path / "out"
    flat = [x for kv in options.items() for x in kv]
    tau = options.get("--tau", "2")
    result = invoke(["circuit", *flat, "--out", out, "--tau", tau, "--top-k", "6", "--ig-steps", "8",
                     "--filter", "all", "--quiet"])
    one_line_error(result, message, case=False)
    assert not out.exists()
