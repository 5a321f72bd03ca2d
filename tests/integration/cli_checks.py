"""Assertions on command-line runs shared by the knowledge-base tests (imported by module name, like
tests/e2e/planted.py)."""

from __future__ import annotations


def one_line_error(result, *needles: str) -> str:
    """Assert a CLI run (in-process `click` result or subprocess) failed with exit code 2 and one
    `Error: ...` line on stderr holding every needle; return that line."""
    code = result.exit_code if hasattr(result, "exit_code") else result.returncode
    detail = result.output if hasattr(result, "output") else result.stdout[-500:]
    assert code == 2, (code, detail, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
