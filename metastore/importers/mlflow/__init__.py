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

The package: `files` reads a `mlruns/` folder, `sql` a tracking database; both are
`source.Reader`s handing over `source.SourceRun`s, which `mapping` turns into
`RunRecord`s for the one writer. A run's source id is MLflow's run id (32 hex digits).
"""

from __future__ import annotations

import os
from pathlib import Path

from metastore.errors import MetastoreError
from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import SourceError
from metastore.importers.mlflow import registry
from metastore.importers.mlflow.files import FileReader, is_file_store
from metastore.importers.mlflow.mapping import NAME, TAG_LIMIT, map_run
from metastore.importers.mlflow.source import Reader, SourceRun, safe_url
from metastore.importers.mlflow.sql import SQLReader, is_mlflow_db, sqlite_url
from metastore.importers.writer import Writer


def detect(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return is_mlflow_db(path)
    if not path.is_dir():
        return False
    return _find_root(path) is not None


def _find_root(path: Path) -> Path | None:
    """The database file or mlruns folder at `path` (a project folder may hold either;
    the database wins, since its artifacts live in a `mlruns/` beside it)."""
    if path.is_file():
        return path if is_mlflow_db(path) else None
    if is_file_store(path):
        return path
    db = path / "mlflow.db"
    if db.is_file() and is_mlflow_db(db):
        return db
    if is_file_store(path / "mlruns"):
        return path / "mlruns"
    return None


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
        reader = SQLReader(sqlite_url(root), artifact_roots=[root.parent, root.parent / "mlruns"])
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
    report = ImportReport(source=NAME, path=safe_url(url))
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
    report.path = safe_url(url)
    artifact_root = options.extra.get("artifact_root")
    roots = [Path(artifact_root)] if artifact_root else []
    if url.startswith("sqlite:"):
        db = Path(url.split(":///", 1)[-1]) if ":///" in url else None
        if db is None or not db.is_file():
            raise ImportFailed(f"no MLflow database at {url}")
        roots += [db.parent, db.parent / "mlruns"]
        url = sqlite_url(db)
    _import(store, SQLReader(url, artifact_roots=roots), options, report)


def _import(store, reader: Reader, options: ImportOptions, report: ImportReport) -> None:
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
                record, assets = map_run(src, options, report, reader)
            except SourceError as e:
                report.skip(e.where, e.reason)
                options.progress(done, total)
                continue
            if not options.dry_run and record.experiment not in experiments_seen:
                experiments_seen.add(record.experiment)
                _experiment_meta(store, reader, src, record.experiment, options)
            writer.add(record, assets, src.where, deleted=src.deleted, parent=src.parent)
            options.progress(done, total)
    # the registry after the runs: its versions point at the runs that produced them
    registry.import_registry(store, reader, {r.run_id: r for r in runs}, writer, options, report)
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


def _experiment_meta(store, reader: Reader, src: SourceRun, name: str, options: ImportOptions) -> None:
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


__all__ = ["NAME", "URL_OPTIONS", "accepts_url", "detect", "import_source", "import_url",
           "import_url_source"]
