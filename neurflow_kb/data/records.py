"""Image records: what a folder, an ImageNet-val layout, a list file, a list of paths or a file:// URI
holds, as (file, label) pairs, without decoding a pixel.

Records are the input of the streamed prediction pass (`neurflow_kb.data.stream`) and of per-class
selection; scanning 50,000 files only lists and stats them.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""File name endings read as images (compared case-insensitively)."""

UNKNOWN_LABEL = -1
_WNID = re.compile(r"^n\d{8}$")
_GENERIC_LABELS_FILE = "labels.txt"
_LOC_SOLUTION_FILE = "LOC_val_solution.csv"
_ILSVRC_GT_FILE = "ILSVRC2012_validation_ground_truth.txt"

@dataclass(frozen=True)
class ImageRecords:
    """Image files with their labels (-1 = unknown), in a fixed order, not decoded.

    ``root`` is the folder relative paths are taken from (the scanned folder, a list file's folder, or the
    common folder of a list of paths); ``label_note`` says where the labels came from or why unknown.
    """

    files: tuple[Path, ...]
    labels: np.ndarray
    root: Path
    label_note: str = ""

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != len(self.files):
            raise UserError(f"{len(self.files)} image files but {labels.shape[0]} labels; give one per file")
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def has_labels(self) -> bool:
        """True when at least one file has a known label."""
        return bool((self.labels >= 0).any())

    def relpath(self, i: int) -> str:
        """Path of file `i` relative to `root` (POSIX separators): its name in fingerprints."""
        try:
            return self.files[i].relative_to(self.root).as_posix()
        except ValueError:
            return self.files[i].as_posix()

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageRecords:
        """The records at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return ImageRecords(tuple(self.files[i] for i in idx.tolist()), self.labels[idx], self.root,
                            self.label_note)

    def with_labels(self, labels: Any, note: str = "labels given by the caller") -> ImageRecords:
        """The same files with `labels` (one per file, integers)."""
        arr = np.asarray(labels)
        if arr.dtype.kind not in "iu":
            raise UserError(f"labels must be integers (got dtype {arr.dtype})")
        if arr.reshape(-1).shape[0] != len(self):
            raise UserError(f"got {arr.reshape(-1).shape[0]} labels for {len(self)} images; give one label "
                            "per image")
        return ImageRecords(self.files, arr.astype(np.int64), self.root, note)


def scan_images(spec: str | Path | Sequence[str | Path], class_names: Sequence[str] | None = None
                ) -> ImageRecords:
    """Records of a folder (flat, class subfolders, ImageNet-val), an image file, a text file of paths,
    a ``file://`` URI or a list of paths; nothing is decoded.

    Folder layouts, files sorted by relative path:

    - flat folder of images: labels from ``labels.txt`` ("filename index" per line) or from an ImageNet
      ``LOC_val_solution.csv`` (first wnid of each row) when present, else unknown (-1);
    - class subfolders (ImageFolder / ImageNet-val-by-class): a subfolder named by a class index ("285")
      or by an entry of ``class_names`` gives that class. Subfolders named by ImageNet WordNet ids
      (n01440764, ...) map to the ImageNet index through timm's synset list when timm is installed, and
      otherwise by sorted order when all 1000 wnids are present (sorted wnid order is the ImageNet class
      order); anything else leaves the labels unknown (the reason is kept in ``label_note``).

    ``ILSVRC2012_validation_ground_truth.txt`` is not used: its 1-based ILSVRC ids need the devkit's
    meta.mat to become class indices. Use ``LOC_val_solution.csv`` or ``labels.txt`` instead.
    """
    if isinstance(spec, str) and "://" in spec:
        spec = _from_uri(spec)
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        if path.is_dir():
            files, found, note = _scan_folder(path, class_names)
            return ImageRecords(tuple(files), np.asarray(found, dtype=np.int64), path, note)
        if path.is_file():
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                return ImageRecords((path,), np.array([UNKNOWN_LABEL]), path.parent,
                                    "labels unknown (single image file)")
            files, found, note = _read_list_file(path)
            return ImageRecords(tuple(files), np.asarray(found, dtype=np.int64), path.parent, note)
        raise UserError(f"image folder or file {path} does not exist; check the path")
    if isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        if len(spec) == 0:
            raise UserError("the list of image paths is empty; give at least one image file")
        files = []
        for item in spec:
            if not isinstance(item, (str, Path)):
                raise UserError(f"image list entries must be file paths (got {type(item).__name__})")
            p = Path(_from_uri(item) if isinstance(item, str) and "://" in item else item).expanduser()
            if not p.is_file():
                raise UserError(f"image file {p} does not exist; check the path")
            files.append(p)
        root = Path(os.path.commonpath([str(f.resolve().parent) for f in files]))
        return ImageRecords(tuple(files), np.full(len(files), UNKNOWN_LABEL, dtype=np.int64), root,
                            "labels unknown (list of paths)")
    raise UserError(f"cannot read images from a {type(spec).__name__}; give a folder, a text file of image "
                    "paths, a file:// URI or a list of paths")


def _from_uri(uri: str) -> Path:
    """A ``file://`` URI as a local path; other schemes are refused (nothing is downloaded)."""
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        raise UserError(f"cannot read images from {parts.scheme}:// URIs; give a local folder, file or "
                        "file:// URI (download the images first)")
    if parts.netloc not in ("", "localhost"):
        raise UserError(f"file URI {uri!r} names host {parts.netloc!r}; only local files (file:///path) "
                        "are read")
    return Path(unquote(parts.path))

