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


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    """A number a metric point can hold (not NaN, not ±inf): the one test every importer
    applies before keeping a value as a metric."""
    return is_number(value) and math.isfinite(value)


#: Unix time units, as divisors of the number to seconds.
_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def to_utc(value: Any, *, unit: str | None = None, strict: bool = False) -> datetime | None:
    """The one time parser of the importers: a naive UTC datetime from a datetime (a zone
    converted to UTC), ISO 8601 text (`Z` allowed), or Unix time as a number or numeric
    text, in `unit` ("s", "ms", "us"; MLflow keeps milliseconds) or, without one, told
    apart by magnitude (seconds below 1e11, milliseconds below 1e14, else microseconds).

    None and "" give None. What is not a time gives None, or with `strict` (a table cell
    the user named as a time) a ValueError saying so."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        if isinstance(value, datetime):
            t = value
        elif is_number(value):
            return _from_epoch(float(value), unit)
        else:
            s = str(value).strip()
            try:
                return _from_epoch(float(s), unit)
            except ValueError:
                pass
            t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith("Z") else s)
    except (ValueError, OverflowError, OSError) as e:
        if strict:
            raise ValueError(f"{value!r} is not a time (ISO 8601 or Unix epoch)") from e
        return None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def _from_epoch(x: float, unit: str | None) -> datetime:
    if not math.isfinite(x):
        raise ValueError(f"{x} is not a time")
    if unit is not None:
        x /= _UNITS[unit]
    elif abs(x) >= 1e14:  # microseconds
        x /= 1e6
    elif abs(x) >= 1e11:  # milliseconds (1e11 s is the year 5138)
        x /= 1e3
    return datetime.fromtimestamp(x, UTC).replace(tzinfo=None)
