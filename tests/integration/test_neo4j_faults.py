"""The Neo4j-only fault kinds of `store.core.Fault` on the real server: the driver's errors classified,
worded in one line, without the password (the embedded store's kinds: tests/unit/test_store_faults.py)."""

from __future__ import annotations

import pytest

from neurflow_kb.errors import StoreError, UserError
from neurflow_kb.store.core import Fault
from neurflow_kb.store.neo4j_store import Neo4jStore, safe_uri


def test_neo4j_faults_are_one_line_without_the_password(neo4j_store: Neo4jStore, neo4j_auth) -> None:
    import neo4j
    from neo4j import exceptions as ex

    user, password = neo4j_auth
    missing = Neo4jStore(neo4j_store.uri, user=user, password=password, database="nosuchdatabase")
    with pytest.raises(StoreError) as err:
        missing.open()
    line = str(err.value)
    assert line.startswith(f"{safe_uri(neo4j_store.uri)} has no database 'nosuchdatabase'; create it"), line
    assert "--database" in line and password not in line and len(line.splitlines()) == 1
    with pytest.raises(UserError) as err:
        neo4j_store.run_query("MATC (n) RETURN n")
    assert str(err.value).startswith("Neo4j rejected the query: Invalid input 'MATC'"), str(err.value)
    # the server's own refusal of a write in a READ transaction (vetting refuses writes before that)
    with pytest.raises(ex.ClientError) as native:
        neo4j_store._driver.execute_query("CREATE (:Model {key: 'x'})", routing_=neo4j.RoutingControl.READ,
                                          database_=neo4j_store.database)
    assert neo4j_store._classify(native.value) == (Fault.WRITES, "")
    assert "--write" in str(neo4j_store._fail(Fault.WRITES))
    # parameters the driver cannot send are the user's to fix only in their own query
    assert neo4j_store._classify(TypeError("bad"), query=True) == (Fault.BAD_PARAMS, "bad")
    assert neo4j_store._classify(TypeError("bad")) is None
