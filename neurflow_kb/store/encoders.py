"""`Encoder` nodes: the loading recipe of every label encoder whose labels or embeddings a store holds.

A recipe is plain data (`neurflow_kb.labels.recipes.EncoderRecipe.to_dict()`): the encoder id that
LABELED.encoder and NeuronGroup.embedding_encoder carry (the node's key), its kind, open_clip model,
pretrained tag or checkpoint `path`, and the digest of its weights. Recording a recipe whose id is known
with another digest is refused: two encoders would share one id and one embedding space.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..errors import UserError

#: Encoder node properties in schema order (the key is the encoder id).
ENCODER_COLUMNS = ["key", "kind", "model", "pretrained", "path", "digest"]


def _row(recipe: Mapping[str, Any]) -> dict[str, Any]:
    row = {c: recipe.get(c) for c in ENCODER_COLUMNS}
    row["key"] = recipe.get("encoder") or recipe.get("key")
    for c, v in row.items():
        if v is not None and not isinstance(v, str):
            raise UserError(f"encoder recipe field {c!r} is {type(v).__name__}, not text; relabel the groups")
    if not row["key"] or not row["kind"] or not row["digest"]:
        raise UserError(f"encoder recipe {row['key']!r} lacks its id, kind or digest; relabel the groups")
    return row


def has_encoders(store: Any) -> bool:
    """Whether the store can hold Encoder nodes (an embedded file of an earlier version has no table)."""
    if store.dialect != "ladybug":
        return True
    _, rows = store._read("CALL show_tables() RETURN name")  # noqa: SLF001
    return any(r[0] == "Encoder" for r in rows)


def recorded_encoders(store: Any) -> pd.DataFrame:
    """Every recorded recipe, one row per encoder id (columns `ENCODER_COLUMNS`), sorted by key."""
    if not has_encoders(store):
        return pd.DataFrame(columns=ENCODER_COLUMNS)
    ret = ", ".join(f"e.{c} AS {c}" for c in ENCODER_COLUMNS)
    cols, rows = store._read(f"MATCH (e:Encoder) RETURN {ret} ORDER BY e.key")  # noqa: SLF001
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=ENCODER_COLUMNS)


def record_encoders(store: Any, recipes: Iterable[Mapping[str, Any]]) -> int:
    """Write the recipes not recorded yet (checked first: a known id with another digest is refused and
    nothing is written); returns how many were new."""
    wanted: dict[str, dict[str, Any]] = {}
    for recipe in recipes:
        row = _row(recipe)
        if row["key"] in wanted and wanted[row["key"]]["digest"] != row["digest"]:
            raise UserError(f"two different encoders are both called {row['key']!r} ({row['digest']} and "
                            f"{wanted[row['key']]['digest']}); label with one, or rename a checkpoint")
        wanted[row["key"]] = row
    if not wanted:
        return 0
    _, got = store._read("MATCH (e:Encoder) WHERE e.key IN $keys RETURN e.key, e.digest",  # noqa: SLF001
                         {"keys": sorted(wanted)})
    have = dict((k, d) for k, d in got)
    for key, row in wanted.items():
        if key in have and have[key] != row["digest"]:
            raise UserError(f"{store.describe()} records encoder {key!r} with weights {have[key]}, but these "
                            f"labels come from other weights ({row['digest']}) under the same id; label with "
                            "the recorded weights, or rename the checkpoint to give the encoder its own id")
    new = [row for key, row in wanted.items() if key not in have]
    for row in new:
        store._write("MERGE (e:Encoder {key: $key}) SET e.kind = $kind, e.model = $model, "  # noqa: SLF001
                      "e.pretrained = $pretrained, e.path = $path, e.digest = $digest", row)
    return len(new)


def circuit_recipes(circuits: Iterable[Any]) -> list[dict[str, Any]]:
    """The encoder recipes labelled circuits carry in their manifests (`labels.recipe`)."""
    out = []
    for c in circuits:
        recipe = (c.manifest.get("labels") or {}).get("recipe")
        if isinstance(recipe, Mapping) and len(c.tables["labels"]) + len(c.tables["group_embeddings"]):
            out.append(dict(recipe))
    return out


__all__ = ["ENCODER_COLUMNS", "circuit_recipes", "has_encoders", "record_encoders", "recorded_encoders"]
