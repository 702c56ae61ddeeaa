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


# ---- word search: `matches` (metastore/fulltext.py) ----------------------------------------


@pytest.fixture
def worded(store):
    texts = [
        ["1e-3 Diverged after epoch 8"],
        ["fine", "Naïve ÉCOLE: see path/to/x.csv"],
        ["diverging, maybe", "epoch-8 diverged again"],
        [],
    ]
    for t in texts:
        with store.start_run(experiment="w", capture=False) as r:
            for text in t:
                r.note(text, author="ada")
    return store


def test_matches_finds_every_word_in_any_order_and_case(worded):
    q = lambda s: refs(worded, f"runs where note matches {s} show ref")  # noqa: E731
    assert q('"diverged epoch"') == ["w#1", "w#3"]
    assert q('"EPOCH Diverged"') == ["w#1", "w#3"]
    # words, not substrings: "diverge" is not a word of any note; a star asks for a start
    assert q('"diverge"') == []
    assert q('"diverg*"') == ["w#1", "w#3"]
    assert q('"diverg* maybe"') == ["w#3"]
    # a word is letters and digits: punctuation separates, on every database alike
    assert q('"1e-3"') == ["w#1"]
    assert q('"3"') == ["w#1"]
    assert q('"8 epoch"') == ["w#1", "w#3"]
    assert q('"csv"') == ["w#2"]
    assert q('"école naïve"') == ["w#2"]
    assert q('"diverged fine"') == []  # both words in one note, not across a run's notes
    # negated: runs none of whose notes match (a run without notes among them)
    assert refs(worded, 'runs where experiment = "w" and note not matches "diverged" show ref') == [
        "w#2", "w#4"]


def test_matches_on_the_notes_source(worded):
    rows = worded.query('notes where text matches "diverged epoch" show run, text').to_records()
    assert rows == [{"run": "w#1", "text": "1e-3 Diverged after epoch 8"},
                    {"run": "w#3", "text": "epoch-8 diverged again"}]
    rows = worded.query('notes where text not matches "diverg*" and run != "w#2" show text').to_records()
    assert rows == []
    # the index and other conditions together, grouped
    counts = worded.query('notes where text matches "diverg*" group by run show run, count()').to_records()
    assert counts == [{"run": "w#1", "count()": 1}, {"run": "w#3", "count()": 2}]
    # on any other text, the same meaning without an index
    assert refs(worded, 'runs where experiment matches "W" and number = 1 show ref') == ["w#1"]


def test_matches_mistakes(worded):
    with pytest.raises(QueryError, match="quoted words"):
        worded.query("notes where text matches 3")
    with pytest.raises(QueryError, match="at least one word") as e:
        worded.query('notes where text matches "*- ,"')
    assert "diverg*" in e.value.hint
    with pytest.raises(QueryError, match="matches looks for words in text"):
        worded.query('runs where number matches "1"')
    with pytest.raises(QueryError, match="not a group key"):
        worded.query('runs group by experiment where note matches "x"')


def test_matches_keeps_up_with_every_write(worded):
    """The index follows the notes however they are written: a note added to a run
    later, and runs written whole (how importers, bundles and the server write)."""
    from metastore.records import NoteRecord, RunRecord

    assert refs(worded, 'runs where note matches "later" show ref') == []
    run = worded.query("runs where number = 4 show id").to_records()[0]["id"]
    worded.backend.add_note(run, "added later")
    worded.backend.create_runs([RunRecord(experiment="w", notes=[NoteRecord(text="imported LATER")])])
    assert refs(worded, 'runs where note matches "later" show ref') == ["w#4", "w#5"]


def _index_is_sound(store) -> None:
    """The SQLite index holds exactly the notes (FTS5's own check)."""
    with store.backend.writer.begin() as conn:
        conn.exec_driver_sql("INSERT INTO note_fts(note_fts) VALUES ('integrity-check')")


