"""MLflow's model registry into metastore: what `mlflow.register_model` and
`set_registered_model_alias` recorded, mapped as metastore's own MLflow server maps it
(`server/mlflow_registry.py`):

- a registered model is the asset `model:<name>`; its description is the asset tag
  `mlflow.description`, its tags are the asset's tags;
- each model version is a version of that asset: the files MLflow registered (the
  logged model's `artifacts/`, or a run's artifact folder) as one content-addressed
  version, *produced* by the imported source run and *derived_from* the logged model's
  own version when the run import brought that in; the MLflow version number, source
  and description are in its metadata (`mlflow_version`, `mlflow_source`, …). Versions
  with the same files are one version here;
- a registry alias is a metastore alias (`model:<name>@champion`), set through the
  aliases service, so it is a reference everywhere and keeps its history.

Versions deleted in MLflow, and versions whose files are not on this machine, are not
imported (counted as left out, with a warning). Importing again changes nothing: the
same files are the same version, and setting an alias where it points is a no-op.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from metastore import aliases
from metastore.errors import MetastoreError
from metastore.importers import ImportOptions, ImportReport
from metastore.importers.mlflow.source import Reader, RegisteredModel, RegisteredVersion, SourceRun
from metastore.importers.writer import WRITE_ERRORS, Writer, content_digest

#: The asset tag holding a registered model's MLflow description (as the server keeps it).
DESCRIPTION = "mlflow.description"
AUTHOR = "mlflow import"


def import_registry(store, reader: Reader, runs: dict[str, SourceRun], writer: Writer,
                    options: ImportOptions, report: ImportReport) -> None:
    """Import the registry of the store `reader` reads, after its runs (`writer` knows
    which store run each MLflow run became)."""
    models = reader.registry(report)
    if not models:
        return
    logged = _logged_versions(store, writer, models) if not options.dry_run else {}
    for model in models:
        numbers: dict[int, object] = {}  # MLflow version number → the version stored
        # versions stored before (an earlier import): the same again is not counted
        before = _versions_of(store, model.name)  # version id → its MLflow version number
        present = {a.alias for a in _aliases_of(store, model.name)}
        for v in model.versions:
            where = f"registered model {model.name!r} version {v.version}"
            if v.deleted:
                report.leave_out("deleted model versions")
                continue
            path = _files(reader, runs, v)
            if path is None:
                report.warn(where, f"its files ({v.storage_location or v.source}) are not on "
                                   "this machine; not imported")
                report.leave_out("model versions without files")
                continue
            if options.dry_run:
                if v.version not in before.values():
                    report.count_versions([("model", model.name, content_digest(path))])
                    report.edges += bool(v.run_id) + bool(_model_id(v.source))
                numbers[v.version] = v.version
                continue
            try:
                numbers[v.version] = _put(store, model, v, path, writer, logged, options, report, before)
            except WRITE_ERRORS as e:
                report.warn(where, f"cannot be stored: {e}")
        if not options.dry_run and numbers:
            _model_tags(store, model, report)
        for alias, number in sorted(model.aliases.items()):
            if number not in numbers:
                report.warn(f"registered model {model.name!r}",
                            f"alias {alias!r} names version {number}, which was not imported")
                continue
            if options.dry_run:
                report.aliases += alias not in present
                continue
            try:
                moved = _alias(store, numbers[number], alias, model.name, number)
            except WRITE_ERRORS as e:
                report.warn(f"registered model {model.name!r}", f"alias {alias!r}: {e}")
                continue
            report.aliases += moved


def _model_id(source: str | None) -> str | None:
    m = re.fullmatch(r"models:/(m-[0-9a-f]+)/?", source or "")
    return m.group(1) if m else None


def _files(reader: Reader, runs: dict[str, SourceRun], v: RegisteredVersion) -> Path | None:
    """The local folder (or file) of a model version's files."""
    candidates = []
    if v.storage_location:
        candidates.append(reader.local_path(v.storage_location))
    model_id = _model_id(v.source)
    if model_id and reader.logged_model(model_id):
        candidates.append(reader.local_path(reader.logged_model(model_id)))  # type: ignore[arg-type]
    m = re.fullmatch(r"runs:/([0-9a-f]{32})/?(.*)", v.source or "")
    if m and m.group(1) in runs:
        folder = reader.artifact_dir(runs[m.group(1)])
        if folder is not None:
            candidates.append(folder / m.group(2) if m.group(2) else folder)
    elif v.source and "://" not in v.source.replace("file://", "", 1):
        candidates.append(reader.local_path(v.source))
    for c in candidates:
        if c is not None and c.exists() and (c.is_file() or any(c.iterdir())):
            return c
    return None


def _logged_versions(store, writer: Writer, models: list[RegisteredModel]) -> dict[str, str]:
    """Logged model id → the asset version the run import made of it, read in one call
    (the runs that produced registered versions, their outputs)."""
    run_ids = {writer.run_id(v.run_id) for m in models for v in m.versions if v.run_id}
    run_ids.discard(None)
    if not run_ids:
        return {}
    found = {}
    for view in store.read_runs(run_ids=sorted(run_ids), include_deleted=True):  # type: ignore[type-var]
        for out in view.outputs:
            model_id = (out.meta or {}).get("mlflow_model_id")
            if out.kind == "model" and model_id:
                found[model_id] = out.id
    return found


def _versions_of(store, name: str) -> dict[str, int | None]:
    try:
        return {v.id: _meta(v).get("mlflow_version") for _, v in store.list_versions("model", name)}
    except MetastoreError:  # no such asset yet
        return {}


def _aliases_of(store, name: str) -> list:
    try:
        return store.list_aliases("model", name)
    except MetastoreError:
        return []


def _meta(version) -> dict:
    value = version.meta
    if isinstance(value, str):  # rows keep it as JSON text, records as a dict
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _put(store, model: RegisteredModel, v: RegisteredVersion, path: Path, writer: Writer,
         logged: dict[str, str], options: ImportOptions, report: ImportReport, before: dict):
    run_id = writer.run_id(v.run_id) if v.run_id else None
    model_id = _model_id(v.source)
    up = [logged[model_id]] if model_id in logged else []
    meta = {"mlflow_version": v.version, "mlflow_source": v.source, "mlflow_model_id": model_id,
            "mlflow_description": v.description, "filename": path.name}
    _, version = store.put_asset(
        "model", model.name, path, copy=options.copy,
        meta={k: x for k, x in meta.items() if x is not None},
        run_id=run_id, relation="produced" if run_id else None, derived_from=up,
    )
    if v.tags:
        store.set_tags("asset_version", version.id, v.tags)
    if version.id not in before:
        report.count_versions([version.id])
        report.edges += bool(run_id) + len(up)
    return version


def _model_tags(store, model: RegisteredModel, report: ImportReport) -> None:
    tags = dict(model.tags)
    if model.description:
        tags[DESCRIPTION] = model.description
    if not tags:
        return
    try:
        asset = next(a for a in store.list_assets("model") if a.name == model.name)
        store.set_tags("asset", str(asset.id), tags)
    except (StopIteration, *WRITE_ERRORS) as e:
        report.warn(f"registered model {model.name!r}", f"tags not kept: {e}")


def _alias(store, version, alias: str, name: str, number: int) -> int:
    """Point the alias at the version; 1 when that set or moved it, 0 when it already did."""
    before = {a.alias: a.version_id for a in store.list_aliases("model", name)}
    if before.get(alias) == version.id:
        return 0
    aliases.set_alias(store, version, alias, author=AUTHOR,
                      note=f"MLflow registry alias of {name} version {number}")
    return 1
