"""Knowledge-base test helpers: synthetic circuits shaped like NeurFlow artifacts (data, not mocks), the
real embedded store in a temporary file and the real Neo4j from tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from neurflow_kb import queries
from neurflow_kb.artifact import Circuit
from neurflow_kb.store import LadybugStore, Neo4jStore
from neurflow_kb.store.encoders import circuit_recipes
from neurflow_kb.store.graph import DERIVED_RELS, MODEL_RELS, model_key, model_rows, runs_rows
from neurflow_kb_dev.synthetic import synthetic_circuit

TOY_CHAIN = (("conv", 32), ("b1", 48), ("b2", 48), ("logits", 10))
MINI_CHAIN = (("stem", 24), ("s1", 40), ("s2", 40), ("s3", 64), ("head", 12))
TOY_NAMES = [f"toy{j}" for j in range(10)]


def toy_circuit(cls: int, seed: int = 0) -> Circuit:
    """A small circuit of model `toy@random` (3 transitions, tau 6) for class `cls`."""
    return synthetic_circuit(cls, chain=TOY_CHAIN, nodes_per_layer=(2, 10, 20), tau=6, model="toy",
                             weights="random", class_names=TOY_NAMES, seed=seed)


def mini_circuit(cls: int, seed: int = 0) -> Circuit:
    """A circuit of a second model `mini@v1` (4 transitions, tau 8, no class-name list)."""
    return synthetic_circuit(cls, chain=MINI_CHAIN, nodes_per_layer=(3, 12, 24, 30), tau=8, model="mini",
                             weights="v1", seed=seed)


def kb_circuits() -> list[Circuit]:
    """A knowledge base of two models and several classes each (classes 1 and 2 in both)."""
    return [toy_circuit(c) for c in (0, 1, 2, 3)] + [mini_circuit(c) for c in (1, 2, 5)]


def expected_counts(circuits: list[Circuit]) -> dict[str, int]:
    """Nodes per label and relationships per type that writing `circuits` must produce, from the artifacts."""
    out: dict[str, int] = {}
    keys: dict[str, set] = {}
    pairs: dict[str, set] = {}
    seen_models: set[str] = set()
    for c in circuits:
        if model_key(c) in seen_models:
            continue
        seen_models.add(model_key(c))
        rows = model_rows(c)
        for label, df in rows.nodes.items():
            keys.setdefault(label, set()).update(df["key"])
        for (rtype, _, _), df in rows.rels.items():
            pairs.setdefault(rtype, set()).update(zip(df["src"], df["dst"], strict=True))
    uniq = {c.key: c for c in circuits}
    run = runs_rows(list(uniq.values()))
    for label, df in run.nodes.items():
        out[label] = out.get(label, 0) + len(df)
    for (rtype, _, _), df in run.rels.items():
        out[rtype] = out.get(rtype, 0) + len(df)
    for label, ks in keys.items():
        out[label] = len(ks)
    for rtype in MODEL_RELS:
        out[rtype] = len(pairs.get(rtype, ()))
    for rtype in DERIVED_RELS:          # written between runs of different models once they carry embeddings
        out[rtype] = 0
    out["Encoder"] = len({r["encoder"] for r in circuit_recipes(circuits)})   # recipes of labelled artifacts
    return out


#: The Neo4j twin of a test that runs on both stores: in the full suite only (the fast one runs the
#: embedded twin, and Neo4j through the tests written for it alone).
NEO4J_TWIN = (pytest.mark.neo4j, pytest.mark.slow)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test asking for `any_store` runs once per store kind (Neo4j ones marked `neo4j` and `slow`)."""
    if "any_store" in metafunc.fixturenames:
        metafunc.parametrize("any_store", [pytest.param("ladybug", id="ladybug"),
                                           pytest.param("neo4j", id="neo4j", marks=NEO4J_TWIN)],
                             indirect=True)
    if "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", [pytest.param("ladybug", id="ladybug"),
                                            pytest.param("neo4j", id="neo4j", marks=NEO4J_TWIN)])


@pytest.fixture
def lbug_path(tmp_path: Path) -> Path:
    """Path of a fresh embedded knowledge-base file."""
    return tmp_path / "kb.lbug"


@pytest.fixture
def neo4j_store(neo4j_clean) -> Iterator[Neo4jStore]:
    """An open store on the emptied test Neo4j."""
    st = Neo4jStore(neo4j_clean.uri, user=neo4j_clean.user, password=neo4j_clean.password,
                    database=neo4j_clean.database)
    with st:
        yield st


@pytest.fixture
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LadybugStore | Neo4jStore]:
    """A fresh writable store of each kind (parametrised by `pytest_generate_tests`)."""
    if request.param == "ladybug":
        with LadybugStore(tmp_path / "kb.lbug") as st:
            yield st
    else:
        yield request.getfixturevalue("neo4j_store")


def store_args(kind: str, request: pytest.FixtureRequest, path: Path) -> tuple[list[str], dict[str, str]]:
    """CLI store options and the environment to lay over the test run's (`neurflow_kb_dev.cli_runs` drops
    its NEO4J_*): the password travels in NEO4J_PASSWORD, never in argv."""
    if kind == "ladybug":
        return ["--store", str(path)], {}
    server = request.getfixturevalue("neo4j_server")
    return ["--neo4j", server.uri, "--user", server.user, "--database", server.database], \
        {"NEO4J_PASSWORD": server.password}


