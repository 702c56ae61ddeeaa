"""Helpers shared by the file-based importers (DVC, W&B, TensorBoard, Neptune, OpenLineage).

Each of those importers reads its source into plain `RunRecord`s plus a list of
`PendingAsset`s, then hands both to `write_run`, which skips runs already imported,
registers the assets, and writes the run in one transaction. Reading everything before
writing anything is what keeps a malformed source from leaving half a run behind.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metastore.errors import Conflict, MetastoreError
from metastore.importers import ImportOptions, ImportReport
from metastore.records import MetricPoint, RunRecord, validate_key


class SourceError(Exception):
    """A file of the source cannot be read; the importer skips the run it belongs to."""

    def __init__(self, where: str | Path, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason


@dataclass
class PendingAsset:
    """An asset version to register for a run before the run itself is written.

    Either `content` (a file or directory, copied into the blob store or referenced by
    URI per `--no-copy`) or `uri` + `digest` (registered without its bytes)."""

    kind: str
    name: str
    relation: str  # "used" or "produced"
    content: Path | bytes | None = None
    uri: str | None = None
    digest: str | None = None
    size: int | None = None
    media_type: str | None = None
    meta: dict = field(default_factory=dict)
    role: str | None = None
    #: (kind, name) of pending assets of the same run this one derives from; they must
    #: come earlier in the run's list
    derived_from: Sequence[tuple[str, str]] = ()


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


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def utc(value: Any) -> datetime | None:
    """A naive UTC datetime from epoch seconds, epoch milliseconds, or ISO 8601 text."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif is_number(value):
        seconds = float(value)
        if seconds > 1e11:  # milliseconds (1e11 s is the year 5138)
            seconds /= 1000.0
        dt = datetime.fromtimestamp(seconds, UTC)
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


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
        report.warnings.append(
            f"{where}: metric {key!r}: {dropped} non-finite or non-numeric value(s) not imported"
        )
    return out


