"""Finding and opening a store, and what a run captures about its context."""

from __future__ import annotations

import subprocess

import pytest

import metastore
from metastore.errors import InvalidURL, InvalidValue


def test_open_creates_and_then_finds_the_store_walking_up(chdir_tmp):
    store = metastore.open()
    assert (chdir_tmp / ".metastore" / "metastore.db").exists()
    with store.start_run(experiment="e", capture=False) as run:
        run.log_asset(b"x", kind="model", name="m")
    assert (chdir_tmp / ".metastore" / "blobs").is_dir()
    nested = chdir_tmp / "a" / "b"
    nested.mkdir(parents=True)
    import os

    os.chdir(nested)
    again = metastore.open()
    assert again.get_run(run.id).id == run.id
    assert not (nested / ".metastore").exists()


def test_environment_variables_select_the_store(chdir_tmp, monkeypatch, tmp_path):
    monkeypatch.setenv("METASTORE_URL", f"sqlite:///{tmp_path / 'elsewhere' / 'm.db'}")
    monkeypatch.setenv("METASTORE_BLOBS", str(tmp_path / "blobroot"))
    store = metastore.open()
    assert "elsewhere" in store.url
    with store.start_run(capture=False) as run:
        run.log_asset(b"y", kind="model", name="m")
    assert (tmp_path / "blobroot" / "sha256").is_dir()
    assert not (chdir_tmp / ".metastore").exists()


def test_open_without_create_fails_clearly(chdir_tmp):
    from metastore.errors import NotFound

    with pytest.raises(NotFound, match="metastore init"):
        metastore.open(create=False)


@pytest.mark.parametrize("form", ["folder", "sqlite_url"])
def test_opening_a_missing_store_to_read_leaves_nothing_behind(tmp_path, form):
    # a mistyped --store was answered as an empty store, and left a metastore.db there
    from metastore.errors import NotFound

    missing = tmp_path / "typo" / "store"
    url = str(missing) if form == "folder" else f"sqlite:///{missing / 'metastore.db'}"
    for lazy in (False, True):
        with pytest.raises(NotFound, match="no metastore"):
            metastore.open(url, create=False, lazy=lazy)
    assert not (tmp_path / "typo").exists()


def test_an_empty_database_opened_to_read_is_not_a_store(tmp_path):
    import sqlite3

    from metastore.errors import NotFound

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(NotFound, match="holds no metastore"):
        metastore.open(f"sqlite:///{empty}", create=False)
    metastore.open(f"sqlite:///{empty}")  # creating one there still works
    metastore.open(f"sqlite:///{empty}", create=False)


def test_the_cli_says_a_mistyped_store_is_missing(tmp_path):
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "metastore", "fields", "--store", str(tmp_path / "typo")],
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "no metastore" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("url", ["nonsense://x", "postgresql://:::"])
def test_bad_urls(url):
    with pytest.raises((InvalidURL, metastore.MetastoreError)):
        metastore.open(url)


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_and_system_context_is_captured(chdir_tmp):
    _git(chdir_tmp, "init", "-q", "-b", "main")
    _git(chdir_tmp, "config", "user.email", "t@example.com")
    _git(chdir_tmp, "config", "user.name", "t")
    (chdir_tmp / "train.py").write_text("print(1)\n")
    _git(chdir_tmp, "add", "train.py")
    _git(chdir_tmp, "commit", "-qm", "first")
    (chdir_tmp / "train.py").write_text("print(2)\n")
    store = metastore.open()
    with store.start_run(experiment="e") as run:
        pass
    got = store.get_run(run.id)
    assert len(got.git_commit) == 40 and got.git_branch == "main" and got.git_dirty is True
    # only the edited file: the store's own folder ignores itself
    assert got.context["git"]["changed_files"] == ["train.py"]
    assert "1 file changed" in got.context["git"]["diff_stat"]
    assert got.context["system"]["python"] and got.host and got.command
    env = [v for v in got.inputs if v.kind == "environment"]
    assert len(env) == 1 and b"==" in env[0].read_bytes()


def test_capture_can_be_switched_off_part_by_part(sqlite_store):
    with sqlite_store.start_run(experiment="e", capture=["system"]) as run:
        pass
    got = sqlite_store.get_run(run.id)
    assert got.git_commit is None and got.command is None
    assert "system" in got.context and got.inputs == []
    with pytest.raises(InvalidValue, match="unknown capture"):
        sqlite_store.start_run(experiment="e", capture=["gpu"])
