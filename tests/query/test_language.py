"""Every construct of the language on the demo's runs, on SQLite, PostgreSQL and MariaDB,
checked against pandas computations on the logged data."""

from __future__ import annotations

import pandas as pd
import pytest

from metastore.query import QueryError


@pytest.fixture(scope="module")
def df(demo_db) -> pd.DataFrame:
    rows = []
    for h in demo_db.runs():
        rows.append({"number": h.number, "name": h.name, "started": h.started, **h.params, **h.metrics})
    return pd.DataFrame(rows).sort_values("number").reset_index(drop=True)


def numbers(result) -> list[int]:
    return [r["number"] for r in result]


def test_comparisons_and_boolean_logic(demo_db, df):
    q = demo_db.query
    assert numbers(q("runs where r2 > 0.32 and (features like \"*bmi*\" or not normalize)")) == list(
        df[(df.r2 > 0.32) & (df.features.str.contains("bmi") | ~df.normalize)].number
    )
    assert numbers(q("runs where rmse <= 56 or mae >= 54")) == list(df[(df.rmse <= 56) | (df.mae >= 54)].number)
    assert numbers(q("runs where not (rmse < 60)")) == list(df[~(df.rmse < 60)].number)
    assert numbers(q("runs where number != 3 and number <> 4 and number == 5")) == [5]
    assert numbers(q("runs where number not in (1, 2, 3)")) == list(range(4, 13))
    assert numbers(q("runs where number in [2, 3]")) == [2, 3]
    assert numbers(q("runs where rmse between 54 and 57")) == list(df[df.rmse.between(54, 57)].number)
    assert numbers(q("runs where rmse not between 54 and 57")) == list(df[~df.rmse.between(54, 57)].number)
    assert numbers(q('runs where features ~ "s5$"')) == list(df[df.features.str.contains("s5$")].number)
    assert numbers(q('runs where features !~ "s5$"')) == list(df[~df.features.str.contains("s5$")].number)
    assert numbers(q('runs where name like "RF-*-NORM"')) == list(
        df[df.name.str.startswith("rf-") & df.name.str.endswith("-norm")].number
    )
    assert numbers(q('runs where name not like "rf-*"')) == list(df[~df.name.str.startswith("rf-")].number)
    assert numbers(q('runs where name like "lr-?f"')) == list(df[df.name.str.fullmatch(r"lr-.f")].number)


def test_typed_params(demo_db, df):
    q = demo_db.query
    assert numbers(q("runs where normalize = true")) == list(df[df.normalize].number)
    assert numbers(q("runs where normalize")) == list(df[df.normalize].number)
    assert numbers(q("runs where normalize = false")) == list(df[~df.normalize].number)
    assert numbers(q("runs where n_estimators > 10")) == list(df[df.n_estimators > 10].number)
    # numeric, not text, comparison: "50" < "9" as text
    assert numbers(q("runs where n_estimators > 9")) == list(df[df.n_estimators > 9].number)
    assert numbers(q("runs where alpha = 0.1")) == list(df[df.alpha == 0.1].number)
    rows = q("runs where number in (1, 7) show number, normalize, seed, alpha, n_estimators, features").rows
    assert rows[0] == {"number": 1, "normalize": False, "seed": 1, "alpha": 0.1, "n_estimators": None,
                       "features": "age,sex,bmi,bp"}
    assert rows[1]["n_estimators"] == 50 and rows[1]["alpha"] is None


def test_missing_fields_are_null(demo_db, df):
    q = demo_db.query
    # linear runs have no n_estimators: skipped by comparisons, kept by `is null`
    assert numbers(q("runs where n_estimators = 50 or n_estimators != 50")) == list(df[df.n_estimators.notna()].number)
    assert numbers(q("runs where n_estimators is null")) == list(df[df.n_estimators.isna()].number)
    assert numbers(q("runs where alpha is not null")) == list(df[df.alpha.notna()].number)
    assert numbers(q("runs where seed = 0")) == []
    # and order by puts them last, ascending or descending
    got = numbers(q("runs order by loss.min desc"))
    assert got[-6:] == list(df[df.loss.isna()].number)
    got = numbers(q("runs order by loss.min"))
    assert got[-6:] == list(df[df.loss.isna()].number)
    # a limit beyond the rows that have the metric still reaches the ones without
    forests = df[df.loss.notna()]
    assert len(forests) == 6
    got = q("runs order by loss.min limit 8 show number, loss.min").rows
    assert [r["loss.min"] is None for r in got] == [False] * 6 + [True] * 2
    assert numbers(q("runs order by loss.min limit 3")) == numbers(q("runs order by loss.min"))[:3]
    assert numbers(q("runs order by rmse desc limit 12")) == list(df.sort_values("rmse", ascending=False).number)


