"""Aliases: movable names of asset versions (`model:regressor@production`), on every
backend and through a server; accepted wherever a version reference is."""

from __future__ import annotations

import pytest

from metastore.errors import InvalidValue, NotFound
from metastore.query import QueryError
from metastore.refs import VERSION, Node, resolve


def test_set_move_unset_and_history(store, pipeline):
    first = store.set_alias("model:regressor@1", "production", note="first good model")
    assert (first.ref, first.version, first.previous, first.note) == (
        "model:regressor@production", 1, None, "first good model")
    assert first.author  # who moved it: this process's user
    moved = store.set_alias("model:regressor@2", "production", note="lower rmse")
    assert (moved.version, moved.previous) == (2, 1)
    store.set_alias("model:regressor@1", "staging")
    # setting it where it already points is not a move
    again = store.set_alias("model:regressor@2", "production")
    assert again.version == 2 and again.note == "lower rmse"

    now = {a.alias: a.version for a in store.aliases("model:regressor")}
    assert now == {"production": 2, "staging": 1}
    assert store.get_asset("model", "regressor", "production").version == 2
    assert store.get_asset("model", "regressor", 1).aliases == ["staging"]
    assert store.get_asset("model", "regressor", 2).aliases == ["production"]

    removed = store.unset_alias("model:regressor@staging", note="retired")
    assert (removed.version, removed.previous) == (None, 1)
    assert [a.alias for a in store.aliases()] == ["production"]

    history = store.alias_history("model:regressor")
    assert [(h.alias, h.version, h.previous, h.note) for h in history] == [
        ("production", 1, None, "first good model"),
        ("production", 2, 1, "lower rmse"),
        ("staging", 1, None, None),
        ("staging", None, 1, "retired"),
    ]
    assert [h.version for h in store.alias_history("model:regressor@production")] == [1, 2]
    assert [h.version for h in store.alias_history("model:regressor", "staging")] == [1, None]


def test_an_alias_is_a_reference_everywhere(store, pipeline):
    store.set_alias(pipeline.m1, "production")
    m1 = Node(VERSION, pipeline.m1.id)
    assert resolve(store.backend, "model:regressor@production") == m1
    assert resolve(store.backend, "regressor@production") == m1
    # an alias may name the version for another alias
    store.set_alias("model:regressor@production", "champion")
    assert resolve(store.backend, "model:regressor@champion") == m1

    # "what data and code made the production model"
    up = store.lineage("model:regressor@production", "upstream")
    assert {"dataset:clean@1", "dataset:raw@1", "code:train.py@1",
            "environment:python@1", "exp#2"} <= set(up.nodes)

    q = store.query('versions where alias = "production" show ref').to_records()
    assert q == [{"ref": "model:regressor@1"}]
    assert store.query('models where alias != "production" show ref').to_records() == [
        {"ref": "model:lonely@1"}, {"ref": "model:regressor@2"}]
    assert store.query('versions where alias in ("champion", "nope") show ref').to_records() == [
        {"ref": "model:regressor@1"}]
    shown = {r["ref"]: r["alias"] for r in store.query("models show ref, alias").to_records()}
    assert shown["model:regressor@2"] is None
    assert sorted(shown["model:regressor@1"].split(", ")) == ["champion", "production"]
    assert store.query("runs where produced model:regressor@production show ref").to_records() == [
        {"ref": "exp#2"}]
    ups = {r["ref"] for r in store.query("upstream of model:regressor@production").to_records()}
    assert {"exp#2", "dataset:clean@1"} <= ups

    # moving the alias moves every answer with it
    store.set_alias("model:regressor@2", "production")
    assert store.query("runs where produced model:regressor@production show ref").to_records() == [
        {"ref": "exp#3"}]
    assert store.query('versions where alias = "production" show ref').to_records() == [
        {"ref": "model:regressor@2"}]


@pytest.mark.parametrize("alias", ["", "3", "v3", "latest", "has space", "a@b", "x" * 65, "-x"])
def test_an_alias_cannot_look_like_a_version(store, pipeline, alias):
    with pytest.raises(InvalidValue):
        store.set_alias("model:regressor@1", alias)


def test_alias_mistakes_are_clear(store, pipeline):
    with pytest.raises(InvalidValue, match="aliases name asset versions"):
        store.set_alias("exp#2", "production")
    with pytest.raises(NotFound, match="has no alias 'production'"):
        store.unset_alias("model:regressor@production")
    with pytest.raises(InvalidValue, match="which alias"):
        store.unset_alias("model:regressor")
    with pytest.raises(NotFound) as e:
        resolve(store.backend, "model:regressor@production")
    assert "no version or alias 'production'" in e.value.message
    assert "metastore alias set" in e.value.hint
    store.set_alias("model:regressor@1", "staging")
    with pytest.raises(NotFound) as e:
        resolve(store.backend, "model:regressor@prod")
    assert "staging" in e.value.hint
    with pytest.raises(QueryError, match="has no alias 'prod'"):
        store.query("runs where produced model:regressor@prod")
    with pytest.raises(NotFound):
        store.get_asset("model", "regressor", "prod")


def test_purge_keeps_a_version_an_alias_names(db_store, record_pipeline):
    record_pipeline(db_store)
    db_store.set_alias("model:lonely@1", "keep")
    db_store.delete_experiment("other")
    counts = db_store.purge()
    assert counts["runs"] == 1 and counts["versions"] == 0
    assert db_store.get_asset("model", "lonely", "keep").version == 1
