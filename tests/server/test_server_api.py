"""The REST API itself: its OpenAPI description, error mapping, and the routes that
tests/test_tracking.py (run through the server) does not reach."""

from __future__ import annotations

import hashlib
import json
import math

import networkx as nx
import pytest

import metastore
from metastore.backends.routes import REQUESTS, ROUTES
from metastore.demo import QUESTIONS
from metastore.errors import Ambiguous, Conflict, NotFound, StoreUnavailable
from metastore.models import Asset, AssetVersion, Experiment, Run

pytestmark = pytest.mark.server


def test_openapi_schema_is_served_and_describes_every_route(live):
    with live.client(token=None) as c:
        schema = c.get("/api/openapi.json").json()
        assert c.get("/api/docs").status_code == 200
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    # every primitive of the route table is there, with its method and models …
    for route in ROUTES:
        path = route.url.replace(":path}", "}")
        operation = paths[path][route.method.lower()]
        assert operation["operationId"] == route.name
        assert "200" in operation["responses"]
        if REQUESTS[route.name] is not None and not route.in_query:
            assert "requestBody" in operation, route.name
    # … and nothing else but the transport routes written by hand
    generated = {(r.url.replace(":path}", "}"), r.method.lower()) for r in ROUTES}
    served = {(p, m) for p, ops in paths.items() for m in ops}
    assert served - generated == {
        ("/api/health", "get"), ("/api/session", "get"), ("/api/blobs/{digest}", "get"),
        ("/api/blobs/{digest}", "put"), ("/api/blobs/{digest}", "head"),
        ("/api/versions/{version_id}/content", "get"),
    }
    assert set(paths["/api/blobs/{digest}"]) >= {"get", "put", "head"}
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert all(p.startswith("/api/") for p in paths)
    # the schema is valid OpenAPI: schemathesis refuses to load one that is not
    schemathesis = pytest.importorskip("schemathesis")
    loaded = schemathesis.openapi.from_dict(schema)
    assert len(list(loaded.get_all_operations())) == len(served)


def test_docs_list_every_route_of_the_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    for route in ROUTES:
        row = f"| `{route.method} {route.url.replace(':path}', '}')}`"
        assert row in text, f"docs/server.md does not list {row}"
        assert f"| `{route.name}` |" in text, route.name


def test_errors_come_back_as_the_same_exception(live):
    with live.remote() as remote:
        with remote.start_run(experiment="a", name="twin", capture=False):
            pass
        with remote.start_run(experiment="b", name="twin", capture=False):
            pass
        with pytest.raises(NotFound) as missing:
            remote.get_run("twim")
        assert missing.value.hint and "twin" in missing.value.hint
        with pytest.raises(Ambiguous, match="2 runs are named 'twin'"):
            remote.get_run("twin")
        with pytest.raises(Ambiguous, match="several experiments"):
            remote.get_run(1)
        with pytest.raises(NotFound):
            remote.get_experiment("nope")
    with live.client() as c:
        r = c.get("/api/runs/twim")
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "NotFound"
        assert c.get("/api/runs/twin").status_code == 409


def test_run_refs_with_hash_slash_and_spaces(live):
    with live.remote() as remote:
        with remote.start_run(experiment="team/cv", name="resnet 50/a", capture=False) as run:
            pass
        assert remote.get_run("team/cv#1").id == run.id
        assert remote.get_run("resnet 50/a").id == run.id
        assert remote.get_run(1, experiment="team/cv").id == run.id
        assert remote.get_experiment("team/cv").name == "team/cv"
        assert [e.name for e in remote.experiments()] == ["team/cv"]
        assert run.experiment == "team/cv"


def test_rows_round_trip_as_the_same_models(live):
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            v = run.log_asset(b"w", kind="model", name="m", meta={"framework": "sklearn"})
        got = remote.backend.resolve_run(run.id)
        assert isinstance(got, Run) and got == live.store.backend.resolve_run(run.id)
        exp = remote.get_experiment("e")
        assert isinstance(exp, Experiment) and exp == live.store.get_experiment("e")
        a, av = remote.backend.get_version_by_id(v.id)
        assert isinstance(a, Asset) and isinstance(av, AssetVersion)
        assert (a, av) == live.store.backend.get_version_by_id(v.id)
        assert v.meta == {"framework": "sklearn"}


