"""Commands over the knowledge base: `init`, `load`, `ingest`, `query`, `cypher`, `push`.

Every command takes the same store options: `--store FILE` (embedded, default ./neurflow-kb.lbug) or
`--neo4j URI` with `--user`, `--password`, `--database` (or NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD /
NEO4J_DATABASE). Passwords are never printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pandas as pd

from ..errors import UserError
from ..values import json_value, number
from .group import main
from .options import ENGINE_FIELDS, engine_options, parse_layers

if TYPE_CHECKING:
    from ..store import BaseStore, WriteResult

# -- store options ---------------------------------------------------------------------------------

@dataclass
class StoreOptions:
    """Where the knowledge base lives, from the common command-line options."""

    store_path: str | None = None
    neo4j_uri: str | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None

    def open(self, read_only: bool = False) -> BaseStore:
        """Open the chosen store (read-only opening needs an embedded file to exist)."""
        from ..store import open_store

        return open_store(self.store_path, self.neo4j_uri, user=self.user, password=self.password,
                          database=self.database, read_only=read_only)


def store_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --store / --neo4j / --user / --password / --database and pass them on as `opts`."""
    options = [
        click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
                     help="Embedded knowledge-base file (default: ./neurflow-kb.lbug)."),
        click.option("--neo4j", "neo4j_uri", default=None, metavar="URI",
                     help="Use Neo4j instead: neo4j://, bolt://, neo4j+s:// ... (or NEO4J_URI)."),
        click.option("--user", default=None, help="Neo4j user (or NEO4J_USER; default neo4j)."),
        click.option("--password", default=None, help="Neo4j password (or NEO4J_PASSWORD)."),
        click.option("--database", default=None, help="Neo4j database name (or NEO4J_DATABASE)."),
    ]

    def wrapper(*args: Any, store_path: str | None, neo4j_uri: str | None, user: str | None,
                password: str | None, database: str | None, **kw: Any) -> Any:
        return f(*args, opts=StoreOptions(store_path, neo4j_uri, user, password, database), **kw)

    wrapper.__name__ = f.__name__
    wrapper.__doc__ = f.__doc__
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --json / --csv and pass the choice on as `fmt` ('table', 'json' or 'csv')."""
    f = click.option("--csv", "fmt", flag_value="csv", help="Print CSV.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Print JSON (a list of row objects).")(f)
    return f


def _jsonable(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): json_value(v) for k, v in row.items()} for row in df.to_dict("records")]


#: Columns holding a share of a class (fractions; tables print them as percentages).
SIGNED_SHARES = ("share",)
UNSIGNED_SHARES = ("abs_share", "share_a", "share_b", "group_share", "similarity", "overlap")


def as_percent(df: pd.DataFrame, signed: tuple[str, ...] = SIGNED_SHARES,
               unsigned: tuple[str, ...] = UNSIGNED_SHARES) -> pd.DataFrame:
    """A copy of `df` for people: share columns as percentages ('+12.3%', '12.3%'), other values kept.
    JSON and CSV keep the fractions."""
    from ..shares import percent

    out = df.copy()
    for c in out.columns:
        if c in signed or c in unsigned:
            out[c] = [percent(number(v), signed=c in signed) for v in out[c]]
    return out


def emit(result: pd.DataFrame | dict[str, pd.DataFrame], fmt: str | None,
         percent_columns: tuple[str, ...] = ()) -> None:
    """Print a DataFrame (or named DataFrames) as an aligned table, JSON or CSV; in tables, share columns
    (and `percent_columns`) read as percentages."""
    if fmt is None:
        if isinstance(result, dict):
            result = {k: as_percent(v, unsigned=UNSIGNED_SHARES + percent_columns) for k, v in result.items()}
        else:
            result = as_percent(result, unsigned=UNSIGNED_SHARES + percent_columns)
    frames: dict[str | None, pd.DataFrame] = ({k: v for k, v in result.items()} if isinstance(result, dict)
                                              else {None: result})
    if fmt == "json":
        data: Any = ({k: _jsonable(v) for k, v in frames.items()} if isinstance(result, dict)
                     else _jsonable(result))
        click.echo(json.dumps(data, default=str, allow_nan=False))
        return
    for title, df in frames.items():
        if fmt == "csv":
            if title:
                click.echo(f"# {title}")
            click.echo(df.to_csv(index=False), nl=False)
            continue
        if title:
            click.echo(f"{title}:")
        if df.empty:
            click.echo("(no rows)")
        else:
            with pd.option_context("display.width", 200, "display.max_columns", 50,
                                   "display.max_colwidth", 60):
                click.echo(df.to_string(index=False))
        if title:
            click.echo("")


# -- CLIP options (labels, ingest --label, query search) --------------------------------------------

def clip_model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Which CLIP model (and prompt templates) to use: shared by `label`, `ingest --label`, `query search`."""
    options = [
        click.option("--clip-model", default=None,
                     help="open_clip architecture (used with --clip-pretrained or a weights file), or a "
                     "registered local encoder (neurflow-world-clip). Default: the encoder the knowledge "
                     "base records for its groups, else ViT-B-32."),
        click.option("--clip-pretrained", default=None,
                     help="open_clip pretrained tag (default openai); weights come from the local cache or "
                     "are downloaded."),
        click.option("--clip-checkpoint", default=None, metavar="PATH",
                     help="Offline weights: an open_clip checkpoint file (with --clip-model) or a folder "
                     "with open_clip_config.json and weights."),
        click.option("--template", "templates", multiple=True, metavar="TEXT",
                     help="Prompt template with {} for the concept; repeat for an ensemble (default: seven "
                     "photo templates, see docs/labels.md)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def clip_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """`clip_model_options` plus the vocabulary and how many labels each group keeps."""
    f = click.option("--top-n", default=5, show_default=True, type=int, help="Labels kept per group.")(f)
    f = click.option("--vocabulary", default="broad", show_default=True,
                     help="'broad' (built-in visual concepts), 'imagenet' (class names) or a text file with "
                     "one concept per line.")(f)
    return clip_model_options(f)


def label_method_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """How concepts are ranked (docs/labels.md): `--label-method`, `--reference`, `--contrast-weight`;
    the command receives one `label_method` (a `LabelMethod`)."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, label_kind: str, reference: str, contrast_weight: float, **kwargs: Any) -> Any:
        from ..labels import LabelMethod

        return f(*args, label_method=LabelMethod(label_kind, reference, contrast_weight), **kwargs)

    options = [
        click.option("--label-method", "label_kind", type=click.Choice(["contrast", "mean"]),
                     default="contrast", show_default=True,
                     help="contrast: what sets a group apart from the rest of its run; mean: what its crops "
                     "show (mean image embedding)."),
        click.option("--reference", type=click.Choice(["run", "layer"]), default="run", show_default=True,
                     help="Contrast reference: the run's other groups, or those of the group's layer."),
        click.option("--contrast-weight", type=click.FloatRange(0.0, 1.0), default=0.75, show_default=True,
                     help="1: rank by the contrast alone; 0: by the group's own CLIP probability."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def check_templates(templates: tuple[str, ...]) -> tuple[str, ...]:
    """The --template values (each checked to hold one '{}' for the concept), or the default ensemble."""
    from ..labels import DEFAULT_TEMPLATES

    for t in templates:
        if t.count("{}") != 1:
            raise UserError(f"--template {t!r} needs exactly one '{{}}' where the concept goes, e.g. "
                            "'a photo of {}'")
    return tuple(templates) or DEFAULT_TEMPLATES


def open_clip_encoder(clip_model: str | None, clip_pretrained: str | None, clip_checkpoint: str | None,
                      device: str = "cpu") -> Any:
    """Load CLIP from the shared options (missing weights offline fail at once with a UserError); options
    not given take open_clip's ViT-B-32 / openai."""
    from ..labels import DEFAULT_MODEL, DEFAULT_PRETRAINED, load_clip

    return load_clip(clip_model or DEFAULT_MODEL, clip_pretrained or DEFAULT_PRETRAINED, clip_checkpoint,
                     device=device)


def store_clip_encoder(store: Any, clip_model: str | None, clip_pretrained: str | None,
                       clip_checkpoint: str | None, device: str = "cpu", model: str | None = None,
                       required: bool = False) -> Any:
    """CLIP for work on a knowledge base: the one the options name, else the encoder recorded for the
    groups (of `model`) that are already embedded, else ViT-B-32 / openai (or, when `required`, a
    one-line error: nothing is embedded yet)."""
    if clip_model or clip_pretrained or clip_checkpoint:
        return open_clip_encoder(clip_model, clip_pretrained, clip_checkpoint, device)
    from ..labels.clip import load_recorded
    from ..labels.recipes import stored_encoder

    recipe = stored_encoder(store, model)
    if recipe is not None:
        return load_recorded(recipe, device)
    if required:
        raise UserError("no group has a CLIP embedding yet; label the knowledge base first (`neurflow-kb "
                        "label`, or `neurflow-kb ingest --label`)")
    return open_clip_encoder(None, None, None, device)


# -- init / load -----------------------------------------------------------------------------------

@main.command()
@store_options
def init(opts: StoreOptions) -> None:
    """Create the knowledge-base schema (constraints, indexes or tables); safe to run again."""
    with opts.open() as store:
        store.init_schema()
        click.echo(f"initialised {store.describe()}")


def _progress_writer(total: int, quiet: bool, label: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="run", disable=quiet or None, file=sys.stderr)


def _summary(results: list, seconds: float, where: str) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    rels = sum(r.relationships for r in results)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{len(results)} runs ({parts}); {rels} relationships in {seconds:.1f}s to {where}"


@main.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--replace", is_flag=True, help="Rewrite runs that are already complete.")
@click.option("--batch-relationships", type=int, default=None,
              help="Relationships per bulk write (default: 4M embedded, 250k Neo4j); smaller shows "
              "progress sooner.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@store_options
def load(artifacts: tuple[str, ...], replace: bool, batch_relationships: int | None, quiet: bool,
         opts: StoreOptions) -> None:
    """Write saved circuit artifacts to the knowledge base: artifact folders (from `neurflow-kb circuit
    --out`) or folders holding them, such as the --artifacts folder of `ingest --no-load` shards. Runs
    already complete are skipped, so loading again changes nothing."""
    from ..artifact import Circuit
    from ..pipeline.loader import find_artifacts

    paths = find_artifacts(artifacts)
    for p in paths:   # every artifact passes the schema before anything is written (read again below)
        Circuit.load(p)
    t0 = time.perf_counter()
    with opts.open() as store:
        if batch_relationships:
            store.batch_relationships = batch_relationships
        bar = _progress_writer(len(paths), quiet, "load")

        def done(r: WriteResult) -> None:
            bar.update(1)
            click.echo(f"{r.status} {r.key}")

        results = store.write_circuits((Circuit.load(p) for p in paths), replace=replace, progress=done)
        bar.close()
        click.echo(_summary(results, time.perf_counter() - t0, store.describe()))


# -- query -----------------------------------------------------------------------------------------

@main.group()
def query() -> None:
    """Named queries over the knowledge base (tables; --json or --csv for machines)."""


#: Most a --limit may ask for (Neo4j and Ladybug take 64-bit limits; no knowledge base is near this).
MAX_LIMIT = 2**31 - 1
LIMIT = click.IntRange(0, MAX_LIMIT)


def _class_arg(text: str) -> int | str:
    from ..queries import class_index

    index = class_index(text)
    return text if index is None else index


@query.command("drivers")
@click.argument("cls", metavar="CLASS")
@click.option("--model", default=None, help="Model name or key (default: every model).")
@click.option("--layer", default=None, help="Only groups of this layer.")
@click.option("--limit", default=20, show_default=True, type=LIMIT)
@output_options
@store_options
def q_drivers(cls: str, model: str | None, layer: str | None, limit: int, fmt: str | None,
              opts: StoreOptions) -> None:
    """Groups driving CLASS (index or name), ranked by their share of it.

    share = the part of the class's attribution that flows through the group (abs_share unsigned; the
    groups of a layer sum to 100%); influence = the paper's summed path weight, kept beside it."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.drivers(store, _class_arg(cls), model=model, layer=layer, limit=limit), fmt)


@query.command("circuit")
@click.argument("cls", metavar="CLASS")
@click.option("--model", default=None, help="Model name or key.")
@click.option("--min-weight", default=0.0, show_default=True, type=float,
              help="Keep edges with |weight| >= this.")
@click.option("--min-share", default=0.0, show_default=True, type=float,
              help="Keep edges passing at least this part of the class's share down (0.05 = 5%).")
@output_options
@store_options
def q_circuit(cls: str, model: str | None, min_weight: float, min_share: float, fmt: str | None,
              opts: StoreOptions) -> None:
    """The group circuit of CLASS: DRIVES edges between its groups and up to the class, each with the
    share of the class it passes down (the edges between two layers sum to 100%)."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.circuit(store, _class_arg(cls), model=model, min_weight=min_weight,
                             min_share=min_share), fmt)


@query.command("group")
@click.argument("key")
@output_options
@store_options
def q_group(key: str, fmt: str | None, opts: StoreOptions) -> None:
    """One group (KEY = MODEL/CLASS/LAYER/INDEX such as world/bee/layer3/0, or RUN/LAYER/INDEX): summary,
    members, labels, upstream and downstream groups."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.group(store, key).frames(), fmt)


@query.command("concept")
@click.argument("text")
@click.option("--model", default=None, help="Model name or key.")
@output_options
@store_options
def q_concept(text: str, model: str | None, fmt: str | None, opts: StoreOptions) -> None:
    """Groups labelled with the concept TEXT."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.concept(store, text, model=model), fmt)


@query.command("search")
@click.argument("text")
@click.option("--model", default=None, help="Model name or key (default: every model).")
@click.option("--limit", default=10, show_default=True, type=LIMIT)
@click.option("--device", default="cpu", show_default=True, help="Device for CLIP.")
@clip_model_options
@output_options
@store_options
def q_search(text: str, model: str | None, limit: int, device: str, clip_model: str | None,
             clip_pretrained: str | None, clip_checkpoint: str | None, templates: tuple[str, ...],
             fmt: str | None, opts: StoreOptions) -> None:
    """Groups that look like TEXT (CLIP text vs group image embeddings), with the class each one drives.

    Without --clip-* options it loads the CLIP the groups were labelled with, as the knowledge base
    records it (its weights checked against the recorded digest)."""
    from .. import queries

    templates = check_templates(templates)
    if not opts.neo4j_uri and not os.environ.get("NEO4J_URI"):
        from ..store import DEFAULT_STORE

        path = Path(opts.store_path or DEFAULT_STORE)
        if not path.exists():
            raise UserError(f"{path} does not exist; create the knowledge base with `neurflow-kb ingest` or "
                            "`neurflow-kb load` first, or pass --store / --neo4j")
    with opts.open(read_only=True) as store:
        clip = store_clip_encoder(store, clip_model, clip_pretrained, clip_checkpoint, device, model,
                                  required=True)
        df = queries.search(store, text, clip, model=model, limit=limit, templates=templates)
    if fmt is None and len(df):
        df = df.assign(labels=[", ".join(v) for v in df["labels"]])
    emit(df, fmt)


@query.command("images")
@click.argument("key")
@output_options
@store_options
def q_images(key: str, fmt: str | None, opts: StoreOptions) -> None:
    """Images that route through group KEY (MODEL/CLASS/LAYER/INDEX or RUN/LAYER/INDEX; saved by
    `neurflow-kb debug --save`), strongest first."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.images(store, key), fmt)


@query.command("shared")
@click.argument("cls_a", metavar="CLASS_A")
@click.argument("cls_b", metavar="CLASS_B")
@click.option("--model", default=None, help="Model name or key.")
@click.option("--by", type=click.Choice(["neuron", "pair", "layer", "concepts"]), default="neuron",
              show_default=True, help="One row per shared neuron, per pair of groups, or per layer: the "
              "parts of the similarity by neurons (layer) or by concepts (concepts).")
@click.option("--encoder", default=None, help="--by concepts: the CLIP encoder whose labels count (default: "
              "the one both runs are labelled with).")
@click.option("--ranks", default=5, show_default=True, type=int,
              help="--by concepts: labels of each group that count, best first.")
@output_options
@store_options
def q_shared(cls_a: str, cls_b: str, model: str | None, by: str, encoder: str | None, ranks: int,
             fmt: str | None, opts: StoreOptions) -> None:
    """Neurons and group pairs that the circuits of CLASS_A and CLASS_B share, and their circuit
    similarity: the share both route through the same neurons (or, --by concepts, rest on the same
    concepts), per layer and averaged over layers."""
    from .. import queries

    a, b = _class_arg(cls_a), _class_arg(cls_b)
    kind = "concepts" if by == "concepts" else "neurons"
    with opts.open(read_only=True) as store:
        parts = queries.similarity(store, a, b, model=model, by=kind, encoder=encoder, ranks=ranks)
        df = parts if by in ("layer", "concepts") else queries.shared(store, a, b, model=model, by=by)
    if fmt is None and by != "layer":
        what = ("rests on the same concepts" if kind == "concepts" else "runs through the same neurons")
        for _, block in parts.groupby(["run_a", "run_b"], sort=False):
            layers = block[block["layer"] != "(mean)"]
            mean = float(block.loc[block["layer"] == "(mean)", "overlap"].iloc[0])
            detail = ", ".join(f"{r.layer} {100 * r.overlap:.1f}%" for r in layers.itertuples(index=False))
            click.echo(f"circuit similarity {cls_a} ~ {cls_b} ({block['model'].iloc[0]}): {100 * mean:.1f}% "
                       f"of the class's share {what} (mean of {detail})")
    emit(df, fmt)


@query.command("similar")
@click.argument("cls", metavar="CLASS")
@click.option("--model", default=None, help="Model name or key (default: every model with CLASS).")
@click.option("--top", default=10, show_default=True, type=int, help="Most similar classes to list.")
@click.option("--by", type=click.Choice(["neurons", "concepts"]), default="neurons", show_default=True,
              help="Compare the neurons the circuits route their share through, or the concepts (CLIP "
              "labels) that carry it (needs labels).")
@click.option("--encoder", default=None, help="--by concepts: the CLIP encoder whose labels count (default: "
              "the one CLASS's run is labelled with).")
@click.option("--ranks", default=5, show_default=True, type=int,
              help="--by concepts: labels of each group that count, best first.")
@output_options
@store_options
def q_similar(cls: str, model: str | None, top: int, by: str, encoder: str | None, ranks: int,
              fmt: str | None, opts: StoreOptions) -> None:
    """Classes whose circuits route the most share through the same neurons as CLASS does (--by
    concepts: whose circuits rest on the same concepts).

    similarity = mean over layers of the share both classes route through the same neurons (or carry by
    the same concepts); one column per layer gives that layer's part (docs/decisions.md)."""
    from .. import queries

    with opts.open(read_only=True) as store:
        df = queries.similar(store, _class_arg(cls), model=model, top=top, by=by, encoder=encoder,
                             ranks=ranks)
    fixed = ("of_run", "model", "class", "class_name", "run", "similarity")
    emit(df, fmt, percent_columns=tuple(c for c in df.columns if c not in fixed))


@query.command("compare")
@click.argument("cls", metavar="CLASS")
@click.option("--models", required=True, metavar="A,B", help="Two models with a circuit of CLASS.")
@click.option("--encoder", default=None, help="CLIP encoder whose labels count (default: the one both "
              "runs are labelled with).")
@click.option("--min-share", default=0.0, show_default=True, type=float,
              help="A concept counts as used when its share of the run exceeds this (0.02 = 2%).")
@click.option("--ranks", default=5, show_default=True, type=int,
              help="Labels of each group that count, best first (1 = only its best label).")
@output_options
@store_options
def q_compare(cls: str, models: str, encoder: str | None, min_share: float, ranks: int, fmt: str | None,
              opts: StoreOptions) -> None:
    """What two models use for CLASS: concepts (the labels of their groups) used by both, by A only and
    by B only, and groups paired across the models by CLIP embedding cosine (RESEMBLES).

    share = the part of the model's evidence for the class carried by the concept (each group's share
    split among its labels by score); depth = relative depth, 0 = the input side, 1 = the class."""
    from .. import queries

    with opts.open(read_only=True) as store:
        out = queries.compare(store, _class_arg(cls), models.split(","), encoder=encoder, min_share=min_share,
                              ranks=ranks)
    if fmt is None:
        for r in out["runs"].to_dict("records"):
            click.echo(f"{r['side']} = {r['model']} (run {r['run']}), class {r['class']} '{r['class_name']}'")
        click.echo("share = the part of the model's evidence for the class carried by the concept (each "
                   "group's share split among its labels by score, averaged over layers; a model's concepts "
                   "add up to 100%); depth = relative depth, 0 = input side, 1 = the class\n")
        out = {k: out[k].round({"depth_a": 2, "depth_b": 2, "cosine": 3}) for k in ("concepts", "groups")}
    emit(out, fmt)


@query.command("path")
@click.argument("key")
@output_options
@store_options
def q_path(key: str, fmt: str | None, opts: StoreOptions) -> None:
    """Strongest path from group KEY (MODEL/CLASS/LAYER/INDEX or RUN/LAYER/INDEX) up to its class."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.path(store, key), fmt)


@query.command("models")
@output_options
@store_options
def q_models(fmt: str | None, opts: StoreOptions) -> None:
    """Models in the knowledge base."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.models(store), fmt)


@query.command("classes")
@click.option("--model", default=None, help="Model name or key.")
@output_options
@store_options
def q_classes(model: str | None, fmt: str | None, opts: StoreOptions) -> None:
    """Classes that have a complete run."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.classes(store, model=model), fmt)


@query.command("runs")
@click.option("--model", default=None, help="Model name or key.")
@click.option("--class", "cls", default=None, help="Class index or name.")
@output_options
@store_options
def q_runs(model: str | None, cls: str | None, fmt: str | None, opts: StoreOptions) -> None:
    """Complete runs (one per computed class circuit)."""
    from .. import queries

    with opts.open(read_only=True) as store:
        emit(queries.runs(store, model=model, cls=None if cls is None else _class_arg(cls)), fmt)


# -- raw Cypher ------------------------------------------------------------------------------------

def parse_param(text: str) -> tuple[str, Any]:
    """`k=v` -> (k, value): v is read as JSON (numbers, lists, true/false/null, "quoted") or else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise UserError(f"--param {text!r} is not NAME=VALUE (e.g. --param cls=309 --param name='\"bee\"')")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


@main.command()
@click.argument("cypher_text", metavar="QUERY")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Query parameter $NAME (JSON value, else a string); repeatable.")
@click.option("--write", is_flag=True,
              help="Run with full rights: writes, schema and administration commands, procedures, files "
              "(see docs/security.md).")
@output_options
@store_options
def cypher(cypher_text: str, params: tuple[str, ...], write: bool, fmt: str | None,
           opts: StoreOptions) -> None:
    """Run raw Cypher with parameters; read-only unless --write.

    Read-only is enforced by the database (a READ transaction on Neo4j, a read-only handle on the
    embedded file), and queries that would reach outside the knowledge base (files, administration
    commands, procedures, table functions) are refused the same way for --neo4j URI and NEO4J_URI;
    docs/security.md lists what --write allows."""
    values = dict(parse_param(p) for p in params)
    with opts.open(read_only=not write) as store:
        emit(store.run_query(cypher_text, values, write=write), fmt)


# -- push ------------------------------------------------------------------------------------------

@main.command()
@click.option("--to", "target", required=True, metavar="URI_OR_FILE",
              help="Destination: a Neo4j URI (neo4j://, bolt://, neo4j+s:// ...) or an embedded .lbug file.")
@click.option("--to-user", default=None, help="Destination Neo4j user (default: --user / NEO4J_USER).")
@click.option("--to-password", default=None, help="Destination Neo4j password (default: NEO4J_PASSWORD).")
@click.option("--to-database", default=None, help="Destination Neo4j database (default: NEO4J_DATABASE).")
@click.option("--replace", is_flag=True, help="Rewrite runs the destination already has.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@store_options
def push(target: str, to_user: str | None, to_password: str | None, to_database: str | None,
         replace: bool, quiet: bool, opts: StoreOptions) -> None:
    """Copy the whole knowledge base to another store (e.g. the embedded file to Neo4j or Aura for Bloom);
    running it again changes nothing.

    The source is --store (default ./neurflow-kb.lbug) or --neo4j URI; NEO4J_URI does not choose the
    source here (it usually names the destination)."""
    from ..store import DEFAULT_STORE, LadybugStore, Neo4jStore, is_neo4j_uri, open_store

    t0 = time.perf_counter()
    if is_neo4j_uri(target):
        dst: Any = Neo4jStore(target, user=to_user or opts.user, password=to_password, database=to_database)
        if opts.neo4j_uri and _same_neo4j(opts.neo4j_uri, opts.database, dst):
            raise UserError("--to names the source knowledge base itself; pick another destination")
    else:
        if not opts.neo4j_uri and Path(opts.store_path or DEFAULT_STORE).resolve() == Path(target).resolve():
            raise UserError("--to names the source knowledge base itself; pick another destination")
        dst = LadybugStore(target)
    source = open_store(None if opts.neo4j_uri else (opts.store_path or DEFAULT_STORE), opts.neo4j_uri,
                        user=opts.user, password=opts.password, database=opts.database, read_only=True)
    with source as src, dst.open():
        bar = _progress_writer(len(src.run_keys()), quiet, "push")
        results = dst.import_(src.export(), replace=replace, progress=lambda r: bar.update(1))
        bar.close()
        click.echo(_summary(results, time.perf_counter() - t0, dst.describe()))


def _same_neo4j(uri: str, database: str | None, dst: Any) -> bool:
    """Whether `uri` / `database` name the same server and database as the store `dst`."""
    from urllib.parse import urlsplit

    from ..store import Neo4jStore

    src = Neo4jStore(uri, database=database)

    def where(st: Any) -> tuple[str, int, str]:
        parts = urlsplit(st.uri)
        return ((parts.hostname or "").lower(), parts.port or 7687, st.database or "neo4j")

    return where(src) == where(dst)


# -- ingest ----------------------------------------------------------------------------------------

@main.command()
@click.argument("recipe")
@click.option("--classes", required=True,
              help="Class indices, ranges and names, e.g. '309,340-345,tiger cat'.")
@click.option("--images", default=None,
              help="Image folder, ImageNet-val folder, file list or file:// URI (default: the recipe's "
              "[data] images).")
@click.option("--artifacts", default="neurflow-kb-artifacts", show_default=True,
              help="Folder where each class circuit (and the prediction cache) is saved and reused.")
@click.option("--replace", is_flag=True, help="Recompute circuits and rewrite their runs.")
@click.option("--label", "do_label", is_flag=True,
              help="Label every group with CLIP concepts (see the --clip-* and --vocabulary options).")
@click.option("--skip-bad-images", is_flag=True,
              help="Leave out unreadable image files (listed in each circuit's manifest) instead of "
              "stopping.")
@click.option("--workers", type=int, default=None,
              help="With --ray: Ray workers, each holding the model (default: as many as the cluster's GPUs, "
              "or CPUs, fit). Without --ray: processes decoding images in the prediction pass.")
@click.option("--decode-workers", type=int, default=None,
              help="Processes decoding images in the prediction pass (default: CPU cores - 1; 0: none).")
@click.option("--ray", "ray_address", default=None, metavar="local|auto|ADDRESS",
              help="Compute classes on Ray workers: 'local' (a private Ray on this machine), 'auto' (the "
              "running cluster) or a cluster address; this process loads finished circuits in batches. "
              "Needs pip install 'neurflow-kb[cluster]'.")
@click.option("--gpus-per-worker", type=float, default=None,
              help="GPUs per Ray worker (default: 1 with --device cuda, else 0; 0.5 shares a GPU).")
@click.option("--cpus-per-worker", type=float, default=1.0, show_default=True, help="CPUs per Ray worker.")
@click.option("--max-retries", type=int, default=3, show_default=True,
              help="Restarts of a dead Ray worker and retries of the class it was computing.")
@click.option("--shard", default=None, metavar="I/N",
              help="Only the I-th of N slices of the classes (round-robin over the sorted classes), for "
              "Slurm arrays and Kubernetes indexed jobs; shards share the prediction pass through "
              "--artifacts.")
@click.option("--no-load", is_flag=True,
              help="Only save artifacts; load them later with `neurflow-kb load ARTIFACTS`.")
@click.option("--plan-only", is_flag=True,
              help="Run the prediction pass and print each class's plan (images, run key, reuse); compute "
              "nothing.")
@engine_options
@clip_options
@label_method_options
@store_options
@click.pass_context
def ingest(ctx: click.Context, recipe: str, classes: str, images: str | None, artifacts: str,
           replace: bool, do_label: bool, skip_bad_images: bool, workers: int | None,
           decode_workers: int | None, ray_address: str | None, gpus_per_worker: float | None,
           cpus_per_worker: float, max_retries: int, shard: str | None, no_load: bool, plan_only: bool,
           opts: StoreOptions, clip_model: str | None, clip_pretrained: str | None,
           clip_checkpoint: str | None,
           vocabulary: str, top_n: int, templates: tuple[str, ...], label_method: Any, **kw: Any) -> None:
    """Compute class circuits of a model (a recipe from ingest/ or a built-in model name) and write them
    to the knowledge base; circuits already saved under --artifacts are reused. One prediction pass over
    the images (cached) selects each class's images; --max-images caps the images per class. Classes
    without images, and classes whose computation failed, are reported at the end (exit code 3). With
    --label, groups get CLIP concept labels and embeddings (for `query search`) before they are written.
    --ray spreads the classes over Ray workers, --shard I/N over independent jobs (see docs/scaling.md)."""
    from ..pipeline import LabelSpec, load_recipe, plan_ingest
    from ..pipeline import ingest as run_ingest
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if shard is not None and ray_address is not None:
        raise UserError("--shard splits the classes over separate jobs and --ray over one Ray cluster; use "
                        "one of them")
    ray_opts = _ray_options(ray_address, given, workers, gpus_per_worker, cpus_per_worker, max_retries)
    decode = decode_workers if decode_workers is not None else (None if ray_opts else workers)
    if decode is not None and decode < 0:
        raise UserError(f"--{'decode-' if decode_workers is not None else ''}workers must be >= 0 "
                        f"(got {decode})")
    rec = load_recipe(recipe)
    if "weights" in given:
        rec.weights = kw["weights"]
    if "layers" in given:
        rec.layers = parse_layers(kw["layers"])
    # an option given on the command line wins over the recipe's [neurflow] table, which wins over defaults
    overrides = {field: kw[field] for field in ENGINE_FIELDS if field in given or field not in rec.neurflow}
    config = rec.config(**overrides)
    max_images = kw["max_images"] if "max_images" in given else None
    quiet = kw["quiet"]
    from tqdm.auto import tqdm

    def report(r: Any) -> None:
        tqdm.write(r.line(), file=sys.stdout)

    if plan_only:
        plan = plan_ingest(rec, classes, images, config=config, artifacts=artifacts, max_images=max_images,
                           replace=replace, skip_bad_images=skip_bad_images, workers=decode,
                           progress=not quiet, shard=shard)
        _print_plan(plan)
        return
    labels = None
    if do_label:
        from ..labels import load_vocabulary

        templates = check_templates(templates)
        labels = LabelSpec(open_clip_encoder(clip_model, clip_pretrained, clip_checkpoint, kw["device"]),
                           load_vocabulary(vocabulary), top_n=top_n, templates=templates,
                           method=label_method)
    with contextlib.nullcontext(None) if no_load else opts.open() as store:
        result = run_ingest(rec, classes, images, store, config, artifacts=artifacts, max_images=max_images,
                            replace=replace, labels=labels, skip_bad_images=skip_bad_images, workers=decode,
                            progress=not quiet, on_class=report, ray=ray_opts, shard=shard)
        done = [r for r in result.classes if r.status not in ("no_images", "failed")]
        where = store.describe() if store is not None else \
            f"artifacts only (load them with `neurflow-kb load {artifacts}`)"
        click.echo(_summary(done, result.seconds, where) if done else f"no class written to {where}")
    _print_run(result.run)
    click.echo(f"prediction pass: {result.predicted} of {result.images} images predicted now "
               f"({result.images - result.predicted - len(result.bad_images)} from the cache) in "
               f"{result.prediction_seconds:.1f}s" + (f"; {len(result.bad_images)} unreadable files skipped"
                                                       if result.bad_images else ""))
    if done and not no_load:
        click.echo(f"model {result.model}: try `neurflow-kb query drivers {done[0].cls} "
                   f"--model {result.model.split('@')[0]}`")
    if result.skipped:
        shown = ", ".join(f"{r.cls} ({r.name})" for r in result.skipped[:10])
        more = f" and {len(result.skipped) - 10} more" if len(result.skipped) > 10 else ""
        click.echo(f"Warning: {len(result.skipped)} classes skipped, no images selected: {shown}{more}; "
                   f"give images of those classes or another --filter", err=True)
    if result.failed:
        shown = ", ".join(f"{r.cls} ({r.name})" for r in result.failed[:10])
        more = f" and {len(result.failed) - 10} more" if len(result.failed) > 10 else ""
        click.echo(f"Warning: {len(result.failed)} classes failed: {shown}{more}; see their lines above, fix "
                   "the cause and run the same command again (finished classes are reused)", err=True)
    if result.skipped or result.failed:
        sys.exit(3)


def _ray_options(address: str | None, given: set[str], workers: int | None, gpus: float | None,
                 cpus: float, retries: int) -> Any:
    """`RayOptions` from the command line (Ray's presence checked first), or None without --ray."""
    if address is None:
        ray_only = sorted(given & {"gpus_per_worker", "cpus_per_worker", "max_retries"})
        if ray_only:
            raise UserError(f"--{ray_only[0].replace('_', '-')} only applies with --ray")
        return None
    from ..cluster import RayOptions
    from ..pipeline import ray_options

    return ray_options(RayOptions(address=address, workers=workers, gpus_per_worker=gpus,
                                  cpus_per_worker=cpus, max_retries=retries))


def _print_plan(plan: Any) -> None:
    """`ingest --plan-only`: one line per class, then what an ingest would do."""
    for job in plan.jobs:
        click.echo(f"planned class {job.cls} ({job.name}): run {job.key}, {len(job.positions)} images"
                   f"{' (saved circuit reused)' if job.reuse else ''}")
    for r in plan.missing:
        click.echo(r.line())
    reused = sum(j.reuse for j in plan.jobs)
    preds = plan.predictions
    click.echo(f"plan: {len(plan.jobs) - reused} classes to compute, {reused} reused, {len(plan.missing)} "
               f"without images; prediction pass: {preds.forwarded} of {len(preds)} images predicted now, "
               f"cached in {preds.cache_file}")


def _print_run(run: dict[str, Any]) -> None:
    """How the classes were computed (Ray workers, start-up) and the loader's rate."""
    parts = []
    if run.get("mode") == "ray":
        if run.get("workers"):
            parts.append(f"Ray at {run['address']}: {run['workers']} workers, started in "
                         f"{run.get('startup_seconds', 0.0):.1f}s + {run.get('ready_seconds', 0.0):.1f}s "
                         f"for the models, {run.get('replaced_workers', 0)} replaced")
        else:
            parts.append("Ray not started: every class was reused")
    if run.get("loader_classes"):
        rate = run["loader_classes"] / run["loader_seconds"] if run.get("loader_seconds") else 0.0
        parts.append(f"loader: {run['loader_classes']} classes in {run['loader_seconds']:.1f}s of reading "
                     f"and writing ({rate:.2f} classes/s, {run['loader_batches']} batches)")
    if parts:
        click.echo("; ".join(parts))
