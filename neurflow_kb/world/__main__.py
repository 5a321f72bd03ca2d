"""``python -m neurflow_kb.world write DIR``: world images as files in an ImageNet-val-like folder layout
(class-index or WordNet-id subfolders, or flat with LOC_val_solution.csv), for the CLI."""

from __future__ import annotations

import argparse
import sys

from .generator import CLASS_NAMES, LAYOUTS, generate


def main(argv: list[str] | None = None) -> int:
    """Write `--per-class` images of every class (or of `--classes`) under DIR/<class index>/."""
    p = argparse.ArgumentParser(prog="python -m neurflow_kb.world", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="write world images (PNG) in class-index subfolders")
    w.add_argument("folder")
    w.add_argument("--per-class", type=int, default=20)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--classes", default=None, help="comma-separated class indices or names (default: all)")
    w.add_argument("--layout", choices=LAYOUTS, default="index",
                   help="class-index subfolders, WordNet-id subfolders, or flat + LOC_val_solution.csv")
    w.add_argument("--format", dest="image_format", choices=("png", "jpg"), default="png")
    w.add_argument("--size", type=int, default=None, help="upsample the 64 px images to this size")
    args = p.parse_args(argv)
    classes = [int(c) if c.isdigit() else c for c in args.classes.split(",")] if args.classes else None
    k = len(classes) if classes else len(CLASS_NAMES)
    root = generate(args.per_class * k, seed=args.seed, classes=classes).save(
        args.folder, layout=args.layout, image_format=args.image_format, size=args.size)
    print(f"wrote {args.per_class * k} images to {root} ({args.layout} layout) and {root}/concepts.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
