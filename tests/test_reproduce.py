"""`metastore reproduce RUN`, end to end: a small scikit-learn script in a git repository
made here, recorded with `start_run` and with `metastore run`, rebuilt from the store
(a clone at the recorded commit plus the recorded uncommitted change, the data put back
where the script read it) and re-run: identical; then with its data changed, the
difference reported and traced to the changed input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metastore.cli import app
from metastore.errors import Conflict, NotReproducible

ROOT = Path(__file__).resolve().parent.parent

TRAIN = '''\
"""Fit a ridge regression on data/diabetes.csv and record it with start_run."""
import sys

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

import metastore

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
alpha = float(args.get("--alpha", 1.0))
DATA = "data/diabetes.csv"
with metastore.open().start_run(experiment="diabetes") as run:
    run.log_params({"alpha": alpha, "seed": 0})
    run.use_asset(DATA, kind="dataset", name="diabetes", role="train",
                  copy=args.get("--store-data", "yes") == "yes")
    table = np.loadtxt(DATA, delimiter=",", skiprows=1)
    X, y = table[:, :-1], table[:, -1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = Ridge(alpha=alpha).fit(X_train, y_train)
    predicted = model.predict(X_test)
    run.log_metrics({"rmse": mean_squared_error(y_test, predicted) ** 0.5,
                     "r2": r2_score(y_test, predicted)})
'''

FIT = '''\
"""The same fit, knowing nothing of metastore: `metastore run` records it."""
import sys

import numpy as np
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

alpha = float(sys.argv[sys.argv.index("--alpha") + 1])
table = np.loadtxt("data/diabetes.csv", delimiter=",", skiprows=1)
X_train, X_test, y_train, y_test = train_test_split(table[:, :-1], table[:, -1], test_size=0.25,
                                                    random_state=0)
predicted = Ridge(alpha=alpha).fit(X_train, y_train).predict(X_test)
print(f"rmse={mean_squared_error(y_test, predicted) ** 0.5}")
'''


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git repository with the two scripts committed, data/ ignored and written from
    scikit-learn's bundled diabetes set (no download), and an uncommitted change."""
    from sklearn.datasets import load_diabetes

    repo = tmp_path / "project"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    git("config", "user.email", "t@example.com", cwd=repo)
    git("config", "user.name", "t", cwd=repo)
    (repo / "train.py").write_text(TRAIN.replace("alpha = float", "alpha = 2 * float"))
    (repo / "fit.py").write_text(FIT)
    (repo / ".gitignore").write_text("data/\n")
    git("add", ".", cwd=repo)
    git("commit", "-qm", "ridge", cwd=repo)
    (repo / "train.py").write_text(TRAIN)  # the run is made from a dirty tree
    (repo / "data").mkdir()
    load_diabetes(as_frame=True).frame.to_csv(repo / "data" / "diabetes.csv", index=False)
    monkeypatch.chdir(repo)
    return repo


