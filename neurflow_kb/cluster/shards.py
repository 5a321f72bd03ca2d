"""Static shards for schedulers without Ray (Slurm job arrays, Kubernetes indexed jobs): shard I of N
takes every N-th class of the sorted class list, starting at position I (round-robin), so N shards cover
every class exactly once and contiguous ranges such as 0-999 split into equal, interleaved slices."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UserError

_SHARD = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


def parse_shard(text: str | tuple[int, int]) -> tuple[int, int]:
    """'I/N' (0 <= I < N) -> (I, N); a tuple is checked the same way."""
    if isinstance(text, tuple):
        index, count = (int(v) for v in text)
    else:
        match = _SHARD.match(str(text))
        if not match:
            shown = str(text) if len(str(text)) <= 30 else str(text)[:27] + "..."
            raise UserError(f"--shard {shown!r} is not I/N; give the shard index and the number of shards, "
                            "e.g. --shard 0/8 (Slurm: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
        index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {index}/{count} is out of range; the index runs from 0 to N-1 "
                        f"(e.g. 0/{max(count, 1)} .. {max(count, 1) - 1}/{max(count, 1)})")
    return index, count


def shard_classes(classes: Sequence[int], index: int, count: int) -> list[int]:
    """The classes of shard `index` of `count`: positions index, index+count, ... of the sorted, distinct
    class list (the order the user typed the classes in does not matter)."""
    index, count = parse_shard((index, count))
    return sorted(set(int(c) for c in classes))[index::count]


__all__ = ["parse_shard", "shard_classes"]
