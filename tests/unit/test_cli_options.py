"""The engine options of `circuit` and `ingest` come from `NeurFlowConfig`: same defaults, same choices,
every field they name reaches the config (including --dtype and --certify)."""

from __future__ import annotations

import dataclasses
import typing

import click
import pytest

from neurflow_kb.cli import main
from neurflow_kb.cli.engine_cmds import build_config
from neurflow_kb.cli.options import ENGINE_FIELDS
from neurflow_kb.config import NeurFlowConfig
from neurflow_kb.errors import UserError

REQUIRED = ("--model", "world", "--images", "x", "--class", "0", "--out", "o")


def _params(command: str, args: typing.Sequence[str]) -> dict[str, typing.Any]:
    cmd = main.commands[command]
    with cmd.make_context(command, list(args)) as ctx:        # click consumes the list it parses
        return dict(ctx.params)


@pytest.mark.parametrize("command", ["circuit", "ingest"])
def test_engine_option_defaults_are_the_config_defaults(command: str) -> None:
    params = _params(command, REQUIRED if command == "circuit" else ("world", "--classes", "0"))
    defaults = {f.name: f.default for f in dataclasses.fields(NeurFlowConfig)}
    assert {f: params[f] for f in ENGINE_FIELDS} == {f: defaults[f] for f in ENGINE_FIELDS}
    assert build_config(**params) == NeurFlowConfig()


def test_every_engine_option_reaches_the_config() -> None:
    params = _params("circuit", [*REQUIRED, "--tau", "3", "--top-k", "7", "--ig-steps", "9", "--strategy",
                                 "fast", "--filter", "all", "--max-nodes", "4", "--dtype", "bfloat16",
                                 "--certify", "--device", "cpu", "--seed", "5", "--batch-size", "8",
                                 "--ig-batch-size", "16"])
    config = build_config(**params)
    assert (config.tau, config.top_k, config.ig_steps, config.strategy, config.class_filter) == \
        (3, 7, 9, "fast", "all")
    assert (config.max_nodes_per_layer, config.dtype, config.certify, config.seed, config.batch_size,
            config.ig_batch_size) == (4, "bfloat16", True, 5, 8, 16)


def test_choices_come_from_the_config_types() -> None:
    hints = typing.get_type_hints(NeurFlowConfig)
    options = {p.name: p for p in main.commands["circuit"].params}
    for field in ("strategy", "class_filter", "dtype"):
        choice = options[field].type
        assert isinstance(choice, click.Choice)
        assert list(choice.choices) == list(typing.get_args(hints[field]))


def test_out_of_range_engine_option_is_one_user_error() -> None:
    params = _params("circuit", [*REQUIRED, "--tau", "0"])
    with pytest.raises(UserError, match="tau must be >= 1"):
        build_config(**params)
