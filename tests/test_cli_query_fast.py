"""`metastore query` read without the typer app (metastore/cli/answer.py) prints what the
app prints, errors and exit codes included; whatever it cannot read for sure is the
app's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metastore.cli.answer import read_args

ROOT = Path(__file__).resolve().parents[1]
QUICK = "import sys; from metastore.cli import main; sys.argv[0] = 'metastore'; main()"
# the same command line, read by the typer app: the quick reader declines everything
APP = ("import sys; from metastore.cli import answer, main; answer.read_args = lambda a: None;"
       " sys.argv[0] = 'metastore'; main()")


def _run(code: str, args: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80",
           "METASTORE_CACHE_DIR": str(cwd / "cache")}
    env.pop("METASTORE_URL", None)
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("args", [
    ["query", "runs where rmse < 55 show number, r2"],
    ["query", "runs order by rmse limit 3 show number, algorithm, rmse", "-f", "json"],
    ["query", "--format=CSV", "runs where algorithm = \"linear\" show number, features, rmse"],
    ["query", "runs show number, algorithm", "--format", "markdown", "-e", "diabetes"],
    ["query", "runs where rmse < 55", "--sql"],
    ["query", "runs where rmse < 0 show number"],  # no rows
    ["query", "runs where rmsx < 55"],  # a query error, with its caret
    ["query", "runs show number", "--experiment", "nosuch"],
    ["query", "runs show number", "--store", "nosuch://x"],  # a MetastoreError
    ["query", "runs show number", "--timeout", "0"],
    ["query", "runs show number", "--format", "yaml"],  # the app's usage error
    ["query"],
    ["query", "--help"],
])
def test_the_quick_path_prints_what_the_app_prints(demo_store, tmp_path, args):
    quick = _run(QUICK, args, tmp_path)
    app = _run(APP, args, tmp_path)
    assert quick == app
    assert "Traceback" not in quick[2]


def test_the_quick_reader_takes_only_what_it_knows():
    assert read_args(["runs", "-f", "JSON", "--store=sqlite:///x.db", "--timeout", "2",
                      "--sql", "--no-pager", "-e", "exp"]) == {
        "text": "runs", "store": "sqlite:///x.db", "experiment": "exp", "format": "json",
        "sql": True, "timeout": 2.0, "no_pager": True}
    for declined in (["runs", "--help"], ["runs", "-fjson"], ["runs", "-f=json"], ["runs", "--sql=1"],
                     ["runs", "--format", "yaml"], ["runs", "--timeout", "soon"], ["runs", "x"],
                     [], ["runs", "-f", "json", "-f", "csv"], ["runs", "--store"],
                     ["runs", "--store", "-x"], ["--", "runs"], ["runs", "--nosuch"], ["-1"]):
        assert read_args(declined) is None, declined


def test_the_store_comes_from_the_environment_as_the_app_reads_it(monkeypatch):
    monkeypatch.setenv("METASTORE_URL", "sqlite:///env.db")
    assert read_args(["runs"])["store"] == "sqlite:///env.db"
    assert read_args(["runs", "-s", "sqlite:///given.db"])["store"] == "sqlite:///given.db"
    monkeypatch.setenv("METASTORE_URL", "")
    assert read_args(["runs"])["store"] is None
    monkeypatch.setenv("_METASTORE_COMPLETE", "complete_bash")
    assert read_args(["runs"]) is None  # shell completion is the app's
