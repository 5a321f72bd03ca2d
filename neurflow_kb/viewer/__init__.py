"""The self-contained HTML circuit viewer (`neurflow-kb view`): one file that opens without a network."""

from .compare import CompareView, compare_artifacts
from .data import CLASS_ID, MAX_THUMBNAILS, CircuitView, from_circuit, group_id
from .html import render_html, write_html

__all__ = ["CLASS_ID", "MAX_THUMBNAILS", "CircuitView", "CompareView", "compare_artifacts", "from_circuit",
           "group_id", "render_html", "write_html"]