def check_record(record: RunRecord) -> None:
    """Fail before writing anything if the store would refuse part of the record."""
    for k in record.params:
        validate_key(k, "param", allow_slash=False)
    for p in record.metrics:
        validate_key(p.key, "metric")
    for k, v in record.tags.items():
        validate_key(k, "tag")
        if v is not None and len(str(v)) > 500:
            raise MetastoreError(f"tag {k!r} is longer than 500 characters")


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tag values as text of at most 500 characters (longer ones are cut, marked '…')."""
    out = {}
    for k, v in tags.items():
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        out[k] = text if len(text) <= 500 else text[:499] + "…"
    return out


# -- writing -------------------------------------------------------------------------------


def write_run(
    store,
    record: RunRecord,
    assets: Sequence[PendingAsset],
    options: ImportOptions,
    report: ImportReport,
    where: str,
) -> str | None:
    """Write one run read from `where` (a file or directory named in warnings).

    Counts it in `report` as imported, already present or skipped. Returns the new run's
    id (None when nothing was written)."""
    assert record.source and record.source_id, "every imported run names its source"
    if options.experiment:
        record.experiment = options.experiment
    existing = store.find_run_by_source(record.source, record.source_id)
    if existing is not None:
        report.already_present += 1
        try:
            enrich(store, existing.id, record, assets, options, report, where)
        except MetastoreError as e:
            report.warnings.append(f"{where}: already present; what this source adds "
                                   f"cannot be written: {e}")
        return None
    try:
        check_record(record)
    except MetastoreError as e:
        _skip(report, where, str(e))
        return None
    if options.dry_run:
        report.imported += 1
        report.params += len(record.params)
        report.metrics += len(record.metrics)
        report.count_versions(_dry_key(a) for a in assets)
        report.edges += len(assets) + sum(len(a.derived_from) for a in assets)
        return None
    derived = 0
    try:
        ids: dict[tuple[str, str], str] = {}
        inputs, outputs = list(record.inputs), list(record.outputs)
        for a in assets:
            kwargs: dict[str, Any] = dict(
                media_type=a.media_type, meta=a.meta or None, size=a.size, role=a.role
            )
            kwargs["derived_from"] = [
                ids[up] for up in a.derived_from if up in ids and up != (a.kind, a.name)
            ]
            try:
                av = _put(store, a, options, kwargs)
            except Conflict as e:  # derived_from would close a lineage cycle: keep the rest
                report.warnings.append(f"{where}: {a.kind} {a.name!r}: {e.message}; not linked")
                kwargs["derived_from"] = []
                av = _put(store, a, options, kwargs)
            ids[(a.kind, a.name)] = av.id
            derived += len(kwargs["derived_from"])
            (inputs if a.relation == "used" else outputs).append((av.id, a.role))
        record.inputs, record.outputs = _unique(inputs), _unique(outputs)
        run = store.create_run(record)
    except MetastoreError as e:
        _skip(report, where, f"cannot be written: {e}")
        return None
    report.imported += 1
    report.params += len(record.params)
    report.metrics += len(record.metrics)
    report.count_versions(av_id for av_id, _ in (*record.inputs, *record.outputs))
    report.edges += len(record.inputs) + len(record.outputs) + derived
    report.run_ids.append(run.id)
    return run.id


def enrich(
    store, run_id: str, record: RunRecord, assets: Sequence[PendingAsset],
    options: ImportOptions, report: ImportReport, where: str,
) -> bool:
    """Complete a run imported before, perhaps from a poorer source (`dvc exp show
    --json`, then the repository): add the metric points (by key and step), params and
    lineage (used, produced, derived_from) this source has and the store lacks. Nothing
    the store holds is changed. True when something was (or, in a dry run, would be)
    added; counted in `report.enriched`."""
    [old] = store.dump_runs([run_id])
    have = {(p.key, p.step) for p in old.metrics}
    # a point without a step cannot be told apart from one stored before: not added
    new_points = [p for p in record.metrics if p.step is not None and (p.key, p.step) not in have]
    new_params = {k: v for k, v in record.params.items() if k not in old.params}
    try:
        check_record(RunRecord(experiment=old.experiment, params=new_params, metrics=new_points))
    except MetastoreError as e:
        report.warnings.append(f"{where}: already present; new values not added: {e}")
        new_points, new_params = [], {}
    if options.dry_run:
        added = bool(new_points or new_params)
    else:
        if new_params:
            store.log_params(run_id, new_params)
        if new_points:
            store.log_metrics(run_id, new_points)
        added = bool(new_points or new_params) | _enrich_lineage(
            store, run_id, assets, options, report, where
        )
    if added:
        report.enriched += 1
        report.params += len(new_params)
        report.metrics += len(new_points)
    return added


def _enrich_lineage(store, run_id: str, assets, options, report, where) -> bool:
    """Link the source's asset versions to an existing run; True when an edge was new."""
    if not assets:
        return False
    before = {_edge_key(e) for e in store.list_edges([run_id])}
    ids: dict[tuple[str, str], str] = {}
    for a in assets:
        kwargs: dict[str, Any] = dict(
            media_type=a.media_type, meta=a.meta or None, size=a.size, role=a.role,
            derived_from=[ids[up] for up in a.derived_from if up in ids and up != (a.kind, a.name)],
        )
        try:
            av = _put(store, a, options, kwargs)
        except Conflict as e:
            report.warnings.append(f"{where}: {a.kind} {a.name!r}: {e.message}; not linked")
            kwargs["derived_from"] = []
            av = _put(store, a, options, kwargs)
        ids[(a.kind, a.name)] = av.id
        store.link_run_asset(run_id, av.id, a.relation, a.role)
    after = {_edge_key(e) for e in store.list_edges([run_id])}
    new = after - before
    report.count_versions(dst if rel == "produced" else src for src, dst, rel in new
                          if rel != "derived_from")
    report.edges += len(new)
    return bool(new)


def _edge_key(e) -> tuple[str, str, str]:
    return (e.src_id, e.dst_id, e.relation)


def _dry_key(a: PendingAsset):
    """What tells asset versions apart before they are stored (a dry run's count)."""
    if isinstance(a.content, bytes):
        return (a.kind, a.name, hashlib.sha256(a.content).hexdigest())
    return (a.kind, a.name, a.digest or a.uri or str(a.content))


def _skip(report: ImportReport, where: str, reason: str) -> None:
    report.skip(where, reason)


def _put(store, a: PendingAsset, options: ImportOptions, kwargs: dict):
    if a.content is not None:
        return store.put_asset(a.kind, a.name, a.content, copy=options.copy, **kwargs)[1]
    return store.put_asset(a.kind, a.name, uri=a.uri, digest=a.digest, **kwargs)[1]


def _unique(pairs: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    seen, out = set(), []
    for av_id, role in pairs:
        if av_id not in seen:
            seen.add(av_id)
            out.append((av_id, role))
    return out
