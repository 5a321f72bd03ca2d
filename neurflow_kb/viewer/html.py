"""The self-contained HTML circuit viewer: one file, inline CSS and JavaScript, thumbnails as data URIs.

Nothing is fetched when the page opens (no fonts, scripts or images from the network; a Content Security
Policy forbids it). Layers are rows, the class on top; each group is a card with exemplar thumbnails and
top labels; edges are SVG curves whose width follows |weight| (blue positive, red negative). Clicking a
group shows its members, labels and up/downstream groups. Two circuits can share a page (`CompareView`):
side by side, matched groups linked and highlighted. Page, CSS and JS live in `assets/`.
"""

from __future__ import annotations

import html
import json
import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .compare import CompareView
from .data import CircuitView

log = logging.getLogger(__name__)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element (no '</', no HTML comment openers)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(view: CircuitView | CompareView) -> str:
    """The whole page for one circuit view (or two side by side), as a string."""
    if isinstance(view, CompareView):
        bits = [f"A: run {view.a.meta.get('run')}", f"B: run {view.b.meta.get('run')}",
                f"{len(view.links)} matched group pairs ({view.link_kind})"]
    else:
        m = view.meta
        bits = [f"run {m.get('run')}", f"{len(view.groups)} groups", f"{len(view.edges)} edges"]
        if m.get("images") is not None:
            bits.append(f"{m.get('images')} images")
        bits.append(f"labels: {m.get('encoder')}" if m.get("labelled") else "not labelled")
    parts = {"TITLE": html.escape(view.title), "META": html.escape(" | ".join(bits)),
             "CSS": _asset("viewer.css"), "JS": _asset("viewer.js"), "DATA": _json_for_script(view.to_json())}
    return re.sub(r"__(TITLE|META|CSS|JS|DATA)__", lambda mt: parts[mt.group(1)], _asset("page.html"))


def write_html(view: CircuitView | CompareView, path: str | Path) -> Path:
    """Write the viewer page to `path` (parent folders created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(view), encoding="utf-8")
    log.debug("viewer written to %s", p)
    return p
