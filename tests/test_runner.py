"""`metastore run -- COMMAND`: a run recorded around a script that knows nothing of
metastore (params from its arguments, files it reads and writes, its log, its status)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import metastore
from metastore.runner import parse_params, run_command

TRAIN = textwrap.dedent(
    """
    import argparse, pickle, sys
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float)
    p.add_argument("--data")
    a = p.parse_args()
    rows = open(a.data).read().splitlines()
    for epoch in range(3):
        print(f"epoch={epoch} loss={1.0 / (epoch + 1):.3f}")
    print("a warning", file=sys.stderr)
    with open("model.pkl", "wb") as f:
        pickle.dump({"lr": a.lr, "rows": len(rows)}, f)
    """
)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    return tmp_path


def test_parse_params():
    assert parse_params(["--lr", "0.1", "--epochs=3", "model.depth=4", "+x=true", "--fast",
                         "--name", "rf", "pos", "--neg", "-1"]) == {
        "lr": 0.1, "epochs": 3, "model.depth": 4, "x": True, "fast": True, "name": "rf",
        "neg": -1,
    }


def test_cli_run_records_a_script_without_metastore(project):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "run", "--experiment", "train",
         "--metric-pattern", r"epoch=(?P<step>\d+) loss=(?P<loss>[\d.]+)", "--",
         sys.executable, "train.py", "--lr", "0.1", "--data", "data.csv"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "epoch=2 loss=0.333" in done.stdout and "a warning" in done.stderr
    store = metastore.open(project / ".metastore", create=False)
    run = store.get_run("train#1")
    assert run.status == "finished"
    assert run.params == {"lr": 0.1, "data": "data.csv"}
    assert run.command.endswith("train.py --lr 0.1 --data data.csv")
    assert {(v.kind, v.name) for v in run.inputs} >= {("dataset", "data"), ("code", "train")}
    outputs = {(v.kind, v.name): v for v in run.outputs}
    assert ("model", "model") in outputs
    log = outputs[("log", "train-1-output")]
    assert "epoch=1 loss=0.500" in log.path().read_text()
    assert [(m.step, m.value) for m in store.backend.get_metric_history(run.id, "loss")] == [
        (0, 1.0), (1, 0.5), (2, 0.333)]
    assert store.query('runs where lr > 0.05 show number, exit_code').rows == [
        {"number": 1, "exit_code": "0"}]
    assert "system.wall_time" in run.metrics


def test_run_through_every_store(store, project):
    run, code = run_command(
        store, [sys.executable, "train.py", "--lr", "0.1", "--data", "data.csv"], experiment="e"
    )
    assert code == 0 and run.status == "finished"
    assert run.params["lr"] == 0.1
    assert ("dataset", "data") in {(v.kind, v.name) for v in run.inputs}
    assert ("model", "model") in {(v.kind, v.name) for v in run.outputs}


def test_sigterm_fails_the_run_with_an_event(sqlite_store, project):
    (project / "die.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    run, code = run_command(sqlite_store, [sys.executable, "die.py"])
    assert code < 0
    assert run.status == "failed"
    assert any(n.kind == "event" and "SIGTERM" in n.text for n in run.notes)
    assert sqlite_store.query('runs where event = "sigterm" show number').rows == [{"number": 1}]


def test_failing_command_and_other_programs(sqlite_store, project):
    run, code = run_command(sqlite_store, ["sh", "-c", "echo made > out.txt; exit 3"])
    assert code == 3 and run.status == "failed"
    assert ("other", "out") in {(v.kind, v.name) for v in run.outputs}


def test_child_logs_to_current_run(sqlite_store, project, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    (project / "log.py").write_text(
        "import metastore\nrun = metastore.current_run()\nrun.log_metric('acc', 0.9)\n"
    )
    run, code = run_command(sqlite_store, [sys.executable, "log.py"])
    assert code == 0
    assert run.metrics["acc"] == 0.9
    assert metastore.current_run() is None


def test_bad_input_is_refused(sqlite_store, project):
    with pytest.raises(metastore.InvalidValue):
        run_command(sqlite_store, [])
    with pytest.raises(metastore.InvalidValue, match="named group"):
        run_command(sqlite_store, ["true"], metric_pattern=r"\d+")
    with pytest.raises(metastore.InvalidValue, match="cannot run"):
        run_command(sqlite_store, ["/no/such/program"])


def test_system_metrics_and_cost_of_a_command(sqlite_store, project, monkeypatch):
    monkeypatch.delenv("METASTORE_SYSTEM_METRICS", raising=False)
    (project / "work.py").write_text("import time\nx = [0] * 1_000_000\ntime.sleep(1.0)\n")
    run, code = run_command(
        sqlite_store, [sys.executable, "work.py"], system_metrics=0.05, cost_per_hour=3.6
    )
    assert code == 0
    rss = sqlite_store.backend.get_metric_history(run.id, "system.rss_mb")
    assert rss and max(p.value for p in rss) > 1
    assert sqlite_store.backend.get_metric_history(run.id, "system.cpu_percent")
    rows = sqlite_store.query("runs show number, `system.cost`, `system.rss_mb`.count as n").rows
    assert rows[0]["system.cost"] > 0 and rows[0]["n"] == len(rss)


def test_system_metrics_switch_off(sqlite_store, project, monkeypatch):
    monkeypatch.setenv("METASTORE_SYSTEM_METRICS", "off")
    (project / "idle.py").write_text("import time\ntime.sleep(0.3)\n")
    run, _ = run_command(sqlite_store, [sys.executable, "idle.py"], system_metrics=0.05)
    assert not [k for k in run.metrics if k.startswith("system.") and k not in (
        "system.wall_time", "system.cpu_time")]


def test_start_run_samples_by_default_and_switches_off(sqlite_store, monkeypatch):
    monkeypatch.delenv("METASTORE_SYSTEM_METRICS", raising=False)
    with sqlite_store.start_run(experiment="s") as plain:
        pass
    assert plain.metrics["system.rss_mb"] > 1  # on by default: the end's sample at least
    with sqlite_store.start_run("s", system_metrics=False) as off:
        pass
    assert "system.rss_mb" not in off.metrics
    with sqlite_store.start_run("s", system_metrics=0.05, cost_per_hour=1.0) as run:
        import time

        time.sleep(0.3)
    assert run.metrics["system.rss_mb"] > 1
    assert len(run.metric_history("system.rss_mb")) >= 2  # the samples, buffered with the run
    assert run.metrics["system.cost"] >= 0
    monkeypatch.setenv("METASTORE_SYSTEM_METRICS", "off")  # one switch for every run
    with sqlite_store.start_run("s") as env_off:
        pass
    assert "system.rss_mb" not in env_off.metrics
    monkeypatch.delenv("METASTORE_SYSTEM_METRICS")
    with pytest.raises(metastore.InvalidValue):
        sqlite_store.start_run("s", system_metrics=-1)
    monkeypatch.setenv("METASTORE_SYSTEM_METRICS", "often")
    with pytest.raises(metastore.InvalidValue, match="seconds"):
        sqlite_store.start_run("s")
    assert len(sqlite_store.runs(experiment="s")) == 4  # refused settings start no run


def test_sigkill_near_the_memory_limit_is_an_oom_event(sqlite_store, project, monkeypatch):
    """A child killed by SIGKILL whose memory peaked near its cgroup's limit: the event
    oom. The cgroup files are a folder written here (the machine's own limits are not
    the test's to lower); the child really allocates and really dies of SIGKILL."""
    from metastore import sampler

    cgroup = project / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(str(64 * 1024 * 1024))
    (cgroup / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    monkeypatch.setattr(sampler, "CGROUP_ROOT", str(cgroup))
    (project / "hog.py").write_text(
        "import os, signal, time\n"
        "block = bytearray(80 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "time.sleep(1.5)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run, code = run_command(sqlite_store, [sys.executable, "hog.py"], system_metrics=0.2,
                            track_files=False)
    assert code == -9 and run.status == "failed"
    [event] = [n.text for n in run.notes if n.kind == "event"]
    assert "probably out of memory" in event
    assert sqlite_store.query('runs where event = "oom" show number').rows == [{"number": 1}]

    # the kernel's count of OOM kills going up names it outright; a plain SIGKILL is not oom
    (project / "killed.py").write_text(
        f"import os, signal\nopen({str(cgroup / 'memory.events')!r}, 'w').write('oom_kill 1\\n')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run, code = run_command(sqlite_store, [sys.executable, "killed.py"], system_metrics=False,
                            track_files=False)
    assert "out-of-memory killer" in [n.text for n in run.notes if n.kind == "event"][0]
    (project / "plain.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    run, code = run_command(sqlite_store, [sys.executable, "plain.py"], system_metrics=False,
                            track_files=False)
    assert sqlite_store.query(f'runs where number = {run.number} show event').rows == [{"event": "sigkill"}]


def test_oom_counters_are_read_or_absent():
    from metastore import sampler

    kills = sampler.oom_kills()
    assert kills is None or kills >= 0  # this machine's cgroup, whatever it is
    assert sampler.memory_limit() is None or sampler.memory_limit() > 0
    assert sampler.oom_verdict(1, 0, 5, 10**9, 10**9) is None  # not a SIGKILL
    assert sampler.oom_verdict(-9, 0, 0, 10, 10**9) is None  # a SIGKILL, memory low


def test_the_sampler_finds_the_same_children_psutil_does():
    """The process tree is read from /proc/PID/task/*/children where Linux keeps it (a
    few reads, not every process's stat file): the same pids as psutil's children(),
    grandchildren included."""
    import psutil

    from metastore import sampler

    tree = subprocess.Popen([sys.executable, "-c",
                             "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c',"
                             " 'import time; time.sleep(30)']); time.sleep(30)"])
    try:
        for _ in range(100):  # the grandchild starts in a moment
            want = sorted(c.pid for c in psutil.Process().children(recursive=True))
            if len(want) >= 2:
                break
            time.sleep(0.1)
        found = sampler._descendants(os.getpid())
        if found is None:
            pytest.skip("this kernel keeps no /proc/PID/task/TID/children")
        assert sorted(found) == want and len(want) >= 2
    finally:
        for child in psutil.Process(tree.pid).children(recursive=True):
            child.kill()
        tree.kill()
        tree.wait()


def _environment(run) -> str:
    (env,) = [v for v in run.inputs if v.kind == "environment"]
    return env.read_bytes().decode()


def test_the_environment_is_the_commands_python_not_the_runners(sqlite_store, project, tmp_path):
    """`metastore run -- other/python script.py` records the packages of the Python that
    ran the script (here a bare virtual environment), not those metastore runs in."""
    from metastore import context

    run, code = run_command(sqlite_store, [sys.executable, "train.py", "--data", "data.csv"])
    assert code == 0 and _environment(run) == context.packages_text()
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    run, code = run_command(sqlite_store, [python, "train.py", "--data", "data.csv"])
    assert code == 0
    packages = _environment(run)
    assert packages.startswith("# python ") and "SQLAlchemy==" not in packages
    assert "SQLAlchemy==" in context.packages_text()
    assert ("dataset", "data") in {(v.kind, v.name) for v in run.inputs}  # files still tracked
