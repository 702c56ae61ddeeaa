"""Hostile input (issue 10): every query has a deadline, and the regex operator cannot
be made to backtrack for minutes. Each test here failed (or hung) before."""

from __future__ import annotations

import threading

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import metastore
from metastore.backends.sql_query import deadline
from metastore.query import QueryError
from metastore.records import MetricPoint, RunRecord
from metastore.server import Limits, background_server, create_token

EVIL = "(a+)+$"
#: Counts to a billion: minutes on any database unless something cancels it.
ENDLESS = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
    "SELECT COUNT(*) FROM c"
)


def _runs(store, n: int = 200) -> None:
    store.backend.create_runs([
        RunRecord(experiment="e", params={"p": "a" * 30 + "!", "i": i}, status="finished")
        for i in range(n)
    ])


@pytest.mark.timeout(120)
def test_catastrophic_regex_answers_at_once(store):
    _runs(store, 3)
    assert len(store.query(f'runs where p ~ "{EVIL}"')) == 0
    assert len(store.query('runs where p ~ "^a+!$"')) == 3


def test_regex_outside_re2_is_a_query_error(store):
    _runs(store, 1)
    with pytest.raises(QueryError, match="RE2"):
        store.query('runs where p ~ "a(?=!)"')


@pytest.mark.timeout(120)
def test_the_database_cancels_a_statement_past_its_deadline(db_store):
    with db_store.backend.read() as s:
        conn = s.connection()
        if conn.dialect.name in ("mysql", "mariadb"):  # MariaDB stops at 1000 by default
            conn.exec_driver_sql("SET SESSION max_recursive_iterations = 4294967295")
        with pytest.raises(QueryError, match="deadline of 0.5 s"), deadline(conn, 0.5):
            conn.execute(sa.text(ENDLESS)).all()
    # the connection went back to the pool without the deadline
    with db_store.backend.read() as s:
        assert s.connection().execute(sa.text("SELECT 1")).scalar() == 1


@pytest.mark.timeout(120)
def test_a_query_past_its_timeout_is_a_query_error(sqlite_store):
    _runs(sqlite_store)
    with pytest.raises(QueryError, match="deadline") as e:
        sqlite_store.query("runs where i > 3", timeout=1e-9)
    assert "--timeout" in e.value.hint
    assert len(sqlite_store.query("runs where i > 3", timeout=60)) == 196


@pytest.mark.timeout(120)
def test_the_server_has_a_default_deadline_and_a_per_call_override(sqlite_store):
    _runs(sqlite_store)
    token = create_token(sqlite_store, "reader", read_only=True)
    with background_server(sqlite_store, limits=Limits(query_timeout=1e-9)) as url, \
            metastore.open(url, token=token) as remote:
        with pytest.raises(QueryError, match="deadline"):
            remote.query("runs where i > 3")
        assert len(remote.query("runs where i > 3", timeout=60)) == 196


@pytest.mark.timeout(120)
def test_a_read_only_token_cannot_freeze_the_server(sqlite_store):
    _runs(sqlite_store)
    token = create_token(sqlite_store, "reader", read_only=True)
    with background_server(sqlite_store) as url, metastore.open(url, token=token) as remote:
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(
            len(remote.query(f'runs where p ~ "{EVIL}"')))) for _ in range(4)]
        for t in threads:
            t.start()
        assert httpx.get(f"{url}/api/health", timeout=60).json() == {"status": "ok"}
        for t in threads:
            t.join(60)
        assert answers == [0, 0, 0, 0]


def test_cli_query_timeout(sqlite_store, monkeypatch):
    from metastore.cli import app

    _runs(sqlite_store)
    monkeypatch.setenv("METASTORE_URL", sqlite_store.backend.url)
    r = CliRunner().invoke(app, ["query", "runs where i > 3", "--timeout", "0.000000001"])
    assert r.exit_code == 1 and "deadline" in r.output, r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(app, ["query", "runs where i > 3 show count()", "--timeout", "60"])
    assert r.exit_code == 0 and "196" in r.output, r.output


# -- names never become paths ---------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../../tmp/x", "a/../b", "..", "..\\..\\x"])
def test_asset_names_that_read_as_paths_are_refused(store, name):
    from metastore.errors import InvalidValue

    with pytest.raises(InvalidValue, match="file path"):
        store.put_asset("model", name, content=b"hi")


@pytest.mark.parametrize("filename", ["/tmp/abs", "../x", "..", "a/b", "a\\b", ""])
def test_version_filenames_that_are_not_one_name_are_refused(store, filename):
    from metastore.errors import InvalidValue

    with pytest.raises(InvalidValue, match="filename"):
        store.put_asset("model", "m", content=b"hi", meta={"filename": filename})


def test_path_stays_in_the_cache_whatever_the_store_holds(db_store, tmp_path):
    """A store written before names were checked (or by hand) still cannot make
    `path()` write outside its cache folder."""
    from metastore.models import Asset, AssetVersion

    db_store.put_asset("model", "m", content=b"hi", meta={"filename": "ok.bin"})
    with db_store.backend.write() as s:
        s.execute(sa.update(Asset).values(name="../../../../escaped"))
        s.execute(sa.update(AssetVersion).values(meta='{"filename": "../../../../escaped2"}'))
    version = db_store.get_asset("model", "../../../../escaped")
    cache = db_store.backend.cache_dir().resolve()
    path = version.path().resolve()
    assert path.is_relative_to(cache) and path.read_bytes() == b"hi"
    assert not any(p.name.startswith("escaped") for p in cache.parent.parent.rglob("escaped*")
                   if not p.resolve().is_relative_to(cache))


