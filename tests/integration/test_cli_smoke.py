"""Each command once through the installed `neurflow-kb` console script in a real process: the entry point,
its exit codes and its stderr as users get them (every other CLI test runs the same click group
in-process, `neurflow_kb_dev.cli_runs.invoke`). A cheap real call where one exists, else a user
mistake that must end with exit code 2 and one `Error:` line. Each command has its `test_COMMAND` here
(`circuit`'s is in tests/unit/test_cli_circuit.py); tests/unit/test_suite_layout.py fails in the fast
suite when a command has none."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from neurflow_kb.store import LadybugStore
from neurflow_kb_dev.cli_runs import console, one_line_error
from neurflow_kb_dev.synthetic import synthetic_circuit

pytestmark = pytest.mark.slow          # one interpreter start per command

def _circuit(cls: int):
    return synthetic_circuit(cls, chain=(("a", 8), ("b", 12), ("logits", 5)), nodes_per_layer=(2, 6), tau=3,
                             model="toy", weights="random", class_names=[f"c{i}" for i in range(5)])


def _calls(tmp: Path) -> dict[str, list]:
    """command -> its arguments (the files they read are made here)."""
    art, other = _circuit(1).save(tmp / "art"), _circuit(2).save(tmp / "other")
    kb = tmp / "kb.lbug"
    with LadybugStore(kb) as st:
        st.write_circuit(_circuit(1))
    (tmp / "empty").mkdir()
    return {
        "models": ["models"],
        "init": ["init", "--store", tmp / "new.lbug"],
        "load": ["load", other, "--store", tmp / "loaded.lbug", "--quiet"],
        "cypher": ["cypher", "MATCH (r:Run) RETURN count(r) AS runs", "--store", kb, "--json"],
        "query": ["query", "drivers", "1", "--store", tmp / "none.lbug"],
        "push": ["push", "--to", tmp / "pushed.lbug", "--store", kb, "--quiet"],
        "view": ["view", "--artifact", art, "-o", tmp / "view.html"],
        "label": ["label", art],                                # no CLIP weights offline
        "debug": ["debug", tmp / "nope.png", "--model", "world"],
        "ingest": ["ingest", "world", "--classes", "0", "--images", tmp / "empty", "--store", kb],
        "demo": ["demo", "--class", "no-such-class", "--out", tmp / "demo", "--store", tmp / "demo.lbug"],
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every command's console-script run (two at a time), with the folder they ran in."""
    tmp = tmp_path_factory.mktemp("smoke")
    offline = {"HF_HUB_OFFLINE": "1", "HOME": str(tmp / "home"), "XDG_CACHE_HOME": str(tmp / "cache"),
               "HF_HOME": str(tmp / "hf"), "HF_HUB_CACHE": None, "HUGGINGFACE_HUB_CACHE": None}
    calls = _calls(tmp)
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(calls, pool.map(lambda a: console(a, env=offline, cwd=tmp, timeout=300),
                                        calls.values()), strict=True))
    return {"tmp": tmp, **done}


def _ok(run) -> str:
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr
    return run.stdout


def test_models(runs) -> None:
    out = _ok(runs["models"])
    assert "efficientnet_lite0" in out and "world" in out


def test_init(runs) -> None:
    _ok(runs["init"])
    assert (runs["tmp"] / "new.lbug").exists()


def test_load(runs) -> None:
    assert "1 runs (1 written)" in _ok(runs["load"])
    with LadybugStore(runs["tmp"] / "loaded.lbug", read_only=True) as st:
        assert st.run_keys() == [_circuit(2).key]


def test_cypher(runs) -> None:
    assert json.loads(_ok(runs["cypher"])) == [{"runs": 1}]


def test_query(runs) -> None:
    one_line_error(runs["query"], "no knowledge base at", str(runs["tmp"] / "none.lbug"))


def test_push(runs) -> None:
    assert "1 written" in _ok(runs["push"])
    with LadybugStore(runs["tmp"] / "pushed.lbug", read_only=True) as st:
        assert st.run_keys() == [_circuit(1).key]


def test_view(runs) -> None:
    _ok(runs["view"])
    assert "<html" in (runs["tmp"] / "view.html").read_text().lower()


def test_label(runs) -> None:
    one_line_error(runs["label"], "--clip-checkpoint PATH")


def test_debug(runs) -> None:
    one_line_error(runs["debug"], "nope.png")


def test_ingest(runs) -> None:
    one_line_error(runs["ingest"], "empty")


def test_demo(runs) -> None:
    one_line_error(runs["demo"], "no-such-class")
    assert not (runs["tmp"] / "demo.lbug").exists()
