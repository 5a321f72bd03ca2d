"""The wheel carries what the package reads at run time: Cypher files, ingest recipes, viewer and world
assets (the repository root's cypher/ and ingest/ are links into the package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import neurflow_kb

ROOT = Path(neurflow_kb.__file__).resolve().parent.parent


@pytest.mark.slow          # pip builds a wheel in a subprocess
def test_wheel_ships_every_runtime_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("neurflow_kb", "neurflow_kb_dev"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out)], check=True, cwd=tmp_path)
    (wheel,) = out.glob("neurflow_kb-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "neurflow_kb"
    wanted = [p for folder in ("cypher", "ingest", "viewer/assets", "world/assets")
              for p in (package / folder).rglob("*") if p.is_file()]
    assert len(wanted) > 40
    missing = [str(p.relative_to(ROOT)) for p in wanted if str(p.relative_to(ROOT)) not in shipped]
    assert not missing, missing
    # development support (training, fidelity metrics, synthetic circuits) stays out of the wheel
    assert not [n for n in shipped if n.startswith("neurflow_kb_dev/")]
    assert "neurflow_kb/world/train.py" not in shipped and "neurflow_kb/store/synthetic.py" not in shipped
    assert (ROOT / "cypher").resolve() == package / "cypher"
    assert (ROOT / "ingest").resolve() == package / "ingest"
