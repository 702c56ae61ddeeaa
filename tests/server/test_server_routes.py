"""The route table: both doors come from it, every primitive crosses it, and the
services built on the primitives (export, audit, run views, the UI's tables) work
through a server with one request where one is enough."""

from __future__ import annotations

import csv
import tarfile
from collections import Counter
from contextlib import contextmanager

import pytest

from metastore.backends.base import Backend
from metastore.backends.http import HTTPBackend
from metastore.backends.routes import BY_NAME, LOCAL_PRIMITIVES, READING_POSTS, ROUTES
from metastore.records import MetricPoint, NoteRecord, RunRecord

pytestmark = pytest.mark.server


@contextmanager
def counting(remote):
    """Count the requests the client sends, by (method, path), with an httpx event hook."""
    seen: Counter = Counter()
    hooks = remote.backend._http.event_hooks
    hook = lambda request: seen.update([(request.method, request.url.path)])  # noqa: E731
    hooks["request"].append(hook)
    try:
        yield seen
    finally:
        hooks["request"].remove(hook)


def _record(store, runs: int = 3):
    records = []
    for i in range(runs):
        records.append(RunRecord(
            experiment="sweep", name=f"r{i}", params={"lr": 10.0 ** -i, "layers": [64, i]},
            metrics=[MetricPoint(key="loss", value=1.0 / (i + 1) + s, step=s) for s in range(3)],
            tags={"team": "cv"}, notes=[NoteRecord(text=f"run {i}")],
        ))
    ids = store.backend.create_runs(records)
    with store.start_run(experiment="sweep", name="with-assets", capture=False) as run:
        data = run.use_asset(b"rows", kind="dataset", name="d")
        run.log_asset(b"w", kind="model", name="m", derived_from=[data])
        run.log_metric("loss", 0.1)
        run.note("the best")
    return ids + [run.id]


def test_the_table_covers_the_interface_and_both_sides_are_generated(live):
    # every abstract primitive is a route, or acts on the client's side of the wire
    assert Backend.__abstractmethods__ <= set(BY_NAME) | LOCAL_PRIMITIVES
    # the client writes none of the routed primitives by hand
    assert not set(BY_NAME) & set(vars(HTTPBackend)), "a primitive is hand-written"
    assert not HTTPBackend.__abstractmethods__
    from metastore.server.app import create_app

    app = create_app(live.store, ui=False)
    served = {
        (op["operationId"], method.upper())
        for ops in app.openapi()["paths"].values() for method, op in ops.items()
    }
    for route in ROUTES:
        assert (route.name, route.method) in served, route.name
    # what only reads is marked in the table, so read-only tokens may send it
    assert {"/api/query", "/api/runs/read", "/api/lineage/walk"} <= READING_POSTS
    assert all(BY_NAME[n].writes for n in ("create_runs", "log_metrics", "purge", "put_asset"))


def test_bulk_primitives_answer_through_the_server_as_locally(live):
    with live.remote() as remote:
        with counting(remote) as seen:
            ids = remote.backend.create_runs([
                RunRecord(experiment="bulk", params={"i": i}) for i in range(20)
            ])
        assert seen == {("POST", "/api/runs"): 1}  # many runs, one request
        with counting(remote) as seen:
            remote.backend.log_metrics(ids[0], [
                MetricPoint(key=k, value=v, step=s) for s in range(50) for k, v in (("a", s), ("b", -s))
            ])
        assert seen == {("POST", f"/api/runs/{ids[0]}/metrics"): 1}  # a batch, one request
        run_ids = _record(remote)
        local, http = live.store.backend, remote.backend
        assert http.read_runs(run_ids=run_ids) == local.read_runs(run_ids=run_ids)
        assert http.read_runs(experiment="sweep") == local.read_runs(experiment="sweep")
        assert http.dump_runs(run_ids) == local.dump_runs(run_ids)
        assert http.run_keys(run_ids) == local.run_keys(run_ids)
        assert http.run_counts() == local.run_counts() == {"bulk": 20, "sweep": 4}
        assert http.list_edges() == local.list_edges()
        assert http.list_edges(run_ids[-1:]) == local.list_edges(run_ids[-1:])
        start = [("run", run_ids[-1])]
        for direction in ("upstream", "downstream"):
            assert http.walk(start, direction) == local.walk(start, direction)
        assert http.walk(start, "downstream", depth=0) == local.walk(start, "downstream", depth=0)
        text = "runs where loss < 1 order by loss show name, loss"
        got, want = http.query(text), local.query(text)
        assert (got.columns, got.rows, got.sql) == (want.columns, want.rows, want.sql)
        assert http.compile_query(text, "sweep") == local.compile_query(text, "sweep")
        assert http.runs_by_source("nowhere", ["x"]) == {}
        remote.delete_run(ids[0])
        first, second = http.purge(), http.purge()
        assert first["runs"] == 1 and second["runs"] == 0
        assert local.run_counts()["bulk"] == 19


