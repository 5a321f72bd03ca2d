"""Commands that compute circuits: `circuit`, `models`."""

from __future__ import annotations

from . import main  # noqa: F401
