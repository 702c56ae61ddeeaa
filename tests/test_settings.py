"""Store settings: a cost per hour per host or resource kept in the store, used by
start_run and `metastore run`, and the query language's answer to "what did it cost"."""

from __future__ import annotations

import socket
import sys

import pytest
from typer.testing import CliRunner

from metastore.cli import app
from metastore.errors import InvalidValue
from metastore.runner import run_command


def test_cost_per_host_from_the_store(store, monkeypatch):
    monkeypatch.delenv("METASTORE_COST_PER_HOUR", raising=False)
    monkeypatch.delenv("METASTORE_RESOURCE", raising=False)
    assert store.config() == {}
    store.set_config(f"cost.per_hour.{socket.gethostname()}", "7200")  # 2 per second
    store.set_config("cost.per_hour", 1)
    store.set_config("owner", "ml-platform")
    assert store.config("cost.") == {f"cost.per_hour.{socket.gethostname()}": "7200.0",
                                     "cost.per_hour": "1.0"}
    with pytest.raises(InvalidValue, match="number"):
        store.set_config("cost.per_hour.gpu", "cheap")
    with pytest.raises(InvalidValue):
        store.set_config("cost.per_hour.gpu", "-1")

    for experiment, r2 in (("a", 0.5), ("a", 0.7), ("b", 0.9)):
        with store.start_run(experiment, capture=False) as run:
            run.log_metric("r2", r2)
    rows = store.query("runs show number, experiment, r2, cost order by r2 desc").rows
    assert [r["r2"] for r in rows] == [0.9, 0.7, 0.5]
    assert all(r["cost"] > 0 for r in rows)
    for r in rows:  # 2 per second of the run's wall time
        wall = store.query(f'runs where experiment = "{r["experiment"]}" and number = {r["number"]}'
                           " show `system.wall_time`").rows[0]["system.wall_time"]
        assert r["cost"] == pytest.approx(2 * wall)
    totals = store.query("runs group by experiment order by experiment show experiment, sum(cost)").rows
    assert [t["experiment"] for t in totals] == ["a", "b"]
    assert totals[0]["sum(cost)"] == pytest.approx(sum(r["cost"] for r in rows if r["experiment"] == "a"))

    # a resource named by the environment beats the host; the caller's rate beats both
    store.set_config("cost.per_hour.a100", "0")
    monkeypatch.setenv("METASTORE_RESOURCE", "a100")
    with store.start_run("c", capture=False):
        pass
    with store.start_run("c", capture=False, cost_per_hour=3600):
        pass
    costs = store.query('runs where experiment = "c" order by number show cost').rows
    assert costs[0]["cost"] == 0 and costs[1]["cost"] > 0
    store.unset_config("cost.per_hour.a100")
    assert "cost.per_hour.a100" not in store.config()


def test_metastore_run_uses_the_store_rate(sqlite_store, tmp_path, monkeypatch):
    monkeypatch.delenv("METASTORE_COST_PER_HOUR", raising=False)
    monkeypatch.delenv("METASTORE_RESOURCE", raising=False)
    monkeypatch.chdir(tmp_path)
    sqlite_store.set_config("cost.per_hour", "3600")
    run, code = run_command(sqlite_store, [sys.executable, "-c", "pass"], system_metrics=False,
                            track_files=False)
    assert code == 0
    assert run.metrics["system.cost"] == pytest.approx(run.metrics["system.wall_time"])


def test_config_cli(sqlite_store):
    runner = CliRunner()
    url = ["--store", sqlite_store.url]
    r = runner.invoke(app, ["config", "set", "cost.per_hour.node-1", "2.5", *url])
    assert r.exit_code == 0 and "cost.per_hour.node-1 = 2.5" in r.output
    r = runner.invoke(app, ["config", "set", "cost.per_hour.node-2", "lots", *url])
    assert r.exit_code != 0 and isinstance(r.exception, InvalidValue)  # main() prints it
    r = runner.invoke(app, ["config", "list", "--format", "json", *url])
    assert r.exit_code == 0 and '"cost.per_hour.node-1"' in r.output
    r = runner.invoke(app, ["config", "unset", "cost.per_hour.node-1", *url])
    assert r.exit_code == 0
    assert sqlite_store.config() == {}
