"""Answers read as they come (`Store.query_stream`, `Backend.query_stream`), and
`read_runs` listing every run with its values, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from metastore.query import QueryError
from metastore.records import MetricPoint, RunRecord

N = 1205  # more than one chunk of the cursor (500) and of the CLI's table


def _record(store, n: int = N) -> None:
    t = datetime(2026, 1, 1)
    store.backend.create_runs([
        RunRecord(experiment="e", status="finished", started=t + timedelta(seconds=i),
                  params={"algorithm": "linear" if i % 2 else "forest", "seed": i},
                  metrics=[MetricPoint(key="rmse", value=50 + i / 100, step=0, timestamp=t)],
                  tags={"team": "a"} if i == 7 else {})
        for i in range(n)
    ])


def test_a_streamed_answer_is_the_answer(store):
    _record(store)
    text = 'runs where algorithm = "linear" order by rmse desc show number, rmse, seed'
    whole = store.query(text)
    with store.query_stream(text) as answer:
        assert answer.columns == whole.columns == ["number", "rmse", "seed"]
        rows = iter(answer.rows)
        first = next(rows)
        assert first == whole.rows[0]
        assert [first, *rows] == whole.rows
    assert len(whole) == N // 2 and answer.sql == whole.sql


def test_a_reader_that_stops_early_leaves_the_store_usable(store):
    _record(store)
    for _ in range(2):
        with store.query_stream("runs show number, seed") as answer:
            assert next(iter(answer.rows))["number"] == 1
    assert len(store.query("runs where seed < 10")) == 10


def test_a_bad_query_fails_before_any_row(store):
    with pytest.raises(QueryError, match="rmsee"):
        with store.query_stream("runs where rmsee < 5"):
            pass


def test_read_runs_lists_every_run_with_its_values(store):
    _record(store)
    views = store.run_views("e")
    assert [v.number for v in views] == list(range(1, N + 1))
    v = views[7]
    assert v.params == {"algorithm": "linear", "seed": 7} and v.tags == {"team": "a"}
    assert v.metrics == {"rmse": pytest.approx(50.07)} and v.ref == "e#8"
    some = store.backend.read_runs(run_ids=[views[3].id, views[1].id])
    assert [r.number for r in some] == [4, 2] and some[0].params["seed"] == 3


# -- the quick SQLite reader (`metastore.open(lazy=True)`, what `metastore query` opens) ----


def test_a_lazy_sqlite_store_answers_queries_without_the_database_layer(tmp_path):
    import subprocess
    import sys

    import metastore
    from metastore.backends.sqlite_reader import SQLiteReader

    db = tmp_path / "m.db"
    with metastore.open(f"sqlite:///{db}") as full:
        _record(full, 30)
        expected = full.query("runs where seed > 20 show number, algorithm").rows
    with metastore.open(str(db), lazy=True) as s:  # a path to the file opens it too
        assert isinstance(s.backend, SQLiteReader)
        assert s.query("runs where seed > 20 show number, algorithm").rows == expected
        with s.query_stream("runs where seed > 20 show number, algorithm") as answer:
            assert list(answer.rows) == expected
        assert s.query_sql("runs where seed > 20").startswith("SELECT")
        # anything else is the SQL backend's, opened on first use
        assert s.get_run("e#3").params["seed"] == 2 and s.run_counts() == {"e": 30}
        assert s.backend.blob_root == str(tmp_path / "blobs")
    probe = (
        "import sys, metastore\n"
        f"s = metastore.open({str(db)!r}, lazy=True)\n"
        "assert len(s.query('runs where seed > 20')) == 9\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sqlalchemy', 'sqlmodel', 'metastore.models'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_lazy_store_that_is_new_or_older_is_opened_by_the_sql_backend(tmp_path):
    import sqlite3

    import metastore
    from metastore.errors import SchemaMismatch

    with metastore.open(f"sqlite:///{tmp_path / 'new.db'}", lazy=True) as s:  # created
        assert s.query("runs").rows == []
    newer = tmp_path / "newer.db"
    metastore.open(f"sqlite:///{newer}").close()
    with sqlite3.connect(newer) as c:
        c.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaMismatch):
        metastore.open(f"sqlite:///{newer}", lazy=True)
