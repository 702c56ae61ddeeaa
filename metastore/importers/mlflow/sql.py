"""Reading an MLflow tracking database (SQLite, PostgreSQL, MySQL) through SQLAlchemy,
its tables read directly: no `mlflow` import, any MLflow version's schema."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from metastore.importers import ImportFailed, ImportReport
from metastore.importers.mlflow.source import (
    Dataset,
    RegisteredModel,
    RegisteredVersion,
    SourceRun,
    reroot,
    safe_url,
)


def is_mlflow_db(path: Path) -> bool:
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


def sqlite_url(path: Path) -> str:
    # read-only: importing must never change (or lock for writing) the user's MLflow db
    return f"sqlite:///file:{path.resolve()}?mode=ro&uri=true"


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
            raise ImportFailed(f"cannot open the MLflow database {safe_url(url)}: {e}") from e
        missing = {"experiments", "runs", "params", "metrics", "tags"} - self.tables
        if missing:
            raise ImportFailed(
                f"{safe_url(url)} is not an MLflow tracking database (no table {', '.join(sorted(missing))})"
            )
        self._exp_tags: dict[str, dict[str, str]] = defaultdict(dict)
        self._logged: dict[str, str] = {}  # logged model id → where its files are

    def _rows(self, conn, sql: str):
        import sqlalchemy as sa

        return conn.execute(sa.text(sql)).mappings()

    def runs(self, report: ImportReport) -> Iterator[SourceRun]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            exps = {
                str(r["experiment_id"]): (r["name"], r["lifecycle_stage"])
                for r in self._rows(conn, "select experiment_id, name, lifecycle_stage from experiments")
            }
            if "trace_info" in self.tables:  # GenAI traces: not runs, counted as left out
                n = conn.execute(sa.text("select count(*) from trace_info")).scalar_one()
                report.leave_out("traces", int(n))
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
            where = f"{safe_url(self.url.split('?')[0])} runs/{run_id}"
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
            self._logged[r["model_id"]] = r["artifact_location"]
            if r["source_run_id"]:
                out[r["source_run_id"]].append((r["model_id"], r["name"], r["artifact_location"]))
        return out

    def logged_model(self, model_id: str) -> str | None:
        return self._logged.get(model_id)

    def registry(self, report: ImportReport) -> list[RegisteredModel]:
        """Tables registered_models, model_versions, registered_model_aliases and their
        tags (MLflow 2.3+ for aliases); none of them in an older or trimmed database."""
        if not {"registered_models", "model_versions"} <= self.tables:
            return []
        models: dict[str, RegisteredModel] = {}
        with self.engine.connect() as conn:
            for r in self._rows(conn, "select name, description from registered_models"):
                models[r["name"]] = RegisteredModel(name=r["name"], description=r["description"] or None)
            if "registered_model_tags" in self.tables:
                for r in self._rows(conn, "select name, key, value from registered_model_tags"):
                    if r["name"] in models:
                        models[r["name"]].tags[r["key"]] = r["value"]
            version_tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
            if "model_version_tags" in self.tables:
                for r in self._rows(conn, "select name, version, key, value from model_version_tags"):
                    version_tags[(r["name"], int(r["version"]))][r["key"]] = r["value"]
            columns = self._columns(conn, "model_versions")
            location = ", storage_location" if "storage_location" in columns else ""
            for r in self._rows(conn, "select name, version, source, run_id, description, "
                                f"current_stage{location} from model_versions order by name, version"):
                if r["name"] not in models:
                    continue
                models[r["name"]].versions.append(RegisteredVersion(
                    version=int(r["version"]), source=r["source"],
                    storage_location=r.get("storage_location"), run_id=r["run_id"] or None,
                    description=r["description"] or None,
                    tags=version_tags.get((r["name"], int(r["version"])), {}),
                    deleted=r["current_stage"] == "Deleted_Internal",
                ))
            if "registered_model_aliases" in self.tables:
                for r in self._rows(conn, "select name, alias, version from registered_model_aliases"):
                    if r["name"] in models:
                        models[r["name"]].aliases[r["alias"]] = int(r["version"])
        return list(models.values())

    def experiment_tags(self, exp_id: str) -> dict[str, str]:
        return dict(self._exp_tags.get(exp_id, {}))

    def local_path(self, uri: str) -> Path | None:
        return reroot(uri, self.roots)

    def artifact_dir(self, src: SourceRun) -> Path | None:
        found = reroot(src.artifact_uri, self.roots)
        return found if found is not None and found.is_dir() else None
