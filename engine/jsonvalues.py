"""Type checks for values read from JSON (model.json blocks), shared by every validator.

JSON gives Python ``bool`` for true/false, which ``isinstance(v, int)`` accepts; a count or a
size must not be ``true``, and a number must be finite (Python's json reads NaN and Infinity)."""
from __future__ import annotations

import math


def is_int(v) -> bool:
    """An integer, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    """A finite int or float, not a bool."""
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)