def test_params_keep_their_types_including_non_finite(live):
    values = {"lr": 0.1, "epochs": 10, "flag": False, "name": "x", "grid": {"a": [1, 2]},
              "big": float("inf"), "tiny": float("-inf"), "tuple": (1, 2)}
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            run.log_params(values)
        got = remote.get_run(run.id).params
    local = live.store.get_run(run.id).params
    assert got == local
    assert got["big"] == math.inf and got["tiny"] == -math.inf and got["tuple"] == [1, 2]
    assert type(got["epochs"]) is int and type(got["flag"]) is bool


def test_tags_on_other_entities_and_run_details(live):
    with live.remote() as remote:
        with remote.start_run(experiment="e", tags={"team": "vision"}, capture=False) as run:
            run.log_metric("acc", 0.9)
        exp = remote.get_experiment("e")
        remote.backend.set_tags("experiment", exp.id, {"owner": "ana", "budget": 3})
        assert remote.backend.get_tags("experiment", exp.id) == {"budget": "3", "owner": "ana"}
        assert remote.get_run(run.id).tags == {"team": "vision"}
    with live.client() as c:
        [view] = c.post("/api/runs/read", json={"run_ids": [run.id]}).json()
    assert view["experiment"] == "e" and view["metrics"]["acc"] == 0.9
    assert view["tags"] == {"team": "vision"} and view["number"] == 1


def test_directory_versions_download_as_a_manifest(live, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"\x00" * 10)
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            v = run.log_asset(folder, kind="model", name="dir")
    with live.client() as c:
        r = c.get(f"/api/versions/{v.id}/content")
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.content)["files"]["w.bin"]["size"] == 10


def test_content_is_uploaded_once(live):
    data = b"the same weights"
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            run.log_asset(data, kind="model", name="m")
            run.log_asset(data, kind="model", name="copy")
    assert list(live.store.backend.blobs.digests()) == [hashlib.sha256(data).hexdigest()]


def test_lineage_through_the_server(live):
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            data = run.use_asset(b"rows", kind="dataset", name="d")
            model = run.log_asset(b"w", kind="model", name="m")
        with remote.start_run(experiment="e", capture=False) as tune:
            tuned = tune.log_asset(b"w2", kind="model", name="tuned")
        remote.link(model, tuned)
        graph = remote.lineage("model:tuned@1", direction="upstream")
        assert isinstance(graph, nx.DiGraph)
        assert graph.graph["roots"] == ["model:tuned@1"]
        assert set(graph) == set(live.store.lineage("model:tuned@1"))
        assert graph.nodes["e#1"]["id"] == run.id and graph.nodes["model:m@1"]["name"] == "m"
        assert graph.edges["e#1", "model:m@1"]["relation"] == "produced"
        assert remote.lineage(run, direction="downstream").has_edge("model:m@1", "model:tuned@1")
        path = remote.path(data, tuned)
        assert list(path) == ["dataset:d@1", "e#1", "model:m@1", "model:tuned@1"]
        assert remote.path(data, "e#2") is None
        with pytest.raises(Conflict):
            remote.link(tuned, model)
        with pytest.raises(NotFound):
            remote.lineage("model:nope@1")


def _record_runs(store):
    for number, (algorithm, rmse, r2) in enumerate(
        [("linear", 55.0, 0.30), ("forest", 52.5, 0.41), ("linear", 54.0, 0.35)], start=1
    ):
        with store.start_run(experiment="diabetes", capture=False) as run:
            run.log_params({"algorithm": algorithm, "normalize": number % 2 == 0})
            run.log_metrics({"rmse": rmse, "r2": r2})


def test_queries_through_the_server_answer_as_locally(live):
    with live.remote() as remote:
        _record_runs(remote)
    texts = [
        "runs order by rmse limit 1 show number, rmse",
        'runs where algorithm = "linear" and rmse < 55 show number, r2',
        "runs group by algorithm show algorithm, count(), mean(rmse)",
        "runs order by started limit 1 show number, started, normalize",
    ]
    with live.remote("ro") as reader:  # a query is a read: read-only tokens may ask
        for text in texts:
            got, want = reader.query(text), live.store.query(text)
            assert got.columns == want.columns, text
            assert got.rows == want.to_records(), text
            assert got.sql == want.sql == reader.query_sql(text) == live.store.query_sql(text)
        best = reader.query(texts[0], experiment="diabetes")
        assert list(best) == [{"number": 2, "rmse": 52.5}] and len(best) == 1
        assert best.to_pandas()["rmse"].tolist() == [52.5]
    with live.client() as c:
        r = c.post("/api/query", json={"text": texts[0], "experiment": "diabetes"})
        assert r.json()["rows"] == [{"number": 2, "rmse": 52.5}]


