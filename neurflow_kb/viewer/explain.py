"""The HTML explanation of one debugged image: self-contained (inline CSS, images as data URIs, no JS)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ..values import is_missing

_CSS = """
body { margin: 0; font: 13px/1.4 system-ui, "DejaVu Sans", sans-serif; color: #1d2330; background: #f5f6f8; }
header { padding: 10px 16px; background: #1d2330; color: #fff; }
header h1 { font-size: 16px; margin: 0 0 2px; }
header .meta { color: #b9c1d0; font-size: 12px; }
main { padding: 12px 16px; display: grid; grid-template-columns: 360px 1fr; gap: 18px; }
h2 { font-size: 13px; margin: 14px 0 6px; color: #5b6474; text-transform: uppercase; }
.figure { position: relative; display: inline-block; }
.figure img { width: 320px; height: 320px; display: block; }
.figure svg { position: absolute; left: 0; top: 0; }
table { border-collapse: collapse; background: #fff; width: 100%; }
td, th { border-bottom: 1px solid #e6e9ee; padding: 3px 6px; text-align: left; vertical-align: middle; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fires td { background: #f1f7ee; }
img.t { width: 40px; height: 40px; margin-right: 2px; vertical-align: middle; }
.path li { margin: 2px 0; }
.note { color: #5b6474; }
"""

_PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"]


def _img(png: bytes | str, cls: str = "t", alt: str = "") -> str:
    b64 = png if isinstance(png, str) else base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if is_missing(v) else f"{float(v):.{digits}f}"


def render_explanation(result: Any) -> str:
    """HTML page for a `neurflow_kb.debug.DebugResult`."""
    cfg, view = result.config, result.view
    groups = {g["id"]: g for g in view.groups}
    firing = result.firing()
    size = int(result.crops["size"].max()) if len(result.crops) else 1
    scale = 320.0 / size
    boxes = []
    for i, row in enumerate(firing.head(len(_PALETTE)).itertuples(index=False)):
        colour = _PALETTE[i % len(_PALETTE)]
        x, y, s = row.left * scale, row.top * scale, row.size * scale
        boxes.append(f'<rect x="{x + 1.5 * i:.1f}" y="{y + 1.5 * i:.1f}" width="{s - 3 * i:.1f}" '
                     f'height="{s - 3 * i:.1f}" fill="none" stroke="{colour}" stroke-width="2"/>'
                     f'<text x="{x + 4:.1f}" y="{y + 14 + 12 * i:.1f}" fill="{colour}" font-size="12" '
                     f'font-weight="bold">{html.escape(row.layer)} g{row.index}</text>')
    top5 = ", ".join(f"{html.escape(n)} ({i}) {p:.2f}" for i, n, p in result.top5)
    path_items = []
    for row in result.path.itertuples(index=False):
        if row.gid == "class":
            path_items.append(f"<li><b>class {result.target} '{html.escape(result.target_name)}'</b></li>")
            continue
        g = groups[row.gid]
        labels = ", ".join(html.escape(lab["concept"]) for lab in g.get("labels", [])[:3]) or "not labelled"
        path_items.append(f"<li>{html.escape(row.layer)} group {g['index']} - score {_fmt(row.score)}, "
                          f"edge {_fmt(row.weight)} - <span class='note'>{labels}</span></li>")
    rows = []
    for row in result.scores.itertuples(index=False):
        g = groups[row.gid]
        crops = result.firing_crops(row.gid) if row.fires else [int(row.crop)]
        crop_imgs = "".join(_img(result.crop_pngs[c], alt=f"crop {c}") for c in crops
                            if c in result.crop_pngs)
        ex_imgs = "".join(_img(t, alt="exemplar") for t in g.get("thumbnails", [])[:4])
        labels = ", ".join(f"{html.escape(lab['concept'])} {lab['score']:.2f}"
                           for lab in g.get("labels", [])[:3])
        rows.append(f"<tr class=\"{'fires' if row.fires else ''}\" data-group=\"{html.escape(row.gid)}\">"
                    f"<td>{html.escape(row.layer)} g{row.index}</td><td class='num'>{_fmt(row.score)}</td>"
                    f"<td>{'yes' if row.fires else ''}</td><td>{crop_imgs}</td><td>{ex_imgs}</td>"
                    f"<td>{labels or '<span class=note>not labelled</span>'}</td>"
                    f"<td class='num'>{_fmt(row.influence)}</td></tr>")
    verdict = ("the model predicts the circuit's class" if result.predicted == result.target else
               f"the model predicts {result.predicted} '{html.escape(result.predicted_name)}', not the "
               f"circuit's class {result.target}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>neurflow-kb debug: {html.escape(result.source)}</title><style>{_CSS}</style></head>
<body><header><h1>Why {html.escape(Path(result.source).name)}? - class {result.target}
'{html.escape(result.target_name)}'</h1>
<div class="meta">{html.escape(str(view.meta.get('model')))} ({html.escape(str(view.meta.get('weights')))})
 | run {html.escape(str(view.meta.get('run')))} | image {html.escape(result.image_key)}
 | top-5: {top5}</div></header>
<main><section>
<h2>Image and firing groups</h2>
<div class="figure">{_img(result.image_png, cls="main", alt="image")}
<svg width="320" height="320" xmlns="http://www.w3.org/2000/svg">{''.join(boxes)}</svg></div>
<p class="note">{verdict}. {len(firing)} of {len(result.scores)} groups fire (score &ge; {cfg.threshold});
boxes mark each firing group's best crop.</p>
<h2>Strongest path to the class</h2><ol class="path">{''.join(path_items)}</ol>
</section><section>
<h2>Groups by score</h2>
<table id="scores"><tr><th>group</th><th>score</th><th>fires</th><th>crops</th><th>exemplars</th>
<th>labels</th><th>influence</th></tr>{''.join(rows)}</table>
<p class="note">score = exp(max over crops of the mean over the group's neurons of
log max(a/|mu|, {cfg.floor})), each neuron once (docs/debugging.md).</p>
</section></main></body></html>
"""


def write_explanation(result: Any, path: str | Path) -> Path:
    """Write the explanation page of a debug result to `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_explanation(result), encoding="utf-8")
    return p
