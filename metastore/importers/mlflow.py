"""MLflow: a `mlruns/` file store, or an MLflow SQL tracking database.

Both are read directly (plain files + PyYAML; SQLAlchemy for the database), with no
MLflow server and no `mlflow` import, so stores written by any MLflow version can be
brought over, including file stores MLflow 3.13+ itself refuses to open.

What maps to what (docs/importing.md has the full table):

- experiment name → experiment (or --experiment); `mlflow.note.content` of the
  experiment → its description; other experiment tags → experiment tags
- run: run_name → name, status (FINISHED/FAILED/KILLED; RUNNING/SCHEDULED → crashed,
  with an event note), start/end time, user, `mlflow.source.git.commit`/`.branch` →
  git commit/branch, `mlflow.source.name` → command, `mlflow.parentRunId` → parent run,
  `mlflow.note.content` → a note; every other tag is kept as a tag
- params (strings in MLflow) → typed params by `values.infer_value`; "/" in a key
  becomes "." (metastore param keys have no "/")
- metric histories: every (step, timestamp, value), duplicates MLflow appends when a
  model is logged dropped; NaN/±inf points cannot be stored and are dropped with a warning
- artifacts: each top-level entry of the run's artifact folder → an asset version the
  run produced (a folder with an `MLmodel` file is a model); MLflow 3 logged models →
  model asset versions; dataset inputs (`mlflow.log_input`) → dataset asset versions
  the run used, referenced by their source URI and MLflow digest, role = the context
- soft-deleted runs (and runs of deleted experiments) are imported soft-deleted
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from metastore.errors import MetastoreError
from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import SourceError
from metastore.importers.values import from_millis, infer_value
from metastore.importers.writer import PendingAsset, Writer
from metastore.models import Note
from metastore.records import MetricPoint, RunRecord

NAME = "mlflow"

RUN_ID = re.compile(r"[0-9a-f]{32}")
#: Folders inside an experiment folder that are not runs.
NOT_RUNS = {"datasets", "models", "traces", "tags", "prompts", "evaluation_datasets"}
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
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


@dataclass
class Dataset:
    name: str
    digest: str
    source: str | None = None
    source_type: str | None = None
    schema: str | None = None
    profile: str | None = None


@dataclass
class SourceRun:
    """One MLflow run as read from either layout, before mapping."""

    run_id: str
    where: str  # file or table, for messages
    experiment: str
    experiment_id: str
    name: str | None = None
    status: str = "FINISHED"
    start_ms: int | None = None
    end_ms: int | None = None
    user: str | None = None
    deleted: bool = False
    experiment_deleted: bool = False
    artifact_uri: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, int, float, int]] = field(default_factory=list)  # key, ts, value, step
    datasets: list[tuple[Dataset, str | None]] = field(default_factory=list)  # (dataset, context)
    models: list[tuple[str, str, str | None]] = field(default_factory=list)  # (id, name, location)

    @property
    def parent(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")


# -- detection ------------------------------------------------------------------------------


def detect(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return _is_mlflow_db(path)
    if not path.is_dir():
        return False
    return _find_root(path) is not None


def _is_mlflow_db(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return False
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        finally:
            con.close()
    except (OSError, sqlite3.Error):
        return False
    return {"experiments", "runs", "params", "metrics", "tags"} <= names


def _is_file_store(path: Path) -> bool:
    """A folder whose experiment folders (e.g. `0/`) hold a meta.yaml with an
    experiment_id (an `mlruns/` folder)."""
    if not path.is_dir():
        return False
    for child in _listdir(path):
        meta = path / child / "meta.yaml"
        if child != ".trash" and meta.is_file():
            try:
                head = meta.read_text(errors="replace")[:4000]
            except OSError:
                continue
            if "experiment_id" in head and "artifact_location" in head:
                return True
    return False


def _find_root(path: Path) -> Path | None:
    """The database file or mlruns folder at `path` (a project folder may hold either;
    the database wins, since its artifacts live in a `mlruns/` beside it)."""
    if path.is_file():
        return path if _is_mlflow_db(path) else None
    if _is_file_store(path):
        return path
    db = path / "mlflow.db"
    if db.is_file() and _is_mlflow_db(db):
        return db
    if _is_file_store(path / "mlruns"):
        return path / "mlruns"
    return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# -- import ------------------------------------------------------------------------------


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    path = Path(path)
    root = _find_root(path)
    if root is None:
        raise ImportFailed(
            f"{path} is neither an MLflow mlruns/ folder nor an MLflow database",
            hint="point at the mlruns/ folder, at mlflow.db, or pass a database URL",
        )
    if root.is_file():
        reader = SQLReader(_sqlite_url(root), artifact_roots=[root.parent, root.parent / "mlruns"])
    else:
        reader = FileReader(root)
    _import(store, reader, options, report)


def import_url(
    store, url: str, *, experiment: str | None = None, dry_run: bool = False, copy: bool = True,
    progress=None, artifact_root: str | os.PathLike | None = None,
) -> ImportReport:
    """Import an MLflow SQL tracking database given by a SQLAlchemy URL
    (sqlite:///mlflow.db, postgresql://…, mysql://…). `artifact_root` is where to look
    for artifacts whose recorded absolute paths no longer exist (e.g. after a copy)."""
    report = ImportReport(source=NAME, path=_safe(url))
    options = ImportOptions(experiment=experiment, dry_run=dry_run, copy=copy,
                            extra={"artifact_root": artifact_root} if artifact_root else {})
    if progress is not None:
        options.progress = progress
    import_url_source(store, url, options, report)
    return report


#: options of `metastore import mlflow URL` beyond the common ones
URL_OPTIONS = frozenset({"artifact_root"})


def accepts_url(url: str) -> bool:
    """A SQLAlchemy URL of a database MLflow can track into."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    return scheme in ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "mssql")


def import_url_source(store, url: str, options: ImportOptions, report: ImportReport) -> None:
    """The importer interface's URL entry: an MLflow tracking database."""
    report.path = _safe(url)
    artifact_root = options.extra.get("artifact_root")
    roots = [Path(artifact_root)] if artifact_root else []
    if url.startswith("sqlite:"):
        db = Path(url.split(":///", 1)[-1]) if ":///" in url else None
        if db is None or not db.is_file():
            raise ImportFailed(f"no MLflow database at {url}")
        roots += [db.parent, db.parent / "mlruns"]
        url = _sqlite_url(db)
    _import(store, SQLReader(url, artifact_roots=roots), options, report)


def _safe(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _sqlite_url(path: Path) -> str:
    # read-only: importing must never change (or lock for writing) the user's MLflow db
    return f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"


def _import(store, reader, options: ImportOptions, report: ImportReport) -> None:
    runs = list(reader.runs(report))
    # A parent before its children, so the child can point at the parent's new id.
    runs = _parents_first(runs)
    total = report.found
    done = report.found - len(runs)  # the unreadable ones, already skipped
    options.progress(done, total)
    experiments_seen: set[str] = set()
    with Writer(store, options, report) as writer:
        for src in runs:
            done += 1
            try:
                record, assets = _map(src, options, report, reader)
            except SourceError as e:
                report.skip(e.where, e.reason)
                options.progress(done, total)
                continue
            if not options.dry_run and record.experiment not in experiments_seen:
                experiments_seen.add(record.experiment)
                _experiment_meta(store, reader, src, record.experiment, options)
            writer.add(record, assets, src.where, deleted=src.deleted, parent=src.parent)
            options.progress(done, total)
    if not options.dry_run and options.experiment is None:
        _delete_deleted_experiments(store, runs)


def _delete_deleted_experiments(store, runs: list[SourceRun]) -> None:
    """An experiment deleted in MLflow is soft-deleted here too, once nothing live is in it."""
    for name in sorted({r.experiment for r in runs if r.experiment_deleted}):
        try:
            if not store.list_runs(name):
                store.delete_experiment(name)
        except MetastoreError:
            continue


def _parents_first(runs: list[SourceRun]) -> list[SourceRun]:
    by_id = {r.run_id: r for r in runs}
    placed: set[str] = set()
    out: list[SourceRun] = []

    def place(r: SourceRun, chain: set[str]) -> None:
        if r.run_id in placed:
            return
        parent = by_id.get(r.parent or "")
        if parent is not None and parent.run_id not in chain:
            place(parent, chain | {r.run_id})
        placed.add(r.run_id)
        out.append(r)

    for r in sorted(runs, key=lambda r: (r.start_ms or 0, r.run_id)):
        place(r, {r.run_id})
    return out


def _experiment_meta(store, reader, src: SourceRun, name: str, options: ImportOptions) -> None:
    """Carry the experiment's description and tags over (once per import)."""
    if options.experiment is not None:
        store.create_experiment(name)
        return
    tags = reader.experiment_tags(src.experiment_id)
    description = tags.pop("mlflow.note.content", None)
    exp = store.create_experiment(name, description=description)
    tags = {k: v for k, v in tags.items() if len(v) <= TAG_LIMIT}
    tags["mlflow.experiment_id"] = src.experiment_id
    store.set_tags("experiment", str(exp.id), tags)


# -- mapping one MLflow run ---------------------------------------------------------------


def _map(src: SourceRun, options: ImportOptions, report: ImportReport, reader):
    tags = dict(src.tags)
    status = src.status.upper()
    notes: list[Note] = []
    started = from_millis(src.start_ms)
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
            report.warnings.append(f"{src.where}: param {key!r} collides with {mkey!r}; kept the first")
            continue
        params[mkey] = infer_value(text)
    points, dropped = _metric_points(src.metrics)
    for key, n in sorted(dropped.items()):
        report.warnings.append(
            f"{src.where}: metric {key!r}: {n} NaN/inf point(s) dropped (the store holds finite values only)"
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
        ended=from_millis(src.end_ms),
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
        if not math.isfinite(value):
            dropped[key] += 1
            continue
        points.append(MetricPoint(key=key, value=value, step=step, timestamp=from_millis(ts)))
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
    if folder is None and src.artifact_uri and not _is_local(src.artifact_uri):
        report.warnings.append(
            f"{src.where}: artifacts at {src.artifact_uri} are not on this machine; "
            "their location is kept in the run's context"
        )
    if folder is not None:
        for entry in _listdir(folder):
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
            report.warnings.append(
                f"{src.where}: logged model {model_id} ({name}) has no readable artifacts "
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


def _is_local(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith("mlflow-artifacts:")


def _uri_path(uri: str) -> Path:
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def _reroot(uri: str | None, roots: list[Path]) -> Path | None:
    """The local folder of an artifact URI; when the recorded absolute path is gone
    (the store was copied or rsynced), the longest tail of it found under a root."""
    if not uri or not _is_local(uri):
        return None
    p = _uri_path(uri)
    if p.exists():
        return p
    parts = p.parts[1:] if p.is_absolute() else p.parts
    for i in range(len(parts)):
        for root in roots:
            candidate = root.joinpath(*parts[i:])
            if candidate.exists():
                return candidate
    return None


# -- reading the file store -----------------------------------------------------------------


def _yaml(path: Path) -> dict:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = path.read_text()
    except FileNotFoundError as e:
        raise SourceError(path, "missing") from e
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(path, f"cannot be read ({e})") from e
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        reason = str(e).splitlines()[0]
        raise SourceError(path, f"is not valid YAML ({reason})") from e
    if not isinstance(data, dict):
        raise SourceError(path, "is empty or not a mapping (truncated?)")
    return data


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(path, f"cannot be read ({e})") from e


def _files(folder: Path) -> list[tuple[str, Path]]:
    """(key, path) for every file below `folder`; '/' in a key is a subfolder."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        rel = os.path.relpath(dirpath, folder)
        for name in sorted(filenames):
            key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
            out.append((key, Path(dirpath, name)))
    return out


def _read_kv_dir(folder: Path) -> dict[str, str]:
    """params/ and tags/: file name (with subfolders for '/' in keys) → content."""
    return {key: _text(p) for key, p in _files(folder)}


def _read_metric_file(path: Path, key: str) -> list[tuple[str, int, float, int]]:
    points = []
    text = _text(path)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        # "ts value" (pre-step MLflow), "ts value step", "ts value step ds_name ds_digest"
        if len(parts) < 2 or len(parts) > 5:
            raise SourceError(path, f"line {n} is not 'timestamp value step': {line[:60]!r}")
        try:
            ts = int(parts[0])
            value = float(parts[1])
            step = int(parts[2]) if len(parts) >= 3 else 0
        except ValueError as e:
            raise SourceError(path, f"line {n}: {e}") from e
        points.append((key, ts, value, step))
    return points


class FileReader:
    """Reads a `mlruns/` folder."""

    def __init__(self, root: Path):
        self.root = root
        self._exp_tags: dict[str, dict[str, str]] = {}
        self._datasets: dict[Path, dict[str, Dataset]] = {}
        self._models: dict[Path, dict[str, list[tuple[str, str, str | None]]]] = {}

    def experiments(self) -> Iterator[tuple[Path, bool]]:
        for entry in _listdir(self.root):
            folder = self.root / entry
            if entry == ".trash":
                for deleted in _listdir(folder):
                    if (folder / deleted / "meta.yaml").is_file():
                        yield folder / deleted, True
            elif entry != "models" and (folder / "meta.yaml").is_file():
                yield folder, False

    def runs(self, report: ImportReport) -> Iterator[SourceRun]:
        for exp_dir, exp_deleted in self.experiments():
            try:
                meta = _yaml(exp_dir / "meta.yaml")
            except SourceError as e:
                # Without the experiment's name its runs cannot be placed: skip each.
                for entry in self._run_dirs(exp_dir):
                    report.found += 1
                    report.skip(exp_dir / entry, f"its experiment's {e.where} {e.reason}")
                continue
            exp_name = str(meta.get("name") or exp_dir.name)
            exp_id = str(meta.get("experiment_id") or exp_dir.name)
            exp_deleted = exp_deleted or meta.get("lifecycle_stage") == "deleted"
            self._exp_tags[exp_id] = _read_kv_dir(exp_dir / "tags")
            for entry in self._run_dirs(exp_dir):
                report.found += 1
                try:
                    run = self._run(exp_dir / entry, exp_name, exp_id)
                except SourceError as e:
                    report.skip(e.where, e.reason)
                    continue
                run.deleted = run.deleted or exp_deleted
                run.experiment_deleted = exp_deleted
                yield run

    def _run_dirs(self, exp_dir: Path) -> list[str]:
        return [
            e for e in _listdir(exp_dir)
            if e not in NOT_RUNS and (exp_dir / e).is_dir() and not e.startswith(".")
        ]

    def _run(self, folder: Path, exp_name: str, exp_id: str) -> SourceRun:
        meta = _yaml(folder / "meta.yaml")
        run_id = str(meta.get("run_id") or meta.get("run_uuid") or "")
        if not run_id:
            raise SourceError(folder / "meta.yaml", "has no run_id (truncated?)")
        status = meta.get("status", 3)
        status = STATUS_NAMES.get(status, status) if isinstance(status, int) else str(status)
        run = SourceRun(
            run_id=run_id,
            where=str(folder),
            experiment=exp_name,
            experiment_id=exp_id,
            name=meta.get("run_name") or None,
            status=status,
            start_ms=meta.get("start_time"),
            end_ms=meta.get("end_time"),
            user=meta.get("user_id") or None,
            deleted=meta.get("lifecycle_stage") == "deleted",
            artifact_uri=meta.get("artifact_uri"),
        )
        run.params = _read_kv_dir(folder / "params")
        run.tags = _read_kv_dir(folder / "tags")
        for key, p in _files(folder / "metrics"):
            run.metrics += _read_metric_file(p, key)
        datasets = self._experiment_datasets(folder.parent)
        inputs = folder / "inputs"
        for entry in _listdir(inputs):
            m = _yaml(inputs / entry / "meta.yaml")
            if m.get("source_type") != "DATASET":
                continue
            ds = datasets.get(str(m.get("source_id")))
            if ds is None:
                raise SourceError(inputs / entry / "meta.yaml", f"names dataset {m.get('source_id')} which is missing")
            context = (m.get("tags") or {}).get("mlflow.data.context")
            run.datasets.append((ds, context))
        run.models = self._experiment_models(folder.parent).get(run_id, [])
        return run

    def _experiment_datasets(self, exp_dir: Path) -> dict[str, Dataset]:
        if exp_dir not in self._datasets:
            found = {}
            for entry in _listdir(exp_dir / "datasets"):
                try:
                    m = _yaml(exp_dir / "datasets" / entry / "meta.yaml")
                except SourceError:
                    continue  # reported when a run names it
                found[entry] = Dataset(
                    name=str(m.get("name") or entry),
                    digest=str(m.get("digest") or entry),
                    source=m.get("source"),
                    source_type=m.get("source_type"),
                    schema=m.get("schema"),
                    profile=m.get("profile"),
                )
            self._datasets[exp_dir] = found
        return self._datasets[exp_dir]

    def _experiment_models(self, exp_dir: Path) -> dict[str, list]:
        if exp_dir not in self._models:
            found: dict[str, list] = defaultdict(list)
            for entry in _listdir(exp_dir / "models"):
                try:
                    m = _yaml(exp_dir / "models" / entry / "meta.yaml")
                except SourceError:
                    continue
                if m.get("source_run_id"):
                    location = m.get("artifact_location") or str(exp_dir / "models" / entry / "artifacts")
                    if self.local_path(location) is None:
                        location = str(exp_dir / "models" / entry / "artifacts")
                    found[m["source_run_id"]].append(
                        (str(m.get("model_id") or entry), str(m.get("name") or "model"), location)
                    )
            self._models[exp_dir] = found
        return self._models[exp_dir]

    def experiment_tags(self, exp_id: str) -> dict[str, str]:
        return dict(self._exp_tags.get(exp_id, {}))

    def local_path(self, uri: str) -> Path | None:
        return _reroot(uri, [self.root, self.root.parent])

    def artifact_dir(self, src: SourceRun) -> Path | None:
        own = Path(src.where) / "artifacts"
        found = _reroot(src.artifact_uri, [self.root, self.root.parent])
        if found is None and own.is_dir():
            found = own
        return found if found is not None and found.is_dir() else None


# -- reading the SQL store ------------------------------------------------------------------


class SQLReader:
    """Reads an MLflow tracking database through SQLAlchemy (tables read directly)."""

    def __init__(self, url: str, artifact_roots: list[Path]):
        import sqlalchemy as sa

        from metastore.database import normalize_url

        self.url = url
        self.roots = artifact_roots
        try:
            # postgresql:// and mysql:// get the drivers metastore ships with
            target = url if url.startswith("sqlite:") else normalize_url(url)
            self.engine = sa.create_engine(target, poolclass=sa.pool.NullPool)
            with self.engine.connect() as conn:
                self.tables = set(sa.inspect(conn).get_table_names())
        except Exception as e:  # noqa: BLE001 - any driver error means "cannot open"
            raise ImportFailed(f"cannot open the MLflow database {_safe(url)}: {e}") from e
        missing = {"experiments", "runs", "params", "metrics", "tags"} - self.tables
        if missing:
            raise ImportFailed(
                f"{_safe(url)} is not an MLflow tracking database (no table {', '.join(sorted(missing))})"
            )
        self._exp_tags: dict[str, dict[str, str]] = defaultdict(dict)

    def _rows(self, conn, sql: str):
        import sqlalchemy as sa

        return conn.execute(sa.text(sql)).mappings()

    def runs(self, report: ImportReport) -> Iterator[SourceRun]:
        with self.engine.connect() as conn:
            exps = {
                str(r["experiment_id"]): (r["name"], r["lifecycle_stage"])
                for r in self._rows(conn, "select experiment_id, name, lifecycle_stage from experiments")
            }
            if "experiment_tags" in self.tables:
                for r in self._rows(conn, "select experiment_id, key, value from experiment_tags"):
                    self._exp_tags[str(r["experiment_id"])][r["key"]] = r["value"]
            params: dict[str, dict] = defaultdict(dict)
            for r in self._rows(conn, "select run_uuid, key, value from params"):
                params[r["run_uuid"]][r["key"]] = r["value"]
            tags: dict[str, dict] = defaultdict(dict)
            for r in self._rows(conn, "select run_uuid, key, value from tags"):
                tags[r["run_uuid"]][r["key"]] = r["value"]
            metrics: dict[str, list] = defaultdict(list)
            has_nan = "is_nan" in self._columns(conn, "metrics")
            sql = "select run_uuid, key, value, timestamp, step" + (", is_nan" if has_nan else "")
            for r in self._rows(conn, sql + " from metrics"):
                value = float("nan") if has_nan and r["is_nan"] else r["value"]
                metrics[r["run_uuid"]].append(
                    (r["key"], int(r["timestamp"] or 0), float(value), int(r["step"] or 0))
                )
            datasets = self._datasets(conn)
            models = self._models(conn)
            rows = list(self._rows(conn, "select * from runs"))
        for r in rows:
            report.found += 1
            run_id = r["run_uuid"]
            where = f"{_safe(self.url.split('?')[0])} runs/{run_id}"
            exp_id = str(r["experiment_id"])
            if exp_id not in exps:
                report.skip(where, f"its experiment {exp_id} is missing from the database")
                continue
            exp_name, exp_stage = exps[exp_id]
            yield SourceRun(
                run_id=run_id,
                where=where,
                experiment=exp_name,
                experiment_id=exp_id,
                name=r.get("name") or None,
                status=r.get("status") or "FINISHED",
                start_ms=r.get("start_time"),
                end_ms=r.get("end_time"),
                user=r.get("user_id") or None,
                deleted=r.get("lifecycle_stage") == "deleted" or exp_stage == "deleted",
                experiment_deleted=exp_stage == "deleted",
                artifact_uri=r.get("artifact_uri"),
                params=params.get(run_id, {}),
                tags=tags.get(run_id, {}),
                metrics=metrics.get(run_id, []),
                datasets=datasets.get(run_id, []),
                models=models.get(run_id, []),
            )

    def _columns(self, conn, table: str) -> set[str]:
        import sqlalchemy as sa

        return {c["name"] for c in sa.inspect(conn).get_columns(table)}

    def _datasets(self, conn) -> dict[str, list]:
        out: dict[str, list] = defaultdict(list)
        if not {"datasets", "inputs"} <= self.tables:
            return out
        by_id = {
            r["dataset_uuid"]: Dataset(
                name=r["name"], digest=r["digest"], source=r["dataset_source"],
                source_type=r["dataset_source_type"], schema=r["dataset_schema"],
                profile=r["dataset_profile"],
            )
            for r in self._rows(conn, "select * from datasets")
        }
        contexts: dict[str, str] = {}
        if "input_tags" in self.tables:
            for r in self._rows(conn, "select input_uuid, name, value from input_tags"):
                if r["name"] == "mlflow.data.context":
                    contexts[r["input_uuid"]] = r["value"]
        for r in self._rows(
            conn,
            "select input_uuid, source_id, destination_id from inputs "
            "where source_type = 'DATASET' and destination_type = 'RUN'",
        ):
            ds = by_id.get(r["source_id"])
            if ds is not None:
                out[r["destination_id"]].append((ds, contexts.get(r["input_uuid"])))
        return out

    def _models(self, conn) -> dict[str, list]:
        out: dict[str, list] = defaultdict(list)
        if "logged_models" not in self.tables:
            return out
        for r in self._rows(
            conn, "select model_id, name, artifact_location, source_run_id from logged_models"
        ):
            if r["source_run_id"]:
                out[r["source_run_id"]].append((r["model_id"], r["name"], r["artifact_location"]))
        return out

    def experiment_tags(self, exp_id: str) -> dict[str, str]:
        return dict(self._exp_tags.get(exp_id, {}))

    def local_path(self, uri: str) -> Path | None:
        return _reroot(uri, self.roots)

    def artifact_dir(self, src: SourceRun) -> Path | None:
        found = _reroot(src.artifact_uri, self.roots)
        return found if found is not None and found.is_dir() else None


__all__ = ["NAME", "URL_OPTIONS", "accepts_url", "detect", "import_source", "import_url",
           "import_url_source"]