def test_query_errors_keep_their_position_and_caret(live):
    from metastore.query import QueryError

    with live.remote() as remote:
        _record_runs(remote)
        with pytest.raises(QueryError) as raised:
            remote.query("runs order by rsme")
    with pytest.raises(QueryError) as local:
        live.store.query("runs order by rsme")
    got, want = raised.value, local.value
    assert (got.message, got.line, got.column, got.caret, got.suggestion) == (
        want.message, want.line, want.column, want.caret, want.suggestion
    )
    assert got.caret.endswith("^") and "rmse" in got.suggestion and str(got) == str(want)
    with live.client() as c:
        r = c.post("/api/query", json={"text": "runs order by rsme"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "QueryError" and error["line"] == 1 and error["column"] == 15
    assert error["caret"] == want.caret


def test_unexpected_failures_do_not_leak_details(live, monkeypatch):
    def broken(*a, **kw):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(live.store.backend, "list_assets", broken)
    with live.client() as c:
        r = c.get("/api/assets")
    assert r.status_code == 500 and "secret internals" not in r.text


def test_write_naming_a_missing_run_is_a_clean_error(live):
    with live.client() as c:
        r = c.post("/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/params", json={"values": {"lr": 1}})
        assert r.status_code == 409 and r.json()["error"]["type"] == "Conflict"
        r = c.post("/api/runs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/notes", json={"text": "hi"})
        assert r.status_code == 404


def test_unreachable_server_is_store_unavailable():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from metastore.backends.http import HTTPBackend

    with pytest.raises(StoreUnavailable, match="cannot reach"):
        HTTPBackend(f"http://127.0.0.1:{port}", token="x", retry_for=0)


class Flaky:
    """A transport that fails the first requests as a restarting server would."""

    def __init__(self, inner, failures: int, error, after: bool = False):
        self.inner, self.failures, self.error, self.seen = inner, failures, error, []
        self.after = after  # the server answered, the answer was lost on its way

    def handle_request(self, request):
        self.seen.append(request.method)
        if self.failures:
            self.failures -= 1
            if self.after:
                self.inner.handle_request(request).read()
            raise self.error("connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self):
        self.inner.close()


def test_client_retries_every_request_and_a_write_applies_once(live, monkeypatch):
    import httpx

    monkeypatch.setattr("time.sleep", lambda s: None)  # no waiting in a test
    with live.remote() as remote:
        # unbuffered: each log call is its own request, as the transport sees it
        with remote.start_run(experiment="e", capture=False, flush_interval=0) as run:
            flaky = Flaky(remote.backend._http._transport, 2, httpx.ConnectError)
            monkeypatch.setattr(remote.backend._http, "_transport", flaky)
            run.log_metric("loss", 0.5)  # a write: retried, it never arrived
            assert flaky.seen == ["POST", "POST", "POST"]
            flaky.failures, flaky.error = 2, httpx.ReadError
            assert run.params == {}  # a read: retried after any transport error
            flaky.failures, flaky.after = 2, True
            run.log_metric("loss", 0.4)  # applied, answer lost: sent again with its key
            assert flaky.seen[-3:] == ["POST", "POST", "POST"]
        assert [p.value for p in remote.get_run(run.id).metric_history("loss")] == [0.5, 0.4]


def test_token_from_the_environment(live, monkeypatch):
    monkeypatch.setenv("METASTORE_TOKEN", live.read_only_token)
    with metastore.open(live.url) as remote:
        assert remote.backend.read_only and remote.backend.principal == "reader"


@pytest.mark.slow
def test_schemathesis_finds_no_server_errors(live):
    """Property-based requests against the running server: every route answers within
    its schema and never with a 5xx, with bounded examples per operation."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings

    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            run.log_metric("rmse", 1.0)
            run.log_asset(b"w", kind="model", name="m")
    schema = schemathesis.openapi.from_url(f"{live.url}/api/openapi.json")
    skip = {"/api/purge"}  # would empty the store the other operations explore
    try:
        import metastore.query  # noqa: F401
    except ImportError:  # the query language is not installed in this tree
        skip.add("/api/query")
    checks = [schemathesis.checks.not_a_server_error]
    headers = {"authorization": f"Bearer {live.token}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in skip:
            continue

        @settings(max_examples=6, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(headers=headers, timeout=30)
            case.validate_response(response, checks=checks)

        try:
            check()
        except Exception as e:  # noqa: BLE001 - collected, then reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(e)[:600]}")
    assert not failures, "\n\n".join(failures)


def test_server_over_an_fsspec_blob_root(tmp_path):
    """Blobs in an fsspec store (here memory://, in production s3://) work the same."""
    import uuid

    pytest.importorskip("fsspec")
    from metastore.server import background_server, create_token

    root = f"memory://metastore-test-{uuid.uuid4().hex}"
    with metastore.open(f"sqlite:///{tmp_path / 'm.db'}", blobs=root) as local:
        token = create_token(local, "t")
        with background_server(local) as url, metastore.open(url, token=token) as remote:
            with remote.start_run(experiment="e", capture=False) as run:
                v = run.log_asset(b"weights", kind="model", name="m")
            assert remote.get_asset("model", "m").read_bytes() == b"weights"
        assert local.backend.blobs.local_path(v.digest) is None and local.backend.blobs.exists(v.digest)


def test_a_remote_run_whose_process_died_is_reported_crashed(live):
    """Crash detection checks the recording process, not the server's."""
    import subprocess
    import sys

    from metastore.records import RunRecord

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with live.remote() as remote:
        alive = remote.backend.create_run(RunRecord(experiment="e", status="running"))
        dead = remote.backend.create_run(RunRecord(experiment="e", status="running", pid=gone.pid))
        assert remote.get_run(alive.id).status == "running"
        assert remote.get_run(dead.id).status == "crashed"
        assert any("stopped without ending" in n.text for n in remote.get_run(dead.id).notes)


def test_the_ten_questions_through_the_server(demo_store):
    from metastore.server import background_server, create_token

    token = create_token(demo_store, "reader", read_only=True)
    with background_server(demo_store) as url, metastore.open(url, token=token) as remote:
        for text in QUESTIONS.values():
            got, want = remote.query(text), demo_store.query(text)
            assert (got.columns, got.rows) == (want.columns, want.to_records()), text
            assert len(got) >= 1
        run4 = remote.get_run(4, experiment="diabetes")
        assert run4.to_dict() == demo_store.get_run(4, experiment="diabetes").to_dict()
        [model] = run4.outputs
        assert model.read_bytes() == demo_store.get_asset(model.kind, model.name, model.version).read_bytes()


def test_a_server_over_each_database(backend, store, tmp_path):
    """SQLite for one machine, PostgreSQL (or MariaDB) for a team: the same API."""
    if backend == "remote":
        pytest.skip("a server serves a database, not another server")
    from metastore.server import background_server, create_token

    token = create_token(store, "team")
    with background_server(store) as url, metastore.open(url, token=token) as remote:
        _record_runs(remote)
        with remote.start_run(experiment="diabetes", capture=False) as run:
            data = run.use_asset(b"rows", kind="dataset", name="d")
            run.log_asset(b"weights", kind="model", name="m", derived_from=[data])
        best = remote.query("runs order by rmse limit 1 show number, rmse")
        assert list(best) == [{"number": 2, "rmse": 52.5}]
        graph = remote.lineage("model:m@1")
        assert {"dataset:d@1", "diabetes#4", "model:m@1"} <= set(graph)
        assert remote.get_asset("model", "m").read_bytes() == b"weights"
    assert len(store.runs("diabetes")) == 4


def test_experiment_by_id_out_of_range_or_missing_is_a_client_error(live, local):
    """Found by schemathesis in CI: an id beyond 64 bits reached the database driver and
    answered 500. Out of range is now a 422, a missing id a 404; the store itself raises
    NotFound, not AttributeError."""
    with live.client() as c:
        assert c.get("/api/experiments/by-id/88044375162090273957115592704").status_code == 422
        assert c.get("/api/experiments/by-id/0").status_code == 422
        assert c.get("/api/experiments/by-id/999999").status_code == 404
        # a run "number" past 64 bits never reaches the database driver as a crash
        r = c.get("/api/runs/999999999999999999999999999999")
        assert r.status_code in (400, 404) and r.json()["error"]["type"] in ("InvalidValue", "NotFound")
    with pytest.raises(NotFound, match="no experiment with id 999999"):
        local.backend.experiment_name(999999)


def test_a_recorded_run_costs_two_requests(live):
    """Through a server a run is created in one request and written (params, metrics,
    its end) in one more; the store's cost settings are read once, not per run, and a
    change made through the same client is seen at once."""
    with live.remote() as remote:
        remote.start_run(experiment="e", capture=False, system_metrics=False).end()
        sent: list[str] = []
        remote.backend._http.event_hooks["request"].append(lambda r: sent.append(r.url.path))
        ids = []
        for i in range(3):
            with remote.start_run(experiment="e", capture=False, system_metrics=False,
                                  flush_interval=3600) as run:
                run.log_params({"i": i})
                for step in range(5):
                    run.log_metrics({"loss": 1 / (step + 1)}, step=step)
            ids.append(run.id)
        assert sent == [p for i in ids for p in ("/api/runs/one", f"/api/runs/{i}/batch")]
        assert [remote.get_run(i).status for i in ids] == ["finished"] * 3
        remote.set_config("cost.per_hour", 3600)
        with remote.start_run(experiment="e", capture=False, system_metrics=False) as run:
            pass
        assert "system.cost" in remote.get_run(run.id).metrics


def _stream_of(rows, then=None):
    """A stand-in for the server's `query_stream`: `rows`, then `then()` (which may
    raise), as the SQL backend's stream hands them out."""
    from contextlib import contextmanager

    from metastore.backends.base import QueryStream

    @contextmanager
    def query_stream(text, experiment=None, timeout=None):
        def produce():
            for row in rows:
                yield row
                if then is not None:
                    then()

        yield QueryStream(["n"], produce(), "SELECT n", "sqlite")

    return query_stream


def test_a_query_answer_is_streamed_and_read_as_it_comes(live, monkeypatch):
    """The server sends the first row before it has the second, and the client hands
    it out at once: the server waits for the client to have read it."""
    import threading

    read_first = threading.Event()
    seen = []
    monkeypatch.setattr(live.store.backend, "query_stream",
                        _stream_of([{"n": 1}, {"n": 2}], lambda: seen.append(read_first.wait(60))))
    with live.remote() as remote:
        with remote.backend.query_stream("runs") as answer:
            rows = iter(answer.rows)
            assert next(rows) == {"n": 1}
            read_first.set()
            assert list(rows) == [{"n": 2}]
    assert seen[0] is True  # the server was still waiting when the first row arrived


def test_a_query_error_after_the_first_row_ends_the_answer(live, monkeypatch):
    """Before the first row an error is the usual envelope with its status; after it the
    status is sent already, so the answer ends with the error and the client raises it."""
    from metastore.query import QueryError

    with live.client() as c:
        for accept in ("application/json", "application/x-ndjson"):
            r = c.post("/api/query", json={"text": "runs where rmsee < 5"},
                       headers={"accept": accept})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["type"] == "QueryError" and "rmsee" in r.json()["error"]["message"]

    def deadline():
        raise QueryError("the query ran past its deadline of 1 s and was cancelled")

    monkeypatch.setattr(live.store.backend, "query_stream", _stream_of([{"n": 1}, {"n": 2}], deadline))
    with live.client() as c:
        r = c.post("/api/query", json={"text": "runs"})
        assert r.status_code == 200
        body = r.json()
        assert body["rows"] == [{"n": 1}] and body["error"]["type"] == "QueryError"
        lines = c.post("/api/query", json={"text": "runs"},
                       headers={"accept": "application/x-ndjson"}).text.splitlines()
        assert [json.loads(x) for x in lines[1:]] == [[1], {"error": body["error"]}]
    with live.remote() as remote:
        with pytest.raises(QueryError, match="deadline"):
            remote.query("runs")
        with remote.backend.query_stream("runs") as answer:
            rows = iter(answer.rows)
            assert next(rows) == {"n": 1}
            with pytest.raises(QueryError, match="deadline"):
                next(rows)