@pytest.mark.parametrize("name", ["data/train.csv", "/tmp/abs", "s3://bucket/x.csv", ".hidden"])
def test_names_with_folders_still_work_and_stay_in_the_cache(store, name):
    v = store.put_asset("dataset", name, content=b"a,b\n")
    path = v.path()
    assert path.read_bytes() == b"a,b\n"
    assert path.resolve().is_relative_to(store.backend.cache_dir().resolve())


# -- values and types ------------------------------------------------------------------


@pytest.mark.parametrize("step", [1.5, 2**63, -(2**63), True, "3", float("nan")])
def test_a_step_is_a_whole_number_within_64_bits(store, step):
    from metastore.errors import InvalidValue

    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue, match="a step is a whole number"):
            run.log_metric("m", 1.0, step=step)
        run.log_metric("m", 1.0, step=2.0)  # a whole number written as a float is fine
    assert [p.step for p in store.backend.get_metric_history(run.id, "m")] == [2]


@pytest.mark.parametrize("value", [object(), b"bytes", {"nested": object()}])
def test_params_that_cannot_become_json_are_refused(store, value):
    from metastore.errors import InvalidValue

    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue, match="cannot be stored as JSON"):
            run.log_params({"p": value})
        run.log_params({"p": {"a": [1, 2]}, "s": {3, 1}})
    assert store.get_run(run.id).params == {"p": {"a": [1, 2]}, "s": [1, 3]}


@pytest.mark.parametrize("text", [
    "runs limit 99999999999999999999999",
    "runs where rmse > 99999999999999999999",
    "runs where rmse > 1e400",
])
def test_numbers_past_64_bits_in_a_query_are_query_errors(store, text):
    with pytest.raises(QueryError, match="64 bits"):
        store.query(text)


def test_a_long_in_list_says_what_to_do_instead(db_store):
    text = "runs where number in (" + ", ".join(str(i) for i in range(20_000)) + ")"
    with pytest.raises(QueryError) as e:
        db_store.query(text)
    assert "in (…)` list of 20000 values" in e.value.message
    assert "use `in (…)`" not in (e.value.hint or "") and "between" in e.value.hint


# -- one error shape from the server ------------------------------------------------------


def _envelope(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"type", "message"} <= set(body["error"]), body
    return body["error"]


def test_every_server_error_has_one_shape(sqlite_store):
    token = create_token(sqlite_store, "writer")
    auth = {"authorization": f"Bearer {token}"}
    with background_server(sqlite_store) as url:
        r = httpx.get(f"{url}/api/no-such-route", headers=auth)
        assert r.status_code == 404 and "no route" in _envelope(r)["message"]
        r = httpx.post(f"{url}/api/query", headers={**auth, "content-type": "application/json"},
                       content=b"{not json")
        assert r.status_code == 422 and "not valid JSON" in _envelope(r)["message"]
        r = httpx.post(f"{url}/api/query", headers=auth, json={"text": 5, "extra": 1})
        assert r.status_code == 422 and _envelope(r)["type"] == "InvalidValue"
        r = httpx.post(f"{url}/api/runs/x/metrics", headers=auth,
                       json={"points": [{"key": "m", "value": 1, "step": 2**63}]})
        assert r.status_code in (400, 404, 422) and _envelope(r)
        r = httpx.delete(f"{url}/api/query", headers=auth)
        assert r.status_code == 405 and _envelope(r)["type"] == "MethodNotAllowed"


def test_a_missing_blob_does_not_show_the_server_folder(sqlite_store, tmp_path):
    from metastore.errors import NotFound

    blobs = sqlite_store.backend.blobs
    digest = sqlite_store.put_asset("model", "m", content=b"gone").digest
    blobs.local_path(digest).unlink()
    token = create_token(sqlite_store, "reader", read_only=True)
    with background_server(sqlite_store) as url, metastore.open(url, token=token) as remote:
        with pytest.raises(NotFound) as e:
            remote.get_asset("model", "m").read_bytes()
    root = str(sqlite_store.backend.blob_root)
    assert root not in str(e.value) and str(tmp_path) not in str(e.value)
    assert "the server's blob store" in str(e.value)


def test_a_step_past_64_bits_through_the_server_is_a_clear_error(store):
    from metastore.errors import InvalidValue

    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue, match="a step is a whole number"):
            store.backend.log_metrics(
                run.id, [MetricPoint.model_construct(key="m", value=1.0, step=2**63)])


@pytest.mark.parametrize("text, says", [
    ("runs where rmse = true", "rmse is a number"),
    ("runs where algorithm > 5", "algorithm is text in every run"),
    ("runs show algorithm + 1", "algorithm is text in every run"),
    ('runs where lr = "fast"', "lr is a number in every run"),
    ("runs where algorithm = true", "algorithm is text in every run"),
])
def test_a_param_or_metric_against_a_literal_of_the_wrong_type(store, text, says):
    with store.start_run(experiment="e", capture=False) as run:
        run.log_params({"algorithm": "linear", "lr": 0.1, "normalize": True})
        run.log_metric("rmse", 50.0)
    with pytest.raises(QueryError, match=says) as e:
        store.query(text)
    assert e.value.hint and e.value.caret
    # what is right still answers
    for ok in ('runs where algorithm = "linear"', "runs where lr < 1", "runs where normalize = true",
               "runs where normalize = 1", "runs where rmse < 55", "runs show lr + 1",
               'runs where lr = "0.1"', 'runs where normalize = "true"'):
        assert len(store.query(ok)) == 1, ok
