"""Identity of weights and models from their content, never from file names or default labels.

Weights are identified by a SHA-256 over their tensors (names, dtypes, shapes and bytes, in name order):
``sha256:<first 16 hex digits>``. A weights file's id is cached by (path, size, mtime_ns) in a small JSON
file under the user's cache folder, so a second run does not hash a large file again (an entry is not
trusted when the file changed within two seconds before it was hashed, as git does for its index). A
custom module without a user-given name is named after its class and a hash of its architecture (module
types, their settings and the tensor names and shapes), so two different modules never share a name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_CACHE_FILE = "weights-ids.json"
_CACHE_LIMIT = 10_000


def _tensor_bytes(t: Tensor) -> Any:
    """The bytes of a tensor as a buffer (CPU, contiguous, any dtype)."""
    t = t.detach()
    if t.layout != torch.strided:
        t = t.to_dense()
    t = t.cpu().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return t.view(torch.uint8).numpy() if t.numel() else b""


def state_digest(state: Mapping[str, Tensor]) -> str:
    """``sha256:<16 hex>`` of a state dict: every tensor's name, dtype, shape and bytes, by name."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, Tensor):
            continue
        head = json.dumps([name, str(t.dtype), list(t.shape)]).encode()
        h.update(len(head).to_bytes(8, "little") + head)
        if t.device.type == "meta":
            continue
        data = _tensor_bytes(t)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return "sha256:" + h.hexdigest()[:16]


def module_digest(model: nn.Module) -> str:
    """Content id of a module's weights (parameters and buffers of its state dict)."""
    return state_digest(model.state_dict())


def architecture_digest(model: nn.Module) -> str:
    """Hash of a module's architecture: module types with their settings, and tensor names, dtypes and
    shapes (not values). Memory addresses in reprs are ignored, so it is the same in every process."""
    h = hashlib.sha256()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    h.update(_ADDRESS.sub("0x", repr(model)).encode())
    for name, t in model.state_dict().items():
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
    return h.hexdigest()[:8]


def default_name(model: nn.Module) -> str:
    """The name of a module nobody named: its class name and its architecture hash."""
    cls = re.sub(r"[^A-Za-z0-9_.-]", "_", type(model).__name__) or "Module"
    return f"{cls}-{architecture_digest(model)}"


def signature(model: nn.Module) -> tuple[tuple[int, int], ...]:
    """Cheap fingerprint of a module's tensors (storage address and in-place version counter): it changes
    when weights are loaded, trained in place or moved, so a content id can be recomputed only then."""
    out = []
    for t in model.state_dict().values():
        if isinstance(t, Tensor):
            out.append((t.data_ptr() if t.device.type != "meta" else 0, t._version))
    return tuple(out)


# -- the file cache --------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where neurflow-kb keeps small caches: $NEURFLOW_KB_CACHE, else $XDG_CACHE_HOME/neurflow-kb, else
    ~/.cache/neurflow-kb."""
    if os.environ.get("NEURFLOW_KB_CACHE"):
        return Path(os.environ["NEURFLOW_KB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "neurflow-kb"


#: A file modified this close to the moment it was hashed may change again within the same timestamp
#: tick; its cache entry is not trusted (git's "racy clean" rule).
_RACY_NS = 2_000_000_000


def _stat_key(path: Path, context: str) -> tuple[str, str, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path.resolve()), f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{context}", st.st_mtime_ns


def _read_cache() -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError, RecursionError):
        data = json.loads((cache_dir() / _CACHE_FILE).read_bytes())
        if isinstance(data, dict):
            return data
    return {}


def cached_file_id(path: str | os.PathLike[str], context: str) -> str | None:
    """The content id recorded for this file (same path, size, mtime_ns and inode, same `context`), if
    the file had not been modified within two seconds before it was hashed."""
    key = _stat_key(Path(path), context)
    if key is None:
        return None
    entry = _read_cache().get(key[0])
    if not isinstance(entry, dict) or entry.get("stamp") != key[1]:
        return None
    hashed_at, weights_id = entry.get("hashed_at"), entry.get("id")
    if not isinstance(hashed_at, int) or key[2] > hashed_at - _RACY_NS:
        return None
    if not isinstance(weights_id, str) or not re.fullmatch(r"sha256:[0-9a-f]{16}", weights_id):
        return None
    return weights_id


def remember_file_id(path: str | os.PathLike[str], context: str, weights_id: str,
                     hashed_at: int | None = None) -> None:
    """Record a file's content id (best effort: a cache that cannot be written is skipped). `hashed_at`
    (ns) is when the file was read; by default now."""
    key = _stat_key(Path(path), context)
    if key is None:
        return
    data = _read_cache()
    data.pop(key[0], None)
    data[key[0]] = {"stamp": key[1], "id": weights_id,
                    "hashed_at": time.time_ns() if hashed_at is None else int(hashed_at)}
    if len(data) > _CACHE_LIMIT:
        data = dict(list(data.items())[-_CACHE_LIMIT:])
    folder = cache_dir()
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_CACHE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, folder / _CACHE_FILE)


__all__ = ["architecture_digest", "cache_dir", "cached_file_id", "default_name", "module_digest",
           "remember_file_id", "signature", "state_digest"]