def test_order_limit_and_per(demo_db, df):
    q = demo_db.query
    assert numbers(q("runs order by rmse limit 3")) == list(df.sort_values("rmse").number[:3])
    assert numbers(q("runs order by algorithm desc, rmse asc limit 4")) == list(
        df.sort_values(["algorithm", "rmse"], ascending=[False, True]).number[:4]
    )
    got = q("runs order by rmse limit 2 per features show features, number").rows
    want = df.sort_values("rmse").groupby("features").head(2)
    assert sorted((r["features"], r["number"]) for r in got) == sorted(zip(want.features, want.number, strict=True))
    assert [r["number"] for r in got] == list(want.number)  # still in rmse order
    # stages apply left to right: a where after a limit filters the limited rows
    top = df.sort_values("rmse").head(3)
    assert numbers(q('runs order by rmse limit 3 where algorithm = "linear"')) == list(
        top[top.algorithm == "linear"].number
    )
    assert numbers(q("runs order by rmse limit 5 limit 2")) == list(df.sort_values("rmse").number[:2])


def test_group_by_and_having(demo_db, df):
    got = demo_db.query(
        "runs group by algorithm, normalize show algorithm, normalize, count(), mean(rmse), std(rmse), "
        "min(r2) as worst, max(r2), sum(mae)"
    )
    assert got.columns == ["algorithm", "normalize", "count()", "mean(rmse)", "std(rmse)", "worst",
                           "max(r2)", "sum(mae)"]
    g = df.groupby(["algorithm", "normalize"]).agg(
        n=("rmse", "size"), mean=("rmse", "mean"), std=("rmse", "std"), worst=("r2", "min"),
        best=("r2", "max"), mae=("mae", "sum")).reset_index()
    assert len(got) == len(g)
    for row, want in zip(got, g.itertuples(), strict=True):
        assert (row["algorithm"], row["normalize"], row["count()"]) == (want.algorithm, want.normalize, want.n)
        assert row["mean(rmse)"] == pytest.approx(want.mean, rel=1e-9)
        assert row["std(rmse)"] == pytest.approx(want.std, rel=1e-9)
        assert row["worst"] == want.worst and row["max(r2)"] == want.best
        assert row["sum(mae)"] == pytest.approx(want.mae, rel=1e-9)
    # where after group by filters groups (HAVING)
    means = df.groupby("features").rmse.mean()
    bound = float(means.median())
    got = demo_db.query(
        f"runs group by features where mean(rmse) < {bound} and count() >= 3 "
        "order by mean(rmse) show features, mean(rmse) as m"
    )
    assert [r["features"] for r in got] == list(means[means < bound].sort_values().index)
    # aggregates without group by: one row over all runs
    got = demo_db.query("runs where algorithm = \"linear\" show count(), min(rmse), mean(r2)").rows
    lin = df[df.algorithm == "linear"]
    assert got[0]["count()"] == len(lin) and got[0]["min(rmse)"] == lin.rmse.min()
    assert got[0]["mean(r2)"] == pytest.approx(lin.r2.mean())
    # a limit on groups, then more stages
    got = demo_db.query("runs group by features order by mean(rmse) limit 2 show features, mean(rmse) "
                        "order by mean(rmse) desc")
    assert [r["features"] for r in got] == list(means.sort_values().index[:2][::-1])
    # the default columns of a grouped query: its keys and count()
    assert demo_db.query("runs group by algorithm").columns == ["algorithm", "count()"]


def test_metric_history(demo_db):
    forests = [h for h in demo_db.runs() if h.params["algorithm"] == "random_forest"]
    got = demo_db.query(
        'runs where algorithm = "random_forest" show number, loss.min, loss.max, loss.first, loss.last, '
        "loss.count, loss.mean, loss.last_step, metrics.loss.min"
    ).rows
    for row, h in zip(got, forests, strict=True):
        values = [m.value for m in h.metric_history("loss")]
        assert row["loss.min"] == min(values) == row["metrics.loss.min"]
        assert row["loss.max"] == max(values)
        assert row["loss.first"] == values[0] and row["loss.last"] == values[-1]
        assert row["loss.count"] == len(values) and row["loss.last_step"] == len(values) - 1
        assert row["loss.mean"] == pytest.approx(sum(values) / len(values))
    best = min(forests, key=lambda h: (min(m.value for m in h.metric_history("loss")), h.number))
    assert numbers(demo_db.query("runs order by loss.min limit 1")) == [best.number]


