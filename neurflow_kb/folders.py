"""Output folders the project writes: marked as ours, replaced atomically, never anything else.

A folder written here carries `MARKER`, a small JSON file naming what wrote it, the kind of folder, its
key and every file it holds. A save writes into a fresh hidden sibling and swaps it into place (one
`rename`, or an atomic exchange when a folder is replaced), so readers see the old folder or the new
one, never half of one. An existing folder is replaced only when its marker is ours and it holds nothing
the marker does not list; anything else (a user's folder, a file, a symbolic link) is refused in one
line and left untouched. Siblings left by a killed save are removed by the next save into that parent,
file by file, and only the files a save writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import secrets
import socket
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import UserError

#: The marker file of every folder neurflow-kb writes.
MARKER = "neurflow-kb-artifact.json"
#: The marker of a save in progress (inside the temporary sibling only).
PARTIAL = "neurflow-kb-partial.json"
WRITER = "neurflow-kb"
#: Leftovers whose writer cannot be checked (another host) are removed after this many seconds.
STALE_AFTER = 24 * 3600

#: File names an unfinished save may hold besides its partial marker (writers claim theirs: `claim_files`).
_CLAIMED: set[str] = set()

_SIBLING = re.compile(r"^\..*\.neurflow-kb-(new|old)-(\d+)-[0-9a-f]{8,}$")


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The folder's marker if neurflow-kb wrote it (a JSON object naming us), else None."""
    path = folder / MARKER
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != WRITER:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) and _plain_name(f) for f in files):
        return None
    return data


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\0" not in name


def check_destination(target: str | Path, flag: str = "--out") -> Path:
    """Raise `UserError` unless `target` may be written: absent, an empty folder, or a folder neurflow-kb
    wrote (its marker) holding only the files it wrote. Called before any work, and again by the save."""
    path = Path(os.path.abspath(target))          # absolute, '..' removed, symbolic links kept
    if path.is_symlink():
        raise UserError(f"{flag} {path} is a symbolic link; give the real folder path (neurflow-kb does not "
                        "write through links)")
    if not path.exists():
        return path
    if not path.is_dir():
        raise UserError(f"{flag} {path} exists and is not a folder; give a new folder path")
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise UserError(f"{flag} {path} cannot be read ({exc.strerror or exc}); check its permissions"
                        ) from None
    if not names:
        return path
    marker = read_marker(path)
    if marker is None:
        why = "a marker that is not neurflow-kb's" if MARKER in names else f"no {MARKER} marker"
        raise UserError(f"{flag} {path} exists and was not written by neurflow-kb ({why}); choose a new or "
                        "empty folder - nothing was changed")
    foreign = [n for n in names if n != MARKER and n not in set(marker["files"])]
    if foreign:
        shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise UserError(f"{flag} {path} holds files neurflow-kb did not write ({shown}); move them out or "
                        "choose another folder - nothing was changed")
    return path


