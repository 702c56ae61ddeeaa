"""How values look on a page: numbers, sizes, durations, times, digests.

Registered as Jinja2 filters by `mount_ui`; kept apart so charts and pages agree.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

# Metrics whose name says "smaller is better"; everything else (accuracy, r2, f1, auc …)
# is taken to be "larger is better". Used only to colour deltas and mark the best run.
_LOWER_IS_BETTER = re.compile(
    r"(loss|err|rmse|mse|mae|mape|smape|perplexity|latency|time|duration|cost|wer|cer|nll)",
    re.IGNORECASE,
)


def lower_is_better(metric: str) -> bool:
    return bool(_LOWER_IS_BETTER.search(metric))


def number(v: Any, digits: int = 6) -> str:
    """A number short enough for a table cell, keeping the digits that tell runs apart."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 100_000 else str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return number(int(v))
        return f"{v:.{digits}g}"
    return value(v)


def value(v: Any) -> str:
    """Any param, tag or result value as text."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float | int):
        return number(v)
    if isinstance(v, datetime):
        return when(v)
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True)
    return str(v)


def size(n: int | None) -> str:
    if n is None:
        return ""
    amount = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1024 or unit == "TB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{n} B"  # pragma: no cover


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    return f"{hours // 24}d {hours % 24}h"


def when(t: datetime | str | None) -> str:
    """Stored times are naive UTC; shown to the second, labelled UTC in the page."""
    if t is None:
        return ""
    if isinstance(t, str):
        return t.replace("T", " ")[:19]
    return t.strftime("%Y-%m-%d %H:%M:%S")


def when_short(t: datetime | None) -> str:
    return t.strftime("%b %d %H:%M") if t is not None else ""


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    return digest.split(":", 1)[-1][:12]


FILTERS = {
    "number": number,
    "value": value,
    "size": size,
    "duration": duration,
    "when": when,
    "when_short": when_short,
    "short_digest": short_digest,
}
