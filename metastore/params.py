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
    return "json", None, json.dumps(value, sort_keys=True, default=str)


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
    return {validate_key(k, "param", allow_slash=False): encode(v) for k, v in values.items()}
