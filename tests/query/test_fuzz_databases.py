"""Bounded fuzzing of the query language on every database (issue 10): random texts,
well-formed and not, over a small store; only QueryError may escape, and every query
runs under a deadline the database enforces."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metastore
from metastore.query import QueryError
from metastore.records import RunRecord
from tests.conftest import BACKENDS, _marks, make_database

WORDS = ["runs", "where", "order", "by", "limit", "show", "group", "(", ")", ",", "rmse", "lr",
         "algorithm", "=", "<", ">", "and", "or", "not", '"x"', '"(a+)+$"', "~", "3", "1.5",
         "99999999999999999999", "-", "+", "*", "/", "count()", "mean(rmse)", "in", "between",
         "true", "null", "is", "like", '"*a*"', "per", "models", "upstream", "of", "e#1"]
texts = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=10).map(lambda ws: "runs where " + " ".join(ws)),
)


@pytest.fixture(scope="module", params=[pytest.param(b, marks=_marks(b)) for b in BACKENDS])
def fuzz_store(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    url, drop = make_database(request.param, tmp)
    store = metastore.open(url, blobs=tmp / "blobs")
    store.backend.create_runs([
        RunRecord(experiment="e", params={"lr": 0.1 * i, "algorithm": "a" * 20 + "!"},
                  metrics=[{"key": "rmse", "value": 50.0 + i, "step": 0}])
        for i in range(5)
    ])
    yield store
    store.close()
    drop()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=texts)
def test_only_query_errors_escape(fuzz_store, text):
    try:
        fuzz_store.query(text, timeout=10)
    except QueryError as e:
        assert e.message
        str(e)
