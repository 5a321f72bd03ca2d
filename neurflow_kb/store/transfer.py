"""Export and import of whole knowledge bases (`neurflow-kb push`): models and runs as `KBPart`s, written
back through the run lifecycle (runs stay idempotent and atomic on the receiving store)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd

from .convert import records
from .graph import DERIVED_RELS, MODEL_RELS, GraphRows, RelKey, conform
from .lifecycle import RunWriter
from .protocol import KBPart, WriteResult
from .schema import schema


class Transfer(RunWriter):
    """`export` (one `KBPart` per model, then per run) and `import_`."""

    # moving a knowledge base -------------------------------------------------------------------
    def _export_nodes(self, label: str, where: str, params: dict[str, Any],
                      match: str | None = None) -> pd.DataFrame:
        cols = self._columns(label)
        ret = ", ".join(f"n.`{c}` AS `{c}`" for c in cols)
        q = f"{match or f'MATCH (n:{label})'} WHERE {where} RETURN DISTINCT {ret}"
        names, rows = self._read(q, params)
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def _export_rels(self, key: RelKey, where: str, params: dict[str, Any]) -> pd.DataFrame:
        rtype, src, dst = key
        props = schema().rels[rtype].columns
        ret = ", ".join(["a.key AS src", "b.key AS dst", *(f"e.`{c}` AS `{c}`" for c in props)])
        q = f"MATCH (a:{src})-[e:{rtype}]->(b:{dst}) WHERE {where} RETURN {ret}"
        _, rows = self._read(q, params)
        cols = ["src", "dst", *props]
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def export_model(self, mk: str) -> GraphRows:
        """Structure of one model (Model, Layers, Neurons, Classes and their relationships)."""
        p = {"m": mk}
        rows = GraphRows()
        rows.nodes["Model"] = self._export_nodes("Model", "n.key = $m", p)
        for label in ("Layer", "Neuron", "Class"):
            rows.nodes[label] = self._export_nodes(label, "n.model = $m", p)
        rows.rels[("HAS_LAYER", "Model", "Layer")] = self._export_rels(("HAS_LAYER", "Model", "Layer"),
                                                                       "a.key = $m", p)
        rows.rels[("HAS_NEURON", "Layer", "Neuron")] = self._export_rels(
            ("HAS_NEURON", "Layer", "Neuron"), "b.model = $m", p)
        rows.rels[("HAS_CLASS", "Model", "Class")] = self._export_rels(("HAS_CLASS", "Model", "Class"),
                                                                       "a.key = $m", p)
        rows.rels[("UNIT", "Class", "Neuron")] = self._export_rels(("UNIT", "Class", "Neuron"),
                                                                   "a.model = $m", p)
        return rows

    def export_run(self, rk: str) -> GraphRows:
        """One run with everything it owns: groups, memberships, influences, drives, labels, images."""
        p = {"k": rk}
        rows = GraphRows()
        rows.nodes["Run"] = self._export_nodes("Run", "n.key = $k", p)
        rows.nodes["NeuronGroup"] = self._export_nodes("NeuronGroup", "n.run = $k", p)
        rows.nodes["Concept"] = self._export_nodes(
            "Concept", "g.run = $k", p, match="MATCH (g:NeuronGroup)-[:LABELED]->(n:Concept)")
        rows.nodes["Image"] = self._export_nodes(
            "Image", "g.run = $k", p, match="MATCH (n:Image)-[:ACTIVATES]->(g:NeuronGroup)")
        where = {"EXPLAINS": "a.key = $k", "HAS_GROUP": "a.key = $k", "AT_LAYER": "a.run = $k",
                 "MEMBER_OF": "b.run = $k", "INFLUENCES": "e.run = $k", "DRIVES": "a.run = $k",
                 "LABELED": "a.run = $k", "ACTIVATES": "b.run = $k"}
        for rtype, rel in schema().rels.items():
            if rtype in MODEL_RELS or rtype in DERIVED_RELS:
                continue
            for src, dst in rel.pairs:
                rows.rels[(rtype, src, dst)] = self._export_rels((rtype, src, dst), where[rtype], p)
        return rows

    def _run_signature(self, rk: str) -> tuple[int, ...]:
        _, a = self._read("MATCH (g:NeuronGroup) WHERE g.run = $k RETURN count(g)", {"k": rk})
        _, b = self._read("MATCH (g:NeuronGroup)-[e:LABELED]->(:Concept) WHERE g.run = $k RETURN count(e)",
                          {"k": rk})
        _, c = self._read("MATCH (:Image)-[e:ACTIVATES]->(g:NeuronGroup) WHERE g.run = $k RETURN count(e)",
                          {"k": rk})
        return (int(a[0][0]), int(b[0][0]), int(c[0][0]))

    def export(self) -> Iterator[KBPart]:
        """Every model's structure, then every complete run, as `KBPart`s (for `import_` / push)."""
        _, models = self._read("MATCH (m:Model) RETURN m.key ORDER BY m.key")
        for (mk,) in models:
            yield KBPart("model", mk, self.export_model(mk))
        encoders = self.encoders()
        if len(encoders):
            yield KBPart("encoders", "", GraphRows(nodes={"Encoder": encoders}))
        for rk in self.run_keys():
            rows = self.export_run(rk)
            yield KBPart("run", rk, rows, self._run_signature(rk))

    def import_(self, parts: Iterable[KBPart], replace: bool = False,
                progress: Callable[[WriteResult], None] | None = None) -> list[WriteResult]:
        """Write parts exported by another store; complete runs already here with the same groups,
        labels and image links are skipped, so pushing twice changes nothing."""
        self._check_writable()
        self.init_schema()
        results: list[WriteResult] = []
        pending: list[tuple[str, GraphRows]] = []
        force: set[str] = set()
        size = 0

        def flush() -> None:
            nonlocal pending, size, force
            if pending:
                results.extend(self._write_parts([], pending, replace, progress, force))
            pending, size, force = [], 0, set()

        for part in parts:
            if part.kind == "model":
                flush()
                self._ensure_shared(conform(part.rows))
                continue
            if part.kind == "encoders":
                self.record_encoders(records(part.rows.nodes["Encoder"]))
                continue
            sig = part.signature
            if sig is not None and self.run_status(part.key) == "complete" and \
                    self._run_signature(part.key) != tuple(sig):
                force.add(part.key)
            pending.append((part.key, part.rows))
            size += part.rows.rel_count()
            if size >= self.batch_relationships:
                flush()
        flush()
        self.link_runs(r.key for r in results if r.status in ("written", "replaced", "recovered"))
        return results


__all__ = ["Transfer"]