def frames_equal(a: pd.DataFrame | dict, b: pd.DataFrame | dict) -> None:
    """Assert two helper results (a DataFrame or a dict of them) hold identical rows."""
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            pd.testing.assert_frame_equal(a[k], b[k], check_exact=True, obj=k)
    else:
        pd.testing.assert_frame_equal(a, b, check_exact=True)


LABEL = ("MERGE (k:Concept {key: $ck}) ON CREATE SET k.text = $text, k.vocabulary = 'test' "
         "WITH k MATCH (g:NeuronGroup) WHERE g.key = $g "
         "CREATE (g)-[:LABELED {score: $score, rank: $rank, method: 'clip', encoder: 'ViT-B-32'}]->(k)")


def add_labels(store, circuits) -> list[str]:
    """Label the two strongest groups of every run with 'stripes' / 'fur' (what issue 4 will write)."""
    labelled = []
    for c in circuits:
        top = c.groups.sort_values(["influence", "group"], ascending=[False, True]).head(2)
        for rank, (_, g) in enumerate(top.iterrows()):
            key = f"{c.key}/{g['layer']}/{int(g['group'])}"
            for i, text in enumerate(("stripes", "fur")):
                score = round(0.3 - 0.01 * rank - 0.05 * i, 6)
                store.run_query(LABEL, {"ck": f"test/{text}", "text": text, "g": key, "score": score,
                                        "rank": i}, write=True)
            labelled.append(key)
    return labelled


def helper_calls(circuits) -> dict:
    """Every helper, with the argument shapes users pass (index, name, key, model name / key)."""
    toy1 = next(c for c in circuits if c.model == "toy" and c.target_class == 1)
    g = toy1.groups.sort_values(["depth", "group"]).iloc[0]
    gkey = f"{toy1.key}/{g['layer']}/{int(g['group'])}"
    return {
        "drivers": lambda s: queries.drivers(s, 1),
        "drivers_model_layer": lambda s: queries.drivers(s, "toy2", model="toy", layer="b1", limit=5),
        "drivers_class_key": lambda s: queries.drivers(s, "mini@v1/5", model="mini@v1"),
        "circuit": lambda s: queries.circuit(s, 2, model="mini"),
        "circuit_threshold": lambda s: queries.circuit(s, 1, min_weight=0.05),
        "group": lambda s: queries.group(s, gkey).frames(),
        "concept": lambda s: queries.concept(s, "Stripes"),
        "concept_model": lambda s: queries.concept(s, "fur", model="mini"),
        "shared": lambda s: queries.shared(s, 1, 2, model="toy"),
        "shared_pairs": lambda s: queries.shared(s, 1, 2, by="pair"),
        "shared_layers": lambda s: queries.shared(s, 1, 2, model="toy", by="layer"),
        "similar": lambda s: queries.similar(s, 1, model="toy"),
        "similar_every_model": lambda s: queries.similar(s, 2, top=2),
        "circuit_min_share": lambda s: queries.circuit(s, 1, min_share=0.1),
        "path": lambda s: queries.path(s, gkey),
        "models": queries.models,
        "classes": queries.classes,
        "classes_model": lambda s: queries.classes(s, model="mini"),
        "runs": queries.runs,
        "runs_class": lambda s: queries.runs(s, model="toy", cls="toy3"),
    }


#: Run properties that record when and how fast a run was made, not what it is.
VOLATILE = {"Run": ("timings", "written_at")}


def kb_tables(store) -> dict[str, pd.DataFrame]:
    """Every node and relationship of a knowledge base (`export`), one sorted frame per label and
    relationship type, without the volatile Run properties: two stores holding the same runs compare
    equal with `frames_equal`."""
    from neurflow_kb.store.graph import GraphRows

    parts = list(store.export())
    rows = GraphRows.concat([p.rows for p in parts]) if parts else GraphRows()
    out: dict[str, pd.DataFrame] = {}
    for label, df in rows.nodes.items():
        df = df.drop(columns=[c for c in VOLATILE.get(label, ()) if c in df.columns])
        out[label] = df.sort_values("key").reset_index(drop=True)
    for (rtype, src, dst), df in rows.rels.items():
        cols = ["src", "dst", *sorted(c for c in df.columns if c not in ("src", "dst"))]
        key = [c for c in cols if df[c].map(lambda v: isinstance(v, str | int | float | bool)).all()]
        out[f"{rtype}:{src}->{dst}"] = df[cols].sort_values(key).reset_index(drop=True)
    return out


class KBHelpers:
    """Helpers handed to tests through the `kbh` fixture (test modules are not importable packages)."""

    toy_circuit = staticmethod(toy_circuit)
    mini_circuit = staticmethod(mini_circuit)
    kb_circuits = staticmethod(kb_circuits)
    expected_counts = staticmethod(expected_counts)
    store_args = staticmethod(store_args)
    frames_equal = staticmethod(frames_equal)
    add_labels = staticmethod(add_labels)
    helper_calls = staticmethod(helper_calls)
    kb_tables = staticmethod(kb_tables)


@pytest.fixture(scope="session")
def kbh() -> type[KBHelpers]:
    """Synthetic circuits, expected counts and frame comparison for knowledge-base tests (the CLI runs
    through `neurflow_kb_dev.cli_runs`)."""
    return KBHelpers
