"""The whole uncommitted change is stored as a code asset, and puts the code back."""

from __future__ import annotations

import subprocess

import pytest


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", cwd=root)
    git("config", "user.email", "t@example.com", cwd=root)
    git("config", "user.name", "t", cwd=root)
    (root / "train.py").write_text("lr = 0.1\n")
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / ".gitignore").write_text("*.log\n")
    git("add", ".", cwd=root)
    git("commit", "-qm", "first", cwd=root)
    monkeypatch.chdir(root)
    return root


def test_the_whole_diff_is_a_code_asset_that_rebuilds_the_tree(store, repo, tmp_path):
    (repo / "train.py").write_text("lr = 0.01  # changed\n")
    (repo / "data.bin").write_bytes(bytes(reversed(range(256))))
    (repo / "helper.py").write_text("def f():\n    return 1\n")  # untracked
    (repo / "run.log").write_text("ignored\n")
    with store.start_run(experiment="e", capture={"git"}) as run:
        pass
    [diff] = [v for v in store.get_run(run.id).inputs if v.kind == "code"]
    assert diff.name == "git-diff" and diff.role == "uncommitted changes"
    assert diff.meta["commit"] == store.get_run(run.id).git_commit
    patch = diff.read_bytes()
    assert b"helper.py" in patch and b"run.log" not in patch

    # a clean checkout of the commit plus the patch is the working tree
    clone = tmp_path / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    git("checkout", "-q", diff.meta["commit"], cwd=clone)
    subprocess.run(["git", "apply", "--binary", "-"], cwd=clone, input=patch, check=True)
    for name in ("train.py", "data.bin", "helper.py"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes()


def test_a_clean_tree_stores_no_diff(sqlite_store, repo):
    with sqlite_store.start_run(experiment="e", capture={"git"}) as run:
        pass
    assert sqlite_store.get_run(run.id).inputs == []
