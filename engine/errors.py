"""Exception types that separate the user's mistakes from ours.

The CLI maps `InputError` (and its subclass `BundleError`) to exit status 2 and prints the
message as the single line the user sees, so every message must be ONE line that names the
file and the problem. Anything else escaping the engine is an internal error (exit 1).
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a missing/corrupt image, an invalid option, an unusable output path."""

    def __init__(self, message: str):
        # One line, whatever the underlying library put in its message.
        super().__init__(" ".join(str(message).split()))


class BundleError(InputError):
    """The model bundle is missing, corrupt, or does not match its model.json."""


class Cancelled(Exception):
    """Raised by the converter when the caller's `cancel()` callback asked it to stop."""
