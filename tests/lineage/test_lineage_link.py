"""Edges recorded after the fact, cycles (refused by link, survived by traversal) and
very deep chains, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from metastore.errors import Conflict, InvalidValue
from metastore.models import LineageEdge, new_id


def test_link_an_external_base_model_to_a_fine_tuned_one(store):
    # A public pre-trained checkpoint, registered by URI and digest without its bytes.
    base = store.put_asset(
        "model", "bert-base", uri="hf://bert-base-uncased", digest="ab" * 32, size=440_000_000
    )
    with store.start_run(experiment="tune", capture=False) as run:
        run.use_asset(b"reviews", kind="dataset", name="reviews")
        tuned = run.log_asset(b"tuned weights", kind="model", name="sentiment")
    store.link("model:bert-base@1", tuned, role="base_model")
    store.link("model:bert-base", "model:sentiment@1", role="base_model")  # again: no-op
    g = store.lineage("model:sentiment@1")
    assert g.edges["model:bert-base@1", "model:sentiment@1"] == {
        "relation": "derived_from", "role": "base_model"}
    assert g.nodes["model:bert-base@1"]["uri"] == "hf://bert-base-uncased"
    assert g.nodes["model:bert-base@1"]["id"] == base.id
    down = store.lineage("model:bert-base", direction="downstream")
    assert set(down) == {"model:bert-base@1", "model:sentiment@1"}


def test_link_refuses_cycles_and_wrong_ends(store):
    with store.start_run(experiment="e", capture=False) as run:
        raw = run.use_asset(b"raw", kind="dataset", name="raw")
        model = run.log_asset(b"m", kind="model", name="m")
    store.put_asset("dataset", "clean", b"clean")
    store.link(raw, "dataset:clean")
    with pytest.raises(Conflict, match="cycle"):
        store.link("dataset:clean", "dataset:raw")  # raw -> clean already
    with pytest.raises(Conflict, match="cycle"):
        store.link(model, raw)  # raw fed the run that made the model
    with pytest.raises(Conflict, match="itself"):
        store.link(raw, raw)
    with pytest.raises(Conflict, match="cycle"):
        store.link(model, "e#1", relation="used")
    with pytest.raises(InvalidValue, match="version → asset version"):
        store.link("e#1", "model:m")
    with pytest.raises(InvalidValue, match="relation"):
        store.link(raw, model, relation="inspired")
    with pytest.raises(Conflict, match="cycle"):  # through the recording API too
        with store.start_run(experiment="e", capture=False) as again:
            again.log_asset(b"raw", kind="dataset", name="raw", derived_from=[model])
    edges = {(u, v) for u, v in store.lineage("model:m", direction="both").edges}
    assert ("model:m@1", "dataset:raw@1") not in edges


def test_unchanged_content_derived_from_itself_is_not_an_edge(store):
    with store.start_run(experiment="e", capture=False) as run:
        v = run.use_asset(b"same", kind="dataset", name="d")
        again = run.log_asset(b"same", kind="dataset", name="d", derived_from=[v])
    assert again == v
    g = store.lineage(v, direction="both")
    assert not g.has_edge("dataset:d@1", "dataset:d@1")


def test_traversal_survives_cycles(db_store):
    store = db_store
    # A pass-through run uses and produces the same content, and two runs feed each
    # other: both are cycles the recording API accepts.
    with store.start_run(experiment="e", capture=False) as r1:
        a = r1.use_asset(b"a", kind="dataset", name="a")
        b = r1.log_asset(b"b", kind="dataset", name="b")
    with store.start_run(experiment="e", capture=False) as r2:
        r2.use_asset(b)
        r2.log_asset(a)  # r2 produced a: a -> r1 -> b -> r2 -> a
    _insert_cycle_of_derivations(store)  # as an importer could
    for direction in ("upstream", "downstream", "both"):
        for depth in (None, 1, 3, 50):
            g = store.lineage(a, direction=direction, depth=depth)
            assert "dataset:a@1" in g
    g = store.lineage(a, direction="downstream")
    assert set(g) == {"dataset:a@1", "e#1", "dataset:b@1", "e#2"}
    assert g.has_edge("e#2", "dataset:a@1")
    g = store.lineage("dataset:x0@1", direction="upstream")
    assert set(g) == {f"dataset:x{i}@1" for i in range(3)}
    assert store.lineage("dataset:x0@1", depth=1).number_of_nodes() == 2


def _insert_cycle_of_derivations(store):
    ids = [store.put_asset("dataset", f"x{i}", f"x{i}".encode()).id for i in range(3)]
    with store.backend.write() as s:
        s.execute(sa.insert(LineageEdge), [
            {"src_type": "asset_version", "src_id": ids[i], "dst_type": "asset_version",
             "dst_id": ids[(i + 1) % 3], "relation": "derived_from"}
            for i in range(3)
        ])


def test_very_deep_chains(db_store):
    """A chain of 1,500 derivations: deeper than MariaDB's default recursion limit."""
    store = db_store
    length = 1500
    ids = [new_id() for _ in range(length + 1)]
    first = store.put_asset("model", "gen", b"gen-0")
    ids[0] = first.id
    with store.backend.write() as s:
        asset_id = first.row.asset_id
        s.execute(sa.text(
            "INSERT INTO asset_version (id, asset_id, version, digest, uri, created) "
            "VALUES (:id, :asset_id, :version, :digest, 'blob:', :created)"
        ), [{"id": ids[i], "asset_id": asset_id, "version": i + 1, "digest": f"{i:064x}",
             "created": first.created} for i in range(1, length + 1)])
        s.execute(sa.insert(LineageEdge), [
            {"src_type": "asset_version", "src_id": ids[i], "dst_type": "asset_version",
             "dst_id": ids[i + 1], "relation": "derived_from"} for i in range(length)
        ])
    last = f"model:gen@{length + 1}"
    up = store.lineage(last)
    assert up.number_of_nodes() == length + 1 and up.nodes["model:gen@1"]["depth"] == length
    assert store.lineage(last, depth=10).number_of_nodes() == 11
    down = store.lineage("model:gen@1", direction="downstream", depth=1200)
    assert down.number_of_nodes() == 1201
    p = store.path("model:gen@1", last)
    assert len(p) == length + 1 and list(p)[0] == "model:gen@1"
    with pytest.raises(Conflict, match="cycle"):
        store.link(last, "model:gen@1")
