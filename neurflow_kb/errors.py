"""Errors a user can fix. The CLI prints them as one line and exits with code 2; everything else is a bug."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (unknown model, bad path, class out of range, ...).

    The message names what is wrong and how to fix it, in one line.
    """


class StoreError(UserError):
    """The knowledge base cannot be reached or used (server down, wrong credentials, missing file)."""
