"""Store benchmark: ingest rate and query latency of both knowledge-base stores.

Builds a synthetic knowledge base shaped like 1,000 ResNet-50 class circuits (about 3,000 relationships
each, about 3 million in all; `neurflow_kb_dev.synthetic`), writes it to each store with the same
`write_circuits` call users get, then times the `drivers`, `circuit` and `shared` helpers on random
classes. Prints one JSON line per store.

    python benchmarks/store.py                       # 1,000 classes, embedded store, + Neo4j if NEO4J_URI
    python benchmarks/store.py --classes 100 --stores ladybug
    python benchmarks/store.py --stores neo4j --neo4j bolt://localhost:7687 --wipe

Targets: Neo4j >= 50k relationships/s, embedded >= 500k/s, `drivers` p50 <= 50 ms on both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neurflow_kb import queries
from neurflow_kb.artifact import Circuit
from neurflow_kb.store import LadybugStore, Neo4jStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # neurflow_kb_dev (not installed)

from neurflow_kb_dev.synthetic import RESNET50_CHAIN, synthetic_circuit  # noqa: E402


def build_circuits(n_classes: int, distinct: int, seed: int) -> list[Circuit]:
    """`n_classes` ResNet-50-shaped circuits: `distinct` generated ones, re-targeted to the other classes
    (same tables, the class unit and manifest changed), so building 1,000 takes seconds, not minutes."""
    names = [f"imagenet_{i}" for i in range(1000)]
    bases = [synthetic_circuit(i, class_names=names, seed=seed) for i in range(min(distinct, n_classes))]
    top = len(RESNET50_CHAIN) - 1
    out = []
    for cls in range(n_classes):
        base = bases[cls % len(bases)]
        if cls < len(bases):
            out.append(base)
            continue
        tables = {}
        for name, df in base.tables.items():
            if "depth" in df.columns and "neuron" in df.columns:
                df = df.copy()
                df.loc[df["depth"] == top, "neuron"] = cls
            tables[name] = df
        c = Circuit.__new__(Circuit)  # tables are already conformed: skip re-validation
        c.manifest = dict(base.manifest, target_class=cls, class_name=names[cls])
        c.tables = tables
        out.append(c)
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000.0
    return round(float(np.percentile(arr, 50)), 2), round(float(np.percentile(arr, 95)), 2)


def time_queries(store, n_classes: int, repeats: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    out: dict[str, float] = {}
    calls = {
        "drivers": lambda: queries.drivers(store, rng.randrange(n_classes), model="resnet50"),
        "circuit": lambda: queries.circuit(store, rng.randrange(n_classes), model="resnet50",
                                           min_weight=0.01),
        "shared": lambda: queries.shared(store, rng.randrange(n_classes), rng.randrange(n_classes),
                                         model="resnet50"),
    }
    for name, call in calls.items():
        call()  # warm caches / query plans
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            df = call()
            samples.append(time.perf_counter() - t0)
            assert df is not None
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = percentiles(samples)
    return out


def bench(store, circuits: list[Circuit], repeats: int, seed: int) -> dict:
    t0 = time.perf_counter()
    results = store.write_circuits(circuits)
    ingest = time.perf_counter() - t0
    counts = store.counts()
    rels = sum(v for k, v in counts.items() if k.isupper())
    nodes = sum(v for k, v in counts.items() if not k.isupper())
    row = {"benchmark": "store", "store": store.dialect, "classes": len(circuits),
           "runs_written": sum(r.status == "written" for r in results), "nodes": nodes,
           "relationships": rels, "ingest_s": round(ingest, 2),
           "ingest_rel_per_s": round(rels / ingest), "ingest_rows_per_s": round((rels + nodes) / ingest)}
    row.update(time_queries(store, len(circuits), repeats, seed))
    return row


def wipe(st: Neo4jStore) -> None:
    """Delete every relationship and node of the Neo4j database, in batches (transaction memory)."""
    for q in ("MATCH ()-[e]->() WITH e LIMIT 20000 DELETE e RETURN count(*) AS n",
              "MATCH (n) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS n"):
        while int(st.run_query(q, write=True)["n"][0]):
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=1000, help="class circuits to write (default 1000)")
    ap.add_argument("--distinct", type=int, default=50, help="distinct generated circuits (default 50)")
    ap.add_argument("--stores", default=None,
                    help="comma list of ladybug,neo4j (default: ladybug, plus neo4j when a URI is given)")
    ap.add_argument("--store", default=None, help="embedded file to write (default: a temporary one)")
    ap.add_argument("--neo4j", default=os.environ.get("NEO4J_URI"), help="Neo4j URI (or NEO4J_URI)")
    ap.add_argument("--database", default=os.environ.get("NEO4J_DATABASE"))
    ap.add_argument("--wipe", action="store_true",
                    help="empty the Neo4j database first (required if it is not empty)")
    ap.add_argument("--repeats", type=int, default=50, help="timed calls per query")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stores = (args.stores or ("ladybug,neo4j" if args.neo4j else "ladybug")).split(",")

    t0 = time.perf_counter()
    circuits = build_circuits(args.classes, args.distinct, args.seed)
    build_s = time.perf_counter() - t0
    env = {"cpus": os.cpu_count(), "python": platform.python_version(), "build_s": round(build_s, 1),
           "load_avg": round(os.getloadavg()[0], 2)}
    for kind in stores:
        if kind == "ladybug":
            path = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="kb-bench-")) / "kb.lbug"
            tmp = None if args.store else path.parent
            if path.exists():
                print(f"{path} exists; remove it or pass another --store", file=sys.stderr)
                return 2
            try:
                with LadybugStore(path) as st:
                    row = bench(st, circuits, args.repeats, args.seed)
                size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
                row["file_mb"] = round(size / 2**20, 1)
            finally:
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)
        elif kind == "neo4j":
            if not args.neo4j:
                print("no Neo4j URI: pass --neo4j or set NEO4J_URI", file=sys.stderr)
                return 2
            with Neo4jStore(args.neo4j, database=args.database) as st:
                n = int(st.run_query("MATCH (n) RETURN count(n) AS n")["n"][0])
                if n and not args.wipe:
                    print(f"{st.describe()} holds {n} nodes; pass --wipe to empty it for the benchmark",
                          file=sys.stderr)
                    return 2
                if n:
                    wipe(st)
                row = bench(st, circuits, args.repeats, args.seed)
        else:
            print(f"unknown store {kind!r}; use ladybug or neo4j", file=sys.stderr)
            return 2
        row.update(env)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
