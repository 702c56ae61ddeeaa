"""Unknown and ambiguous references give errors a person can act on."""

from __future__ import annotations

import pytest

from metastore.errors import Ambiguous, InvalidValue, NotFound
from metastore.refs import RUN, VERSION, Node, resolve


@pytest.fixture
def store(sqlite_store, record_pipeline):
    record_pipeline(sqlite_store)
    return sqlite_store


def test_every_form_resolves(store):
    a = store.get_run("exp#2")
    assert resolve(store.backend, "exp#2") == Node(RUN, a.id) == resolve(store.backend, a)
    assert resolve(store.backend, 2, experiment="exp") == Node(RUN, a.id)
    assert resolve(store.backend, a.id.lower()) == Node(RUN, a.id)
    m1 = store.get_asset("model", "regressor", 1)
    assert resolve(store.backend, "model:regressor@1") == Node(VERSION, m1.id)
    assert resolve(store.backend, "model:regressor@v1") == Node(VERSION, m1.id)
    assert resolve(store.backend, m1.id) == Node(VERSION, m1.id)
    assert resolve(store.backend, "model:regressor") == resolve(store.backend, "model:regressor@2")


@pytest.mark.parametrize(
    "ref, error, message, hint",
    [
        ("model:regresor@1", NotFound, "no model named 'regresor'", "model:regressor"),
        ("modle:regressor@1", NotFound, "unknown asset kind 'modle'", "model"),
        ("model:regressor@9", NotFound, "no version 9", "versions 1, 2"),
        ("model:regressor@best", NotFound, "no version or alias 'best'", "metastore alias set"),
        ("regressr@1", NotFound, "no asset named 'regressr'", "regressor"),
        ("regressor", NotFound, "no run or asset version 'regressor'", "model:regressor"),
        ("train-c", NotFound, "no run or asset version", "train-a"),
        ("exp#9", NotFound, "no run number 9", None),
        ("", InvalidValue, "empty", None),
    ],
)
def test_unknown_refs_explain_themselves(store, ref, error, message, hint):
    with pytest.raises(error) as info:
        store.lineage(ref)
    assert message in info.value.message
    if hint:
        assert hint in (info.value.hint or "")


def test_ambiguous_name(store):
    store.put_asset("dataset", "regressor", b"a dataset with a model's name")
    with pytest.raises(Ambiguous, match="several assets") as info:
        store.lineage("regressor@1")
    assert "dataset:regressor@1" in info.value.hint or "model:regressor@1" in info.value.hint
    with pytest.raises(InvalidValue):
        store.lineage(3.5)
