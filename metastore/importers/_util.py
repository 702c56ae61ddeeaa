"""Helpers shared by the importers for reading values out of a source: nested keys,
metric points, tags, ids. Writing is `importers.writer.Writer`'s job."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from metastore.importers import ImportReport
from metastore.importers.values import finite
from metastore.records import MetricPoint


class SourceError(Exception):
    """A file of the source cannot be read; the importer skips the run it belongs to."""

    def __init__(self, where: str | Path, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason


# -- values ------------------------------------------------------------------------------


def param_key(key: str) -> str:
    """Param keys may not contain '/', the separator many tools use for nesting."""
    return key.replace("/", ".")


def flatten(data: Mapping[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level, keys joined with `sep`; lists stay values (JSON)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, sep, name))
        else:
            out[name] = value
    return out


def flatten_params(data: Mapping[str, Any]) -> dict[str, Any]:
    return {param_key(k): v for k, v in flatten(data, ".").items()}


def stable_id(*parts: Any) -> str:
    """A short stable id from content (for sources without run ids of their own)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def points(
    key: str,
    rows: Iterable[tuple[int | None, datetime | None, Any]],
    report: ImportReport,
    where: str,
) -> list[MetricPoint]:
    """Metric points from (step, time, value) rows. Non-finite values cannot be stored
    as metric points: they are dropped with one warning per series."""
    out, dropped = [], 0
    for step, ts, value in rows:
        if finite(value):
            out.append(MetricPoint(key=key, value=float(value), step=step, timestamp=ts))
        else:
            dropped += 1
    if dropped:
        report.warn(
            where, f"metric {key!r}: {dropped} non-finite or non-numeric value(s) not imported"
        )
    return out


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as text of at most 500 characters (longer ones are cut, marked '…')."""
    out = {}
    for k, v in tags.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        out[k] = text if len(text) <= 500 else text[:499] + "…"
    return out
