"""Traversal in SQL on SQLite, PostgreSQL and MariaDB: directions, depth, attributes."""

from __future__ import annotations

import networkx as nx
import pytest

from metastore.errors import InvalidValue

#: Also run the `store` tests through a metastore server (tests/conftest.py).

def test_upstream_of_a_model_is_its_data_code_and_environment(store, pipeline):
    g = store.lineage("model:regressor@1", direction="upstream")
    assert isinstance(g, nx.DiGraph)
    assert set(g) == {
        "model:regressor@1", "exp#2", "dataset:clean@1", "code:train.py@1",
        "environment:python@1", "exp#1", "dataset:raw@1",
    }
    assert g.graph["roots"] == ["model:regressor@1"]
    run = g.nodes["exp#2"]
    assert run["kind"] == "run" and run["id"] == pipeline.a.id and run["label"] == "exp#2"
    assert (run["experiment"], run["number"], run["name"], run["status"]) == (
        "exp", 2, "train-a", "finished")
    model = g.nodes["model:regressor@1"]
    assert model["kind"] == "model" and model["id"] == pipeline.m1.id
    assert (model["name"], model["version"], model["digest"], model["size"]) == (
        "regressor", 1, pipeline.m1.digest, len(b"weights-1"))
    assert model["depth"] == 0 and run["depth"] == 1 and g.nodes["dataset:raw@1"]["depth"] == 3
    assert g.edges["exp#2", "model:regressor@1"] == {"relation": "produced", "role": None}
    assert g.edges["dataset:clean@1", "exp#2"] == {"relation": "used", "role": "train"}
    assert g.edges["dataset:raw@1", "dataset:clean@1"]["relation"] == "derived_from"
    # edges point the way data flows, so the model is the only sink
    assert [n for n in g if g.out_degree(n) == 0] == ["model:regressor@1"]


def test_depth_bounds_the_walk(store, pipeline):
    assert set(store.lineage("model:regressor@1", depth=0)) == {"model:regressor@1"}
    assert set(store.lineage("model:regressor@1", depth=1)) == {"model:regressor@1", "exp#2"}
    two = store.lineage("model:regressor@1", depth=2)
    assert "dataset:clean@1" in two and "exp#1" not in two
    assert set(store.lineage("model:regressor@1", depth=10)) == set(
        store.lineage("model:regressor@1"))


def test_downstream_of_a_dataset_reaches_every_run_and_model(store, pipeline):
    g = store.lineage("dataset:raw", direction="downstream")
    assert set(g) == {
        "dataset:raw@1", "exp#1", "dataset:clean@1", "exp#2", "exp#3",
        "model:regressor@1", "model:regressor@2",
    }
    models = sorted(n for n, d in g.nodes(data=True) if d["kind"] == "model")
    assert models == ["model:regressor@1", "model:regressor@2"]


def test_both_directions_and_refs_of_every_form(store, pipeline):
    g = store.lineage(pipeline.a, direction="both")
    assert "model:regressor@1" in g and "dataset:raw@1" in g
    assert "exp#3" not in g  # a sibling, neither upstream nor downstream
    same = [
        store.lineage(ref, direction="both")
        for ref in (pipeline.a.id, "exp#2", "train-a", f"run:{pipeline.a.id}", "run:exp#2")
    ]
    assert all(set(x) == set(g) for x in same)
    assert set(store.lineage(pipeline.m2)) == set(store.lineage("model:regressor"))
    assert set(store.lineage("regressor@2")) == set(store.lineage("model:regressor@latest"))
    assert set(store.lineage(store.get_asset("model", "regressor", version=1))) == set(
        store.lineage("model:regressor@1"))


def test_a_node_without_edges_is_a_graph_of_one(sqlite_store, record_pipeline):
    store = sqlite_store
    record_pipeline(store)
    g = store.lineage("exp#1", direction="upstream")
    assert set(g) == {"exp#1", "dataset:raw@1"}
    lonely = store.lineage("other#1", direction="upstream")
    assert list(lonely) == ["other#1"] and lonely.number_of_edges() == 0


def test_deleted_runs_are_left_out(sqlite_store, record_pipeline):
    store = sqlite_store
    pipeline = record_pipeline(store)
    store.delete_run(pipeline.b.id)
    g = store.lineage("dataset:clean", direction="downstream")
    assert "exp#3" not in g and "model:regressor@2" not in g and "exp#2" in g
    assert store.path("dataset:clean", "model:regressor@2") is None
    store.backend.restore_run(pipeline.b.id)
    assert "model:regressor@2" in store.lineage("dataset:clean", direction="downstream")
    assert list(store.path("dataset:clean", "model:regressor@2"))[1] == "exp#3"


def test_bad_direction_or_depth(sqlite_store, record_pipeline):
    store = sqlite_store
    record_pipeline(store)
    with pytest.raises(InvalidValue, match="direction"):
        store.lineage("exp#1", direction="sideways")
    with pytest.raises(InvalidValue, match="depth"):
        store.lineage("exp#1", depth=-1)


def test_path_between_two_nodes(store, pipeline):
    p = store.path("dataset:raw@1", "model:regressor@1")
    # the shortest way: clean was derived from raw, a shortcut past the prep run
    assert list(p) == ["dataset:raw@1", "dataset:clean@1", "exp#2", "model:regressor@1"]
    assert [p.edges[u, v]["relation"] for u, v in zip(list(p), list(p)[1:], strict=False)] == [
        "derived_from", "used", "produced"]
    # asked the other way round, the path still reads in data-flow order
    assert list(store.path("model:regressor@1", "dataset:raw@1")) == list(p)
    assert store.path("model:regressor@1", "model:regressor@2") is None
    assert store.path("other#1", "dataset:raw") is None
    assert list(store.path("exp#2", "exp#2")) == ["exp#2"]
