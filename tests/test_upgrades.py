"""Schema revisions (issue 10): a newer store is a clear error, `metastore db status`
and `db upgrade` say and do what is needed, and a store written by an earlier release
of metastore (built from the git history) opens with this one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import metastore
from metastore import database
from metastore.cli import app
from metastore.errors import SchemaMismatch

REPO = Path(__file__).resolve().parent.parent
#: main before issue 10: the release this one must read stores of.
PREVIOUS = "788a02a"


def _future(url: str) -> None:
    engine = sa.create_engine(database.normalize_url(url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0002_future'")
    engine.dispose()


def test_a_newer_store_is_refused_naming_both_revisions(db_store, tmp_path):
    url = str(db_store.backend.sa_url.render_as_string(hide_password=False))
    db_store.close()
    _future(url)
    for create in (True, False):
        with pytest.raises(SchemaMismatch) as e:
            metastore.open(url, blobs=tmp_path / "blobs", create=create)
        assert "'0002_future'" in e.value.message
        assert repr(database.SCHEMA_REVISION) in e.value.message
        assert "upgrade metastore" in e.value.hint


def _cli(*args: str, url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "METASTORE_URL": url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "metastore.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_cli_on_a_newer_store_says_so_without_a_traceback(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    metastore.open(url).close()
    _future(url)
    for args in (["runs"], ["db", "upgrade"]):
        r = _cli(*args, url=url)
        assert r.returncode == 1 and "0002_future" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) <= 3, r.stderr
    r = _cli("db", "status", "--format", "json", url=url)
    assert r.returncode == 0 and '"newer"' in r.stdout and "0002_future" in r.stdout, r.stderr


def test_db_status_and_upgrade(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("METASTORE_URL", url)
    r = CliRunner().invoke(app, ["db", "status", "--format", "json"])
    assert r.exit_code == 0 and '"new"' in r.output, r.output
    r = CliRunner().invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0 and database.SCHEMA_REVISION in r.output, r.output
    r = CliRunner().invoke(app, ["db", "status", "--format", "json"])
    assert '"current"' in r.output, r.output
    r = CliRunner().invoke(app, ["db", "upgrade"])
    assert r.exit_code == 0 and "already" in r.output


WRITE = textwrap.dedent(
    """
    import sys
    import metastore
    store = metastore.open(sys.argv[1])
    with store.start_run(experiment="old", name="r1", capture=False) as run:
        run.log_params({"lr": 0.1, "algorithm": "linear"})
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_asset(b"weights", kind="model", name="regressor")
    print(metastore.__file__)
    """
)


@pytest.mark.slow
def test_a_store_written_by_the_previous_release_opens(tmp_path):
    old = tmp_path / "previous"
    old.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the previous release is not in this checkout's history: {e}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    url = f"sqlite:///{tmp_path / 'store' / 'metastore.db'}"
    env = {**os.environ, "PYTHONPATH": str(old)}
    done = subprocess.run([sys.executable, "-c", WRITE, url], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(old))  # the old code wrote it

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        written = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    engine.dispose()
    store = metastore.open(url)  # an older SQLite store is backed up, then upgraded
    assert database.schema_status(store.backend.writer)["state"] == "current"
    if written != database.SCHEMA_REVISION:
        backup = tmp_path / "store" / f"metastore.db.backup-{written}"
        assert backup.is_file()
        with sa.create_engine(f"sqlite:///{backup}").connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == written
    [row] = store.query("runs where algorithm = \"linear\" show name, lr, loss")
    assert row == {"name": "r1", "lr": 0.1, "loss": pytest.approx(1 / 3)}
    assert store.get_asset("model", "regressor").read_bytes() == b"weights"
    store.close()
