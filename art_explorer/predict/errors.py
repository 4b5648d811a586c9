"""The error a user can fix (a bad file, missing weights): one clear line."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: the command line prints it as one line."""