def test_run_attributes(demo_db, df):
    rows = demo_db.query("runs where number = 2 show id, number, name, ref, status, experiment, "
                         "started, ended, duration, user, host, commit, dirty, project").rows
    h = demo_db.get_run(2)
    r = rows[0]
    assert (r["id"], r["number"], r["name"], r["ref"], r["status"]) == (h.id, 2, h.name, "diabetes#2", "finished")
    assert r["experiment"] == "diabetes" and r["project"] == "default"
    assert r["started"] == h.started and r["ended"] == h.ended
    assert r["duration"] == pytest.approx(h.duration, abs=1e-3)
    assert (r["user"], r["host"], r["commit"]) == (h.user, h.host, h.git_commit)
    since = df.started.iloc[5].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert numbers(demo_db.query(f'runs where started >= "{since}"')) == list(range(6, 13))
    assert len(demo_db.query('runs where status = "finished" and duration > 0')) == 12


def test_system_metrics_with_backticks(demo_db):
    got = demo_db.query("runs where `system.wall_time` > 0 show number, `system.wall_time` as wall")
    assert len(got) == 12 and all(r["wall"] > 0 for r in got)
    assert len(demo_db.query("runs where metrics.`system.wall_time` > 0")) == 12


def test_arithmetic_and_functions(demo_db, df):
    rows = demo_db.query("runs where number = 1 show rmse * 2 as double, rmse / 0 as nothing, "
                         "-r2 as neg, round(rmse, 1), abs(-r2), upper(name), (rmse - mae) / rmse").rows
    r, want = rows[0], df.iloc[0]
    assert r["double"] == pytest.approx(2 * want.rmse)
    assert r["nothing"] is None
    assert r["neg"] == -want.r2 and r["round(rmse, 1)"] == round(want.rmse, 1)
    assert r["abs(-r2)"] == pytest.approx(abs(want.r2)) and r["upper(name)"] == want["name"].upper()
    assert r["(rmse - mae) / rmse"] == pytest.approx((want.rmse - want.mae) / want.rmse)


def test_select_is_show_and_aliases(demo_db):
    a = demo_db.query("runs order by rmse limit 2 select number, rmse as error").rows
    b = demo_db.query("runs order by rmse limit 2 show number, rmse as error").rows
    assert a == b and list(a[0]) == ["number", "error"]
    # an alias is usable in later stages
    got = demo_db.query("runs show number, rmse - mae as gap where gap > 12 order by gap desc")
    assert all(r["gap"] > 12 for r in got) and [r["gap"] for r in got] == sorted((r["gap"] for r in got), reverse=True)


def test_assets_models_and_experiments(demo_db):
    got = demo_db.query('models where name = "regressor" show version, digest, created_by order by version')
    assert [r["version"] for r in got] == list(range(1, 13))
    assert [r["created_by"] for r in got] == [f"diabetes#{i}" for i in range(1, 13)]
    assert got[3]["digest"] == demo_db.get_asset("model", "regressor", 4).digest
    # metrics and params of an asset version are those of the run that produced it
    worst = demo_db.query("models order by rmse desc limit 1 show name, version, created_by, normalize").rows
    run = demo_db.query("runs order by rmse desc limit 1 show ref, normalize").rows[0]
    assert worst[0]["created_by"] == run["ref"] and worst[0]["normalize"] == run["normalize"]
    kinds = {r["kind"] for r in demo_db.query("assets show kind")}
    assert {"dataset", "model"} <= kinds
    assert [r["name"] for r in demo_db.query("datasets show name")] == ["diabetes", "diabetes-test", "diabetes-train"]
    assert demo_db.query("models where latest show version").rows == [{"version": 12}]
    assert demo_db.query("experiments show name, runs").rows == [{"name": "diabetes", "runs": 12}]


def test_lineage_sources(demo_db):
    got = demo_db.query('downstream of run 4 where kind = "model" show name, version, digest').rows
    assert got == [{"name": "regressor", "version": 4, "digest": demo_db.get_asset("model", "regressor", 4).digest}]
    up = demo_db.query('upstream of model "regressor" version 4 depth 3 show depth, type, ref, kind, name')
    refs = {(r["depth"], r["ref"]) for r in up}
    assert (1, "diabetes#4") in refs
    assert (2, "dataset:diabetes-train@1") in refs and (2, "dataset:diabetes@1") in refs
    # diabetes is reached in two hops (run used it) before three (train was derived from it)
    assert [r["depth"] for r in up if r["ref"] == "dataset:diabetes@1"] == [2]
    one = demo_db.query('upstream of model "regressor" version 4 depth 1')
    assert [r["ref"] for r in one.rows] == [None] or [r["name"] for r in one] == [demo_db.get_run(4).name]
    runs = demo_db.query('downstream of dataset "diabetes" within 1 hop where type = "run" show number')
    assert sorted(r["number"] for r in runs) == list(range(1, 13))
    assert len(demo_db.query('downstream of dataset "diabetes" where kind = "model"')) == 12
    assert len(demo_db.query('upstream of model "regressor" version latest where type = "run"')) == 1


