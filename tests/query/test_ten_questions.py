"""The ten post-experiment questions of the controlled study, verbatim, answered on
SQLite, PostgreSQL and MariaDB and checked against pandas on the logged data."""

from __future__ import annotations

import pandas as pd
import pytest

from metastore.demo import QUESTIONS, run_demo
from metastore.query import QueryError


def logged_frame(store) -> pd.DataFrame:
    """One row per run, from the recording API (not the query language)."""
    rows = []
    for h in store.runs():
        rows.append({"number": h.number, "started": h.started, **h.params, **h.metrics})
    return pd.DataFrame(rows)


def test_the_ten_questions(demo_db):
    check_ten(demo_db)


@pytest.mark.slow
def test_recorded_on_each_backend(store):
    """The demo recorded through the API into each backend, then the ten questions."""
    run_demo(store, quiet=True)
    check_ten(store)


def check_ten(demo):
    df = logged_frame(demo)
    assert len(df) == 12
    ask = lambda n: demo.query(QUESTIONS[n]).rows  # noqa: E731

    best = df.loc[df.rmse.idxmin()]
    assert ask(1) == [{"number": best.number, "rmse": best.rmse}]

    firsts = df.sort_values("started").groupby("algorithm").head(1).sort_values("rmse")
    assert ask(2) == [
        {"algorithm": r.algorithm, "number": r.number, "rmse": r.rmse} for r in firsts.itertuples()
    ]

    top = df.loc[df.r2.idxmax()]
    assert ask(3) == [{"number": top.number, "features": top.features}]

    pair = df[df.number.isin([1, 4])].sort_values("mae", ascending=False).iloc[0]
    assert ask(4) == [{"number": pair.number, "mae": pair.mae}]

    four = df[df.number.isin([5, 7, 9, 11])].sort_values("number")
    assert ask(5) == four[["number", "rmse", "r2", "mae"]].to_dict("records")
    for metric in ("rmse", "r2", "mae"):
        got = demo.query(
            f"runs where number in (5, 7, 9, 11) order by {metric} desc limit 1 show number, {metric}"
        ).rows
        worst = four.loc[four[metric].idxmax()]
        assert got == [{"number": worst.number, metric: worst[metric]}]

    run4 = demo.get_run(4)
    models = [v for v in run4.outputs if v.kind == "model"]
    assert ask(6) == [{"name": v.name, "version": v.version, "digest": v.digest} for v in models]
    assert len(models) == 1

    worst = df.loc[df.rmse.idxmax()]
    assert ask(7) == [{"number": worst.number, "normalize": bool(worst.normalize)}]

    good = df[df.r2 > 0.32].sort_values("number")
    assert ask(8) == good[["number", "r2"]].to_dict("records")
    assert len(good) > 0

    linear = df[(df.algorithm == "linear") & (df.rmse < 55)].sort_values("number")
    assert ask(9) == linear[["number", "r2"]].to_dict("records")
    assert len(linear) > 0

    first = df.sort_values("started").iloc[0]
    assert ask(10) == [{"number": first.number, "r2": first.r2}]


def test_scoped_to_an_experiment(demo_store):
    demo = demo_store
    for i, rmse in enumerate([70.0, 50.0, 60.0]):
        with demo.start_run(experiment="again", capture=False) as run:
            run.log_params({"algorithm": "linear", "features": "bmi", "normalize": bool(i % 2)})
            run.log_metrics({"rmse": rmse, "r2": 0.1 * i, "mae": rmse - 10})
            run.log_asset(f"model {i}".encode(), kind="model", name="regressor")
    assert len(demo.query("runs")) == 15
    assert len(demo.query("runs", experiment="again")) == 3
    assert len(demo.query('runs where experiment = "diabetes"')) == 12
    assert demo.query(QUESTIONS[1], experiment="again").rows == [{"number": 2, "rmse": 50.0}]
    assert demo.query(QUESTIONS[9], experiment="again").rows == [{"number": 2, "r2": 0.1}]
    got = demo.query(QUESTIONS[6].replace("run 4", "run 2"), experiment="again").rows
    assert [(r["name"], r["version"]) for r in got] == [("regressor", 14)]
    # run 4 exists in one experiment only, so it needs no scope; run 2 needs one
    with pytest.raises(QueryError, match="2 experiments"):
        demo.query(QUESTIONS[6].replace("run 4", "run 2"))
    assert demo.query(QUESTIONS[6]).rows[0]["version"] == 4
    assert len(demo.query("models", experiment="again")) == 3
