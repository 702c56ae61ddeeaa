"""The command line: output, exit codes, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("METASTORE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "metastore.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    out = cli("demo", cwd=folder)
    assert "12 runs recorded" in out.stdout and "metastore query" in out.stdout
    return folder


def test_init_creates_a_store(tmp_path):
    out = cli("init", cwd=tmp_path)
    assert "Created store" in out.stdout and (tmp_path / ".metastore" / "metastore.db").exists()
    assert "Opened existing" in cli("init", cwd=tmp_path).stdout


def test_runs_lists_the_demo(demo_dir):
    out = cli("runs", "--experiment", "diabetes", cwd=demo_dir).stdout
    assert "diabetes#12" in out and "rmse" in out
    data = json.loads(cli("runs", "--format", "json", cwd=demo_dir).stdout)
    assert len(data) == 12 and data[0]["params"]["algorithm"] == "linear"


def test_show_a_run(demo_dir):
    out = cli("show", "diabetes#4", cwd=demo_dir).stdout
    for expected in ("params", "metrics", "inputs", "outputs", "dataset:diabetes", "model:regressor"):
        assert expected in out
    data = json.loads(cli("show", "4", "--format", "json", cwd=demo_dir).stdout)
    assert data["number"] == 4 and data["outputs"][0]["kind"] == "model"


def test_experiments_and_assets(demo_dir):
    assert "diabetes" in cli("experiments", cwd=demo_dir).stdout
    models = json.loads(cli("assets", "model", "--format", "json", cwd=demo_dir).stdout)
    assert [m["version"] for m in models] == list(range(1, 13))


@pytest.mark.parametrize(
    "args, message",
    [
        (("show", "nope"), "no run 'nope'"),
        (("show", "99"), "no run number 99"),
        (("runs", "--experiment", "diabetis"), "did you mean 'diabetes'"),
        (("runs", "--store", "postgresql://nobody@127.0.0.1:1/x"), "cannot open the database"),
    ],
)
def test_errors_are_one_or_two_lines_without_traceback(demo_dir, args, message):
    proc = cli(*args, cwd=demo_dir, check=False)
    assert proc.returncode == 1
    assert message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 4


def test_delete_and_purge(tmp_path):
    import metastore

    with metastore.open(f"sqlite:///{tmp_path / '.metastore' / 'metastore.db'}") as store:
        with store.start_run(experiment="e", capture=False):
            pass
    assert "Deleted run e#1" in cli("delete", "e#1", cwd=tmp_path).stdout
    assert "Purged 1 runs" in cli("purge", cwd=tmp_path).stdout
    assert "No runs yet" in cli("runs", cwd=tmp_path).stdout


def test_exit_codes_of_commands_reach_the_shell(tmp_path):
    """`raise typer.Exit(n)` inside a command must exit n from the real `metastore`
    command, not only under CliRunner (import exits 2 when it skipped runs)."""
    bad = tmp_path / "runs.csv"
    bad.write_text("params.lr,metrics.rmse\n0.1,1.5\n0.2,not-a-number-\"\n")
    proc = cli("import", "csv", str(bad), cwd=tmp_path, check=False)
    report = " ".join((proc.stdout + proc.stderr).split())
    assert "1 imported" in report and "1 skipped" in report
    assert proc.returncode == 2, report
    usage = cli("runs", "--no-such-option", cwd=tmp_path, check=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
