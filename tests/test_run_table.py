"""`metastore runs` reads its runs a page at a time (`Backend.run_table`) and prints them
as they come; what it prints is what reading them all at once (`read_runs`, the
default `Backend.run_table`) gives."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import metastore
from metastore.backends.base import Backend
from metastore.backends.sql import SQLBackend

SCOPES = [{}, {"experiment": "a"}, {"status": "failed"}, {"system": True},
          {"experiment": "b", "status": "finished"}]


def _record(store):
    values = [
        ({"lr": 0.1, "opt": 3, "extra": None, "layers": [1, 2], "flag": True}, {"rmse": 2.0}),
        ({"lr": 1, "opt": "adam", "extra": 4}, {"rmse": 1.5, "system.wall_time": 3.0}),
        ({"lr": 0.3, "extra": None}, {"acc": 0.9}),
        ({"name": "x"}, {}),
        ({"lr": 0.5, "big": 2.5}, {"rmse": 0.5, "loss": 1.0}),
    ]
    for i, (params, metrics) in enumerate(values):
        run = store.start_run(experiment="a" if i % 2 else "b", capture=False,
                              system_metrics=False)
        run.log_params(params)
        if metrics:
            run.log_metrics(metrics)
        run.end("failed" if i == 2 else "finished")
    gone = store.start_run(experiment="b", capture=False, system_metrics=False)
    gone.log_params({"only_deleted": "yes"})
    gone.end()
    store.delete_run(gone.id)


def _read(table_cm):
    with table_cm as t:
        return t.metrics, t.params, list(t.rows)


def test_run_table_reads_what_read_runs_gives(store, monkeypatch):
    monkeypatch.setattr(SQLBackend, "RUN_PAGE", 2)  # several pages of runs
    _record(store)
    for scope in SCOPES:
        got = _read(store.backend.run_table(**scope))
        assert got == _read(Backend.run_table(store.backend, **scope)), scope
    metrics, params, rows = _read(store.run_table())
    assert [r["ref"] for r in rows] == ["b#1", "b#2", "b#3", "a#1", "a#2"]
    assert metrics == ["acc", "loss", "rmse"]
    assert params == {"big": True, "extra": True, "flag": False, "layers": False, "lr": True,
                      "name": False, "opt": False}


@pytest.mark.parametrize("args", [[], ["-w"], ["--system"], ["-f", "json"], ["-f", "csv"],
                                  ["-f", "markdown", "-e", "a"], ["--status", "failed"],
                                  ["-e", "nosuch"]])
def test_metastore_runs_prints_what_it_printed_before(tmp_path, monkeypatch, args):
    from metastore.cli import app

    url = f"sqlite:///{tmp_path / 'metastore.db'}"
    with metastore.open(url) as s:
        _record(s)
    monkeypatch.setattr(SQLBackend, "RUN_PAGE", 2)
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()
    paged = runner.invoke(app, ["runs", "--store", url, *args])
    monkeypatch.setattr(SQLBackend, "run_table", Backend.run_table)  # everything at once
    whole = runner.invoke(app, ["runs", "--store", url, *args])
    assert (paged.exit_code, paged.output) == (whole.exit_code, whole.output)
    assert ("nosuch" in args) == (paged.exit_code != 0)
