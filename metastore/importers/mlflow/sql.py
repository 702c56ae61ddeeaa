"""Reading an MLflow tracking database (SQLite, PostgreSQL, MySQL) through SQLAlchemy,
its tables read directly: no `mlflow` import, any MLflow version's schema."""

from __future__ import annotations

import math
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
    except (OSError, sqlite3.Error, ValueError):  # ValueError: a name that is not UTF-8
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
        """Every run, read whole before the first is yielded: a database SQLite cannot
        read (damaged pages, text that is not UTF-8) is ImportFailed before anything is
        written. A value of the wrong type (SQLite keeps any type in any column) skips
        the run it belongs to, with the table and column."""
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                tables = self._tables(conn, report)
        except (sa.exc.SQLAlchemyError, UnicodeDecodeError) as e:  # the latter: sqlite3
            # failing to decode SQLite's own message quoting damaged text
            raise ImportFailed(f"cannot read the MLflow database {safe_url(self.url)}: "
                               f"{getattr(e, 'orig', None) or e}") from e
        exps, params, tags, metrics, datasets, models, rows, bad = tables
        for n, r in enumerate(rows, 1):
            report.found += 1
            run_id = r["run_uuid"]
            where = f"{safe_url(self.url.split('?')[0])} runs/{run_id}"
            if not isinstance(run_id, str):
                report.skip(f"{safe_url(self.url.split('?')[0])} runs row {n}",
                            f"run_uuid {str(run_id)[:40]!r} is not text")
                continue
            wrong = bad.get(run_id) or _wrong_run_row(r)
            if wrong:
                report.skip(where, wrong)
                continue
            exp_id = str(r["experiment_id"])
            if exp_id not in exps:
                report.skip(where, f"its experiment {exp_id} is missing from the database")
                continue
            if exps[exp_id] is None:
                report.skip(where, f"its experiment {exp_id} has a name or stage that is not text")
                continue
            exp_name, exp_stage = exps[exp_id]
            yield SourceRun(
                run_id=run_id,
                where=where,
                experiment=exp_name,
                experiment_id=exp_id,
                name=r.get("name") or None,
                status=r.get("status") or "FINISHED",
                start_ms=_whole(r.get("start_time")),
                end_ms=_whole(r.get("end_time")),
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

    def _tables(self, conn, report: ImportReport):
        """The tables runs are made of, read once; `bad`: run id → why it is skipped."""
        import sqlalchemy as sa

        bad: dict[str, str] = {}
        exps: dict[str, tuple[str, str | None] | None] = {}
        for r in self._rows(conn, "select experiment_id, name, lifecycle_stage from experiments"):
            ok = isinstance(r["name"], str) and _opt_text(r["lifecycle_stage"])
            exps[str(r["experiment_id"])] = (r["name"], r["lifecycle_stage"]) if ok else None
        if "trace_info" in self.tables:  # GenAI traces: not runs, counted as left out
            n = conn.execute(sa.text("select count(*) from trace_info")).scalar_one()
            report.leave_out("traces", int(n))
        if "experiment_tags" in self.tables:
            for r in self._rows(conn, "select experiment_id, key, value from experiment_tags"):
                if isinstance(r["key"], str) and _opt_text(r["value"]):
                    self._exp_tags[str(r["experiment_id"])][r["key"]] = r["value"]
                else:
                    report.warn(f"{safe_url(self.url.split('?')[0])} experiment_tags",
                                f"a tag of experiment {str(r['experiment_id'])[:40]} is not "
                                "text: left out")
        params: dict[str, dict] = defaultdict(dict)
        tags: dict[str, dict] = defaultdict(dict)
        for table, into in (("params", params), ("tags", tags)):
            for r in self._rows(conn, f"select run_uuid, key, value from {table}"):  # noqa: S608
                if isinstance(r["key"], str) and _opt_text(r["value"]):
                    into[r["run_uuid"]][r["key"]] = r["value"]
                elif isinstance(r["run_uuid"], str):
                    bad.setdefault(r["run_uuid"], f"{table}: a key or value that is not text "
                                   f"({str(r['key'])[:40]!r})")
        metrics: dict[str, list] = defaultdict(list)
        has_nan = "is_nan" in self._columns(conn, "metrics")
        sql = "select run_uuid, key, value, timestamp, step" + (", is_nan" if has_nan else "")
        for r in self._rows(conn, sql + " from metrics"):
            nan = has_nan and r["is_nan"]
            value = float("nan") if nan is True or nan == 1 else r["value"]
            point = (r["key"], _whole(r["timestamp"] or 0), _number(value),
                     _whole(r["step"] or 0))
            if isinstance(point[0], str) and None not in point:
                metrics[r["run_uuid"]].append(point)
            elif isinstance(r["run_uuid"], str):
                bad.setdefault(r["run_uuid"], f"metrics: a point of {str(r['key'])[:40]!r} "
                               "whose key, value, timestamp or step has the wrong type")
        datasets = self._datasets(conn)
        models = self._models(conn)
        rows = list(self._rows(conn, "select * from runs"))
        return exps, params, tags, metrics, datasets, models, rows, bad

    def _columns(self, conn, table: str) -> set[str]:
        import sqlalchemy as sa

        return {c["name"] for c in sa.inspect(conn).get_columns(table)}

    def _datasets(self, conn) -> dict[str, list]:
        out: dict[str, list] = defaultdict(list)
        if not {"datasets", "inputs"} <= self.tables:
            return out
        fields = ("name", "digest", "dataset_source", "dataset_source_type", "dataset_schema",
                  "dataset_profile")
        by_id = {
            r["dataset_uuid"]: Dataset(
                name=r["name"], digest=r["digest"], source=r["dataset_source"],
                source_type=r["dataset_source_type"], schema=r["dataset_schema"],
                profile=r["dataset_profile"],
            )
            for r in self._rows(conn, "select * from datasets")
            # a dataset with a value of the wrong type is not linked (it cannot be named)
            if isinstance(r["name"], str) and all(_opt_text(r.get(f)) for f in fields)
        }
        contexts: dict[str, str] = {}
        if "input_tags" in self.tables:
            for r in self._rows(conn, "select input_uuid, name, value from input_tags"):
                if r["name"] == "mlflow.data.context" and _opt_text(r["value"]):
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
            if not all(_opt_text(v) for v in r.values()):
                continue  # a logged model that cannot be named: its run keeps the rest
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
        import sqlalchemy as sa

        try:
            return self._registry()
        except (sa.exc.SQLAlchemyError, ValueError, TypeError) as e:  # UnicodeDecodeError too
            # read after the runs are written: a damaged registry loses the registry only
            report.warn(f"{safe_url(self.url.split('?')[0])} model registry",
                        f"cannot be read, not imported: {getattr(e, 'orig', None) or e}")
            return []

    def _registry(self) -> list[RegisteredModel]:
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


# -- values of the right type (SQLite keeps any type in any column) -------------------------


def _opt_text(value) -> bool:
    return value is None or isinstance(value, str)


def _whole(value) -> int | None:
    """A whole number within 64 bits, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if abs(value) < 2**63 else None


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if isinstance(value, float) or abs(value) < 2**1023 else None


#: Columns of MLflow's runs table and the kind each must hold.
_RUN_COLUMNS = {"name": _opt_text, "status": _opt_text, "user_id": _opt_text,
                "artifact_uri": _opt_text, "lifecycle_stage": _opt_text,
                "start_time": lambda v: v is None or _whole(v) is not None,
                "end_time": lambda v: v is None or _whole(v) is not None,
                "experiment_id": lambda v: isinstance(v, str) or _whole(v) is not None}


def _wrong_run_row(row) -> str | None:
    for column, ok in _RUN_COLUMNS.items():
        if column in row and not ok(row[column]):
            return f"runs.{column} holds {str(row[column])[:40]!r}, of the wrong type"
    return None
