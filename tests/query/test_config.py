"""`group by config`: runs repeated over seeds compared as configurations (params but
the excluded ones, plus input versions), on every backend and through a server."""

from __future__ import annotations

import pytest

from metastore.query import QueryError
from metastore.query.parse import parse


def _sweep(store):
    """2 learning rates × 2 depths × 3 seeds on one dataset, and one run on another."""
    for lr in (0.1, 0.01):
        for depth in (3, 5):
            for seed in range(3):
                with store.start_run(experiment="sweep", capture=False) as r:
                    r.log_params({"lr": lr, "depth": depth, "seed": seed})
                    r.use_asset(b"rows", kind="dataset", name="data")
                    # depth 5 with lr 0.1 scores best on average, but varies most
                    spread = 2.0 if (lr, depth) == (0.1, 5) else 0.1
                    r.log_metric("f1", 10 * lr + depth + spread * seed)
    with store.start_run(experiment="sweep", capture=False) as r:
        r.log_params({"lr": 0.1, "depth": 3, "seed": 0})
        r.use_asset(b"other rows", kind="dataset", name="data")
        r.log_metric("f1", 1.0)


def test_group_by_config_over_seeds(store):
    _sweep(store)
    rows = store.query(
        "runs group by config except seed show config, count(), mean(f1), std(f1)"
    ).to_records()
    by_config = {r["config"]: r for r in rows}
    assert set(by_config) == {
        "depth=3; lr=0.01 | dataset:data@1", "depth=3; lr=0.1 | dataset:data@1",
        "depth=5; lr=0.01 | dataset:data@1", "depth=5; lr=0.1 | dataset:data@1",
        "depth=3; lr=0.1 | dataset:data@2",  # the same params on other data: another config
    }
    best = by_config["depth=5; lr=0.1 | dataset:data@1"]
    assert best["count()"] == 3 and best["mean(f1)"] == pytest.approx(8.0)
    assert best["std(f1)"] == pytest.approx(2.0)
    assert by_config["depth=3; lr=0.1 | dataset:data@2"]["count()"] == 1

    # the decision rule: highest mean f1 among configurations with std <= 0.5
    [winner] = store.query(
        "runs group by config except seed where std(f1) <= 0.5 "
        "order by mean(f1) desc limit 1 show config, mean(f1)"
    ).to_records()
    assert winner["config"] == "depth=5; lr=0.01 | dataset:data@1"
    assert winner["mean(f1)"] == pytest.approx(5.2)

    # several names left out, and config beside another key
    rows = store.query("runs group by config except (seed, depth), experiment "
                       "show config, experiment, count()").to_records()
    assert {(r["config"], r["count()"]) for r in rows} == {
        ("lr=0.01 | dataset:data@1", 6), ("lr=0.1 | dataset:data@1", 6),
        ("lr=0.1 | dataset:data@2", 1)}
    # without except, every seed is its own configuration
    assert len(store.query("runs group by config").to_records()) == 13


def test_config_is_a_group_key_of_runs(store):
    _sweep(store)
    with pytest.raises(QueryError, match="group runs by it"):
        store.query("datasets group by config")
    with pytest.raises(QueryError):
        store.query("runs group by config except")
    with pytest.raises(QueryError, match="no param named 'sed'") as e:
        store.query("runs group by config except sed")
    assert "seed" in e.value.hint


def test_config_parses_and_prints():
    q = parse("runs group by config except (seed, fold) show config, count()")
    assert q.stages[0].keys[0].excluded == ("seed", "fold")
    # a param named config is still reachable
    assert parse("runs where params.config = 1")
