"""Lineage hubs: walks in pages (limit + cursor) and counted, through every door."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from metastore.errors import InvalidValue

RUNS = 7


@pytest.fixture
def hub(store):
    """One dataset used by RUNS runs, each producing a model; one run deleted."""
    with store.start_run(experiment="hub", capture=False) as first:
        data = first.use_asset(b"rows", kind="dataset", name="data")
        first.log_asset(b"m0", kind="model", name="m")
    for i in range(1, RUNS):
        with store.start_run(experiment="hub", capture=False) as run:
            run.use_asset(data)
            run.log_asset(f"m{i}".encode(), kind="model", name="m")
    store.delete_run(run.id)  # its two edges are left out of every walk
    return data


def edge_set(graph):
    return {(a, b) for a, b in graph.edges}


def test_pages_cover_the_walk_once_and_counts_match(store, hub):
    whole = store.lineage(hub, "downstream", count=True)
    assert whole.graph["edge_count"] == whole.number_of_edges() == 2 * (RUNS - 1)
    assert whole.graph["node_count"] == 2 * (RUNS - 1)  # runs and models, not the start
    seen, cursor, pages = set(), None, 0
    while True:
        page = store.lineage(hub, "downstream", limit=3, cursor=cursor)
        edges = edge_set(page)
        assert len(edges) <= 3 and not edges & seen
        seen |= edges
        pages += 1
        cursor = page.graph["next_cursor"]
        if cursor is None:
            break
    assert seen == edge_set(whole) and pages == 4
    first = store.lineage(hub, "downstream", limit=3)
    # nearest first: the first page is the dataset's own edges
    assert all(a == "dataset:data@1" for a, _ in first.edges)
    assert first.nodes["dataset:data@1"]["depth"] == 0


def test_the_backend_walk_pages_and_counts(store, hub):
    start = [("asset_version", hub.id)]
    page = store.backend.walk(start, "downstream", None, limit=5, count=True)
    assert len(page.edges) == 5 and page.next_cursor
    assert (page.edge_count, page.node_count) == (2 * (RUNS - 1), 2 * (RUNS - 1))
    rest = store.backend.walk(start, "downstream", None, limit=100, cursor=page.next_cursor)
    assert len(rest.edges) == 2 * (RUNS - 1) - 5 and rest.next_cursor is None
    bounded = store.backend.walk(start, "downstream", 1, limit=100, count=True)
    assert bounded.edge_count == len(bounded.edges) == RUNS - 1
    with pytest.raises(InvalidValue, match="cursor"):
        store.backend.walk(start, "downstream", None, limit=5, cursor="../x")
    with pytest.raises(InvalidValue, match="cursor"):
        store.backend.walk(start, "downstream", None, limit=5, cursor="3")  # an offset, once
    with pytest.raises(InvalidValue):
        store.lineage(hub, "both", cursor=page.next_cursor)


def test_the_cli_pages_and_counts(sqlite_store, record_pipeline, monkeypatch):
    from metastore.cli import app

    url = sqlite_store.backend.url
    record_pipeline(sqlite_store)
    runner = CliRunner()
    res = runner.invoke(app, ["lineage", "dataset:clean", "--down", "--count", "-s", url,
                              "-f", "json"])
    assert res.exit_code == 0, res.output
    [row] = json.loads(res.stdout)
    assert (row["edges"], row["nodes"]) == (4, 4)  # two runs, each used it and made a model
    res = runner.invoke(app, ["lineage", "dataset:clean", "--down", "--limit", "3", "-s", url,
                              "-f", "csv"])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.strip().splitlines()) == 1 + 3
    cursor = res.stderr.split("--cursor ")[1].split()[0]
    res = runner.invoke(app, ["lineage", "dataset:clean", "--down", "--limit", "3",
                              "--cursor", cursor, "-s", url, "-f", "csv"])
    assert res.exit_code == 0 and len(res.stdout.strip().splitlines()) == 1 + 1
    assert "--cursor" not in res.stderr


def test_the_lineage_page_shows_a_page_and_the_count(sqlite_store, record_pipeline, monkeypatch):
    from fastapi.testclient import TestClient

    from metastore.server import create_app
    from metastore.server.ui import pages

    p = record_pipeline(sqlite_store)
    monkeypatch.setattr(pages, "LINEAGE_PAGE", 2)
    with TestClient(create_app(sqlite_store, auth=False)) as client:
        html = client.get(f"/lineage/version/{p.clean.id}?direction=downstream&depth=5").text
        assert "The nearest 2 of 4 edges" in html and "cursor=" in html
        cursor = html.split("cursor=")[1].split('"')[0]
        html = client.get(f"/lineage/version/{p.clean.id}?direction=downstream&depth=5&cursor={cursor}").text
        assert "A further page 2 of 4 edges" in html and 'id="lineage-next"' not in html


@pytest.mark.parametrize("wide", [None, 0])
def test_counts_are_the_walk_s_edges_and_nodes(store, hub, wide, monkeypatch):
    """The count (a walk one hop at a time) says what the recursive walk reaches: a
    node reached along two edges counted once, a start another start reaches, one
    hop, and through a deleted run nothing, whether deleted runs are joined to each
    edge or read first (`wide`: the hop size past which they are read first)."""
    from metastore.backends.sql_lineage import LevelWalk

    if wide is not None:
        monkeypatch.setattr(LevelWalk, "WIDE", wide)
    with store.start_run(experiment="hub", capture=False) as run:
        run.use_asset(hub)
        model = run.log_asset(b"tuned", kind="model", name="m", derived_from=[hub])
    backend = store.backend
    data = ("asset_version", hub.id)
    for starts in ([data], [data, ("run", run.id)], [("run", run.id)]):
        for direction in ("downstream", "upstream"):
            for depth in (None, 1, 2, 3):
                whole = backend.walk(starts, direction, depth)
                counted = backend.walk(starts, direction, depth, limit=1, count=True)
                far = {(e.dst_type, e.dst_id) if direction == "downstream"
                       else (e.src_type, e.src_id) for e in whole.edges}
                assert counted.edge_count == len(whole.edges), (starts, direction, depth)
                assert counted.node_count == len(far), (starts, direction, depth)
    # the tuned model is reached twice (through the run, and derived from the data)
    whole = backend.walk([data], "downstream", None)
    assert sum(1 for e in whole.edges if e.dst_id == model.id) == 2


def test_keyset_pages_stay_exact_while_runs_are_recorded(store, hub):
    """Pages are nearest first (by hop, then edge), and a cursor names where its page
    ended: edges recorded between pages neither repeat nor hide the edges that were
    there, and the new ones further out than the cursor come in their place."""
    start = [("asset_version", hub.id)]
    whole = store.backend.walk(start, "downstream", None)
    before = {(e.src_id, e.dst_id) for e in whole.edges}
    seen: list[tuple[str, str]] = []
    cursor, added = None, []
    while True:
        page = store.backend.walk(start, "downstream", None, limit=2, cursor=cursor)
        seen += [(e.src_id, e.dst_id) for e in page.edges]
        if len(seen) == 4 and not added:  # mid-walk: one more run uses the data
            with store.start_run(experiment="hub", capture=False) as run:
                run.use_asset(hub)
                run.log_asset(b"late", kind="model", name="m")
            added = [(hub.id, run.id)]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # no edge twice
    assert before <= set(seen)  # every edge that was there
    late = set(seen) - before
    assert late and all(src == run.id or (src, dst) in added for src, dst in late)
    hops = [1 if src == hub.id else 2 for src, _ in seen]
    assert hops == sorted(hops)  # nearest first, the late run's model too
