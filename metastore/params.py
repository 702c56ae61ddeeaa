"""Typed params: how a Python value is stored so that numbers compare as numbers.

A param row holds its `type` (number, text, bool, json), `num` for numbers and bools
(bools as 0/1), and `text`: the exact text form, from which the value is read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

Encoded = tuple[str, float | None, str]


def encode(value: Any) -> Encoded:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, bool):
        return "bool", float(value), "true" if value else "false"
    if isinstance(value, int):
        return "number", float(value), str(value)
    if isinstance(value, float):
        return "number", (value if math.isfinite(value) else None), repr(value)
    if isinstance(value, str):
        return "text", None, value
    try:
        return "json", None, json.dumps(value, sort_keys=True, default=_json_default)
    except (TypeError, ValueError) as e:
        from metastore.errors import InvalidValue

        raise InvalidValue(
            f"a param value of type {type(value).__name__} cannot be stored as JSON ({e})",
            hint="params are numbers, text, bools, or lists and dicts of them; "
            "pass str(value) if its text is what you mean",
        ) from None


def _json_default(value: Any) -> Any:
    """The JSON form of the few non-JSON values that have an obvious one; anything
    else (object(), bytes, a model instance) is refused rather than stored as its repr."""
    from datetime import date, datetime
    from pathlib import PurePath

    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON")


def decode(ptype: str, num: float | None, text: str | None) -> Any:
    if ptype == "bool":
        return text == "true"
    if ptype == "number":
        try:
            return int(text)
        except (TypeError, ValueError):
            return float(text)
    if ptype == "json":
        return json.loads(text)
    return text


def encode_all(values: Mapping[str, Any], validate_key: Callable) -> dict[str, Encoded]:
    if not isinstance(values, Mapping):
        raise TypeError("params must be a mapping of name to value")
    out = {}
    for k, v in values.items():
        key = validate_key(k, "param", allow_slash=False)
        try:
            out[key] = encode(v)
        except Exception as e:
            from metastore.errors import InvalidValue

            if isinstance(e, InvalidValue):
                raise InvalidValue(f"param {key!r}: {e.message}", hint=e.hint) from None
            raise
    return out
