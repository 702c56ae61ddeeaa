"""`metastore reproduce RUN --dry-run`: the plan of a reproduction and what is missing,
and audit's per-run verdict from the same rules."""

from __future__ import annotations

import json
import subprocess

from typer.testing import CliRunner

from metastore.cli import app


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_plan_of_a_run_recorded_in_a_dirty_repository(store, tmp_path, monkeypatch):
    from sklearn.datasets import load_diabetes

    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    (repo / "train.py").write_text("print('train')\n")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "first", cwd=repo)
    (repo / "train.py").write_text("print('train, changed')\n")
    load_diabetes(as_frame=True).frame.to_csv(repo / "diabetes.csv", index=False)
    monkeypatch.chdir(repo)
    with store.start_run(experiment="e", capture={"git", "command", "packages"}) as run:
        run.log_params({"seed": 0})
        run.use_asset(repo / "diabetes.csv", kind="dataset", name="diabetes", role="train")
        run.log_metric("rmse", 55.0)
    p = store.reproduce_plan(run.id)
    assert p.can_run, p.missing
    text = " | ".join(f"{s.part}: {s.action}" for s in p.steps)
    assert "clone of the repository at commit" in text and "apply the uncommitted change code:git-diff@1" in text
    assert "materialise dataset:diabetes@1 as train to diabetes.csv" in text
    assert "fresh virtual environment from environment:python@1" in text
    assert "compare: metrics rmse" in text

    # a run that recorded nothing: every gap is named, and audit says the same
    with store.start_run(experiment="e", capture=False) as bare:
        pass
    p = store.reproduce_plan(bare.id)
    assert not p.can_run
    assert p.missing == ["code: no git commit was recorded (it was started outside a git repository, "
                         "or with git capture off) and no code was stored with the run, so there is "
                         "nothing to rebuild its code from",
                         "environment: no package list recorded (--here would use the current one)",
                         "command: no command recorded"]
    by_ref = {r.ref: r for r in store.audit("e").runs}
    assert by_ref["e#1"].reproduce_missing == []
    assert by_ref["e#2"].reproduce_missing == p.missing
    assert by_ref["e#2"].to_dict()["reproduce"]["can_run"] is False


def test_reproduce_dry_run_command(sqlite_store):
    with sqlite_store.start_run(experiment="e", capture=False) as run:
        pass
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "e#1", "--dry-run", "-s", sqlite_store.url])
    assert res.exit_code == 1 and "MISSING" in res.output and "no command recorded" in res.output
    res = runner.invoke(app, ["reproduce", "e#1", "--dry-run", "-f", "json", "-s", sqlite_store.url])
    assert json.loads(res.output)["can_run"] is False
    res = runner.invoke(app, ["reproduce", run.id, "-s", sqlite_store.url])
    assert res.exit_code != 0 and "--dry-run" in str(res.exception)
    res = runner.invoke(app, ["audit", "-s", sqlite_store.url])
    assert "no command recorded" in res.output


def test_a_run_outside_a_git_repository_says_why_its_code_cannot_be_rebuilt(sqlite_store, tmp_path,
                                                                             monkeypatch):
    """The run keeps why it has no commit; the dry run says it and what would have
    helped; audit (which reads runs without their context) says the likely cause."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    monkeypatch.chdir(folder)
    with sqlite_store.start_run(experiment="e", capture={"git", "command", "packages"}) as run:
        pass
    assert run.context["no_commit"] == f"it was started in {folder}, which is not inside a git repository"
    p = sqlite_store.reproduce_plan(run.id)
    (code,) = [s for s in p.steps if s.part == "code"]
    assert code.missing.startswith(f"no git commit was recorded (it was started in {folder}, which is "
                                   "not inside a git repository) and no code was stored")
    assert "run.use_asset" in code.hint and "metastore run" in code.hint
    res = CliRunner().invoke(app, ["reproduce", "e#1", "--dry-run", "-s", sqlite_store.url])
    assert res.exit_code == 1
    assert "not inside a git repository" in res.output and "to make it reproducible:" in res.output
    (entry,) = sqlite_store.audit("e").runs
    assert entry.reproduce_missing[0].startswith(
        "code: no git commit was recorded (it was started outside a git repository")
    # with its script stored as code, the plan puts the script back instead
    with sqlite_store.start_run(experiment="e", capture={"git", "command", "packages"}) as run:
        run.use_asset(folder / "train.py", kind="code", name="train")
    p = sqlite_store.reproduce_plan(run.id)
    assert p.can_run, p.missing
    assert any(s.part == "code" and "materialise code:train@1" in s.action for s in p.steps)
