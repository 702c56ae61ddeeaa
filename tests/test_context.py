"""Context capture: what cannot change within a process is read once."""

from __future__ import annotations

import subprocess

from metastore import context


def _dist(folder, name: str, version: str) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_packages_are_read_once_until_sys_path_changes(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "capturefixture", "1.0")
    monkeypatch.syspath_prepend(str(site))
    first = context.packages_text()
    assert "capturefixture==1.0" in first
    assert context.packages_text() is first  # cached, not read again
    _dist(site, "capturefixture2", "2.0")  # an install changes the folder
    again = context.packages_text()
    assert "capturefixture2==2.0" in again and again is not first


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_info_from_one_status(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert context.git_info(str(repo)) == {}  # no commit yet
    (repo / "a.py").write_text("a\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "a")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    clean = context.git_info(str(repo))
    assert clean == {"commit": head, "branch": "main", "dirty": False, "root": str(repo)}
    (repo / "a.py").write_text("b\n")
    (repo / "new file.txt").write_text("x")
    _git(repo, "mv", "a.py", "b.py")
    dirty = context.git_info(str(repo))
    assert dirty["dirty"] and dirty["changed_files"] == ["a.py -> b.py", "new file.txt"]
    assert "changed" in dirty["diff_stat"]
    _git(repo, "checkout", "-q", "--detach")
    assert context.git_info(str(repo))["branch"] == "HEAD"
