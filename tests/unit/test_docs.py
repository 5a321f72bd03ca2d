"""Docs that cannot go stale: every `neurflow-kb` command and option the README and docs/ show exists
(their code blocks and inline commands are parsed and each command's --help runs in-process), the
architecture's import table is the package's real imports, and the demo is described as it runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from import_graph import import_graph

from neurflow_kb.cli import main
from neurflow_kb_dev.cli_runs import invoke

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`(neurflow-kb [^`]+)`")


def _invocations(text: str) -> list[str]:
    """Each `neurflow-kb ...` command line of the code blocks (continuation lines joined) and of inline
    code spans."""
    found = []
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            at = line.find("neurflow-kb ")
            if at >= 0 and (at == 0 or line[at - 1] in " /;|&(`"):
                found.append(line[at:])
    found += INLINE.findall(text)
    return found


def _words(line: str) -> list[str]:
    line = re.split(r"\s(?:#|\||&&|;|>)\s", line)[0]           # drop comments, pipes, redirections
    try:
        return shlex.split(line)[1:]
    except ValueError:                                           # an unclosed quote in a prose span
        return shlex.split(line + '"')[1:]


def _resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(command path, command, the words after it) of `neurflow-kb WORDS...`."""
    path: list[str] = []
    cmd: click.Command = main
    rest = list(words)
    options: list[str] = []
    while rest:
        w = rest.pop(0)
        if w in ("…", "...", "[...]"):                           # "any subcommand" in prose
            break
        if w.startswith("-"):
            options.append(w)
            param = next((p for p in cmd.params if w.split("=")[0] in p.opts), None)
            takes_value = isinstance(param, click.Option) and not param.is_flag and not param.count
            if takes_value and "=" not in w and rest:
                rest.pop(0)                                        # the option's value
            continue
        if isinstance(cmd, click.Group) and w in cmd.commands:
            path.append(w)
            cmd = cmd.commands[w]
            continue
        if isinstance(cmd, click.Group):
            raise AssertionError(f"no command {' '.join([*path, w])!r}")
        break
    return path, cmd, [*options, *rest]


def _option_names(path: list[str]) -> set[str]:
    names = {"--help", "-h"}
    cmd: click.Command = main
    for part in [None, *path]:
        if part is not None:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[part]
        for p in cmd.params:
            names.update(p.opts + p.secondary_opts)
    return names


def _shown() -> list[tuple[str, str]]:
    return [(doc.name, line) for doc in DOCS for line in _invocations(doc.read_text())]


def test_docs_show_commands() -> None:
    shown = _shown()
    assert len(shown) > 40 and {d for d, _ in shown} >= {"README.md", "scaling.md", "labels.md"}


@pytest.mark.parametrize("doc,line", _shown())
def test_every_command_and_option_shown_exists(doc: str, line: str) -> None:
    path, _, words = _resolve(_words(line))
    known = _option_names(path)
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known]
    assert unknown == [], f"{doc}: `{line}` shows options that `neurflow-kb {' '.join(path)}` lacks"


def test_every_command_shown_answers_help() -> None:
    paths = {tuple(_resolve(_words(line))[0]) for _, line in _shown()}
    assert len(paths) > 10
    for path in sorted(paths):
        result = invoke([*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)


def _import_table() -> list[tuple[str, set[str] | None]]:
    """(room, what docs/architecture.md says it may import; None for 'everything above'), in order."""
    rows = []
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        m = re.match(r"\| `neurflow_kb/(\w+)(?:\.py|/)` \| .* \| ([^|]+) \|$", line)
        if m:
            allowed = m.group(2).strip()
            rows.append((m.group(1), None if allowed == "everything above" else
                         set() if allowed == "nothing" else {a.strip() for a in allowed.split(",")}))
    return rows


def test_architecture_import_table_is_the_real_imports() -> None:
    table = _import_table()
    graph = import_graph()
    actual = graph.room_edges()
    rooms = {m.split(".")[1] for m in graph.files if m.count(".") >= 1}
    assert {room for room, _ in table} == rooms                     # every room has its row
    above: set[str] = set()
    for room, allowed in table:
        imports = actual.get(room, set())
        assert imports <= above, f"{room} imports {sorted(imports - above)}, which come below it"
        if allowed is not None:
            assert imports == allowed, f"{room}: the table says {sorted(allowed)}, the code {sorted(imports)}"
        above.add(room)


def test_checker_sees_a_wrong_command_or_option() -> None:
    path, _, words = _resolve(_words("neurflow-kb query drivers 281 --no-such-option"))
    assert path == ["query", "drivers"] and "--no-such-option" not in _option_names(path)
    with pytest.raises(AssertionError, match="no command"):
        _resolve(_words("neurflow-kb query no-such-query"))


def test_the_demo_is_described_as_it_runs() -> None:
    from neurflow_kb.cli.demo_cmds import DEMO_MODEL, IMAGENET_DEMO_MODEL

    decisions = (ROOT / "docs" / "decisions.md").read_text()
    bullet = next(b for b in decisions.split("\n- ") if b.startswith("`demo` (README command 1)"))
    assert f"`{DEMO_MODEL}`" in bullet and "EfficientNet-Lite0" in bullet
    assert IMAGENET_DEMO_MODEL == "efficientnet_lite0"
    script = (ROOT / "scripts" / "demo.sh").read_text()
    assert "planted-concept world" in script and "--imagenet" in script
