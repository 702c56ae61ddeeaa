"""Shell completion (`metastore --install-completion`): commands, runs, asset versions
and aliases, experiments, from the store the command would open."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def complete(store, words: str) -> list[str]:
    env = dict(os.environ, METASTORE_URL=store.url, _METASTORE_COMPLETE="complete_bash",
               COMP_WORDS=words, COMP_CWORD=str(len(words.split(" ")) - 1),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "metastore"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_of_commands_runs_versions_and_experiments(sqlite_store, tmp_path):
    for n in range(2):
        with sqlite_store.start_run(experiment="diabetes", capture=False) as run:
            run.log_asset(f"model {n}".encode(), kind="model", name="regressor")
    sqlite_store.set_alias("model:regressor@2", "production")
    assert complete(sqlite_store, "metastore rep") == ["reproduce"]
    assert complete(sqlite_store, "metastore show diab") == ["diabetes#2", "diabetes#1"]
    assert complete(sqlite_store, "metastore diff diabetes#1 diabetes#") == ["diabetes#2", "diabetes#1"]
    assert complete(sqlite_store, "metastore lineage model:regressor@") == [
        "model:regressor@2", "model:regressor@1", "model:regressor@production"]
    assert complete(sqlite_store, "metastore alias set mod") == ["model:regressor"]
    assert complete(sqlite_store, "metastore runs -e d") == ["diabetes"]
    assert complete(sqlite_store, "metastore assets mo") == ["model"]


def test_no_store_completes_nothing_and_says_nothing(tmp_path, monkeypatch):
    class Nowhere:
        url = str(tmp_path / "missing")

    assert complete(Nowhere, "metastore show x") == []


def complete_query(store, typed: str, *before: str) -> list[str]:
    """Candidates for `metastore [before…] query '<typed>` (an unclosed quote, as a shell
    has it while the user types), one per line: each is a whole query."""
    words = " ".join(["metastore", *before, "query", "'" + typed])
    env = dict(os.environ, METASTORE_URL=store.url, _METASTORE_COMPLETE="complete_bash",
               COMP_WORDS=words, COMP_CWORD=str(len(before) + 2),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "metastore"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def test_completion_of_a_query(sqlite_store):
    """Through the shell protocol on a real store; what is suggested where is
    tests/query/test_suggest.py."""
    with sqlite_store.start_run(experiment="diabetes", capture=False) as run:
        run.log_params({"alpha": 0.1, "algorithm": "linear"})
        run.log_metrics({"rmse": 55.0, "train/loss": 0.3})
        run.log_asset(b"model", kind="model", name="regressor")
    assert complete_query(sqlite_store, "ru") == ["runs"]
    # the store's own names (then attributes) starting with what is typed
    assert complete_query(sqlite_store, "runs where al") == ["runs where algorithm", "runs where alpha"]
    assert complete_query(sqlite_store, "runs where rmse.m") == [
        "runs where rmse.min", "runs where rmse.max", "runs where rmse.mean"]
    assert complete_query(sqlite_store, "runs where uses model:regressor@") == [
        "runs where uses model:regressor@1"]


def test_without_a_store_a_query_completes_the_languages_words(tmp_path):
    class Nowhere:
        url = str(tmp_path / "missing")

    assert complete_query(Nowhere, "runs where rmse < 5 or") == ["runs where rmse < 5 order by"]