def replace_folder(target: str | Path, fill: Callable[[Path], Iterable[str]], *, kind: str,
                   key: str | None = None, flag: str = "--out") -> Path:
    """Write a folder atomically: `fill(tmp)` writes its files into a fresh sibling and returns their
    names; the sibling gets the marker and takes the place of `target` (which must pass
    `check_destination`). Returns `target`."""
    path = check_destination(target, flag)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {parent} for {flag} {path}: {exc.strerror or exc}") from None
    clean_leftovers(parent)
    tmp = _new_sibling(path, "new")
    try:
        try:
            names = sorted(set(fill(tmp)))
            marker = {"written_by": WRITER, "kind": kind, "key": key, "files": names}
            (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
            (tmp / PARTIAL).unlink()
            _sync_folder(tmp, [*names, MARKER])
        except OSError as exc:
            raise UserError(f"could not write {path}: {exc.strerror or exc}; free space or pick another "
                            f"{flag} - the previous contents are unchanged") from None
        check_destination(path, flag)          # once more: nothing foreign may have appeared meanwhile
        try:
            _swap_into_place(tmp, path)
        except OSError as exc:
            raise UserError(f"could not put {path} in place: {exc.strerror or exc} - the previous contents "
                            "are unchanged") from None
    finally:
        if tmp.exists():
            remove_ours(tmp)
    _fsync_dir(parent)
    return path


def _new_sibling(path: Path, tag: str) -> Path:
    """An empty hidden folder beside `path` named for cleaning (tag, pid) with a partial marker inside."""
    prefix = f".{path.name[:80]}.neurflow-kb-{tag}-{os.getpid()}-"
    while True:
        candidate = path.parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserError(f"cannot write beside {path}: {exc.strerror or exc}") from None
    if tag == "new":
        (candidate / PARTIAL).write_text(json.dumps({"written_by": WRITER, "host": socket.gethostname(),
                                                     "pid": os.getpid(), "target": path.name}) + "\n")
    return candidate


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Move `tmp` to `path`: a rename when `path` is absent or empty, else an atomic exchange (Linux
    renameat2) or, without it, two renames; the replaced folder is then removed file by file."""
    try:
        os.rename(tmp, path)               # atomic; also replaces an empty folder
        return
    except OSError:
        if not path.is_dir() or path.is_symlink():
            raise
    if _exchange(tmp, path):
        remove_ours(tmp)                   # `tmp` now holds the replaced folder
        return
    old = _new_sibling(path, "old")
    old.rmdir()
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except OSError:
        os.rename(old, path)               # put the previous folder back
        raise
    remove_ours(old)


_RENAME_EXCHANGE = 2
_libc: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where the system lacks it."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name, use_errno=True) if name else False
    fn = getattr(_libc, "renameat2", None) if _libc else None
    if fn is None:
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    return rc == 0


def remove_ours(folder: Path) -> bool:
    """Delete a folder this module wrote: only the files its markers list (or our markers), then the
    folder if that left it empty. Anything else stays; returns whether the folder is gone."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    marker = read_marker(folder)
    ours = {MARKER, PARTIAL, *(marker["files"] if marker else [])}
    partial = folder / PARTIAL
    if marker is None and partial.is_file():
        ours |= _partial_names()
    for entry in folder.iterdir():
        if entry.name in ours and entry.is_file() and not entry.is_symlink():
            entry.unlink()
    try:
        folder.rmdir()
        return True
    except OSError:
        warnings.warn(f"{folder} holds files neurflow-kb did not write; it was left in place", stacklevel=2)
        return False


def claim_files(names: Iterable[str]) -> None:
    """Declare file names a writer of this package puts into the folders it saves, so leftovers of its
    killed saves (which have no marker yet) are recognised as ours and cleaned (the artifact claims its
    manifest and table files when imported)."""
    _CLAIMED.update(names)


def _partial_names() -> set[str]:
    """Every file name an unfinished save may have written (what the writers claimed)."""
    return set(_CLAIMED)


def clean_leftovers(parent: Path) -> list[Path]:
    """Remove the siblings that killed saves left in `parent` (their writer is gone or they are older
    than a day); folders with anything foreign in them are left alone. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _SIBLING.match(entry.name)
        if not m or entry.is_symlink() or not entry.is_dir() or not _abandoned(entry, int(m.group(2))):
            continue
        if not _only_ours(entry):
            continue
        if remove_ours(entry):
            removed.append(entry)
    return removed


def _only_ours(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()}
    if not names:
        return True
    marker = read_marker(folder)
    if marker is not None:
        return names <= {MARKER, PARTIAL, *marker["files"]}
    if (folder / PARTIAL).is_file():
        return names <= {PARTIAL, *_partial_names()}
    return False


def _abandoned(folder: Path, pid: int) -> bool:
    """True when the save that made `folder` cannot still be running."""
    with contextlib.suppress(OSError):
        if time.time() - folder.stat().st_mtime > STALE_AFTER:
            return True
    host = socket.gethostname()
    with contextlib.suppress(OSError, ValueError, RecursionError):
        info = json.loads((folder / PARTIAL).read_bytes())
        if isinstance(info, dict) and info.get("host") not in (None, host):
            return False                   # written on another machine: only age tells
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _sync_folder(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        fd = os.open(folder / name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["MARKER", "check_destination", "claim_files", "clean_leftovers", "read_marker", "remove_ours",
           "replace_folder"]
