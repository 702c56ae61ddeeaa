"""Query tests share one recording of the demo per backend.

The demo is recorded once per session on SQLite (the shared `demo_store_path`), then its
rows are copied table by table into a fresh PostgreSQL and MariaDB database: the same
logged data on all three, so every answer must agree, without training the models three
times. `test_ten_questions.py::test_recorded_on_each_backend` records through the API.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from metastore.models import SQLModel
from tests.conftest import BACKENDS, _marks, make_database


def copy_rows(src_url: str, dst_url: str) -> None:
    src = sa.create_engine(src_url)
    dst = sa.create_engine(dst_url)
    with src.connect() as s, dst.begin() as d:
        for table in SQLModel.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in s.execute(table.select())]
            if table.name in ("project",):  # the destination store made its own
                d.execute(table.delete())
            if rows:
                d.execute(table.insert(), rows)
    src.dispose()
    dst.dispose()


@pytest.fixture(scope="session", params=[pytest.param(b, marks=_marks(b)) for b in BACKENDS])
def demo_db(request, demo_store_path, tmp_path_factory):
    """A read-only store holding the demo's twelve runs, on each backend."""
    import metastore

    backend = request.param
    src_url = f"sqlite:///{demo_store_path / 'metastore.db'}"
    if backend == "sqlite":
        s = metastore.open(src_url, blobs=demo_store_path / "blobs")
        yield s
        s.close()
        return
    url, drop = make_database(backend, tmp_path_factory.mktemp(backend))
    s = metastore.open(url, blobs=demo_store_path / "blobs")
    copy_rows(src_url, url)
    yield s
    s.close()
    drop()
