"""Shared fixtures: real stores on SQLite files, PostgreSQL and MariaDB.

Each PostgreSQL/MariaDB test gets a database of its own, created and dropped around it,
so tests (and developers running suites side by side) never see each other's rows.
Without a reachable server those tests are skipped, except under CI=true, where an
unreachable server is a failure: CI must never pass by skipping the databases.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fuzzing import load_profile

#: hypothesis: the same examples on every run unless METASTORE_FUZZ=explore (tests/fuzzing.py)
load_profile()

PG_ADMIN = os.environ.get("METASTORE_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
MYSQL_ADMIN = os.environ.get("METASTORE_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", "postgres", "mysql"]
#: "remote" runs a test through a metastore server (uvicorn on a loopback port, over a
#: SQLite store, with a token): every test that takes `store` runs on each backend.
REMOTE = "remote"


def _server_or_skip(admin_url: str, name: str) -> sa.Engine:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        if IN_CI:
            pytest.fail(f"{name} at {admin_url} is unreachable under CI=true: {e}")
        pytest.skip(f"{name} not reachable: {e}")
    return engine


def make_database(backend: str, tmp_path: Path):
    """A fresh, empty database: (url, dropper)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'metastore.db'}", lambda: None
    name = f"ms_{uuid.uuid4().hex[:12]}"
    if backend == "postgres":
        admin = _server_or_skip(PG_ADMIN, "PostgreSQL")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(PG_ADMIN).set(database=name)

        def drop():
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()

        return url.render_as_string(hide_password=False), drop
    if backend == REMOTE:  # the database behind the server
        return f"sqlite:///{tmp_path / 'server' / 'metastore.db'}", lambda: None
    if backend == "mysql":
        admin = _server_or_skip(MYSQL_ADMIN, "MariaDB")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        url = sa.make_url(MYSQL_ADMIN).set(database=name)

        def drop():
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            admin.dispose()

        return url.render_as_string(hide_password=False), drop
    raise ValueError(backend)


def _marks(backend: str):
    return {
        "postgres": [pytest.mark.postgres],
        "mysql": [pytest.mark.mysql],
        REMOTE: [pytest.mark.server],
    }.get(backend, [])


@pytest.fixture(params=[pytest.param(b, marks=_marks(b)) for b in [*BACKENDS, REMOTE]])
def backend(request) -> str:
    return request.param


@pytest.fixture
def store_url(backend, tmp_path):
    url, drop = make_database(backend, tmp_path)
    yield url
    drop()


@pytest.fixture
def store(backend, store_url, tmp_path):
    """An empty store on each backend: SQLite, PostgreSQL, MariaDB, and through a
    metastore server (over SQLite)."""
    import metastore

    s = metastore.open(store_url, blobs=tmp_path / "blobs")
    if backend != REMOTE:
        yield s
        s.close()
        return
    from metastore.server import background_server, create_token

    token = create_token(s, "tests")
    with background_server(s) as url, metastore.open(url, token=token) as remote:
        yield remote
    s.close()


@pytest.fixture(params=[pytest.param(b, marks=_marks(b)) for b in BACKENDS])
def db_store(request, tmp_path):
    """An empty store on each database (SQLite, PostgreSQL, MariaDB), for tests that
    look at or write the database beneath the store interface."""
    import metastore

    url, drop = make_database(request.param, tmp_path)
    s = metastore.open(url, blobs=tmp_path / "blobs")
    yield s
    s.close()
    drop()


@pytest.fixture
def sqlite_store(tmp_path):
    """An empty store on a SQLite file."""
    import metastore

    s = metastore.open(f"sqlite:///{tmp_path / 'store' / 'metastore.db'}")
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_store_path(tmp_path_factory) -> Path:
    """A SQLite store holding the demo's twelve runs, recorded once per session.
    Copy it (`demo_store`) rather than writing to it."""
    import metastore
    from metastore.demo import run_demo

    folder = tmp_path_factory.mktemp("demo") / ".metastore"
    with metastore.open(f"sqlite:///{folder / 'metastore.db'}") as s:
        run_demo(s, quiet=True)
    return folder


@pytest.fixture
def demo_store(demo_store_path, tmp_path):
    """A private copy of the demo store, safe to write to."""
    import metastore

    folder = tmp_path / ".metastore"
    shutil.copytree(demo_store_path, folder)
    s = metastore.open(f"sqlite:///{folder / 'metastore.db'}")
    yield s
    s.close()


@pytest.fixture
def chdir_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METASTORE_URL", raising=False)
    monkeypatch.delenv("METASTORE_BLOBS", raising=False)
    return tmp_path
