"""``python -m neurflow_kb.world write DIR``: world images as PNG files in class folders, for the CLI."""

from __future__ import annotations

import argparse
import sys

from .generator import CLASS_NAMES, generate


def main(argv: list[str] | None = None) -> int:
    """Write `--per-class` images of every class (or of `--classes`) under DIR/<class index>/."""
    p = argparse.ArgumentParser(prog="python -m neurflow_kb.world", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write world images (PNG) in class-index subfolders")
    w.add_argument("folder")
    w.add_argument("--per-class", type=int, default=20)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--classes", default=None, help="comma-separated class indices or names (default: all)")
    args = p.parse_args(argv)
    classes = [int(c) if c.isdigit() else c for c in args.classes.split(",")] if args.classes else None
    k = len(classes) if classes else len(CLASS_NAMES)
    root = generate(args.per_class * k, seed=args.seed, classes=classes).save(args.folder)
    print(f"wrote {args.per_class * k} images to {root}/<class index>/ and {root}/concepts.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
