"""`metastore diff` and `metastore audit` on recorded runs and on the demo."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from metastore.audit import CHECKS, audit
from metastore.cli import app
from metastore.diff import diff_runs, format_text, metric_goal, parse_requirements

#: Also run the `store` tests through a metastore server (tests/conftest.py).

def _two_runs(store):
    with store.start_run(experiment="e", name="base", capture=False) as a:
        a.log_params({"lr": 0.1, "seed": 0, "optimizer": "sgd"})
        a.use_asset(b"rows v1", kind="dataset", name="data", role="train")
        a.use_asset(b"import sklearn", kind="code", name="train.py")
        a.use_asset(b"# python 3.11\nnumpy==1.26.0\npandas==2.1.0\nscipy==1.11.0\n",
                    kind="environment", name="python")
        a.log_metrics({"rmse": 10.0, "r2": 0.5, "epochs_seen": 3})
        a.log_asset(b"model a", kind="model", name="m")
        a.log_asset(b"plot a", kind="plot", name="residuals")
    with store.start_run(experiment="e", name="tuned", capture=False) as b:
        b.log_params({"lr": 0.01, "seed": 0, "momentum": 0.9})
        b.use_asset(b"rows v2", kind="dataset", name="data", role="train")
        b.use_asset(b"import sklearn", kind="code", name="train.py")
        b.use_asset(b"# python 3.11\nnumpy==2.0.0\nscipy==1.11.0\ntorch==2.3.0\n",
                    kind="environment", name="python")
        b.log_metrics({"rmse": 8.0, "r2": 0.4, "mae": 6.0})
        b.log_asset(b"model b", kind="model", name="m")
    return a, b


def test_diff_two_runs(store):
    a, b = _two_runs(store)
    d = store.diff("e#1", "tuned")
    assert (d.a["ref"], d.b["ref"]) == ("e#1", "e#2")
    assert d.params["added"] == {"momentum": 0.9}
    assert d.params["removed"] == {"optimizer": "sgd"}
    assert d.params["changed"] == {"lr": {"a": 0.1, "b": 0.01}}
    assert d.params["unchanged"] == ["seed"]
    metrics = {m["key"]: m for m in d.metrics["compared"]}
    assert metrics["rmse"]["delta"] == pytest.approx(-2.0)
    assert metrics["rmse"]["relative"] == pytest.approx(-0.2)
    assert metrics["rmse"]["verdict"] == "better" and metrics["r2"]["verdict"] == "worse"
    assert d.metrics["only_a"] == {"epochs_seen": 3.0} and d.metrics["only_b"] == {"mae": 6.0}
    assert [(c["kind"], c["name"]) for c in d.inputs["changed"]] == [
        ("dataset", "data"), ("environment", "python")]
    data = d.inputs["changed"][0]
    assert [x["version"] for x in data["a"]] == [1] and [x["version"] for x in data["b"]] == [2]
    assert "code:train.py@1" in d.inputs["same"]
    assert d.code["assets"] == [] and not d.code["git_commit"]["changed"]
    assert d.environment["packages"] == {
        "added": {"torch": "2.3.0"},
        "removed": {"pandas": "2.1.0"},
        "changed": {"numpy": {"a": "1.26.0", "b": "2.0.0"}},
    }
    assert [c["name"] for c in d.outputs["changed"]] == ["m"]
    assert [x["ref"] for x in d.outputs["only_a"]] == ["plot:residuals@1"]
    assert not d.identical_config
    text = format_text(d)
    assert "~ lr: 0.1 -> 0.01" in text and "+ momentum = 0.9" in text
    assert "rmse: 10 -> 8  -2 (-20.0%)  better" in text
    assert "did it help? better: rmse; worse: r2" in text
    assert "~ dataset:data @1 -> @2" in text and "~ numpy 1.26.0 -> 2.0.0" in text
    assert "+ torch==2.3.0" in text and "- plot:residuals@1 (only in e#1)" in text
    assert json.loads(json.dumps(d.to_dict()))["params"]["added"] == {"momentum": 0.9}
    same = diff_runs(store.backend, a, a)
    assert same.identical_config and "same params and the same input versions" in format_text(same)


def test_metric_goals_and_requirements():
    assert [metric_goal(k) for k in ("val/loss", "rmse", "test.accuracy", "r2", "lr",
                                     "system.wall_time")] == ["min", "min", "max", "max", None, None]
    assert parse_requirements("# python\nNumPy==1.0\nmy_pkg @ file:///x\n-e .\n") == {
        "numpy": "1.0", "my-pkg": "file:///x"}


def test_audit_checklist_and_duplicates(store):
    _two_runs(store)
    with store.start_run(experiment="e", name="again", capture=False) as dup:
        dup.log_params({"lr": 0.01, "seed": 0, "momentum": 0.9})
        dup.use_asset(b"rows v2", kind="dataset", name="data", role="train")
        dup.use_asset(b"import sklearn", kind="code", name="train.py")
        dup.use_asset(b"# python 3.11\nnumpy==2.0.0\nscipy==1.11.0\ntorch==2.3.0\n",
                      kind="environment", name="python")
        dup.note("same as tuned, to check the variance")
    with store.start_run(experiment="other", capture=False) as bare:
        bare.log_metric("x", 1.0)
    report = store.audit(experiment="e")
    by_ref = {r.ref: r for r in report.runs}
    assert list(by_ref) == ["e#1", "e#2", "e#3"]
    assert by_ref["e#1"].missing == ["note"] and by_ref["e#1"].duplicate_of is None
    assert by_ref["e#3"].duplicate_of == "e#2" and by_ref["e#3"].missing == ["model"]
    assert report.summary == {"runs": 3, "complete": 0,
                              "missing": {"code": 0, "data": 0, "environment": 0, "seed": 0,
                                          "model": 1, "note": 2},
                              "duplicates": 1}
    everything = audit(store.backend)
    [lone] = [r for r in everything.runs if r.ref == "other#1"]
    assert lone.missing == list(CHECKS) and lone.duplicate_of is None


def test_duplicates_only_repeat_finished_runs(sqlite_store):
    for _ in range(2):
        with pytest.raises(RuntimeError):
            with sqlite_store.start_run(experiment="e", capture=False) as run:
                run.log_params({"lr": 0.1})
                raise RuntimeError("out of memory")
    with sqlite_store.start_run(experiment="e", capture=False) as run:
        run.log_params({"lr": 0.1})
    with sqlite_store.start_run(experiment="e", capture=False) as run:
        run.log_params({"lr": 0.1})
    dups = {r.ref: r.duplicate_of for r in sqlite_store.audit().runs}
    assert dups == {"e#1": None, "e#2": None, "e#3": None, "e#4": "e#3"}


def test_demo_worked_example(demo_store):
    """The example in docs/lineage.md."""
    up = demo_store.lineage("model:regressor@3", direction="upstream")
    assert set(up) == {"model:regressor@3", "diabetes#3", "dataset:diabetes@1",
                       "dataset:diabetes-train@1", "dataset:diabetes-test@1",
                       "environment:python@1", "code:demo@1"}
    down = demo_store.lineage("dataset:diabetes", direction="downstream")
    assert sum(d["kind"] == "run" for _, d in down.nodes(data=True)) == 12
    assert sum(d["kind"] == "model" for _, d in down.nodes(data=True)) == 12
    p = demo_store.path("dataset:diabetes", "model:regressor@3")
    assert list(p) == ["dataset:diabetes@1", "diabetes#3", "model:regressor@3"]
    d = demo_store.diff("diabetes#1", "diabetes#2")
    assert d.params["changed"] == {"normalize": {"a": False, "b": True}}
    assert d.inputs["changed"] == [] and d.environment["same"]
    report = demo_store.audit()
    assert report.summary["runs"] == 12 and report.summary["duplicates"] == 0
    # the demo records its script and a note per run: it passes its own audit
    assert report.ok and report.summary["complete"] == 12


def test_cli_diff_and_audit(demo_store):
    runner = CliRunner()
    url = demo_store.url
    res = runner.invoke(app, ["diff", "diabetes#1", "diabetes#2", "-s", url])
    assert res.exit_code == 0, res.output
    assert "~ normalize: false -> true" in res.output
    res = runner.invoke(app, ["diff", "diabetes#1", "diabetes#7", "-s", url, "-f", "json"])
    data = json.loads(res.output)
    assert data["params"]["changed"]["algorithm"] == {"a": "linear", "b": "random_forest"}
    res = runner.invoke(app, ["audit", "-s", url])
    assert res.exit_code == 0 and "12 runs in all experiments" in res.output
    assert "diabetes#12" in res.output
    res = runner.invoke(app, ["audit", "-s", url, "-e", "diabetes", "--format", "json"])
    assert json.loads(res.output)["summary"]["runs"] == 12
    res = runner.invoke(app, ["audit", "-s", url, "--strict"])
    assert res.exit_code == 0, res.output
    with demo_store.start_run(experiment="diabetes", capture=False):
        pass  # records nothing: not reproducible
    res = runner.invoke(app, ["audit", "-s", url, "--strict"])
    assert res.exit_code == 1 and "diabetes#13" in res.output
    res = runner.invoke(app, ["diff", "diabetes#1", "diabetes#99", "-s", url])
    assert res.exit_code != 0 and "no run number 99" in str(res.exception)
