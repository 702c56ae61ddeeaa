"""Find what you can ask: `Store.fields` / `metastore fields`, and errors that list the
valid names."""

from __future__ import annotations

import pytest

from metastore.query import QueryError


def test_fields_lists_every_name_with_its_kind_and_count(store):
    with store.start_run(experiment="a", capture=False) as r:
        r.log_params({"lr": 0.1, "optimizer": "adam", "normalize": True})
        r.log_metric("loss", 1.0)
        r.set_tags({"team": "vision"})
    with store.start_run(experiment="a", capture=False) as r:
        r.log_params({"lr": "auto"})
        r.log_metric("loss", 2.0)
    with store.start_run(experiment="b", capture=False) as r:
        r.log_metric("f1", 0.5)
    rows = {(f["kind"], f["name"]): f for f in store.fields()}
    assert rows[("param", "lr")]["runs"] == 2 and rows[("param", "lr")]["type"] == "number|text"
    assert rows[("param", "normalize")]["type"] == "bool"
    assert rows[("metric", "loss")]["runs"] == 2 and rows[("metric", "f1")]["runs"] == 1
    assert rows[("tag", "team")]["runs"] == 1
    assert rows[("attribute", "status")]["runs"] == 3
    assert ("history suffix", "METRIC.min") in rows
    assert ("lineage condition", "upstream of REF") in rows
    assert ("group key", "config") in rows
    assert ("source", "models") in rows and ("source", "notes") in rows
    assert ("note attribute", "text") in rows
    only_b = {(f["kind"], f["name"]) for f in store.fields(experiment="b")}
    assert ("metric", "f1") in only_b and ("metric", "loss") not in only_b
    # every attribute listed is one the query language accepts
    for f in store.fields():
        if f["kind"] == "attribute":
            store.query(f"runs show {f['name']}")
        if f["kind"] == "note attribute":
            store.query(f"notes show {f['name']}")


def test_an_unknown_history_suffix_lists_the_valid_ones(store):
    with store.start_run(experiment="a", capture=False) as r:
        r.log_metric("loss", 1.0)
    with pytest.raises(QueryError, match="has no history value 'mn'") as e:
        store.query("runs where loss.mn < 1")
    assert "loss.min" in e.value.hint and "loss.last_step" in e.value.hint
    with pytest.raises(QueryError, match="has no history value 'bogus'"):
        store.query("runs show metrics.loss.bogus")
