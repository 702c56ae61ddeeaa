"""CSV / TSV / JSON Lines run tables: one run per row (NAME "csv").

For the spreadsheets people keep by hand and for every tool's "export as CSV" (the
MLflow `search_runs` layout is understood as is). Which column is what:

1. run fields, by name (case-insensitive): `run_id`/`id` (the source id),
   `name`/`run_name`, `experiment`/`experiment_name`, `status`, `start_time`/`started`,
   `end_time`/`ended`, `user`, `host`, `git_commit`, `command`, `notes`/`note`;
2. prefixes: `params.lr`, `metrics.acc`, `tags.team` (the prefix is dropped);
3. `--params a,b` / `--metrics c,val_*` name columns (glob patterns allowed);
4. any other column is a param, except when only `--params` was given: then the
   columns not listed are metrics (you listed the knobs, the rest are results).

Cells are typed with `values.infer_value` (JSON values keep their JSON type); an empty
cell (or JSON null) means "not recorded", never 0. Each metric cell is one point at
step 0 (or the row's `step` column), timed at the row's end (else start) time.

A row without a run id is identified by a digest of its cells (and its place among
identical rows), so importing the same file again skips it, and rows added later come
in on the next import. An edited row is a new run.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers.values import finite, infer_value, to_utc
from metastore.importers.writer import Writer
from metastore.models import Note
from metastore.records import MetricPoint, RunRecord

NAME = "csv"
SUFFIXES = {".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json"}
FIELDS = {
    "run_id": "id", "id": "id", "run_uuid": "id",
    "name": "name", "run_name": "name", "tags.mlflow.runname": "name",
    "experiment": "experiment", "experiment_name": "experiment",
    "status": "status", "state": "status",
    "start_time": "started", "started": "started", "start": "started",
    "end_time": "ended", "ended": "ended", "end": "ended",
    "user": "user", "tags.mlflow.user": "user", "user_id": "user",
    "host": "host", "hostname": "host",
    "git_commit": "git_commit", "tags.mlflow.source.git.commit": "git_commit",
    "command": "command",
    "notes": "note", "note": "note", "tags.mlflow.note.content": "note",
    "step": "step",
}
#: Columns that describe where a row came from, not the run: MLflow's search_runs()
#: export, and metastore's own table export (whose `id` becomes the source id).
IGNORED = {
    "experiment_id", "artifact_uri", "lifecycle_stage",
    "run", "number", "duration", "parent_id", "source", "source_id",
}
STATUSES = {
    "finished": "finished", "completed": "finished", "complete": "finished", "done": "finished",
    "success": "finished", "succeeded": "finished", "ok": "finished",
    "failed": "failed", "failure": "failed", "error": "failed", "errored": "failed",
    "killed": "killed", "cancelled": "killed", "canceled": "killed", "aborted": "killed",
    "crashed": "crashed", "running": "crashed", "scheduled": "crashed",
}


class RowError(Exception):
    pass


def detect(path: Path) -> bool:
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        try:
            with open(path, encoding="utf-8-sig") as f:
                head = f.read(2048).lstrip()
        except (OSError, UnicodeDecodeError):
            return False
        return head[:1] in ("{", "[")
    return True


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    path = Path(path)
    if not path.is_file():
        raise ImportFailed(f"{path} is not a file; the csv importer reads one CSV/TSV/JSON Lines file")
    mapper = Mapper(options)
    rows = list(_rows(path, report))
    total = report.found
    done = total - len(rows)
    options.progress(done, total)
    seen: dict[str, int] = defaultdict(int)
    mapped = []
    for where, row, is_json in rows:
        try:
            record = mapper.record(row, is_json, path)
        except RowError as e:
            report.skip(where, str(e))
            mapped.append(None)
            continue
        if record.source_id is None:
            digest = hashlib.sha256(
                json.dumps(row, sort_keys=True, default=str).encode()
            ).hexdigest()[:32]
            seen[digest] += 1
            record.source_id = f"{digest}#{seen[digest]}"
        mapped.append((where, record, dict(mapper.dropped)))
        mapper.dropped.clear()
    with Writer(store, options, report) as writer:
        for item in mapped:
            done += 1
            if item is not None:
                where, record, dropped = item
                for key in dropped:
                    report.warn(where, f"metric {key!r}: NaN/inf value dropped")
                writer.add(record, [], where)
            options.progress(done, total)
    if mapper.defaulted:
        report.warn(
            path.name, f"columns without a prefix imported as params: "
            f"{', '.join(sorted(mapper.defaulted))} (name metrics with --metrics, or prefix "
            "the columns with params./metrics./tags.)"
        )


def _rows(path: Path, report: ImportReport) -> Iterator[tuple[str, dict, bool]]:
    """(where, row, is_json) for every row; unreadable rows are skipped here."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportFailed(f"{path} is not UTF-8 text ({e})", hint="save it as UTF-8") from e
    except OSError as e:
        raise ImportFailed(f"cannot read {path}: {e}") from e
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl", ".ndjson"):
        yield from _json_rows(path, text, report)
        return
    delimiter = "\t" if suffix in (".tsv", ".tab") else _sniff(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed(f"{path} is empty") from None
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ImportFailed(f"{path}: column names appear twice: {', '.join(dupes)}")
    if any(not h for h in header):
        raise ImportFailed(f"{path}: a column has no name in the header line")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            report.found += 1
            report.skip(f"{path} line {reader.line_num}", f"is not valid CSV ({e})")
            continue
        if not any(c.strip() for c in cells):
            continue  # blank line
        report.found += 1
        where = f"{path} line {reader.line_num}"
        if len(cells) != len(header):
            report.skip(
                where,
                f"has {len(cells)} cells but the header has {len(header)} (truncated or misquoted?)",
            )
            continue
        yield where, dict(zip(header, cells, strict=True)), False


def _sniff(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max([",", ";", "\t", "|"], key=first.count) if first else ","


def _json_rows(path: Path, text: str, report: ImportReport) -> Iterator[tuple[str, dict, bool]]:
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise ImportFailed(f"{path} is not valid JSON ({e})") from e
        for i, item in enumerate(items, 1):
            report.found += 1
            if not isinstance(item, dict):
                report.skip(f"{path} item {i}", "is not a JSON object")
                continue
            yield f"{path} item {i}", item, True
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        report.found += 1
        where = f"{path} line {n}"
        try:
            item = json.loads(line)
        except ValueError as e:
            report.skip(where, f"is not valid JSON ({e}; truncated?)")
            continue
        if not isinstance(item, dict):
            report.skip(where, "is not a JSON object")
            continue
        yield where, item, True


def _split(option: Any) -> list[str]:
    if not option:
        return []
    if isinstance(option, str):
        option = [option]
    return [p.strip() for item in option for p in str(item).split(",") if p.strip()]


class Mapper:
    """Turns one row into a RunRecord by the column rules in the module docstring."""

    def __init__(self, options: ImportOptions):
        self.options = options
        self.params = _split(options.extra.get("params"))
        self.metrics = _split(options.extra.get("metrics"))
        self.rest_are_metrics = bool(self.params) and not self.metrics
        self.defaulted: set[str] = set()
        self.dropped: dict[str, int] = defaultdict(int)

    def _matches(self, column: str, patterns: list[str]) -> bool:
        return any(column == p or fnmatch.fnmatchcase(column, p) for p in patterns)

    def record(self, row: dict, is_json: bool, path: Path) -> RunRecord:
        fields: dict[str, Any] = {}
        params: dict[str, Any] = {}
        metrics: dict[str, Any] = {}
        tags: dict[str, Any] = {}
        for group, target in (("params", params), ("metrics", metrics), ("tags", tags)):
            nested = row.get(group)
            if is_json and isinstance(nested, dict):
                target.update(nested)
                row = {k: v for k, v in row.items() if k != group}
        for column, value in row.items():
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            low = column.lower()
            if self._matches(column, self.metrics):
                metrics[column] = value
            elif self._matches(column, self.params):
                params[column] = value
            elif low in FIELDS:
                fields[FIELDS[low]] = value
            elif low in IGNORED:
                continue
            elif column.startswith("params."):
                params[column[7:]] = value
            elif column.startswith("metrics."):
                metrics[column[8:]] = value
            elif column.startswith("tags."):
                tags[column[5:]] = value
            elif self.rest_are_metrics:
                metrics[column] = value
            else:
                self.defaulted.add(column)
                params[column] = value
        try:
            started = to_utc(fields.get("started"), strict=True)
            ended = to_utc(fields.get("ended"), strict=True)
        except ValueError as e:
            raise RowError(str(e)) from e
        status = "finished"
        if "status" in fields:
            status = STATUSES.get(str(fields["status"]).strip().lower())
            if status is None:
                raise RowError(
                    f"status {fields['status']!r} is not one of finished, failed, killed, crashed"
                )
        step = 0
        if "step" in fields:
            try:
                step = int(float(fields["step"]))
            except (TypeError, ValueError) as e:
                raise RowError(f"step {fields['step']!r} is not a whole number") from e
        points = []
        for key, value in metrics.items():
            try:
                number = float(value) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                number = None
            if number is None:
                raise RowError(f"metric {key!r}: {value!r} is not a number")
            if not finite(number):
                self.dropped[key] += 1
                continue
            points.append(MetricPoint(key=key, value=number, step=step, timestamp=ended or started))
        typed = {}
        for key, value in params.items():
            typed[key.replace("/", ".")] = infer_value(value) if isinstance(value, str) else value
        notes = []
        if fields.get("note"):
            notes.append(Note(kind="note", time=started, text=str(fields["note"])))
        source_id = fields.get("id")
        return RunRecord(
            experiment=self.options.experiment or str(fields.get("experiment") or path.stem),
            name=str(fields["name"]) if fields.get("name") is not None else None,
            status=status,
            started=started,
            ended=ended,
            user=_text(fields.get("user")),
            host=_text(fields.get("host")),
            git_commit=_text(fields.get("git_commit")),
            command=_text(fields.get("command")),
            params=typed,
            metrics=points,
            tags={k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()},
            notes=notes,
            source=NAME,
            source_id=str(source_id) if source_id is not None else None,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