def test_lineage_predicates(demo_db, df):
    q = demo_db.query
    want = list(df[df.rmse < 55].number)
    assert numbers(q('runs where uses dataset "diabetes" and rmse < 55')) == want
    assert numbers(q('runs where uses dataset "diabetes-train" version 1')) == list(range(1, 13))
    with pytest.raises(QueryError, match="no dataset named 'diabets'") as e:
        q('runs where uses dataset "diabets"')  # a typo is an error, not an empty answer
    assert e.value.suggestion.startswith("did you mean 'diabetes'")
    with pytest.raises(QueryError, match="has no version 7"):
        q('runs where uses dataset "diabetes" version 7')
    assert numbers(q('runs where produced model "regressor" version 3')) == [3]
    assert numbers(q('runs where upstream of model "regressor" version 3')) == [3]
    assert numbers(q('runs where downstream of dataset "diabetes" within 1 hops and number < 3')) == [1, 2]
    got = q('datasets where derived from dataset "diabetes" show name')
    assert sorted(r["name"] for r in got) == ["diabetes-test", "diabetes-train"]
    got = q('models where produced by run 5 show version')
    assert got.rows == [{"version": 5}]
    got = q('datasets where used by run 5 show name')
    assert sorted(r["name"] for r in got) == ["diabetes", "diabetes-test", "diabetes-train"]
    got = q('models where derived from dataset "diabetes-train" and rmse < 55 show version')
    assert [r["version"] for r in got] == want
    assert numbers(q('runs where not uses dataset "diabetes" or number = 1')) == [1]


def test_derived_models_at_any_depth(store):
    """models derived (at any depth) from a given model: base → finetuned → distilled."""
    with store.start_run(experiment="ft", capture=False) as run:
        base = run.log_asset(b"base weights", kind="model", name="base")
    with store.start_run(experiment="ft", capture=False) as run:
        run.log_metric("rmse", 50.0)
        tuned = run.log_asset(b"tuned", kind="model", name="tuned", derived_from=[base])
    with store.start_run(experiment="ft", capture=False) as run:
        run.log_metric("rmse", 40.0)
        run.log_asset(b"small", kind="model", name="distilled", derived_from=[tuned])
    got = store.query('models where derived from model "base" show name, rmse order by name')
    assert got.rows == [{"name": "distilled", "rmse": 40.0}, {"name": "tuned", "rmse": 50.0}]
    got = store.query('models where derived from model "base" within 1 hop show name')
    assert got.rows == [{"name": "tuned"}]
    got = store.query('models where derived from model "base" and rmse < 45 show name')
    assert got.rows == [{"name": "distilled"}]


def test_deleted_runs_and_experiments_are_invisible(demo_store):
    demo_store.delete_run(3)
    assert 3 not in numbers(demo_store.query("runs"))
    assert len(demo_store.query("runs")) == 11
    assert demo_store.query('runs where upstream of model "regressor" version 3').rows == []
    with pytest.raises(QueryError, match="no run 3"):
        demo_store.query('downstream of run 3')
    demo_store.delete_experiment("diabetes")
    assert len(demo_store.query("runs")) == 0
    assert len(demo_store.query("experiments")) == 0


def test_tags(demo_store):
    h = demo_store.get_run(2)
    demo_store.backend.set_tags("run", h.id, {"stage": "prod", "owner": "ana"})
    got = demo_store.query('runs where stage = "prod" show number, stage, tags.stage')
    assert got.rows == [{"number": 2, "stage": "prod", "tags.stage": "prod"}]
    assert numbers(demo_store.query("runs where tags.stage is null")) == [n for n in range(1, 13) if n != 2]


def test_ambiguous_names_offer_qualified_forms(demo_store):
    with demo_store.start_run(experiment="diabetes", capture=False) as run:
        run.log_params({"rmse": "a param called rmse"})
    with pytest.raises(QueryError) as e:
        demo_store.query("runs where rmse < 55")
    assert "metrics.rmse" in e.value.suggestion and "params.rmse" in e.value.suggestion
    assert len(demo_store.query("runs where metrics.rmse < 55")) == 2
    assert demo_store.query('runs where params.rmse = "a param called rmse" show number').rows == [{"number": 13}]


def test_running_and_crashed_status_is_current(demo_store):
    import os

    from metastore.models import Run

    with demo_store.backend.write() as s:  # a run whose process died without ending it
        run = s.get(Run, demo_store.get_run(12).id)
        run.status, run.ended, run.pid, run.host = "running", None, 2**22 + 12345, demo_store.backend._host
    assert os.getpid() != 2**22 + 12345
    assert numbers(demo_store.query('runs where status = "crashed"')) == [12]
