"""Import the export that `neptune-exporter` writes (Neptune 2.x and 3.x runs).

The Neptune service has shut down; its users' history lives in these exports:
`<data-path>/<project dir>/<run_id>_part_<n>.parquet`, one long table per run (columns
`project_id, run_id, attribute_path, attribute_type, step, timestamp, int_value,
float_value, string_value, bool_value, datetime_value, string_set_value, file_value,
histogram_value`), and the files under a separate `<files-path>/<project dir>/`.
Point `metastore import neptune` at the data path (or one project folder in it); the
files are looked for in `files/` beside it unless `files_path=` names the folder.

- run → run: `source_id` `<project_id>/<run_id>`; run id → name; `sys/name` →
  experiment (Neptune 3's experiment name; `Untitled` or missing → the project name);
  `sys/creation_time` → started; `sys/modification_time`/`sys/ping_time` → ended;
  `sys/owner` → user; `sys/hostname` → host; `sys/failed` → status failed (else
  finished); `sys/tags` → tags; `sys/description` → a note; `sys/forking/parent` →
  parent run (when imported), with the fork step as a tag
- float, int, string, bool, datetime, string_set attributes → params with their types
  (path '/' → '.'; datetimes as ISO text, string sets as lists); other `sys/*` fields
  become `neptune.*` tags
- float_series → metrics, every point with its timestamp. Neptune steps are decimals:
  whole steps are kept; a series with fractional steps is scaled by the smallest power
  of ten that makes them whole (recorded in tag `neptune.step_scale.<key>`)
- string_series (e.g. stdout) → a text log asset per series, one `step<TAB>time<TAB>text`
  line per point
- file, file_set, artifact, file_series → asset versions copied from the files folder
  (or referenced with `--no-copy`); a file named in the table but missing on disk is
  reported as a warning

Not carried over: histogram series (counted in a warning), Neptune's model registry
export (`export-models`). A run whose `part_0` is missing (an export interrupted before
the run completed) or whose Parquet does not read is skipped with the reason.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import (
    SourceError,
    clean_tags,
    param_key,
    points,
)
from metastore.importers.values import to_utc
from metastore.importers.writer import PendingAsset, Writer
from metastore.models import Note
from metastore.records import RunRecord

NAME = "neptune"
SOURCE = "neptune"
_PART = re.compile(r"^(?P<run>.+)_part_(?P<n>\d+)\.parquet$")
PARAM_TYPES = {"float", "int", "string", "bool", "datetime", "string_set"}
FILE_TYPES = {"file", "file_set", "artifact", "file_series"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_SYS_FIELDS = {
    "sys/name", "sys/creation_time", "sys/modification_time", "sys/ping_time", "sys/owner",
    "sys/hostname", "sys/failed", "sys/tags", "sys/description", "sys/forking/parent",
    "sys/forking/step", "sys/custom_run_id", "sys/id",
}


def detect(path: Path) -> bool:
    if path.is_file():
        return bool(_PART.match(path.name))
    return any(_PART.match(p.name) for p in _parquet_files(path, limit=50))


def _parquet_files(path: Path, limit: int | None = None) -> list[Path]:
    found = []
    for pattern in ("*.parquet*", "*/*.parquet*"):
        for p in sorted(path.glob(pattern)):
            if p.is_file():
                found.append(p)
                if limit and len(found) >= limit:
                    return found
    return found


def find_runs(path: Path) -> dict[tuple[Path, str], list[Path]]:
    """(project folder, run file prefix) → its part files in order. Runs without a
    part_0 (interrupted exports leave `.parquet.tmp` parts) are reported as skipped."""
    files = [path] if path.is_file() else _parquet_files(path)
    runs: dict[tuple[Path, str], list[tuple[int, Path]]] = defaultdict(list)
    incomplete: dict[tuple[Path, str], Path] = {}
    for f in files:
        name = f.name.removesuffix(".tmp")
        m = _PART.match(name)
        if not m:
            continue
        key = (f.parent, m.group("run"))
        if f.name.endswith(".tmp"):
            incomplete[key] = f
        else:
            runs[key].append((int(m.group("n")), f))
    out = {}
    for key in sorted(set(runs) | set(incomplete), key=lambda k: (str(k[0]), k[1])):
        parts = sorted(runs.get(key, []))
        if not parts or parts[0][0] != 0:
            out[key] = []  # skipped below, with the reason
        else:
            out[key] = [p for _, p in parts]
    return out


def read_rows(parts: list[Path]) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportFailed(
            "reading neptune-exporter Parquet files needs pyarrow",
            hint="pip install 'metastore[importers]'",
        ) from e
    rows: list[dict] = []
    for part in parts:
        try:
            table = pq.read_table(part)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise SourceError(part, f"not a readable Parquet file ({type(e).__name__}: {e})") from e
        missing = {"run_id", "attribute_path", "attribute_type"} - set(table.column_names)
        if missing:
            raise SourceError(part, f"not a neptune-exporter table (no {', '.join(sorted(missing))} column)")
        _check_columns(part, table)
        rows.extend(table.to_pylist())
    return rows


#: neptune-exporter's columns and the kind of values each holds (pyarrow.types predicates).
COLUMN_KINDS = {
    "project_id": ("text", "is_string", "is_large_string"),
    "run_id": ("text", "is_string", "is_large_string"),
    "attribute_path": ("text", "is_string", "is_large_string"),
    "attribute_type": ("text", "is_string", "is_large_string"),
    "string_value": ("text", "is_string", "is_large_string"),
    "step": ("a number", "is_decimal", "is_floating", "is_integer"),
    "int_value": ("an integer", "is_integer"),
    "float_value": ("a number", "is_floating", "is_integer"),
    "bool_value": ("a boolean", "is_boolean"),
    "timestamp": ("a time", "is_timestamp"),
    "datetime_value": ("a time", "is_timestamp"),
    "string_set_value": ("a list", "is_list", "is_large_list"),
    "file_value": ("a struct", "is_struct"),
    "histogram_value": ("a struct", "is_struct"),
}


def _check_columns(part: Path, table) -> None:
    """Columns of the kind neptune-exporter writes (a column of nulls fits any), and
    the columns naming a row never null: otherwise the part is not read (SourceError)."""
    import pyarrow.types as pat

    for name in table.column_names:
        kind = COLUMN_KINDS.get(name)
        column_type = table.schema.field(name).type
        if kind is None or pat.is_null(column_type):
            continue
        if not any(getattr(pat, test)(column_type) for test in kind[1:]):
            raise SourceError(part, f"column {name} holds {column_type}, not {kind[0]}")
    for name in ("run_id", "attribute_path", "attribute_type"):
        if table.column(name).null_count or pat.is_null(table.schema.field(name).type):
            raise SourceError(part, f"column {name} has rows without a value")


def _value(row: dict) -> Any:
    t = row["attribute_type"]
    if t == "float":
        return row.get("float_value")
    if t == "int":
        return row.get("int_value")
    if t == "string":
        return row.get("string_value")
    if t == "bool":
        return row.get("bool_value")
    if t == "datetime":
        dt = row.get("datetime_value")
        return to_utc(dt).isoformat() if isinstance(dt, datetime) else dt
    if t == "string_set":
        return sorted(row.get("string_set_value") or [])
    return None


def _step_scale(steps: list[Decimal | float | None]) -> int:
    """The power of ten that makes every step whole (1 when they already are)."""
    scale = 1
    for s in steps:
        if s is None:
            continue
        d = Decimal(str(s))
        while (d * scale) != (d * scale).to_integral_value() and scale < 10**6:
            scale *= 10
    return scale


def _asset_kind(attribute: str, filename: str) -> str:
    low = attribute.lower()
    if low.startswith("source_code"):
        return "code"
    if "model" in low or "checkpoint" in low:
        return "model"
    if PurePosixPath(filename).suffix.lower() in IMAGE_SUFFIXES:
        return "plot"
    if "data" in low:
        return "dataset"
    return "other"


def to_record(
    rows: list[dict], files_root: Path | None, report: ImportReport, where: str, project_name: str
) -> tuple[RunRecord, list[PendingAsset], str | None]:
    project_id, run_id = rows[0].get("project_id") or "", rows[0]["run_id"]
    sys: dict[str, Any] = {}
    params: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    series: dict[str, list[dict]] = defaultdict(list)
    texts: dict[str, list[dict]] = defaultdict(list)
    files: list[dict] = []
    histograms = 0
    for row in rows:
        path, t = row["attribute_path"], row["attribute_type"]
        if path.startswith("sys/") and t in PARAM_TYPES:
            sys[path] = _value(row)
            if path not in _SYS_FIELDS and _value(row) is not None:
                tags[f"neptune.{path[4:].replace('/', '.')}"] = _value(row)
        elif t in PARAM_TYPES:
            value = _value(row)
            if value is not None:
                params[param_key(path)] = value
        elif t == "float_series":
            series[path].append(row)
        elif t == "string_series":
            texts[path].append(row)
        elif t in FILE_TYPES:
            files.append(row)
        elif t == "histogram_series":
            histograms += 1
    if histograms:
        report.leave_out("histogram points", histograms)
    metrics = []
    for key, pts in sorted(series.items()):
        scale = _step_scale([p.get("step") for p in pts])
        if scale != 1:
            tags[f"neptune.step_scale.{key}"] = str(scale)
        rows_ = sorted(pts, key=lambda p: (p.get("step") is None, p.get("step") or 0, p.get("timestamp") or datetime.min))
        metrics += points(
            key,
            (
                (
                    int(Decimal(str(p["step"])) * scale) if p.get("step") is not None else None,
                    to_utc(p.get("timestamp")),
                    p.get("float_value") if p.get("float_value") is not None else p.get("int_value"),
                )
                for p in rows_
            ),
            report,
            where,
        )
    for label in sys.get("sys/tags") or []:
        tags[str(label)] = ""
    tags["neptune.project"] = project_id
    parent = sys.get("sys/forking/parent")
    if parent:
        tags["neptune.fork_parent"] = parent
        if sys.get("sys/forking/step") is not None:
            tags["neptune.fork_step"] = str(sys["sys/forking/step"])
    created = to_utc(sys.get("sys/creation_time"))
    stamps = [m.timestamp for m in metrics if m.timestamp is not None]
    ended = to_utc(sys.get("sys/ping_time")) or to_utc(sys.get("sys/modification_time"))
    if stamps and (ended is None or max(stamps) > ended):
        ended = max(stamps)
    started = created or (min(stamps) if stamps else ended)
    notes = []
    if sys.get("sys/description"):
        notes.append(Note(run_id="", time=started, kind="note", author="neptune",
                          text=str(sys["sys/description"])))
    experiment = sys.get("sys/name")
    if not experiment or experiment == "Untitled":
        experiment = project_name
    record = RunRecord(
        experiment=str(experiment),
        name=str(sys.get("sys/custom_run_id") or sys.get("sys/id") or run_id),
        status="failed" if sys.get("sys/failed") else "finished",
        started=started,
        ended=ended,
        user=sys.get("sys/owner"),
        host=sys.get("sys/hostname"),
        params=params,
        metrics=metrics,
        tags=clean_tags(tags),
        notes=notes,
        source=SOURCE,
        source_id=f"{project_id}/{run_id}",
    )
    assets: list[PendingAsset] = []
    for key, pts in sorted(texts.items()):
        lines = [
            f"{p.get('step')}\t{to_utc(p.get('timestamp')).isoformat() if p.get('timestamp') else ''}\t{p.get('string_value') or ''}"
            for p in sorted(pts, key=lambda p: (p.get("step") or 0))
        ]
        assets.append(PendingAsset(
            kind="log", name=f"{project_id}/{run_id}/{key}", relation="produced",
            content=("\n".join(lines) + "\n").encode(), media_type="text/tab-separated-values",
            meta={"attribute": key, "points": len(pts)},
        ))
    missing = 0
    for row in files:
        rel = (row.get("file_value") or {}).get("path")
        if not rel:
            continue
        f = (files_root / rel) if files_root else None
        if f is None or not f.exists():
            missing += 1
            continue
        attr = row["attribute_path"]
        role = f"step {row['step']}" if row["attribute_type"] == "file_series" and row.get("step") is not None else None
        assets.append(PendingAsset(
            kind=_asset_kind(attr, f.name), name=attr, relation="produced", content=f,
            meta={"attribute": attr, "neptune_type": row["attribute_type"], "path": rel},
            role=role,
        ))
    if missing:
        report.warn(
            where, f"{missing} file(s) named in the export are not under "
            f"{files_root or 'a files folder'}; not imported"
        )
    return record, assets, parent


def _files_root(path: Path, options: ImportOptions, project_dir: Path) -> Path | None:
    given = options.extra.get("files_path") or options.extra.get("files")
    if given:
        root = Path(given)
        return root / project_dir.name if (root / project_dir.name).is_dir() else root
    data_root = project_dir.parent
    for candidate in (data_root.parent / "files" / project_dir.name, data_root / "files" / project_dir.name):
        if candidate.is_dir():
            return candidate
    return None


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    runs = find_runs(path)
    if not runs:
        raise ImportFailed(f"no neptune-exporter Parquet files (<run>_part_<n>.parquet) under {path}")
    report.found = len(runs)
    pending: list[tuple[RunRecord, list, str | None, str, str]] = []
    for (project_dir, prefix), parts in runs.items():
        where = str(project_dir / f"{prefix}_part_0.parquet")
        if not parts:
            reason = "export incomplete (no part_0.parquet; neptune-exporter was interrupted)"
            report.skip(where, reason)
            continue
        try:
            rows = read_rows(parts)
            if not rows:
                raise SourceError(parts[0], "the table is empty")
            project_name = (rows[0].get("project_id") or project_dir.name).split("/")[-1]
            record, assets, parent = to_record(
                rows, _files_root(path, options, project_dir), report, where, project_name
            )
        except SourceError as e:
            report.skip(e.where, e.reason)
            continue
        pending.append((record, assets, parent, where, rows[0].get("project_id") or ""))
    # parents before their forks, so forks can point at them
    by_id = {r.source_id: i for i, (r, *_rest) in enumerate(pending)}
    order = sorted(range(len(pending)), key=lambda i: _depth(i, pending, by_id))
    with Writer(store, options, report) as writer:
        for done, i in enumerate(order, 1):
            options.progress(done, len(order))
            record, assets, parent, where, project_id = pending[i]
            writer.add(record, assets, where, parent=f"{project_id}/{parent}" if parent else None)


def _depth(i: int, pending, by_id) -> int:
    depth, seen = 0, set()
    while True:
        record, _, parent, _, project_id = pending[i]
        key = f"{project_id}/{parent}" if parent else None
        if key is None or key not in by_id or key in seen:
            return depth
        seen.add(key)
        i = by_id[key]
        depth += 1