@pytest.fixture
def sqlite_or_pg(request, tmp_path):
    from tests.conftest import make_database

    url, drop = make_database(request.param, tmp_path)
    yield url
    drop()


@pytest.mark.parametrize("sqlite_or_pg", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_the_migration_indexes_the_notes_already_there(sqlite_or_pg, tmp_path):
    """A store of the revision before the index (0005) gets it on upgrade, filled with
    the notes it held; queries then go through it."""
    import metastore
    from metastore import database, fulltext

    store = metastore.open(sqlite_or_pg, blobs=tmp_path / "b")
    with store.start_run(experiment="w", capture=False) as r:
        r.note("diverged after epoch 8")
    engine = store.backend.writer
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:  # back to 0005: no index
        for sql in fulltext.SQLITE_DROP if sqlite else fulltext.PG_DROP:
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0005'")
    store.close()
    engine = __import__("sqlalchemy").create_engine(database.normalize_url(sqlite_or_pg))
    database.upgrade(engine, backup=False)
    engine.dispose()
    store = metastore.open(sqlite_or_pg, blobs=tmp_path / "b")
    try:
        answer = store.query('runs where note matches "Epoch diverged" show ref')
        assert [r["ref"] for r in answer] == ["w#1"]
        assert ("note_fts MATCH" if sqlite else "@@") in answer.sql
        if sqlite:
            _index_is_sound(store)
            store.delete_run(r.id)
            store.purge()
            _index_is_sound(store)
        else:
            with store.backend.writer.connect() as conn:
                conn.exec_driver_sql("SET enable_seqscan = off")  # two notes: make it choose
                plan = conn.exec_driver_sql(
                    "EXPLAIN SELECT id FROM note WHERE "
                    f"{fulltext.WORDS_TSVECTOR} @@ CAST('epoch' AS tsquery)").fetchall()
            assert fulltext.PG_INDEX in str(plan)
    finally:
        store.close()


def test_a_sqlite_without_the_index_answers_the_same(tmp_path):
    """A SQLite store made where SQLite had no FTS5 has no index: `matches` then reads
    the notes with a regular expression per word, with the same rows."""
    import metastore
    from metastore import fulltext

    store = metastore.open(f"sqlite:///{tmp_path / 'm.db'}", blobs=tmp_path / "b")
    for text in ("1e-3 Diverged after epoch 8", "Naïve ÉCOLE: see path/to/x.csv", "diverging"):
        with store.start_run(experiment="w", capture=False) as r:
            r.note(text)
    queries = ['runs where note matches "diverged epoch" show ref', 'runs where note matches "diverg*" show ref',
               'notes where text matches "école CSV" show run', 'notes where text matches "1e-3" show run',
               'runs where note matches "diverge" show ref']
    with_index = [store.query(q).to_records() for q in queries]
    assert "note_fts" in store.query(queries[0]).sql
    with store.backend.writer.begin() as conn:
        for sql in fulltext.SQLITE_DROP:
            conn.exec_driver_sql(sql)
    assert [store.query(q).to_records() for q in queries] == with_index
    assert "note_fts" not in store.query(queries[0]).sql
    store.close()


def test_matches_through_the_cli(tmp_path):
    """`metastore query` opens a SQLite store without SQLAlchemy: the index answers there too."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import metastore

    url = f"sqlite:///{tmp_path / 'm.db'}"
    with metastore.open(url, blobs=tmp_path / "b") as store:
        for text in ("1e-3 Diverged after epoch 8", "fine"):
            with store.start_run(experiment="w", capture=False) as r:
                r.note(text)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "METASTORE_URL": url}
    out = subprocess.run([sys.executable, "-m", "metastore.cli", "query", "--format", "json",
                          'notes where text matches "EPOCH diverg*" show run, text'],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"run": "w#1", "text": "1e-3 Diverged after epoch 8"}]
    out = subprocess.run([sys.executable, "-m", "metastore.cli", "query", 'notes where text matches "-"'],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "at least one word" in out.stderr and "Traceback" not in out.stderr