def child_env(store) -> dict[str, str]:
    env = dict(os.environ, METASTORE_URL=store.url,
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if getattr(store.backend, "token", None):
        env["METASTORE_TOKEN"] = store.backend.token
    blobs = getattr(store.backend.blobs, "url", None)
    if blobs and not store.url.startswith("http"):
        env["METASTORE_BLOBS"] = str(blobs)
    return env


def record(store, *command, check=True):
    done = subprocess.run(list(command), env=child_env(store), capture_output=True, text=True)
    assert done.returncode == 0 or not check, done.stderr[-3000:]


def test_a_start_run_script_is_reproduced_identically(store, project, tmp_path):
    record(store, sys.executable, "train.py", "--alpha", "0.5")
    original = store.get_run("diabetes#1")
    assert original.git_dirty and original.metrics["rmse"] > 0
    [data] = [v for v in store.backend.read_runs(run_ids=[original.id])[0].inputs
              if v.kind == "dataset"]
    assert data.path == "data/diabetes.csv"

    # the working copy does not matter: the data comes from the blob store, the change
    # to train.py from its stored diff
    (project / "data" / "diabetes.csv").rename(tmp_path / "diabetes.csv")
    git("checkout", "-q", "--", "train.py", cwd=project)
    r = store.reproduce("diabetes#1", into=tmp_path / "again", here=True)
    assert r.verdict == "identical", (r.reason, r.to_dict())
    assert [(m.key, m.verdict) for m in r.metrics] == [("r2", "identical"), ("rmse", "identical")]
    assert r.run == "diabetes#2" and r.differences == []
    code = tmp_path / "again" / "code"
    assert (code / "train.py").read_text() == TRAIN  # the commit plus the uncommitted change
    assert (code / "data" / "diabetes.csv").read_bytes() == (tmp_path / "diabetes.csv").read_bytes()
    again = store.get_run("diabetes#2")
    assert again.params == original.params and again.git_commit == original.git_commit
    edges = [(e.src_id, e.dst_id) for e in store.backend.list_edges() if e.relation == "reproduces"]
    assert edges == [(original.id, again.id)]
    assert any("reproduction of diabetes#1" in n.text for n in again.notes)
    assert again.tags["reproduces"] == "diabetes#1" and again.tags["reproduce_verdict"] == "identical"
    assert store.query('runs where reproduce_verdict = "identical" show ref').rows == [
        {"ref": "diabetes#2"}]
    steps = {(s.part, s.status) for s in r.steps}
    assert ("input", "done") in steps and ("command", "done") in steps


def test_metastore_run_is_reproduced_through_metastore_run(sqlite_store, project, tmp_path):
    metastore_cli = [sys.executable, "-m", "metastore"]
    record(sqlite_store, *metastore_cli, "run", "-e", "fits", "--metric-pattern",
           r"rmse=(?P<rmse>[\d.]+)", "--", sys.executable, "fit.py", "--alpha", "0.5")
    original = sqlite_store.get_run("fits#1")
    assert original.params == {"alpha": 0.5} and "rmse" in original.metrics
    plan = sqlite_store.reproduce_plan("fits#1", here=True)
    assert plan.can_run, plan.missing
    assert any("metastore run -- " in s.action for s in plan.steps if s.part == "command")

    res = CliRunner().invoke(app, ["reproduce", "fits#1", "--here", "--into", str(tmp_path / "r"),
                                   "-f", "json", "-s", sqlite_store.url])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["verdict"] == "identical" and out["run"] == "fits#2"
    assert out["command"][2:5] == ["metastore", "run", "--experiment"]
    again = sqlite_store.get_run("fits#2")
    assert again.metrics["rmse"] == original.metrics["rmse"]
    assert {v.ref for v in again.inputs if v.kind == "dataset"} == \
        {v.ref for v in original.inputs if v.kind == "dataset"}


def test_changed_data_is_reported_and_traced_to_the_input(sqlite_store, project, tmp_path):
    # the data was recorded by reference only: the reproduction reads the file as it is now
    record(sqlite_store, sys.executable, "train.py", "--alpha", "0.5", "--store-data", "no")
    data = project / "data" / "diabetes.csv"
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:300]) + "\n")  # fewer rows than were recorded

    res = CliRunner().invoke(app, ["reproduce", "diabetes#1", "--here", "--into",
                                   str(tmp_path / "r"), "-s", sqlite_store.url])
    assert res.exit_code == 1, res.output
    assert "CHANGED dataset:diabetes@1 at data/diabetes.csv" in res.output
    assert "rmse:" in res.output and "different" in res.output
    assert "inputs: dataset:diabetes: dataset:diabetes@1 -> dataset:diabetes@2 (changed)" in res.output
    assert "verdict: different" in res.output

    r = sqlite_store.reproduce("diabetes#1", into=tmp_path / "r2", here=True, rtol=0.5)
    assert r.verdict == "within tolerance"
    assert {m.verdict for m in r.metrics} == {"within tolerance"}
    assert [d["item"] for d in r.differences] == ["dataset:diabetes"]


