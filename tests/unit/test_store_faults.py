"""Store failures are worded once (`store.core.Fault`): the embedded store classifies the engine's real
errors into fault kinds and each kind comes back as its one-line message, naming the file and the fix."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from neurflow_kb.errors import StoreError, UserError
from neurflow_kb.store.core import Fault
from neurflow_kb.store.ladybug_store import LadybugStore


def _one_line(err: pytest.ExceptionInfo[UserError], kind: type[UserError], *parts: str) -> str:
    msg = str(err.value)
    assert type(err.value) is kind, (type(err.value), msg)
    assert len(msg.splitlines()) == 1 and all(p in msg for p in parts), msg
    return msg


def test_a_file_without_schema_says_to_run_init(tmp_path: Path) -> None:
    kb = tmp_path / "kb.lbug"
    with LadybugStore(kb) as st:
        for read in (lambda: st.run_query("MATCH (r:Run) RETURN r.key"), st.run_keys):
            with pytest.raises(UserError) as err:
                read()
            _one_line(err, StoreError, str(kb), "has no knowledge-base schema yet", "`neurflow-kb init`")


def test_query_faults_on_the_embedded_store(tmp_path: Path) -> None:
    kb = tmp_path / "kb.lbug"
    with LadybugStore(kb) as st:
        st.init_schema()
        with pytest.raises(UserError) as err:        # the engine's binder: REJECTED, not NO_SCHEMA
            st.run_query("MATCH (n:NoSuchLabel) RETURN n")
        _one_line(err, UserError, "Ladybug rejected the query: ", "NoSuchLabel")
        with pytest.raises(UserError) as err:        # the parser
            st.run_query("MATC (n) RETURN n")
        _one_line(err, UserError, "Ladybug rejected the query: ", "Parser exception")
    with LadybugStore(kb, read_only=True) as ro:
        with pytest.raises(UserError) as err:
            ro.run_query("MATCH (r:Run) DETACH DELETE r", write=True)
        _one_line(err, UserError, f"knowledge base {kb} is open read-only", "open it for writing")
        # the engine's own refusal on a read-only handle (vetting refuses writes before it gets there)
        with pytest.raises(RuntimeError) as native:
            ro._conn.execute("CREATE (:Model {key: 'x'})")
        assert ro._classify(native.value, query=True) == (Fault.WRITES, "")
        with pytest.raises(UserError) as err:
            ro._raise_classified(native.value, query=True)
        _one_line(err, UserError, "the query writes to the knowledge base", "--write")
        # not the user's query: an engine error other than a missing schema is a bug and propagates
        assert ro._classify(native.value) is None
        with pytest.raises(RuntimeError):
            ro._read("MATCH (n:NoSuchLabel) RETURN n")
        assert ro._classify(ValueError("x"), query=True) is None


def test_a_file_that_is_no_knowledge_base_cannot_be_opened(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lbug"
    bad.write_bytes(os.urandom(64 << 10))
    with pytest.raises(UserError) as err:
        LadybugStore(bad, lock_timeout=0.2).open()
    _one_line(err, StoreError, f"cannot open {bad}: ", "not a valid")


def test_a_full_disk_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the engine's writes fail as on a full disk."""
    from neurflow_kb_dev.synthetic import synthetic_circuit

    kb = tmp_path / "kb.lbug"
    with LadybugStore(kb, buffer_pool_size=256 << 20) as st:
        st.write_circuit(synthetic_circuit(0))
        old = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (kb.stat().st_size + (64 << 10), old[1]))
        try:
            with pytest.raises(UserError) as err:
                st.write_circuit(synthetic_circuit(1))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, old)
            signal.signal(signal.SIGXFSZ, handler)
    _one_line(err, StoreError, f"cannot write to {kb}: File too large", "free disk space")


def test_every_fault_is_one_line_of_its_type() -> None:
    facts = {"store": "knowledge base kb.lbug", "where": "kb.lbug", "engine": "Ladybug", "user": "neo4j",
             "database": "kb", "detail": "why", "doing": "open", "runs": 2, "holder": "", "seconds": 5.0}
    for fault in Fault:
        err = fault.error(**facts)
        assert isinstance(err, fault.value[0]) and len(str(err).splitlines()) == 1, fault
    assert isinstance(Fault.NO_SCHEMA.error(**facts), StoreError)
    assert not isinstance(Fault.REJECTED.error(**facts), StoreError)   # the user's query, not the store
