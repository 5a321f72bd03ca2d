"""Output folders: replaced only when neurflow-kb wrote them (its marker), atomically; anything else is
refused in one line and left as it was; leftovers of a killed save are cleaned on the next save."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from artifact_helpers import SMALL_CLI, world_circuit, world_images

from neurflow_kb import Circuit
from neurflow_kb.errors import UserError
from neurflow_kb_dev.cli_runs import invoke, one_line_error


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_project(folder: Path) -> dict[str, bytes]:
    """A user's folder that happens to hold a file named manifest.json."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "train.py").write_text("print('my model')\n")
    (folder / "manifest.json").write_text('{"name": "my-project"}\n')
    (folder / "notes.txt").write_text("do not lose me\n")
    return _tree(folder)


def test_cli_circuit_refuses_a_user_folder_with_a_manifest(tmp_path: Path) -> None:
    images = world_images(tmp_path / "images")
    project = tmp_path / "project"
    before = _user_project(project)
    r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", "0", "--out", str(project),
                *SMALL_CLI])
    one_line_error(r, str(project), "not written by neurflow-kb")
    assert _tree(project) == before
    # pointing at a file or a symlink is refused as well, before any computing
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep\n")
    link = tmp_path / "link"
    link.symlink_to(project, target_is_directory=True)
    for out, needle in ((a_file, "not a folder"), (link, "symbolic link")):
        r = invoke(["circuit", "--model", "world", "--images", str(images), "--class", "0", "--out", str(out),
                    *SMALL_CLI])
        one_line_error(r, needle)
    assert a_file.read_text() == "keep\n" and link.is_symlink() and _tree(project) == before


def test_save_writes_a_marker_and_replaces_only_its_own_folders(tmp_path: Path) -> None:
    from neurflow_kb.folders import MARKER, check_destination

    circuit = world_circuit()
    out = tmp_path / "art"
    circuit.save(out)
    marker = json.loads((out / MARKER).read_text())
    assert marker["key"] == circuit.key and marker["kind"] == "circuit"
    assert set(marker["files"]) == {p.name for p in out.iterdir()} - {MARKER}
    circuit.save(out)                                     # our own folder: replaced
    assert Circuit.load(out).equals(circuit)
    assert [p.name for p in tmp_path.iterdir()] == ["art"]   # no temporary siblings left behind

    (out / "my-notes.txt").write_text("mine\n")            # a user's file inside our folder
    with pytest.raises(UserError, match="my-notes.txt"):
        circuit.save(out)
    assert (out / "my-notes.txt").read_text() == "mine\n"

    project = tmp_path / "project"
    before = _user_project(project)
    for bad, needle in ((project, "not written by neurflow-kb"), (project / "notes.txt", "not a folder")):
        with pytest.raises(UserError, match=needle) as err:
            circuit.save(bad)
        assert "\n" not in str(err.value)
    assert _tree(project) == before
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "data.csv").write_text("1,2\n")
    (forged / MARKER).write_text("not json")
    with pytest.raises(UserError, match="marker"):
        circuit.save(forged)
    assert (forged / "data.csv").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    circuit.save(empty)                                   # an empty folder holds nothing to lose
    assert Circuit.load(empty).key == circuit.key
    with pytest.raises(UserError, match="symbolic link"):
        check_destination(_link(tmp_path / "to-art", out))


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target, target_is_directory=True)
    return path


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from neurflow_kb.folders import replace_folder

    def fill(tmp: Path) -> list[str]:
        (tmp / "manifest.json").write_text("{}")
        os.kill(os.getpid(), signal.SIGKILL)              # killed in the middle of the save
        return ["manifest.json"]

    replace_folder(Path(sys.argv[1]), fill, kind="circuit", key="k")
""")


def test_leftovers_of_a_killed_save_are_cleaned_by_the_next_save(tmp_path: Path) -> None:
    circuit = world_circuit()
    out = tmp_path / "art"
    circuit.save(out)
    before = _tree(out)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    killed = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(out)], env=env, stderr=subprocess.PIPE)
    assert killed.wait(timeout=120) == -9, killed.stderr.read() if killed.stderr else ""
    leftovers = [p for p in tmp_path.iterdir() if p.name != "art"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(f".art.neurflow-kb-new-{killed.pid}-")
    assert _tree(out) == before                           # the killed save never touched the artifact
    # named like a leftover of the same dead process, but holding a user's file: not ours, kept
    user_dir = tmp_path / f".art.neurflow-kb-new-{killed.pid}-0123abcd"
    user_dir.mkdir()
    (user_dir / "thesis.tex").write_text("keep\n")
    circuit.save(tmp_path / "other")                      # any save into the same parent cleans up
    assert not leftovers[0].exists()
    assert (user_dir / "thesis.tex").read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["art", "other", user_dir.name])
