"""The prediction pass: top-1 and top-5 (with logits) of every image of a dataset, computed once per
(model, weights, preprocessing) and file content, cached as Parquet and reused by every class and every
later ingest.

Files are identified by their content (SHA-256 of their bytes); the hash of a file is itself cached by
(path, size, mtime), so a second ingest of 50,000 unchanged files reads none of them. Adding files
predicts only the new ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

try:
    import fcntl
except ImportError:  # Windows: no lock; run shards one after another there
    fcntl = None  # type: ignore[assignment]

import numpy as np
import pandas as pd
import torch

from ..errors import UserError
from .records import ImageRecords
from .stream import default_workers, stream_images

log = logging.getLogger(__name__)

TOP = 5
HASHES_FILE = "file-hashes.parquet"
LOCK_FILE = "predictions.lock"


class Predictor(Protocol):
    """What the prediction pass needs from a model adapter."""

    name: str
    num_classes: int
    preprocess: Any

    @property
    def weights(self) -> str: ...

    def logits(self, images: torch.Tensor) -> torch.Tensor: ...


def _atomic_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write `df` to `path` through a temporary sibling and a rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_cache(path: Path, columns: list[str]) -> pd.DataFrame | None:
    """A cache table, or None when missing or unreadable (a cache is rebuilt, never trusted blindly)."""
    if not path.is_file():
        return None
    try:
        df = pd.read_parquet(path)
    except Exception:  # a truncated or foreign file: recompute rather than fail
        return None
    return df if all(c in df.columns for c in columns) else None


class FileHashes:
    """SHA-256 of files cached by (absolute path, size, mtime_ns) in ``cache_dir/file-hashes.parquet``."""

    COLUMNS = ["path", "size", "mtime_ns", "sha256"]

    def __init__(self, cache_dir: Path | None) -> None:
        self.path = None if cache_dir is None else Path(cache_dir) / HASHES_FILE
        self._known: dict[tuple[str, int, int], str] = {}
        self._dirty = False
        df = None if self.path is None else _read_cache(self.path, self.COLUMNS)
        if df is not None:
            self._known = {(p, int(s), int(m)): h for p, s, m, h in
                           zip(df["path"], df["size"], df["mtime_ns"], df["sha256"], strict=True)}

    def get(self, key: tuple[str, int, int]) -> str | None:
        return self._known.get(key)

    def put(self, key: tuple[str, int, int], sha: str) -> None:
        if self._known.get(key) != sha:
            self._known[key] = sha
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        rows = list(self._known.items())
        _atomic_parquet(pd.DataFrame({"path": [k[0] for k, _ in rows], "size": [k[1] for k, _ in rows],
                                      "mtime_ns": [k[2] for k, _ in rows], "sha256": [v for _, v in rows]}),
                        self.path)
        self._dirty = False


def model_identity(adapter: Predictor) -> dict[str, Any]:
    """What a prediction depends on: model name, weights id, preprocessing, number of classes."""
    pre = adapter.preprocess
    return {"model": adapter.name, "weights": adapter.weights, "num_classes": int(adapter.num_classes),
            "preprocess": pre.to_dict() if hasattr(pre, "to_dict") else repr(pre)}


def _identity_key(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(b"neurflow-kb/predictions/v1" + blob).hexdigest()[:16]


@dataclass
class DatasetPredictions:
    """Predictions of every record of a dataset, in record order.

    ``top1`` is -1 for a file that could not be read (only with ``skip_bad``; its error is in ``bad``);
    ``top5`` / ``top5_logits`` hold the five largest logits (padded with -1 / NaN for smaller heads).
    ``forwarded`` counts the images that went through the model in this call (0 when all came from the
    cache).
    """

    records: ImageRecords
    sha256: list[str]
    sizes: np.ndarray
    top1: np.ndarray
    top5: np.ndarray
    top5_logits: np.ndarray
    bad: dict[int, str] = field(default_factory=dict)
    forwarded: int = 0
    seconds: float = 0.0
    cache_file: Path | None = None

    def __len__(self) -> int:
        return len(self.records)

    def bad_files(self) -> list[str]:
        """Relative paths of the files left out because they could not be read."""
        return [self.records.relpath(i) for i in sorted(self.bad)]

    def file_identity(self, positions: np.ndarray) -> list[tuple[str, int, str, int]]:
        """(relative path, size, SHA-256, label) of the records at `positions`: their identity."""
        return [(self.records.relpath(i), int(self.sizes[i]), self.sha256[i], int(self.records.labels[i]))
                for i in np.asarray(positions, dtype=np.int64).tolist()]


@contextlib.contextmanager
def cache_lock(cache_dir: Path | None, progress: bool = True) -> Iterator[None]:
    """Hold the prediction cache's lock file (an exclusive `flock`) for the length of the block, so that
    concurrent ingests sharing an artifacts folder (static shards) run one prediction pass between them:
    the first predicts, the others wait and then read its cache. No lock without a cache or `fcntl`."""
    if cache_dir is None or fcntl is None:
        yield
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / LOCK_FILE, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                print(f"waiting for another process's prediction pass ({cache_dir / LOCK_FILE})",
                      file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def predict_dataset(records: ImageRecords, adapter: Predictor, *, cache_dir: str | Path | None = None,
                    batch_size: int = 64, device: str | torch.device = "cpu", workers: int | None = None,
                    skip_bad: bool = False, progress: bool = True) -> DatasetPredictions:
    """Top-1/top-5 of every record: from the cache where the file's content was seen with this model,
    else one streamed pass of the rest (decode in worker processes, logits on `device`).

    An unreadable file stops the pass with one `UserError` line naming it (the predictions made so far
    are kept in the cache), unless `skip_bad`: then it is left out and listed in ``bad``. Processes
    sharing `cache_dir` take turns (`cache_lock`), so files are predicted once between them.
    """
    cache = None if cache_dir is None else Path(cache_dir)
    with cache_lock(cache, progress):
        return _predict(records, adapter, cache, batch_size, device, workers, skip_bad, progress)


def _predict(records: ImageRecords, adapter: Predictor, cache: Path | None, batch_size: int,
             device: str | torch.device, workers: int | None, skip_bad: bool,
             progress: bool) -> DatasetPredictions:
    started = time.perf_counter()
    identity = model_identity(adapter)
    cache_file = None if cache is None else cache / "predictions" / f"{_identity_key(identity)}.parquet"
    hashes = FileHashes(cache)
    n = len(records)
    sizes = np.zeros(n, dtype=np.int64)
    keys: list[tuple[str, int, int]] = []
    for i, f in enumerate(records.files):
        try:
            st = f.stat()
        except OSError as exc:
            if not skip_bad:
                raise UserError(f"cannot read image file {f} ({exc.strerror or type(exc).__name__}); check "
                                "it exists and is readable, or pass --skip-bad-images") from None
            st = None
        sizes[i] = st.st_size if st else -1
        keys.append((str(f.resolve()), int(st.st_size), int(st.st_mtime_ns)) if st else ("", -1, -1))
    sha = [(hashes.get(k) or "") if k[1] >= 0 else "" for k in keys]

    known: dict[str, tuple[int, list[int], list[float], str | None]] = {}
    prior = None if cache_file is None else _read_cache(cache_file, ["sha256", "top1", "top5", "top5_logits",
                                                                      "error"])
    if prior is not None:
        for h, t1, t5, l5, err in zip(prior["sha256"], prior["top1"], prior["top5"], prior["top5_logits"],
                                      prior["error"], strict=True):
            known[str(h)] = (int(t1), [int(v) for v in t5], [float(v) for v in l5],
                             None if err is None or err != err else str(err))
    todo = [i for i in range(n) if not (sha[i] and sha[i] in known) and sizes[i] >= 0]
    bad: dict[int, str] = {i: f"cannot read image file {records.files[i]}" for i in range(n) if sizes[i] < 0}
    forwarded = 0
    fresh: dict[str, tuple[int, list[int], list[float], str | None]] = {}
    if todo:
        from tqdm.auto import tqdm

        dev = torch.device(device)
        bar = tqdm(total=len(todo), desc="prediction pass", unit="img", disable=not progress, file=sys.stderr,
                   smoothing=0.1)
        try:
            with torch.no_grad():
                for batch in stream_images([records.files[i] for i in todo], adapter.preprocess,
                                           positions=todo, batch_size=batch_size,
                                           workers=default_workers() if workers is None else workers,
                                           pin_memory=dev.type == "cuda"):
                    for pos, h in zip(batch.positions.tolist(), batch.sha256, strict=True):
                        if h:
                            sha[pos] = h
                            hashes.put(keys[pos], h)
                    for pos, err in batch.errors.items():
                        bad[pos] = err
                        if sha[pos]:  # cached by content, the file's name kept out of the message
                            generic = err.replace(str(records.files[pos]), "{file}")
                            fresh[sha[pos]] = (-1, [-1] * TOP, [float("nan")] * TOP, generic)
                    if len(batch.images):
                        logits = adapter.logits(batch.images.to(dev, non_blocking=True)).float()
                        forwarded += int(logits.shape[0])
                        k = min(TOP, int(logits.shape[1]))
                        top_values, top_index = logits.topk(k, dim=1)
                        values, index = top_values.cpu().numpy(), top_index.cpu().numpy()
                        for row, pos in enumerate(batch.positions[batch.ok].tolist()):
                            pad = TOP - k
                            fresh[sha[pos]] = (int(index[row, 0]), index[row].tolist() + [-1] * pad,
                                               values[row].tolist() + [float("nan")] * pad, None)
                    bar.update(len(batch.positions))
                    if batch.errors and not skip_bad:
                        first = batch.errors[min(batch.errors)]
                        raise UserError(f"{first} (or pass --skip-bad-images to leave such files out)")
        finally:
            bar.close()
            hashes.save()
            if cache_file is not None and fresh:
                merged = {**known, **fresh}
                _atomic_parquet(pd.DataFrame({
                    "sha256": list(merged), "top1": [v[0] for v in merged.values()],
                    "top5": [v[1] for v in merged.values()], "top5_logits": [v[2] for v in merged.values()],
                    "error": [v[3] for v in merged.values()]}), cache_file)
                (cache_file.with_suffix(".json")).write_text(json.dumps(identity, indent=2, default=str))
    known.update(fresh)

    top1 = np.full(n, -1, dtype=np.int64)
    top5 = np.full((n, TOP), -1, dtype=np.int64)
    logit5 = np.full((n, TOP), np.nan, dtype=np.float32)
    for i in range(n):
        hit = known.get(sha[i]) if sha[i] else None
        if hit is None:
            continue
        if hit[3] is not None:
            bad.setdefault(i, hit[3].replace("{file}", str(records.files[i])))
            continue
        top1[i], top5[i], logit5[i] = hit[0], hit[1], hit[2]
    if bad and not skip_bad:
        first_bad = min(bad)
        raise UserError(f"{bad[first_bad]} (or pass --skip-bad-images to leave such files out)")
    log.info("prediction pass: %d files, %d through the model, %d unreadable, %.1f s", len(records),
             forwarded, len(bad), time.perf_counter() - started)
    return DatasetPredictions(records, sha, sizes, top1, top5, logit5, bad, forwarded,
                              time.perf_counter() - started, cache_file)


__all__ = ["DatasetPredictions", "FileHashes", "Predictor", "cache_lock", "model_identity", "predict_dataset"]
