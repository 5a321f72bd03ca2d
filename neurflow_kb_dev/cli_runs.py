"""The `neurflow-kb` command line as the tests run it: in-process through click's `CliRunner` (`invoke`,
the default: the same group, exit codes, stdout and stderr, without an interpreter start of seconds), or
as the installed console script in a real subprocess (`console`, for what only a process shows: exit
codes of the entry point, crashes, signals, locks held by another process), and the one-line error check
both share.

`invoke` fails a test when a command leaves process-wide state changed (torch threads, logging handlers,
signal handlers, environment, working directory): in-process runs share the interpreter, and such a
leak would be a real bug of the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

#: The installed console script next to this interpreter.
CONSOLE_SCRIPT = str(Path(sys.executable).with_name("neurflow-kb"))
#: Variables a library sets for itself the first time it is used, whichever process uses it: torch's
#: inductor cache, and Ray's process-wide switches (Ray reads them once, at import; `--ray local` sets
#: two before importing it, Ray client mode sets its own), which belong to the process, not a command.
_LIBRARY_ENV = ("TORCHINDUCTOR_CACHE_DIR", "RAY_")
_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def _process_state() -> dict[str, Any]:
    """What a command must leave as it found it in a shared interpreter."""
    import torch

    logs = {name: (lg.level, list(lg.handlers), lg.propagate)
            for name, lg in (("", logging.getLogger()), ("neurflow_kb", logging.getLogger("neurflow_kb")))}
    return {"torch threads": torch.get_num_threads(), "logging": logs,
            "signal handlers": {s: signal.getsignal(s) for s in _SIGNALS},
            "environment": {k: v for k, v in os.environ.items() if not k.startswith(_LIBRARY_ENV)},
            "working directory": os.getcwd()}


def _difference(before: Any, after: Any) -> Any:
    """What changed: the keys whose values differ in two dicts (values left out: an environment holds
    passwords), else (before, after)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return sorted(map(str, (k for k in before.keys() | after.keys() if before.get(k) != after.get(k))))
    return (before, after)


@contextlib.contextmanager
def _in(cwd: str | Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    here = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)


def _environment(env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """The test run's NEO4J_* (the variables that choose a Neo4j server) removed, `env` on top (None
    removes a variable)."""
    return {k: None for k in os.environ if k.startswith("NEO4J_")} | dict(env or {})


def invoke(args: Sequence[Any], env: Mapping[str, str | None] | None = None, cwd: str | Path | None = None,
           input: str | None = None) -> Result:
    """Run `neurflow-kb ARGS` in this process; `env` is laid over the environment without the test run's
    NEO4J_*. Fails the test if the command changed process-wide state (see the module docstring); a
    command that raised anything but SystemExit is in `result.exception` (exit code 1)."""
    from neurflow_kb.cli import main

    before = _process_state()
    with _in(cwd):
        result = CliRunner().invoke(main, [str(a) for a in args], env=_environment(env), input=input)
    after = _process_state()
    leaked = {k: _difference(before[k], after[k]) for k in before if before[k] != after[k]}
    assert not leaked, f"`neurflow-kb {' '.join(map(str, args))[:200]}` changed the process's {leaked}"
    return result


def console(args: Sequence[Any], env: Mapping[str, str | None] | None = None, cwd: str | Path | None = None,
            timeout: float = 300, **popen: Any) -> subprocess.CompletedProcess:
    """Run the installed `neurflow-kb` console script in a subprocess (environment as in `invoke`)."""
    return subprocess.run([CONSOLE_SCRIPT, *map(str, args)], env=process_env(env), capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, **popen)


def process_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The whole environment for a subprocess of the CLI (`subprocess.Popen(env=...)`), as `console`
    builds it: this one without the test run's NEO4J_*, `env` on top."""
    return {k: v for k, v in {**os.environ, **_environment(env)}.items() if v is not None}


def exit_code(result: Result | subprocess.CompletedProcess) -> int:
    """The exit code of an in-process or a subprocess run."""
    return result.exit_code if isinstance(result, Result) else result.returncode


def one_line_error(result: Result | subprocess.CompletedProcess, *needles: str, case: bool = True) -> str:
    """Assert a run failed with exit code 2, exactly one `Error: ...` line on stderr holding every needle
    (compared ignoring case when `case` is false) and no traceback; return that line."""
    code = exit_code(result)
    detail = (result.output, result.exception) if isinstance(result, Result) else result.stdout[-500:]
    assert code == 2, (code, detail, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for n in needles:
        assert (n in lines[0]) if case else (n.lower() in lines[0].lower()), (n, lines[0])
    return lines[0]


__all__ = ["CONSOLE_SCRIPT", "console", "exit_code", "invoke", "one_line_error", "process_env"]
