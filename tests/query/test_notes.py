"""Notes and events are searchable: a condition on a run's notes, and a `notes` source,
on every backend and through a server."""

from __future__ import annotations

import pytest

from metastore.query import QueryError


@pytest.fixture
def runs(store):
    notes = [
        (1e-3, ["1e-3 Diverged after epoch 8"]),
        (1e-4, ["fine", "50% done_x"]),
        (1e-2, []),
    ]
    for lr, texts in notes:
        with store.start_run(experiment="e", capture=False) as r:
            r.log_params({"lr": lr})
            r.log_metric("loss", lr * 100)
            for t in texts:
                r.note(t, author="ada")
    with store.start_run(experiment="other", capture=False) as r:
        r.note("process stopped without ending the run", kind="event")
    return store


def refs(store, q):
    return [row["ref"] for row in store.query(q)]


def test_a_condition_on_a_runs_notes(runs):
    assert refs(runs, 'runs where note contains "diverged" show ref') == ["e#1"]
    assert refs(runs, 'runs where note contains "DIVERGED" show ref') == ["e#1"]
    assert refs(runs, 'runs where note ~ "Diverged after epoch [0-9]+" show ref') == ["e#1"]
    assert refs(runs, 'runs where note like "*EPOCH*" show ref') == ["e#1"]
    # % and _ are letters here, not wildcards
    assert refs(runs, 'runs where note contains "50%" show ref') == ["e#2"]
    assert refs(runs, 'runs where note contains "0% d" show ref') == ["e#2"]
    assert refs(runs, 'runs where note contains "5_" show ref') == []
    # any of a run's notes may match; negated, none may
    assert refs(runs, 'runs where note = "fine" show ref') == ["e#2"]
    assert refs(runs, 'runs where experiment = "e" and note != "fine" show ref') == ["e#1", "e#3"]
    assert refs(runs, 'runs where experiment = "e" and note not contains "diverged" show ref') == [
        "e#2", "e#3"]
    assert refs(runs, 'runs where note in ("fine", "nope") show ref') == ["e#2"]
    assert refs(runs, 'runs where note is null show ref') == ["e#3"]
    # events are notes too
    assert refs(runs, 'runs where note contains "stopped without" show ref') == ["other#1"]
    # combined with everything else, and shown (the latest note)
    rows = runs.query('runs where note contains "diverged" and lr < 0.01 show ref, note').to_records()
    assert rows == [{"ref": "e#1", "note": "1e-3 Diverged after epoch 8"}]


def test_the_notes_source(runs):
    rows = runs.query(
        'notes where text contains "diverged" show run, author, created, text').to_records()
    assert [(r["run"], r["author"], r["text"]) for r in rows] == [
        ("e#1", "ada", "1e-3 Diverged after epoch 8")]
    assert rows[0]["created"] is not None
    events = runs.query('notes where kind = "event" show run, text').to_records()
    assert [r["run"] for r in events] == ["other#1"]
    # the run's params and metrics are reachable from its notes
    assert [r["text"] for r in runs.query("notes where lr < 0.001 show text")] == ["fine", "50% done_x"]
    counts = runs.query("notes group by run show run, count()").to_records()
    assert {r["run"]: r["count()"] for r in counts} == {"e#1": 1, "e#2": 2, "other#1": 1}
    assert len(runs.query("notes", experiment="e")) == 3


def test_note_mistakes(runs):
    with pytest.raises(QueryError, match="quoted text"):
        runs.query("runs where note contains 3")
    with pytest.raises(QueryError, match="contains looks in text"):
        runs.query('runs where loss contains "1"')
    with pytest.raises(QueryError, match="unknown source 'nots'") as e:
        runs.query("nots")
    assert "notes" in e.value.hint
