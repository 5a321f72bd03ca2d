"""Ingestion recipes: one TOML file per model (weights, layer chain, preprocessing, data, NeurFlow
settings), validated against one schema before any work.

The schema is the dataclasses themselves: `[neurflow]` holds `NeurFlowConfig` fields and `[preprocess]`
`Preprocess` fields, checked by their type hints; unknown keys are refused with the closest known one,
so a typo such as ``tua = 4`` is an error, not a silently ignored line.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..config import NeurFlowConfig
from ..errors import UserError

#: Keys of a recipe's top level and of its [data] table, with their types.
TOP_LEVEL: dict[str, Any] = {"model": str, "weights": str, "layers": list[str], "description": str,
                             "preprocess": dict, "data": dict, "neurflow": dict}
DATA_KEYS: dict[str, Any] = {"images": str, "max_images": int}
_MAX_RECIPE_BYTES = 1 << 20


def recipes_dir() -> Path:
    """The package's folder of ingestion recipes (`ingest/*.toml`; the repository root links to it)."""
    return Path(__file__).resolve().parent.parent / "ingest"


def recipe_names() -> list[str]:
    """Names of the shipped recipes (`neurflow-kb ingest NAME`)."""
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


@dataclass
class Recipe:
    """What to ingest: a model (built-in name), its weights and chain, preprocessing, data defaults and
    NeurFlow settings. `neurflow` holds `NeurFlowConfig` fields, `preprocess` `Preprocess` fields."""

    model: str
    weights: str = "default"
    layers: list[str] | None = None
    preprocess: dict[str, Any] | None = None
    images: str | None = None
    max_images: int | None = None
    neurflow: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: str | None = None

    def config(self, **overrides: Any) -> NeurFlowConfig:
        """The `NeurFlowConfig` of this recipe, with `overrides` (field -> value) applied on top."""
        values = {**self.neurflow, **overrides}
        try:
            return NeurFlowConfig(**values)
        except UserError as e:
            raise UserError(f"{self._where()}: {e}") from None

    def _where(self) -> str:
        return f"recipe {self.path}" if self.path else f"recipe for {self.model}"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "recipe", path: str | None = None) -> Recipe:
        """Validate a parsed recipe (types, unknown keys, ranges) and build it; errors name the key."""
        if not isinstance(data, dict):
            raise UserError(f"{where} must be a table of keys (got {type(data).__name__})")
        _check_keys(data, TOP_LEVEL, where, "")
        if "model" not in data:
            raise UserError(f"{where} has no `model = \"...\"` line; name a built-in model "
                            "(`neurflow-kb models`)")
        for key, typ in TOP_LEVEL.items():
            if key in data:
                _check_value(data[key], typ, where, key)
        if not data["model"].strip():
            raise UserError(f"{where}: `model` is empty; name a built-in model (`neurflow-kb models`)")
        if "layers" in data and len(data["layers"]) < 2:
            raise UserError(f"{where}: `layers` needs at least two layers, bottom -> top, ending with the "
                            "class-logit layer")
        data_tab = data.get("data", {})
        _check_keys(data_tab, DATA_KEYS, where, "data")
        for key, typ in DATA_KEYS.items():
            if key in data_tab:
                _check_value(data_tab[key], typ, where, f"data.{key}")
        if data_tab.get("max_images") is not None and data_tab["max_images"] < 1:
            raise UserError(f"{where}: data.max_images must be >= 1 (got {data_tab['max_images']})")
        pre = data.get("preprocess")
        if pre is not None:
            from ..models import Preprocess

            _check_dataclass(pre, Preprocess, where, "preprocess")
            try:
                Preprocess(**pre)
            except (UserError, TypeError, ValueError) as e:
                raise UserError(f"{where}: [preprocess] {e}") from None
        neurflow = data.get("neurflow", {})
        _check_dataclass(neurflow, NeurFlowConfig, where, "neurflow", exclude=("extra",))
        recipe = cls(model=data["model"].strip(), weights=data.get("weights", "default"),
                     layers=data.get("layers"), preprocess=pre, images=data_tab.get("images"),
                     max_images=data_tab.get("max_images"), neurflow=dict(neurflow),
                     description=data.get("description", ""), path=path)
        recipe.config()  # ranges (tau >= 1, ...) checked by NeurFlowConfig itself
        return recipe


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A recipe from a TOML file, or by name from `ingest/` (`resnet50` -> ingest/resnet50.toml); a plain
    model name without a recipe gives `Recipe(model=name)` (the adapter's defaults)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    text = str(name_or_path)
    path = Path(text)
    if path.suffix != ".toml":
        for cand in (recipes_dir() / f"{text}.toml", recipes_dir() / f"{text.replace('_', '-')}.toml"):
            if cand.is_file():
                path = cand
                break
        else:
            return Recipe(model=text)
    if not path.is_file():
        raise UserError(f"recipe {path} does not exist; give a TOML file or one of: "
                        f"{', '.join(recipe_names())}")
    where = f"recipe {path}"
    try:
        if path.stat().st_size > _MAX_RECIPE_BYTES:
            raise UserError(f"{where} is larger than 1 MiB; a recipe is a short TOML file")
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{where} is not UTF-8 text; write the recipe as a TOML text file") from None
    except OSError as e:
        raise UserError(f"cannot read {where}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where} is not valid TOML: {e}") from None
    return Recipe.from_dict(data, where, str(path))


# -- the schema check ---------------------------------------------------------------------------------

def _check_keys(table: Any, known: dict[str, Any] | set[str], where: str, section: str) -> None:
    """Refuse keys not in `known`, naming the closest known one."""
    if not isinstance(table, dict):
        raise UserError(f"{where}: [{section}] must be a table (got {type(table).__name__})")
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(sorted(known))}"
            at = f"[{section}] " if section else ""
            raise UserError(f"{where}: unknown key {at}{key!r}{hint}")


def _check_dataclass(table: Any, cls: type, where: str, section: str, exclude: tuple[str, ...] = ()) -> None:
    """Check a table's keys and value types against the fields (and type hints) of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in exclude}
    _check_keys(table, fields, where, section)
    for key, value in table.items():
        _check_value(value, fields[key], where, f"{section}.{key}")


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings"}.get(args[0]) if args else None
        return f"a list of {plural or _type_name(args[0])}" if args else "a list"
    if hint is float:
        return "a number"
    return {int: "an integer", str: "a string", bool: "true or false", dict: "a table"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value) if args else \
            isinstance(value, list)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**62
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
            and abs(value) != float("inf")
    if hint is str:
        return isinstance(value, str) and len(value) <= 4096
    return isinstance(value, hint) if isinstance(hint, type) else False


def _check_value(value: Any, hint: Any, where: str, key: str) -> None:
    if not _matches(value, hint):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**62:
            raise UserError(f"{where}: {key} is too large (got {shown})")
        raise UserError(f"{where}: {key} must be {_type_name(hint)} (got {shown})")


__all__ = ["DATA_KEYS", "TOP_LEVEL", "Recipe", "load_recipe", "recipe_names", "recipes_dir"]
