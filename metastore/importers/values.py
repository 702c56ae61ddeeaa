"""Turning the text other tools keep into typed values, one rule for every importer.

MLflow stores every param as a string, CSV cells are strings, and so on. `infer_value`
gives back the value the text most plausibly was when it was logged, so that
`lr > 0.01` compares numbers, never strings:

| text | value |
|---|---|
| `true`, `False`, `TRUE` (any case) | bool |
| `5`, `-3`, `0` (no leading zeros) | int |
| `0.1`, `1e-3`, `.5`, `nan`, `inf`, `-Infinity` | float |
| `[1, 2]`, `{"a": 1}` (JSON), `['a', 'b']`, `(1, 2)` (a Python literal list/dict/tuple) | list / dict |
| anything else, including `007` (leading zero: an identifier), `None`, `1_000`, `""` | the text, unchanged |

Surrounding whitespace is ignored when recognising a number or bool, kept otherwise.
"""

from __future__ import annotations

import ast
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?|[-+]?(nan|inf|infinity)", re.I)


def infer_value(text: str) -> Any:
    """The typed value of a param written as text (see the module docstring)."""
    if not isinstance(text, str):
        return text
    s = text.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(s):
        return int(s)
    if _FLOAT.fullmatch(s):
        if s.lstrip("+-")[:1] == "0" and s.lstrip("+-")[1:2].isdigit():
            return text  # "0123.5" is an identifier, not a number
        return float(s)
    if s[:1] in "[{(" and s[-1:] in "]})":
        try:
            return json.loads(s)
        except ValueError:
            pass
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, list | dict):
            return value
    return text


def parse_number(text: str) -> float | None:
    """A metric value from text: a float, None for an empty cell; ValueError otherwise."""
    s = text.strip() if isinstance(text, str) else text
    if s is None or s == "":
        return None
    if isinstance(s, bool):
        raise ValueError(f"{text!r} is not a number")
    return float(s)


def from_millis(ms: int | float | None) -> datetime | None:
    """Naive UTC from Unix milliseconds (how MLflow and most trackers keep time)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(float(ms) / 1000, UTC).replace(tzinfo=None)


def parse_time(value: Any) -> datetime | None:
    """A time from a table cell: ISO 8601 text (a zone converted to UTC), or Unix
    seconds, milliseconds or microseconds told apart by magnitude."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _from_epoch(float(value))
    else:
        s = str(value).strip()
        try:
            return _from_epoch(float(s))
        except ValueError:
            pass
        try:
            t = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"{value!r} is not a time (ISO 8601 or Unix epoch)") from e
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def _from_epoch(x: float) -> datetime:
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a time")
    if abs(x) >= 1e14:  # microseconds
        x /= 1e6
    elif abs(x) >= 1e11:  # milliseconds
        x /= 1e3
    return datetime.fromtimestamp(x, UTC).replace(tzinfo=None)