def test_what_cannot_be_reproduced_is_said_before_anything_runs(sqlite_store, project, tmp_path):
    with sqlite_store.start_run(experiment="e", capture=False) as bare:
        bare.log_metric("rmse", 1.0)
    with pytest.raises(NotReproducible, match="no command recorded"):
        sqlite_store.reproduce(bare.id, here=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    record(sqlite_store, sys.executable, "train.py")
    with pytest.raises(Conflict, match="not an empty folder"):
        sqlite_store.reproduce("diabetes#1", into=tmp_path / "full", here=True)
    res = CliRunner().invoke(app, ["reproduce", bare.id, "--dry-run", "-s", sqlite_store.url])
    assert res.exit_code == 1 and "no package list recorded" in res.output
    res = CliRunner().invoke(app, ["reproduce", "diabetes#1", "--dry-run", "--here",
                                   "-s", sqlite_store.url])
    assert res.exit_code == 0, res.output
    assert "materialise dataset:diabetes@1 as train to data/diabetes.csv" in res.output
    assert "the current interpreter (--here)" in res.output


def test_a_command_that_fails_is_a_failed_reproduction(sqlite_store, project, tmp_path):
    record(sqlite_store, sys.executable, "-m", "metastore", "run", "-e", "boom", "--",
           sys.executable, "fit.py", "--alpha", "1")
    (project / "fit.py").write_text("raise SystemExit(3)\n")
    git("commit", "-qam", "broken", cwd=project)
    record(sqlite_store, sys.executable, "-m", "metastore", "run", "-e", "boom", "--",
           sys.executable, "fit.py", "--alpha", "1", check=False)  # boom#2, failed
    res = CliRunner().invoke(app, ["reproduce", "boom#2", "--here", "--into", str(tmp_path / "r"),
                                   "-s", sqlite_store.url])
    assert res.exit_code == 2, res.output
    assert "verdict: failed: the command exited with status 3" in res.output


def test_the_worked_example_of_the_docs_runs_as_written(tmp_path):
    """docs/reproduce.md's shell blocks, run in order in one shell."""
    import re

    text = (ROOT / "docs" / "reproduce.md").read_text()
    script = "set -e\n" + "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ["PATH"]]), TMPDIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    for name in ("METASTORE_URL", "METASTORE_BLOBS"):
        env.pop(name, None)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("verdict: identical") == 2, done.stdout
    assert "recorded as ridge#2, linked to ridge#1" in done.stdout
    assert "rmse: 1 -> 1  identical" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("METASTORE_TEST_VENV"),
                    reason="installs packages from the package index (over a minute): "
                           "set METASTORE_TEST_VENV=1")
def test_a_fresh_virtual_environment_from_the_recorded_pins(sqlite_store, project, tmp_path):
    """The recorded package list (here the few packages fit.py needs, at the versions
    installed now) is installed into a new venv, and the command runs with it."""
    from importlib import metadata

    from metastore.tracking import ActiveRun

    done = subprocess.run([sys.executable, "fit.py", "--alpha", "0.5"], capture_output=True,
                          text=True, check=True)
    rmse = float(done.stdout.strip().split("=")[1])
    pins = "".join(f"{name}=={metadata.version(name)}\n"
                   for name in ("numpy", "scipy", "scikit-learn", "joblib", "threadpoolctl"))
    run = ActiveRun.start(sqlite_store.backend, experiment="fits", capture={"git"},
                          command="python fit.py --alpha 0.5",
                          invocation={"argv": ["python", "fit.py", "--alpha", "0.5"],
                                      "runner": "metastore run",
                                      "metric_pattern": r"rmse=(?P<rmse>[\d.]+)"})
    run.use_asset("data/diabetes.csv", kind="dataset", name="diabetes")
    run.log_asset(pins.encode(), kind="environment", name="python", relation="used")
    run.log_metric("rmse", rmse)
    run.end()

    r = sqlite_store.reproduce("fits#1", into=tmp_path / "r", timeout=900)
    assert r.verdict == "identical", (r.reason, r.to_dict())
    venv_python = str(tmp_path / "r" / "venv" / "bin" / "python")
    assert venv_python in r.command
    installed = subprocess.run([venv_python, "-m", "pip", "freeze"], capture_output=True,
                               text=True).stdout
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in installed


def test_an_input_whose_stored_content_changed_stops_the_reproduction(sqlite_store, project, tmp_path):
    from metastore.errors import IntegrityFailure

    record(sqlite_store, sys.executable, "train.py")
    [data] = [v for v in sqlite_store.get_run("diabetes#1").inputs if v.kind == "dataset"]
    blob = Path(sqlite_store.backend.blobs.local_path(data.digest))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-10])  # the store's copy no longer matches
    with pytest.raises(IntegrityFailure, match=data.digest[:12]):
        sqlite_store.reproduce("diabetes#1", into=tmp_path / "r", here=True)
    assert len(sqlite_store.runs("diabetes")) == 1  # nothing was re-run