def test_reading_posts_are_open_to_read_only_tokens(live):
    with live.remote() as writer:
        run_ids = _record(writer)
    with live.remote("ro") as reader:
        assert len(reader.backend.read_runs(run_ids=run_ids)) == 4
        assert reader.backend.dump_runs(run_ids[:1])[0].name == "r0"
        assert reader.backend.walk([("run", run_ids[-1])], "upstream").nodes
        assert reader.backend.list_edges()


def test_listing_runs_through_a_server_is_one_request(live):
    from metastore.server.ui import data

    with live.remote() as remote:
        _record(remote, runs=12)
        with counting(remote) as seen:
            views = remote.run_views("sweep")
        assert len(views) == 13 and seen == {("POST", "/api/runs/read"): 1}
        assert views[0].params == {"layers": [64, 0], "lr": 1.0}
        assert views[-1].inputs[0].ref == "dataset:d@1" and views[-1].has_note
        with counting(remote) as seen:
            rows = data.load_runs(remote, "sweep")
        assert len(rows) == 13 and sum(seen.values()) == 1
        with counting(remote) as seen:
            assert data.runs_by_experiment(remote).keys() == {"sweep"}
        assert sum(seen.values()) == 1
        with counting(remote) as seen:
            assert len(remote.run_summaries("sweep")) == 13
        assert sum(seen.values()) == 1


def test_metastore_runs_through_a_server_does_not_ask_per_run(live, monkeypatch):
    """`metastore runs --store http://…`: the same number of requests for 2 runs as for
    12 (counted in the client, which the CLI runs in this process)."""
    from typer.testing import CliRunner

    from metastore.cli import app as cli

    sent: list[str] = []
    real = HTTPBackend._send

    def send(self, method, path, **kw):
        sent.append(f"{method} {path}")
        return real(self, method, path, **kw)

    monkeypatch.setattr(HTTPBackend, "_send", send)
    monkeypatch.setenv("METASTORE_TOKEN", live.token)
    counts = []
    with live.remote() as remote:
        for more in (2, 10):
            remote.backend.create_runs([RunRecord(experiment="e", params={"i": i}) for i in range(more)])
            sent.clear()
            result = CliRunner().invoke(cli, ["runs", "--store", live.url, "--format", "json"])
            assert result.exit_code == 0, result.output
            counts.append(len(sent))
    assert counts[0] == counts[1], sent
    assert sent.count("POST /api/runs/read") == 1


def test_export_through_a_server(live, tmp_path):
    with live.remote() as remote:
        run_ids = _record(remote)
        counts = remote.export(tmp_path / "bundle.tar.gz")
        assert counts["runs"] == 4
        with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
            assert any(m.name.endswith(".json") for m in tar.getmembers())
        local_counts = live.store.export(tmp_path / "local.tar.gz")
        assert counts == local_counts
        remote.export(tmp_path / "runs.csv")
        live.store.export(tmp_path / "local.csv")
        with open(tmp_path / "runs.csv") as got, open(tmp_path / "local.csv") as want:
            assert list(csv.reader(got)) == list(csv.reader(want))
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        remote.export(tmp_path / "runs.parquet")
        table = pd.read_parquet(tmp_path / "runs.parquet")
        assert sorted(table["id"]) == sorted(run_ids)


def test_audit_through_a_server(live):
    with live.remote() as remote:
        _record(remote)
        with counting(remote) as seen:
            report = remote.audit("sweep")
        assert report.to_dict() == live.store.audit("sweep").to_dict()
        assert ("POST", "/api/runs/read") in seen
        assert not any(path.startswith("/api/runs/") and path.count("/") > 3 for _, path in seen)


def test_a_bundle_exported_through_a_server_imports_into_another(live, tmp_path, sqlite_store):
    with live.remote() as remote:
        _record(remote)
        remote.export(tmp_path / "b.tar.gz")
    sqlite_store.import_(tmp_path / "b.tar.gz")
    assert [v.name for v in sqlite_store.run_views("sweep")] == ["r0", "r1", "r2", "with-assets"]
