"""Every Cypher statement a store runs can be traced: DEBUG records of `neurflow_kb.store.*`, shown on
stderr by `neurflow-kb --log-level debug`."""

from __future__ import annotations

import logging
from pathlib import Path

from neurflow_kb.store import LadybugStore
from neurflow_kb_dev.cli_runs import invoke


def test_store_logs_its_cypher_at_debug(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="neurflow_kb.store"):
        with LadybugStore(tmp_path / "kb.lbug").open() as st:
            st.init_schema()
            st.run_query("MATCH (m:Model) RETURN m.key AS key LIMIT $n", {"n": 1})
    texts = [r.getMessage() for r in caplog.records if r.name == "neurflow_kb.store.ladybug_store"]
    assert any("CREATE NODE TABLE" in t for t in texts)
    assert any("LIMIT $n" in t and "params=['n']" in t for t in texts)      # parameter names, not values


def test_cli_log_level_debug_prints_cypher_on_stderr(tmp_path: Path) -> None:
    store = str(tmp_path / "kb.lbug")
    quiet = invoke(["init", "--store", store])
    assert quiet.exit_code == 0 and "cypher" not in quiet.stderr
    loud = invoke(["--log-level", "debug", "query", "models", "--store", store])   # and leaves
    # no level or handler behind (`invoke` checks)
    assert loud.exit_code == 0, loud.output
    assert "DEBUG neurflow_kb.store.ladybug_store: cypher" in loud.stderr
