"""One MLflow run (a `SourceRun`, from either layout) as a `RunRecord` and the asset
versions it used and produced."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from metastore.importers import ImportOptions, ImportReport
from metastore.importers._util import SourceError
from metastore.importers.mlflow.source import SourceRun, is_local, listdir
from metastore.importers.values import finite, infer_value, to_utc
from metastore.importers.writer import PendingAsset
from metastore.models import Note
from metastore.records import MetricPoint, RunRecord

NAME = "mlflow"
STATUS_MAP = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}
#: MLflow's SQL store keeps +-inf as +-DBL_MAX.
DBL_MAX = 1.7976931348623157e308
#: Tags that become run fields rather than tags.
FIELD_TAGS = {
    "mlflow.runName",
    "mlflow.user",
    "mlflow.parentRunId",
    "mlflow.source.git.commit",
    "mlflow.source.git.branch",
    "mlflow.source.name",
    "mlflow.note.content",
}
TAG_LIMIT = 500
PLOT_EXT = {".png", ".jpg", ".jpeg", ".svg", ".gif", ".html", ".pdf"}
CONFIG_EXT = {".json", ".yaml", ".yml", ".toml", ".cfg", ".ini"}
LOG_EXT = {".txt", ".log", ".out", ".err"}
DATA_EXT = {".csv", ".tsv", ".parquet", ".feather", ".npy", ".npz"}




def map_run(src: SourceRun, options: ImportOptions, report: ImportReport, reader):
    tags = dict(src.tags)
    status = src.status.upper()
    notes: list[Note] = []
    started = to_utc(src.start_ms, unit="ms")
    if status in STATUS_MAP:
        mapped = STATUS_MAP[status]
    elif status in ("RUNNING", "SCHEDULED"):
        mapped = "crashed"
        notes.append(
            Note(
                kind="event",
                author="metastore import",
                time=started,
                text=f"MLflow reported this run as {status} when it was imported; nothing will "
                "report its end here, so it is recorded as crashed",
            )
        )
    else:
        raise SourceError(src.where, f"unknown run status {src.status!r}")
    note = tags.get("mlflow.note.content")
    if note and note.strip():
        notes.append(Note(kind="note", author=src.user or tags.get("mlflow.user"), time=started, text=note))
    params = {}
    for key, text in src.params.items():
        mkey = key.replace("/", ".")
        if mkey in params:
            report.warn(src.where, f"param {key!r} collides with {mkey!r}; kept the first")
            continue
        params[mkey] = infer_value(text)
    points, dropped = _metric_points(src.metrics)
    for key, n in sorted(dropped.items()):
        report.warn(
            src.where, f"metric {key!r}: {n} NaN/inf point(s) dropped (the store holds finite values only)"
        )
    kept_tags, long_tags = {}, {}
    for key, value in tags.items():
        if key in FIELD_TAGS:
            continue
        if value is not None and len(value) > TAG_LIMIT:
            long_tags[key] = value
        else:
            kept_tags[key] = value
    context = {
        "mlflow": {
            "run_id": src.run_id,
            "experiment_id": src.experiment_id,
            "experiment": src.experiment,
            "artifact_uri": src.artifact_uri,
        }
    }
    if long_tags:
        context["mlflow"]["long_tags"] = long_tags
    record = RunRecord(
        experiment=options.experiment or src.experiment,
        name=src.name or tags.get("mlflow.runName"),
        status=mapped,
        started=started,
        ended=to_utc(src.end_ms, unit="ms"),
        user=src.user or tags.get("mlflow.user"),
        git_commit=(tags.get("mlflow.source.git.commit") or None),
        git_branch=tags.get("mlflow.source.git.branch") or None,
        command=tags.get("mlflow.source.name") or None,
        context=context,
        params=params,
        metrics=points,
        tags=kept_tags,
        notes=notes,
        source=NAME,
        source_id=src.run_id,
    )
    if record.git_commit and len(record.git_commit) > 64:
        record.git_commit = record.git_commit[:64]
    assets = _dataset_assets(src) + _artifact_assets(src, reader, report)
    return record, assets


def _metric_points(raw: list[tuple[str, int, float, int]]):
    seen = set()
    points: list[MetricPoint] = []
    dropped: dict[str, int] = defaultdict(int)
    for key, ts, value, step in raw:
        ident = (key, ts, repr(value), step)  # repr: NaN equals itself here
        if ident in seen:
            continue
        seen.add(ident)
        if abs(value) >= DBL_MAX:
            value = math.copysign(math.inf, value)
        if not finite(value):
            dropped[key] += 1
            continue
        points.append(MetricPoint(key=key, value=value, step=step, timestamp=to_utc(ts, unit="ms")))
    return points, dropped


def _dataset_assets(src: SourceRun) -> list[PendingAsset]:
    specs = []
    for ds, context in src.datasets:
        uri = None
        if ds.source:
            try:
                uri = json.loads(ds.source).get("uri")
            except (ValueError, AttributeError):
                uri = ds.source
        meta = {"mlflow_digest": ds.digest, "source_type": ds.source_type}
        for k in ("schema", "profile"):
            value = getattr(ds, k)
            if value:
                try:
                    meta[k] = json.loads(value)
                except ValueError:
                    meta[k] = value
        specs.append(
            PendingAsset(
                kind="dataset",
                name=ds.name,
                relation="used",
                uri=uri or f"mlflow-dataset:{ds.name}@{ds.digest}",
                digest=f"mlflow:{ds.digest}",
                meta={k: v for k, v in meta.items() if v is not None},
                role=context,
            )
        )
    return specs


def _kind_of(path: Path) -> str:
    if path.is_dir():
        return "model" if (path / "MLmodel").is_file() else "other"
    ext = path.suffix.lower()
    if path.name == "MLmodel":
        return "model"
    if ext in PLOT_EXT:
        return "plot"
    if ext in CONFIG_EXT:
        return "config"
    if ext in LOG_EXT:
        return "log"
    if ext in DATA_EXT:
        return "dataset"
    if ext in (".pkl", ".pickle", ".joblib", ".pt", ".pth", ".onnx", ".h5", ".keras", ".skops"):
        return "model"
    if ext in (".ipynb",):
        return "notebook"
    return "other"


def _artifact_assets(src: SourceRun, reader, report: ImportReport) -> list[PendingAsset]:
    specs: list[PendingAsset] = []
    folder = reader.artifact_dir(src)
    if folder is None and src.artifact_uri and not is_local(src.artifact_uri):
        report.warn(
            src.where, f"artifacts at {src.artifact_uri} are not on this machine; "
            "their location is kept in the run's context"
        )
    if folder is not None:
        for entry in listdir(folder):
            p = folder / entry
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                continue
            if p.is_dir() and not any(x.is_file() for x in p.rglob("*")):
                continue
            specs.append(
                PendingAsset(
                    kind=_kind_of(p), name=entry, relation="produced", content=p,
                    meta={"mlflow_artifact_path": entry},
                )
            )
    for model_id, name, location in src.models:
        p = reader.local_path(location) if location else None
        if p is None or not p.is_dir():
            report.warn(
                src.where, f"logged model {model_id} ({name}) has no readable artifacts "
                f"at {location}; not imported"
            )
            continue
        specs.append(
            PendingAsset(
                kind="model", name=name, relation="produced", content=p,
                meta={"mlflow_model_id": model_id},
            )
        )
    return specs
