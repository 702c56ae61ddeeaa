"""Compiled queries kept on disk (metastore/query/cache.py): a repeated question skips
the parser and the compiler, and a changed store or a new compiler never gets SQL that
was compiled for something else."""

from __future__ import annotations

import json

import pytest

import metastore
from metastore.query import QueryError, cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("METASTORE_CACHE_DIR", str(folder))
    cache._MEMORY.clear()  # each step below behaves as a new process would
    yield folder / "queries"
    cache._MEMORY.clear()


@pytest.fixture
def compiles(monkeypatch):
    """How many times the compiler ran."""
    count = {"n": 0}
    real = cache._compile

    def counted(*args):
        count["n"] += 1
        return real(*args)

    monkeypatch.setattr(cache, "_compile", counted)
    return count


def _store(tmp_path, runs):
    url = f"sqlite:///{tmp_path / 'metastore.db'}"
    with metastore.open(url) as s:
        for params, metrics in runs:
            with s.start_run(experiment="e", capture=False) as run:
                run.log_params(params)
                run.log_metrics(metrics)
    return url


def _ask(url, text):
    """As `metastore query` asks: a lazily opened SQLite store, as a fresh process."""
    cache._MEMORY.clear()
    with metastore.open(url, lazy=True) as s, s.query_stream(text) as answer:
        return list(answer.rows)


def test_a_repeated_query_is_not_compiled_again(tmp_path, cache_dir, compiles):
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0}), ({"lr": 0.2}, {"rmse": 2.0})])
    first = _ask(url, "runs where rmse < 2.5 show number, lr")
    assert compiles["n"] == 1 and len(list(cache_dir.glob("*.json"))) == 1
    assert _ask(url, "runs where rmse < 2.5 show number, lr") == first == [{"number": 2, "lr": 0.2}]
    assert compiles["n"] == 1


def test_a_new_key_in_the_store_compiles_afresh(tmp_path, cache_dir, compiles):
    # `foo` is a param; once a run logs a metric `foo` too, the bare name is ambiguous:
    # SQL compiled for the old catalog must not answer
    url = _store(tmp_path, [({"foo": 1}, {"rmse": 3.0})])
    assert _ask(url, "runs show number, foo") == [{"number": 1, "foo": 1}]
    with metastore.open(url) as s, s.start_run(experiment="e", capture=False) as run:
        run.log_metric("foo", 2.0)
    with pytest.raises(QueryError, match="foo"):
        _ask(url, "runs show number, foo")
    assert compiles["n"] == 2


def test_the_type_check_runs_on_the_store_as_it_is_now(tmp_path, cache_dir, compiles):
    # the compiled query comes from the cache; whether `lr` ever holds text is asked
    # of the data every time
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    with pytest.raises(QueryError, match="never matches"):
        _ask(url, 'runs where lr = "fast" show number')
    with metastore.open(url) as s, s.start_run(experiment="f", capture=False) as run:
        run.log_params({"lr": "fast"})
    assert _ask(url, 'runs where lr = "fast" show number') == [{"number": 1}]
    assert compiles["n"] == 1


def test_a_new_package_version_compiles_afresh(tmp_path, cache_dir, compiles, monkeypatch):
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    _ask(url, "runs show number, rmse")
    monkeypatch.setattr("metastore.version.__version__", "99.0")
    cache.compiler_identity.cache_clear()
    try:
        _ask(url, "runs show number, rmse")
    finally:
        cache.compiler_identity.cache_clear()
    assert compiles["n"] == 2
    assert len(list(cache_dir.glob("*.json"))) == 2


def test_a_damaged_entry_is_compiled_again(tmp_path, cache_dir, compiles):
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    _ask(url, "runs show number, rmse")
    [entry] = cache_dir.glob("*.json")
    entry.write_text('{"format": 1, "sql": "SELECT 1"')  # cut short
    assert _ask(url, "runs show number, rmse") == [{"number": 1, "rmse": 3.0}]
    assert compiles["n"] == 2
    assert json.loads(entry.read_text())["sql"].startswith("SELECT")  # written again, whole


def test_cached_reference_checks_still_name_the_place(tmp_path, cache_dir):
    # a lineage reference is checked against the store on every query, from the cache
    # too, and its error still points at the reference
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    for _ in range(2):
        with pytest.raises(QueryError) as e:
            _ask(url, "downstream of run 7")
        assert "no run 7" in str(e.value) and "^" in str(e.value)


# -- the fixed reads of a query, once per change of a SQLite store ----------------------


@pytest.mark.parametrize("lazy", [False, True])
def test_a_query_sees_what_was_written_since_the_last_one(tmp_path, lazy):
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    with metastore.open(url, lazy=lazy) as s, metastore.open(url) as other:
        assert s.query("runs show number, rmse").rows == [{"number": 1, "rmse": 3.0}]
        with other.start_run(experiment="e", capture=False) as run:  # another connection
            run.log_metric("acc", 0.5)
        assert s.query("runs where acc > 0 show number, acc").rows == [{"number": 2, "acc": 0.5}]
        with s.start_run(experiment="e", capture=False) as run:  # this store's own write
            run.log_metric("loss", 1.5)
        assert s.query("runs where loss > 0 show number").rows == [{"number": 3}]


def test_a_run_whose_process_ends_between_queries_is_marked_crashed(tmp_path):
    # while a run says running, every query checks its process: no read is kept
    import subprocess
    import sys

    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import metastore, os, sys\n"
         f"s = metastore.open({url!r})\n"
         "s.start_run(experiment='e', capture=False, system_metrics=False)\n"
         "print('started', flush=True)\n"
         "sys.stdin.read()\n"
         "os._exit(0)  # without ending the run"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        with metastore.open(url) as s:
            q = "runs where number = 2 show status"
            assert s.query(q).rows == [{"status": "running"}]
            assert s.query(q).rows == [{"status": "running"}]
            child.stdin.close()
            child.wait(timeout=60)
            assert s.query(q).rows == [{"status": "crashed"}]
    finally:
        child.kill()


def test_the_cache_folder_keeps_the_most_recently_used(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(cache, "MAX_FILES", 4)
    url = _store(tmp_path, [({"lr": 0.1}, {"rmse": 3.0})])
    for n in range(1, 7):
        _ask(url, f"runs limit {n}")
    kept = list(cache_dir.glob("*.json"))
    assert 3 <= len(kept) <= 4  # past 4 entries, the oldest are dropped down to 3
    assert not list(cache_dir.glob("*.tmp"))
