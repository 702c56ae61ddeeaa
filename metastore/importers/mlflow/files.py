"""Reading an MLflow `mlruns/` file store: plain files and PyYAML, no `mlflow` import
(MLflow 3.13+ itself refuses to open a file store without MLFLOW_ALLOW_FILE_STORE)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from metastore.importers import ImportReport
from metastore.importers._util import SourceError
from metastore.importers.mlflow.source import (
    Dataset,
    RegisteredModel,
    RegisteredVersion,
    SourceRun,
    listdir,
    reroot,
)

#: Folders inside an experiment folder that are not runs.
NOT_RUNS = {"datasets", "models", "traces", "tags", "prompts", "evaluation_datasets"}
STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def is_file_store(path: Path) -> bool:
    """A folder whose experiment folders (e.g. `0/`) hold a meta.yaml with an
    experiment_id (an `mlruns/` folder)."""
    if not path.is_dir():
        return False
    for child in listdir(path):
        meta = path / child / "meta.yaml"
        if child != ".trash" and meta.is_file():
            try:
                head = meta.read_text(errors="replace")[:4000]
            except OSError:
                continue
            if "experiment_id" in head and "artifact_location" in head:
                return True
    return False


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


def _field(meta: dict, path: Path, key: str, kind: str):
    """A meta.yaml value of the kind MLflow writes there ("text": a string, or a number
    read back as one; "int"; "mapping"), or None when missing. Another type is a damaged
    file: SourceError, so what it describes is skipped with the reason."""
    value = meta.get(key)
    if value is None:
        return None
    if kind == "text" and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "mapping" and isinstance(value, dict):
        return value
    raise SourceError(path, f"has {key}: {str(value)[:40]!r}, which is not {kind}")


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
        self._logged: dict[str, str] = {}  # logged model id → where its files are

    def experiments(self) -> Iterator[tuple[Path, bool]]:
        for entry in listdir(self.root):
            folder = self.root / entry
            if entry == ".trash":
                for deleted in listdir(folder):
                    if (folder / deleted / "meta.yaml").is_file():
                        yield folder / deleted, True
            elif entry != "models" and (folder / "meta.yaml").is_file():
                yield folder, False

    def runs(self, report: ImportReport) -> Iterator[SourceRun]:
        for exp_dir, exp_deleted in self.experiments():
            try:
                path = exp_dir / "meta.yaml"
                meta = _yaml(path)
                exp_name = _field(meta, path, "name", "text") or exp_dir.name
                exp_id = _field(meta, path, "experiment_id", "text") or exp_dir.name
                stage = _field(meta, path, "lifecycle_stage", "text")
            except SourceError as e:
                # Without the experiment's name its runs cannot be placed: skip each.
                for entry in self._run_dirs(exp_dir):
                    report.found += 1
                    report.skip(exp_dir / entry, f"its experiment's {e.where} {e.reason}")
                continue
            # GenAI traces (<exp>/traces/<id>/): not runs, counted as left out
            report.leave_out("traces", len([t for t in listdir(exp_dir / "traces")
                                            if (exp_dir / "traces" / t).is_dir()]))
            exp_deleted = exp_deleted or stage == "deleted"
            try:
                self._exp_tags[exp_id] = _read_kv_dir(exp_dir / "tags")
            except SourceError as e:
                # the experiment's own tags are lost, not its runs
                report.warn(e.where, f"{e.reason}; the experiment's tags were not imported")
                self._exp_tags[exp_id] = {}
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
            e for e in listdir(exp_dir)
            if e not in NOT_RUNS and (exp_dir / e).is_dir() and not e.startswith(".")
        ]

    def _run(self, folder: Path, exp_name: str, exp_id: str) -> SourceRun:
        path = folder / "meta.yaml"
        meta = _yaml(path)
        run_id = _field(meta, path, "run_id", "text") or _field(meta, path, "run_uuid", "text")
        if not run_id:
            raise SourceError(path, "has no run_id (truncated?)")
        status = meta.get("status", 3)
        if isinstance(status, int) and not isinstance(status, bool):
            status = STATUS_NAMES.get(status, str(status))
        else:
            status = _field(meta, path, "status", "text") or "FINISHED"
        run = SourceRun(
            run_id=run_id,
            where=str(folder),
            experiment=exp_name,
            experiment_id=exp_id,
            name=_field(meta, path, "run_name", "text") or None,
            status=status,
            start_ms=_field(meta, path, "start_time", "int"),
            end_ms=_field(meta, path, "end_time", "int"),
            user=_field(meta, path, "user_id", "text") or None,
            deleted=_field(meta, path, "lifecycle_stage", "text") == "deleted",
            artifact_uri=_field(meta, path, "artifact_uri", "text"),
        )
        run.params = _read_kv_dir(folder / "params")
        run.tags = _read_kv_dir(folder / "tags")
        for key, p in _files(folder / "metrics"):
            run.metrics += _read_metric_file(p, key)
        datasets = self._experiment_datasets(folder.parent)
        inputs = folder / "inputs"
        for entry in listdir(inputs):
            path = inputs / entry / "meta.yaml"
            m = _yaml(path)
            if _field(m, path, "source_type", "text") != "DATASET":
                continue
            ds = datasets.get(str(_field(m, path, "source_id", "text")))
            if ds is None:
                raise SourceError(path, f"names dataset {m.get('source_id')} which is missing")
            tags = _field(m, path, "tags", "mapping") or {}
            context = _field(tags, path, "mlflow.data.context", "text")
            run.datasets.append((ds, context))
        run.models = self._experiment_models(folder.parent).get(run_id, [])
        return run

    def _experiment_datasets(self, exp_dir: Path) -> dict[str, Dataset]:
        if exp_dir not in self._datasets:
            found = {}
            for entry in listdir(exp_dir / "datasets"):
                path = exp_dir / "datasets" / entry / "meta.yaml"
                try:
                    m = _yaml(path)
                    found[entry] = Dataset(
                        name=_field(m, path, "name", "text") or entry,
                        digest=_field(m, path, "digest", "text") or entry,
                        source=_field(m, path, "source", "text"),
                        source_type=_field(m, path, "source_type", "text"),
                        schema=_field(m, path, "schema", "text"),
                        profile=_field(m, path, "profile", "text"),
                    )
                except SourceError:
                    continue  # reported when a run names it
            self._datasets[exp_dir] = found
        return self._datasets[exp_dir]

    def _experiment_models(self, exp_dir: Path) -> dict[str, list]:
        if exp_dir not in self._models:
            found: dict[str, list] = defaultdict(list)
            for entry in listdir(exp_dir / "models"):
                path = exp_dir / "models" / entry / "meta.yaml"
                try:
                    m = _yaml(path)
                    location = _field(m, path, "artifact_location", "text")
                    model_id = _field(m, path, "model_id", "text") or entry
                    run_id = _field(m, path, "source_run_id", "text")
                    name = _field(m, path, "name", "text") or "model"
                except SourceError:
                    continue
                location = location or str(exp_dir / "models" / entry / "artifacts")
                if self.local_path(location) is None:
                    location = str(exp_dir / "models" / entry / "artifacts")
                self._logged[model_id] = location
                if run_id:
                    found[run_id].append((model_id, name, location))
            self._models[exp_dir] = found
        return self._models[exp_dir]

    def experiment_tags(self, exp_id: str) -> dict[str, str]:
        return dict(self._exp_tags.get(exp_id, {}))

    def logged_model(self, model_id: str) -> str | None:
        return self._logged.get(model_id)

    def registry(self, report: ImportReport) -> list[RegisteredModel]:
        """`models/<name>/meta.yaml` (aliases in it), `version-<n>/meta.yaml`, `tags/`."""
        models = []
        top = self.root / "models"
        for entry in listdir(top):
            folder = top / entry
            if not (folder / "meta.yaml").is_file():
                continue
            try:
                meta = _yaml(folder / "meta.yaml")
                model = RegisteredModel(
                    name=str(meta.get("name") or entry),
                    description=meta.get("description") or None,
                    tags=_read_kv_dir(folder / "tags"),
                    aliases={str(k): int(v) for k, v in (meta.get("aliases") or {}).items()},
                )
                for alias, path in _files(folder / "aliases"):  # older layouts: one file each
                    model.aliases.setdefault(alias, int(_text(path).strip()))
            except (SourceError, ValueError, TypeError, AttributeError) as e:
                report.warn(str(folder), f"registered model not read: {e}")
                continue
            for sub in listdir(folder):
                if not sub.startswith("version-"):
                    continue
                path = folder / sub / "meta.yaml"
                try:
                    m = _yaml(path)
                    model.versions.append(RegisteredVersion(
                        version=int(_field(m, path, "version", "text")
                                    or sub.removeprefix("version-")),
                        source=_field(m, path, "source", "text"),
                        storage_location=_field(m, path, "storage_location", "text"),
                        run_id=_field(m, path, "run_id", "text") or None,
                        description=_field(m, path, "description", "text") or None,
                        tags=_read_kv_dir(folder / sub / "tags"),
                        deleted=_field(m, path, "current_stage", "text") == "Deleted_Internal",
                    ))
                except (SourceError, ValueError) as e:
                    report.warn(str(folder / sub), f"model version not read: {e}")
            model.versions.sort(key=lambda v: v.version)
            models.append(model)
        return models

    def local_path(self, uri: str) -> Path | None:
        return reroot(uri, [self.root, self.root.parent])

    def artifact_dir(self, src: SourceRun) -> Path | None:
        own = Path(src.where) / "artifacts"
        found = reroot(src.artifact_uri, [self.root, self.root.parent])
        if found is None and own.is_dir():
            found = own
        return found if found is not None and found.is_dir() else None
