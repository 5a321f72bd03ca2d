"""Click options shared by commands, generated where a dataclass already says what they are: the engine
options come from `NeurFlowConfig`'s fields (type, choices and default exist once, in the dataclass)."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

import click

from ..config import NeurFlowConfig

_DEFAULTS = NeurFlowConfig()

#: `NeurFlowConfig` fields the commands that compute circuits expose: field -> (option name, help).
#: The option's parameter is the field's own name, so its value goes to the config as it is.
ENGINE_FIELDS: dict[str, tuple[str, str]] = {
    "tau": ("--tau", "Core neurons per node."),
    "top_k": ("--top-k", "Exemplar crops per node."),
    "ig_steps": ("--ig-steps", "Gauss-Legendre steps of Integrated Gradients."),
    "strategy": ("--strategy", "How IG is evaluated: batched (exact), per_neuron (one call per node, the "
                 "reference), fast (fewest steps whose completeness error stays within "
                 f"{_DEFAULTS.fast_tolerance:.0%})."),
    "class_filter": ("--filter", "Which images count: predicted as the class, true label, all."),
    "max_nodes_per_layer": ("--max-nodes", "Cap on nodes per layer."),
    "dtype": ("--dtype", "Precision of the IG forwards (bfloat16/float16: autocast, faster on GPUs)."),
    "certify": ("--certify", "Keep the core sets of exact float32 IG while --dtype/--strategy fast "
                "approximate: nodes the approximation could have changed are recomputed exactly."),
    "device": ("--device", "Device for the model ('cpu', 'cuda', 'cuda:1')."),
    "seed": ("--seed", "Seed of every random choice (exemplar choice, clustering)."),
    "batch_size": ("--batch-size", "Images per forward pass."),
    "ig_batch_size": ("--ig-batch-size", "Rows per Integrated Gradients batch."),
}


def _click_type(hint: Any) -> tuple[Any, bool]:
    """(click type, is a flag) of a field's type hint: Literal -> Choice, bool -> flag, X | None -> X."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
        args = list(typing.get_args(hint))
    if typing.get_origin(hint) is typing.Literal:
        return click.Choice([str(a) for a in args]), False
    if hint is bool:
        return None, True
    return hint, False


def config_option(field: str) -> Callable[[Any], Any]:
    """The click option of one `NeurFlowConfig` field (name and help from `ENGINE_FIELDS`)."""
    name, help_text = ENGINE_FIELDS[field]
    default = getattr(_DEFAULTS, field)
    kind, flag = _click_type(typing.get_type_hints(NeurFlowConfig)[field])
    if flag:
        return click.option(name, field, is_flag=True, default=default, help=help_text)
    return click.option(name, field, type=kind, default=default, show_default=default is not None,
                        help=help_text)


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options of every command that computes circuits: the model's weights and layers, the images per
    class, the `NeurFlowConfig` fields of `ENGINE_FIELDS`, and --quiet."""
    options = [
        click.option("--weights", default="default", show_default=True,
                     help="'default' (pretrained), 'random', or a state_dict file."),
        click.option("--layers", default=None, help="Comma-separated layer chain, bottom to top, ending "
                     "with the class-logit layer (default: the model's chain; derived for torchvision:/timm: "
                     "models)."),
        *(config_option(field) for field in ENGINE_FIELDS),
        click.option("--max-images", type=int, default=None,
                     help="Images per class after class filtering (a seeded choice when more qualify)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def config_values(kw: dict[str, Any]) -> dict[str, Any]:
    """The `NeurFlowConfig` fields among a command's parameters."""
    return {field: kw[field] for field in ENGINE_FIELDS if field in kw}


def parse_layers(layers: str | None) -> list[str] | None:
    """'a, b,c' -> ['a', 'b', 'c']; None or '' -> None (the model's own chain)."""
    return [s.strip() for s in layers.split(",") if s.strip()] if layers else None


__all__ = ["ENGINE_FIELDS", "config_option", "config_values", "engine_options", "parse_layers"]