def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name (one `scandir`, no per-file stat call)."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if _is_image_name(e.name) and e.is_file()]
    return [folder / n for n in sorted(names)]


def _scan_folder(folder: Path, class_names: Sequence[str] | None) -> tuple[list[Path], list[int], str]:
    top = _image_files(folder)
    subdirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: d.name)
    classes = [(d, _image_files(d)) for d in subdirs]
    classes = [(d, fs) for d, fs in classes if fs]
    if top and classes:
        raise UserError(
            f"folder {folder} mixes images with class subfolders ({classes[0][0].name}/, ...); "
            "move the loose images into a subfolder or point at one layout"
        )
    if top:
        found, note = _flat_folder_labels(folder, top)
        return top, found, note
    if not classes:
        raise UserError(
            f"folder {folder} has no images (looked for {', '.join(IMAGE_EXTENSIONS)} files in it and in "
            "its subfolders); point at a folder of images"
        )
    mapping, note = _class_folder_labels([d.name for d, _ in classes], class_names)
    classes.sort(key=lambda c: (mapping[c[0].name] if mapping[c[0].name] >= 0 else 1 << 40, c[0].name))
    files = [f for _, fs in classes for f in fs]
    found = [mapping[d.name] for d, fs in classes for _ in fs]
    return files, found, note


