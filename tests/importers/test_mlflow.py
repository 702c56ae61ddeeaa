"""The MLflow importer, on stores written by MLflow's own client (file store and SQL
store) and on hand-made malformed stores in tests/data/mlflow/."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from metastore.errors import InvalidValue
from metastore.importers import detect, import_path
from metastore.importers import mlflow as mlflow_importer

BROKEN = Path(__file__).parent.parent / "data" / "mlflow" / "broken" / "mlruns"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_name(store, experiment="wine"):
    return {r.name: r for r in store.runs(experiment, include_deleted=True)}


def check_wine(store, artifacts: Path) -> None:
    """What make_mlflow.py logged, as the store must now hold it."""
    runs = by_name(store)
    assert set(runs) == {"enet", "broken", "sweep", "alpha-0.1", "alpha-0.2"}
    enet = runs["enet"]
    assert enet.source == "mlflow" and len(enet.source_id) == 32
    assert enet.status == "finished" and enet.user
    assert enet.started < enet.ended
    assert enet.params == {
        "lr": 0.1, "epochs": 5, "use_bn": True, "opt.momentum": 0.9, "layers": [64, 32],
        "name": "elastic", "big": 1000.0, "zip": "01234",
    }
    history = enet.metric_history("rmse")
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.6), (2, 0.45)]
    # timestamps kept to the millisecond: the three points were logged 100 ms apart
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in zip(history, history[1:], strict=False)]
    assert gaps == [0.1, 0.1]
    # the NaN point cannot be stored; the finite one is
    assert [(m.step, m.value) for m in enet.metric_history("weird")] == [(1, 2.5)]
    assert enet.metrics["r2"] == 0.71
    assert enet.tags["stage"] == "dev"
    assert "mlflow.runName" not in enet.tags
    assert [n.text for n in enet.notes] == ["first try with elastic net"]
    assert enet.context["mlflow"]["run_id"] == enet.source_id
    outputs = {v.name: v for v in enet.outputs}
    assert set(outputs) == {"notes.txt", "cfg"}
    assert outputs["notes.txt"].kind == "log"
    notes_file = artifacts / "notes.txt"
    assert outputs["notes.txt"].digest == sha256(notes_file)
    assert outputs["notes.txt"].read_bytes() == notes_file.read_bytes()
    assert outputs["notes.txt"].created_by == enet.id
    assert outputs["cfg"].is_directory
    cfg = outputs["cfg"].path(store.backend.cache_dir() / "cfg-check")
    assert (cfg / "config.json").read_text() == '{"alpha": 0.5}\n'
    [data] = enet.inputs
    assert (data.kind, data.name, data.role) == ("dataset", "wine-data", "training")
    assert data.uri == "data/wine.csv" and data.digest.startswith("mlflow:")
    assert data.meta["profile"] == {"num_rows": 3, "num_elements": 6}

    assert runs["broken"].status == "failed" and runs["broken"].params == {"lr": 10}
    sweep = runs["sweep"]
    assert runs["alpha-0.1"].parent_id == sweep.id == runs["alpha-0.2"].parent_id
    assert sweep.parent_id is None
    assert runs["alpha-0.2"].params == {"alpha": 0.2}


def artifact_folder(root: Path, run_name: str) -> Path:
    for meta in root.rglob("meta.yaml"):
        if f"run_name: {run_name}\n" in meta.read_text():
            return meta.parent / "artifacts"
    for folder in root.rglob("artifacts"):
        if (folder / "notes.txt").exists():
            return folder
    raise AssertionError("no artifacts folder")


def test_file_store(store, mlruns):
    assert detect(mlruns) == "mlflow"
    report = import_path(store.backend, mlruns)
    assert (report.found, report.imported, report.already_present, report.skipped) == (5, 5, 0, [])
    assert report.params == 11 and report.metrics == 8 and report.assets == 3
    assert any("'weird'" in w and "NaN" in w for w in report.warnings)
    check_wine(store, artifact_folder(mlruns, "enet"))


def test_sql_store(store, mlflow_db):
    assert detect(mlflow_db) == "mlflow"
    assert detect(mlflow_db.parent) == "mlflow"  # a project folder holding mlflow.db
    report = import_path(store.backend, mlflow_db)
    assert (report.found, report.imported, report.skipped) == (5, 5, [])
    assert report.params == 11 and report.metrics == 8 and report.assets == 3
    check_wine(store, artifact_folder(mlflow_db.parent, "enet"))


def test_sql_store_by_url(sqlite_store, mlflow_db):
    report = mlflow_importer.import_url(sqlite_store.backend, f"sqlite:///{mlflow_db}", experiment="legacy")
    assert report.imported == 5 and report.complete
    assert {r.name for r in sqlite_store.runs("legacy")} >= {"enet", "sweep"}


def test_import_path_takes_a_database_url_like_the_cli(sqlite_store, mlflow_db):
    report = import_path(sqlite_store.backend, f"sqlite:///{mlflow_db}")
    assert report.source == "mlflow" and report.imported == 5 and report.complete
    with pytest.raises(InvalidValue, match="not options of the mlflow importer"):
        import_path(sqlite_store.backend, f"sqlite:///{mlflow_db}", params=["lr"])
    # the URL goes to the importer that declares it reads URLs, not to a special case
    with pytest.raises(InvalidValue, match="the csv importer reads files and folders"):
        import_path(sqlite_store.backend, f"sqlite:///{mlflow_db}", "csv")
    from metastore.importers import ImportFailed

    with pytest.raises(ImportFailed, match="no importer reads ftp:// URLs"):
        import_path(sqlite_store.backend, "ftp://example.com/mlflow.db")
    again = import_path(sqlite_store.backend, f"sqlite:///{mlflow_db}", "mlflow", dry_run=True)
    assert (again.source, again.already_present) == ("mlflow", 5)


def test_sql_store_is_opened_read_only(sqlite_store, mlflow_db):
    before = sha256(mlflow_db)
    import_path(sqlite_store.backend, mlflow_db)
    assert sha256(mlflow_db) == before


def test_import_twice_then_new_runs(sqlite_store, mlruns, add_mlflow_runs):
    first = import_path(sqlite_store.backend, mlruns)
    again = import_path(sqlite_store.backend, mlruns)
    assert (again.found, again.imported, again.already_present) == (5, 0, 5)
    assert again.params == again.metrics == again.assets == 0
    assert len(sqlite_store.runs("wine")) == 5
    add_mlflow_runs(mlruns)
    third = import_path(sqlite_store.backend, mlruns)
    assert (third.found, third.imported, third.already_present) == (7, 2, 5)
    assert [r.name for r in sqlite_store.runs("wine")][-2:] == ["late-0", "late-1"]
    assert set(third.run_ids).isdisjoint(first.run_ids)


def test_a_run_that_logged_more_since_is_completed(sqlite_store, mlruns):
    """A run imported before gains the metric points and params it logged since (the
    lines MLflow's file store appends), counted as completed; nothing else changes."""
    import_path(sqlite_store.backend, mlruns)
    [folder] = [p.parent for p in mlruns.glob("*/*/meta.yaml") if "run_name: enet" in p.read_text()]
    with open(folder / "metrics" / "rmse", "a") as f:
        f.write("1767000000000 0.3 3\n1767000000100 0.25 4\n")
    (folder / "params" / "warmup").write_text("10")
    again = import_path(sqlite_store.backend, mlruns)
    assert (again.imported, again.already_present, again.enriched) == (0, 5, 1)
    assert (again.metrics, again.params) == (2, 1)
    run = sqlite_store.get_run("enet")
    assert [(m.step, m.value) for m in run.metric_history("rmse")][-2:] == [(3, 0.3), (4, 0.25)]
    assert run.params["warmup"] == 10
    third = import_path(sqlite_store.backend, mlruns)
    assert (third.enriched, third.metrics, third.params) == (0, 0, 0)


def test_dry_run_writes_nothing(sqlite_store, mlruns):
    report = import_path(sqlite_store.backend, mlruns, dry_run=True)
    assert (report.found, report.imported, report.params, report.metrics) == (5, 5, 11, 8)
    assert sqlite_store.runs() == [] and sqlite_store.assets() == []


def test_no_copy_references_artifacts(sqlite_store, mlruns):
    import_path(sqlite_store.backend, mlruns, copy=False)
    enet = by_name(sqlite_store)["enet"]
    notes = next(v for v in enet.outputs if v.name == "notes.txt")
    assert notes.uri.startswith("file://") and notes.uri.endswith("/artifacts/notes.txt")
    assert notes.read_bytes() == b"hello from mlflow\n"
    assert not list(Path(sqlite_store.backend.blob_root).rglob("sha256/*/*"))


def test_moved_stores_find_their_artifacts(sqlite_store, mlruns, mlflow_db):
    """Absolute artifact paths break when a store is copied elsewhere; the importer
    finds the artifacts again below the store's own folder."""
    for meta in mlruns.rglob("meta.yaml"):
        text = meta.read_text()
        meta.write_text(text.replace("file:///", "file:///gone/"))
    con = sqlite3.connect(mlflow_db)
    con.execute("update runs set artifact_uri = replace(artifact_uri, 'file:///', 'file:///gone/')")
    con.commit()
    con.close()
    import_path(sqlite_store.backend, mlruns, experiment="files")
    import_path(sqlite_store.backend, mlflow_db, experiment="sql")
    for exp in ("files", "sql"):
        enet = by_name(sqlite_store, exp)["enet"]
        assert {v.name for v in enet.outputs} == {"notes.txt", "cfg"}


def test_malformed_runs_are_skipped_loudly(store, tmp_path):
    root = tmp_path / "mlruns"
    shutil.copytree(BROKEN, root)
    report = import_path(store.backend, root)
    assert report.found == 8
    assert report.imported == 4 and report.already_present == 0
    assert len(report.skipped) == 4 and report.complete
    text = "\n".join(f"{w}: {r}" for w, r in report.skipped)
    assert "b" * 32 + "/meta.yaml" in text and "empty or not a mapping" in text
    assert "c" * 32 + "/metrics/loss" in text and "line 2" in text
    assert "d" * 32 + "/inputs/0123/meta.yaml" in text and "0000deadbeef" in text
    assert "2/meta.yaml" in text and "not valid YAML" in text
    # nothing of the skipped runs was written
    runs = {r.source_id[0]: r for r in store.runs("handmade", include_deleted=True)}
    assert set(runs) == {"a", "e", "f"}
    assert "bro" not in [e.name for e in store.experiments()]
    good = runs["a"]
    assert good.params == {"lr": 0.01} and good.user == "alice"
    assert [(m.step, m.value) for m in good.metric_history("loss")] == [(0, 0.5), (1, 0.4)]
    [report_txt] = good.outputs  # found beside the run although artifact_uri is gone
    assert report_txt.read_bytes() == b"handmade artifact\n"
    crashed = runs["e"]
    assert crashed.status == "crashed" and crashed.ended is None
    assert any(n.kind == "event" and "RUNNING" in n.text for n in crashed.notes)
    deleted = runs["f"]
    assert deleted.status == "failed" and deleted.deleted_at is not None
    assert [r.source_id[0] for r in store.runs("handmade")] == ["a", "e"]
    # a run of an experiment deleted in MLflow (.trash/) comes in soft-deleted
    [forgotten] = [r for r in store.runs(include_deleted=True) if r.source_id == "g" * 32]
    assert forgotten.deleted_at is not None and forgotten.params == {"depth": 5}
    assert "abandoned" not in [e.name for e in store.experiments()]
    # the skipped ones come in once repaired, the others are already present
    meta = root / "1" / ("b" * 32) / "meta.yaml"
    meta.write_text((root / "1" / ("a" * 32) / "meta.yaml").read_text().replace("a" * 32, "b" * 32))
    again = import_path(store.backend, root)
    assert (again.imported, again.already_present, len(again.skipped)) == (1, 4, 3)


def test_detect_rejects_other_folders(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    assert not mlflow_importer.detect(tmp_path)
    assert not mlflow_importer.detect(tmp_path / "x.txt")
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("create table runs (id int)")
    con.close()
    assert not mlflow_importer.detect(db)


@pytest.mark.slow
def test_logged_model_becomes_a_model_version(sqlite_store, mlflow_with_model):
    report = import_path(sqlite_store.backend, mlflow_with_model)
    assert report.imported == 1 and report.complete
    [run] = sqlite_store.runs("models")
    # log_model appended the metric line again: kept once
    assert [(m.step, m.value) for m in run.metric_history("rmse")] == [(0, 0.5)]
    [model] = [v for v in run.outputs if v.kind == "model"]
    assert model.name == "regressor" and model.is_directory
    assert model.meta["mlflow_model_id"].startswith("m-")
    files = model.path(sqlite_store.backend.cache_dir() / "model-check")
    assert (files / "MLmodel").is_file() and (files / "model.skops").is_file()


@pytest.mark.slow
@pytest.mark.postgres
def test_sql_store_on_postgresql(sqlite_store, tmp_path):
    """An MLflow tracking database on a PostgreSQL server, read by URL."""
    import os
    import uuid

    import sqlalchemy as sa

    admin_url = os.environ.get("METASTORE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable: {e}")
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    import subprocess
    import sys

    script = Path(__file__).parent / "make_mlflow.py"
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONWARNINGS="ignore")
    try:
        subprocess.run([sys.executable, str(script), url, str(tmp_path)], cwd=tmp_path, env=env,
                       check=True, capture_output=True, timeout=600)
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        report = mlflow_importer.import_url(sqlite_store.backend, plain)
        assert (report.found, report.imported, report.skipped) == (5, 5, [])
        check_wine(sqlite_store, artifact_folder(tmp_path, "enet"))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_report_counts_a_shared_dataset_once(sqlite_store, mlflow_shared_dataset):
    report = import_path(sqlite_store.backend, mlflow_shared_dataset, "mlflow")
    assert (report.found, report.imported) == (2, 2)
    runs = sqlite_store.runs("shared")
    links = [v.id for r in runs for v in (*r.inputs, *r.outputs)]
    versions = set(links)
    assert len(links) > len(versions)  # one dataset version, used by both runs
    assert (report.assets, report.edges) == (len(versions), len(links))
    assert f"{len(versions)} asset versions, {len(links)} edges" in report.summary()
