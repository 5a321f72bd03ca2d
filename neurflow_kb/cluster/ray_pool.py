"""Ray as the distributed engine: a pool of actors, each holding what `setup` builds (a model on its
device) and running `work(state, job)` on the jobs it is handed, one at a time.

The pool knows nothing of NeurFlow or of stores: the caller (the ingest pipeline) passes picklable
functions and jobs, and gets plain values back, in batches of whatever finished, as they finish. A worker
process that dies (killed, out of memory, node lost) is restarted by Ray and its job retried
(`max_restarts`, `max_task_retries`); a job whose worker died more often than that comes back as lost
and the worker is replaced, so the other jobs go on.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'neurflow-kb[cluster]'"
#: Makes Ray use the loopback address as the node address, so that a private single-machine Ray binds
#: every server (GCS, raylet, object manager, workers) to 127.0.0.1 instead of all interfaces.
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass
class RayOptions:
    """Where and how Ray runs the workers.

    `address`: "local" starts a private Ray on this machine (every server on 127.0.0.1, no dashboard,
    no usage statistics) and stops it afterwards; "auto" joins the running cluster (`ray start`,
    RAY_ADDRESS); anything else is a cluster address (host:port or ray://host:port). `workers` defaults
    to as many as the cluster's GPUs (or CPUs) fit; `gpus_per_worker` (a fraction shares a GPU) defaults
    to 1 when the engine runs on CUDA, else 0. `max_retries` is both the restarts of a worker and
    the retries of the job it was running. `num_cpus`, `num_gpus`, `object_store_memory` (bytes) and
    `temp_dir` only apply to "local".
    """

    address: str = "local"
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    max_retries: int = 3
    num_cpus: int | None = None
    num_gpus: int | None = None
    object_store_memory: int | None = None
    temp_dir: str | None = None

    def __post_init__(self) -> None:
        self.address = str(self.address).strip()
        if not self.address:
            raise UserError("--ray needs an address: local, auto, or host:port of a Ray cluster")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers must be >= 1 with --ray (got {self.workers})")
        if self.gpus_per_worker is not None and not 0 <= self.gpus_per_worker <= 64:
            raise UserError(f"--gpus-per-worker must be between 0 and 64 (got {self.gpus_per_worker}); "
                            "a fraction such as 0.5 puts two workers on one GPU")
        if not 0 < self.cpus_per_worker <= 1024:
            raise UserError(f"--cpus-per-worker must be > 0 (got {self.cpus_per_worker})")
        if not 0 <= self.max_retries <= 100:
            raise UserError(f"--max-retries must be between 0 and 100 (got {self.max_retries})")

    @property
    def local(self) -> bool:
        return self.address == "local"

    def check_reachable(self, timeout: float = 5.0) -> None:
        """For a host:port (or ray://host:port) address, refuse in one line when nothing answers there:
        Ray itself would retry a wrong address for minutes."""
        if self.address in ("local", "auto"):
            return
        match = re.fullmatch(r"(?:ray://)?\[?([^\[\]/]+?)\]?:(\d{1,5})/?", self.address)
        if not match:
            raise UserError(f"--ray {self.address[:80]!r} is not local, auto, HOST:PORT or ray://HOST:PORT")
        host, port = match.group(1), int(match.group(2))
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            why = e.strerror or type(e).__name__
            raise UserError(f"cannot reach a Ray cluster at {host}:{port} ({why}); check the address "
                            "(`ray status` on the head node), or use --ray local") from None


def require_ray(local: bool = False) -> Any:
    """The `ray` module, or a one-line `UserError` naming the extra to install. For a private local Ray,
    the loopback switch is set before Ray is imported (Ray reads it at import time)."""
    if local:
        os.environ.setdefault(LOOPBACK_SWITCH, "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


class RayCluster:
    """A connection to Ray for the length of a `with` block: starts a private local Ray or joins a
    cluster; shuts down only what it started (a Ray the caller initialised is used and left running)."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.ray: Any = None
        self.owned = False
        self.startup_seconds = 0.0

    def __enter__(self) -> RayCluster:
        o = self.options
        self.ray = ray = require_ray(local=o.local)
        if ray.is_initialized():
            return self
        t0 = time.perf_counter()
        try:
            if o.local:
                ray.init(address="local", num_cpus=o.num_cpus, num_gpus=o.num_gpus,
                         object_store_memory=o.object_store_memory, include_dashboard=False,
                         _temp_dir=o.temp_dir, logging_level="WARNING")
            else:
                ray.init(address=o.address, logging_level="WARNING")
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = "a local Ray" if o.local else f"the Ray cluster at {o.address}"
            hint = "" if o.local else "; start it with `ray start --head` or use --ray local"
            raise UserError(f"could not start or reach {where}: {_first_line(e)}{hint}") from None
        self.owned = True
        self.startup_seconds = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self.ray.shutdown()
            self.owned = False

    def resources(self) -> dict[str, float]:
        """Total resources of the cluster (CPU, GPU, memory, ...)."""
        return dict(self.ray.cluster_resources())

    def default_workers(self) -> int:
        """As many workers as the cluster's GPUs (or, without GPUs per worker, CPUs) fit, at least 1."""
        o, res = self.options, self.resources()
        if o.gpus_per_worker:
            fit = res.get("GPU", 0.0) / o.gpus_per_worker
            if fit < 1:
                raise UserError(f"the Ray cluster has {res.get('GPU', 0.0):g} GPUs, fewer than "
                                f"--gpus-per-worker {o.gpus_per_worker:g}; lower it or add GPU nodes")
        else:
            fit = res.get("CPU", 1.0) / o.cpus_per_worker
        return max(1, int(fit + 1e-9))


class _Worker:
    """The actor: builds its state once, on its first call (`setup(shared)`), then runs jobs. A setup
    error is kept and reported by `ready`, so the driver stops with one line instead of restarting
    workers forever.

    `shared` comes with every call as a one-element list holding an object reference (a few bytes; the
    object itself is fetched once per process): a restarted actor rebuilds its state from the retried
    call, and nothing in the object store is an argument of the actor itself (Ray cannot guarantee those
    across restarts)."""

    def __init__(self, setup: Callable[[Any], Any]) -> None:
        self.setup = setup
        self.error: str | None = None
        self.state: Any = None
        self.built = False

    def _build(self, boxed: list[Any]) -> None:
        if self.built:
            return
        import ray

        self.built = True
        try:
            self.state = self.setup(ray.get(boxed[0]))
        except UserError as e:
            self.error = str(e)
        except Exception as e:  # a bug or a broken node: the traceback goes to the worker's log
            traceback.print_exc(file=sys.stderr)
            self.error = _first_line(e)

    def ready(self, boxed: list[Any]) -> tuple[str, str | None]:
        """Build the state; (host:pid, setup error or None)."""
        self._build(boxed)
        return f"{socket.gethostname()}:{os.getpid()}", self.error

    def run(self, work: Callable[[Any, Any], Any], job: Any, boxed: list[Any]) -> Any:
        self._build(boxed)
        if self.error is not None:
            raise UserError(self.error)
        return work(self.state, job)


_END = object()


@dataclass
class Outcome:
    """What came back for one job: `value` (what `work` returned) or `error` (one line); `lost` when its
    worker died more often than the retries allow."""

    job: Any
    value: Any = None
    error: str | None = None
    lost: bool = False
    seconds: float = 0.0


@dataclass
class ActorPool:
    """`workers` actors on a `RayCluster`, each built by `setup(shared)` (`shared` goes to the object
    store once and is fetched once per worker process, again by a restarted one), running
    `work(state, job)`.

    `map_unordered(jobs)` hands each actor one job at a time (an idle actor pulls the next) and yields
    lists of outcomes, everything that finished since the last yield, while the actors keep computing.
    """

    cluster: RayCluster
    setup: Callable[[Any], Any]
    shared: Any
    work: Callable[[Any, Any], Any]
    workers: int
    actors: list[Any] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    replaced: int = 0
    ready_seconds: float = 0.0
    _remote: Any = None
    _shared_ref: Any = None

    def _new_actor(self) -> Any:
        o, ray = self.cluster.options, self.cluster.ray
        if self._remote is None:
            self._remote = ray.remote(_Worker).options(
                num_cpus=o.cpus_per_worker, num_gpus=o.gpus_per_worker or 0, max_restarts=o.max_retries,
                max_task_retries=o.max_retries)
            self._shared_ref = ray.put(self.shared)
        return self._remote.remote(self.setup)

    def start(self) -> ActorPool:
        """Create the actors and wait until each has built its state; a setup error stops with one line."""
        t0 = time.perf_counter()
        ray = self.cluster.ray
        self.actors = [self._new_actor() for _ in range(self.workers)]
        answers = ray.get([a.ready.remote([self._shared_ref]) for a in self.actors])
        self.where = [w for w, _ in answers]
        log.info("%d Ray workers ready in %.1f s: %s", len(self.actors), time.perf_counter() - t0,
                 ", ".join(self.where))
        errors = [e for _, e in answers if e]
        if errors:
            raise UserError(f"the workers could not start: {errors[0]}")
        self.ready_seconds = time.perf_counter() - t0
        return self

    def map_unordered(self, jobs: Iterable[Any]) -> Iterator[list[Outcome]]:
        ray = self.cluster.ray
        from ray.exceptions import RayActorError, RayError

        queue = iter(jobs)   # pulled lazily: a generator of jobs may run for as long as it likes
        pending: dict[Any, tuple[int, Any, float]] = {}

        def submit(i: int) -> None:
            job = next(queue, _END)
            if job is not _END:
                ref = self.actors[i].run.remote(self.work, job, [self._shared_ref])
                pending[ref] = (i, job, time.perf_counter())

        for i in range(len(self.actors)):
            submit(i)
        while pending:
            refs = list(pending)
            done, rest = ray.wait(refs, num_returns=1)
            if rest:
                done += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
            out = []
            for ref in done:
                i, job, t0 = pending.pop(ref)
                try:
                    out.append(Outcome(job, value=ray.get(ref), seconds=time.perf_counter() - t0))
                except RayActorError as e:
                    out.append(Outcome(job, error=f"its worker died {self.cluster.options.max_retries + 1} "
                                       f"times ({_first_line(e)[:200]})", lost=True,
                                       seconds=time.perf_counter() - t0))
                    self.actors[i] = self._new_actor()
                    self.replaced += 1
                except RayError as e:
                    cause = getattr(e, "cause", None)
                    line = str(cause) if isinstance(cause, UserError) else _first_line(cause or e)
                    out.append(Outcome(job, error=line[:500], seconds=time.perf_counter() - t0))
                submit(i)
            yield out

    def ping(self, rounds: int) -> list[float]:
        """Round-trip seconds of `rounds` empty calls, one at a time, to the first actor (dispatch cost)."""
        ray = self.cluster.ray
        out = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            ray.get(self.actors[0].ready.remote([self._shared_ref]))
            out.append(time.perf_counter() - t0)
        return out


__all__ = ["INSTALL_HINT", "ActorPool", "Outcome", "RayCluster", "RayOptions", "require_ray"]