def _norm_name(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def _class_folder_labels(names: list[str], class_names: Sequence[str] | None) -> tuple[dict[str, int], str]:
    by_name: dict[str, list[int]] = {}
    for i, cn in enumerate(class_names or []):
        by_name.setdefault(_norm_name(str(cn)), []).append(i)
    mapping: dict[str, int] = {}
    unresolved: list[str] = []
    for name in names:
        if name.isdigit():
            mapping[name] = int(name)
        elif len(by_name.get(_norm_name(name), [])) == 1:
            mapping[name] = by_name[_norm_name(name)][0]
        else:
            mapping[name] = UNKNOWN_LABEL
            unresolved.append(name)
    if not unresolved:
        return mapping, "labels from class subfolder names"
    if all(_WNID.match(n) for n in names):
        wnid_map, how = _wnid_indices(names)
        if wnid_map is not None:
            return {n: wnid_map[n] for n in names}, f"labels from WordNet-id subfolders ({how})"
        return ({n: UNKNOWN_LABEL for n in names},
                f"labels unknown: {len(names)} WordNet-id subfolders but not all 1000 ImageNet classes and "
                "timm (which lists every ImageNet wnid) is not installed; name the folders by class index")
    shown = ", ".join(repr(n) for n in unresolved[:3]) + (", ..." if len(unresolved) > 3 else "")
    return mapping, (f"labels unknown for subfolders {shown}: not class indices, not (unique) class names; "
                     "rename them to class indices")


def _wnid_indices(wnids: Sequence[str]) -> tuple[dict[str, int] | None, str]:
    """Map ImageNet WordNet ids to class indices: timm's list if available, else sorted order of all 1000."""
    unique = sorted(set(wnids))
    try:
        from timm.data import ImageNetInfo

        known = {w: i for i, w in enumerate(ImageNetInfo().label_names())}
        if all(w in known for w in unique):
            return {w: known[w] for w in unique}, "ImageNet order from timm's synset list"
    except Exception:  # timm missing or its data layout changed: fall back below
        pass
    if len(unique) == 1000:
        return {w: i for i, w in enumerate(unique)}, "sorted wnid order, all 1000 classes present"
    return None, ""


def _flat_folder_labels(folder: Path, files: list[Path]) -> tuple[list[int], str]:
    generic = folder / _GENERIC_LABELS_FILE
    if generic.is_file():
        table = _read_labels_txt(generic)
        found = [table.get(f.name, table.get(f.stem, UNKNOWN_LABEL)) for f in files]
        return found, f"labels from {generic.name}"
    loc = folder / _LOC_SOLUTION_FILE
    if loc.is_file():
        rows = _read_loc_solution(loc)
        wnid_map, how = _wnid_indices(list(rows.values()))
        if wnid_map is None:
            return ([UNKNOWN_LABEL] * len(files),
                    f"labels unknown: {loc.name} names fewer than 1000 wnids and timm is not installed "
                    "to map them; add a labels.txt ('filename index' per line)")
        found = [wnid_map[rows[f.stem]] if f.stem in rows else UNKNOWN_LABEL for f in files]
        return found, f"labels from {loc.name} ({how})"
    if (folder / _ILSVRC_GT_FILE).is_file():
        return ([UNKNOWN_LABEL] * len(files),
                f"labels unknown: {_ILSVRC_GT_FILE} holds 1-based ILSVRC ids that need the devkit's "
                f"meta.mat; put {_LOC_SOLUTION_FILE} or a labels.txt ('filename index' per line) in {folder}")
    return [UNKNOWN_LABEL] * len(files), "labels unknown (flat folder without a labels file)"


def _read_labels_txt(path: Path) -> dict[str, int]:
    table: dict[str, int] = {}
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").replace("\t", " ").rsplit(maxsplit=1)
        if len(parts) != 2 or not _is_int(parts[1]):
            raise UserError(f"{path} line {lineno} is not '<filename> <class index>': {line[:80]!r}; "
                            "fix the line")
        table[Path(parts[0].strip()).name] = int(parts[1])
    return table


def _read_loc_solution(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    with path.open(newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            if not row or (lineno == 1 and row[0].strip() == "ImageId"):
                continue
            pred = row[1].split() if len(row) > 1 else []
            if not pred or not _WNID.match(pred[0]):
                raise UserError(f"{path} line {lineno} has no wnid in PredictionString; expected "
                                "'ImageId,nXXXXXXXX x0 y0 x1 y1 ...' rows")
            rows[row[0].strip()] = pred[0]
    return rows


def _read_list_file(path: Path) -> tuple[list[Path], list[int], str]:
    files: list[Path] = []
    found: list[int] = []
    for lineno, raw in enumerate(_read_text(path).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and _is_int(parts[1]):
            name, label = parts[0], int(parts[1])
        else:
            name, label = line, UNKNOWN_LABEL
        p = Path(name).expanduser()
        if not p.is_absolute():
            p = path.parent / p
        if not p.is_file():
            raise UserError(f"image file {p} listed in {path} (line {lineno}) does not exist; fix the list")
        files.append(p)
        found.append(label)
    if not files:
        raise UserError(f"image list {path} names no image; write one image path per line")
    note = (f"labels from {path.name}" if any(v >= 0 for v in found) else f"labels unknown ({path.name})")
    return files, found, note


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS)}) nor a text list of "
                        "image paths; give a folder, an image or a list file") from None


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()

