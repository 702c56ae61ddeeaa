"""Question 9 and question 1 of docs/query-language.md, timed on metastore and on MLflow.

    python benchmarks/query_vs_mlflow.py            # N = 1,000 and 10,000
    python benchmarks/query_vs_mlflow.py -n 1000    # one size
    python benchmarks/query_vs_mlflow.py -n 1000 --repeat 11 --keep /tmp/bench

The same N runs (6 params, 3 final metrics, a 20-step loss history each) go into a
metastore SQLite store and an MLflow SQLite tracking store. Then, warm, the median of
`--repeat` runs of:

  Q9  linear-regression runs with rmse below 55, with their r2
      metastore:  store.query('runs where algorithm = "linear" and rmse < 55 show number, r2')
      MLflow:     mlflow.search_runs(filter_string="params.algorithm = 'linear' and metrics.rmse < 55")
      SQL:        the same question hand-written against metastore's tables
  Q1  the run with the lowest rmse, and its rmse
      metastore:  store.query('runs order by rmse limit 1 show number, rmse')
      MLflow:     mlflow.search_runs(order_by=["metrics.rmse ASC"], max_results=1)
      SQL:        hand-written

and the time to parse and compile one query to SQL. Targets: metastore at least 10x
faster than MLflow at 10,000 runs, within 1.5x of the hand-written SQL, and parse +
compile under 2 ms.

Loading: metastore records through `store.backend.create_run` (one transaction per run, the
importers' path). MLflow records the first run through its client, then the benchmark
copies that run's rows (runs, params, metrics, latest_metrics, tags) with new ids and
values: the rows are exactly what MLflow writes, and loading 10,000 runs through its
client would take longer than the rest of the benchmark. Loading is not what is timed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import sqlalchemy as sa  # noqa: E402

Q9 = 'runs where algorithm = "linear" and rmse < 55 show number, r2'
Q1 = "runs order by rmse limit 1 show number, rmse"
FEATURES = ["age,sex,bmi,bp", "bmi,bp,s5", "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"]

SQL_Q9 = """
SELECT r.number, r2.last AS r2
FROM run r
JOIN experiment e ON e.id = r.experiment_id
JOIN param alg ON alg.run_id = r.id AND alg.key = 'algorithm' AND alg.text = 'linear'
JOIN metric_summary rmse ON rmse.run_id = r.id AND rmse.key = 'rmse' AND rmse.last < 55
LEFT JOIN metric_summary r2 ON r2.run_id = r.id AND r2.key = 'r2'
WHERE r.deleted_at IS NULL AND e.deleted_at IS NULL
ORDER BY r.number
"""
SQL_Q1 = """
SELECT r.number, m.last AS rmse
FROM run r
JOIN experiment e ON e.id = r.experiment_id
JOIN metric_summary m ON m.run_id = r.id AND m.key = 'rmse'
WHERE r.deleted_at IS NULL AND e.deleted_at IS NULL
ORDER BY m.last
LIMIT 1
"""


def synthetic_runs(n: int, seed: int = 0):
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    for i in range(n):
        linear = rng.random() < 0.5
        params = {
            "algorithm": "linear" if linear else "random_forest",
            "features": rng.choice(FEATURES),
            "normalize": rng.random() < 0.5,
            "seed": rng.randrange(10),
            "alpha": round(rng.uniform(0.01, 1), 3),
            "n_estimators": rng.choice([10, 50, 100, 200]),
        }
        rmse = rng.uniform(50, 70)
        metrics = {"rmse": rmse, "r2": rng.uniform(0, 0.5), "mae": rmse * 0.8}
        loss = [rmse + 20 * 0.8**step for step in range(20)]
        yield start + timedelta(seconds=i), params, metrics, loss


def load_metastore(url: str, n: int):
    import metastore
    from metastore.records import MetricPoint, RunRecord

    store = metastore.open(url)
    for started, params, metrics, loss in synthetic_runs(n):
        points = [MetricPoint(key=k, value=v, step=0, timestamp=started) for k, v in metrics.items()]
        points += [MetricPoint(key="loss", value=v, step=step, timestamp=started) for step, v in enumerate(loss)]
        store.backend.create_run(
            RunRecord(experiment="bench", status="finished", started=started,
                      ended=started + timedelta(seconds=1), params=params, metrics=points)
        )
    return store


def load_mlflow(folder: Path, n: int):
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp_id = client.create_experiment("bench", artifact_location=str(folder / "artifacts"))
    runs = list(synthetic_runs(n))
    started, params, metrics, loss = runs[0]
    ms = int(started.timestamp() * 1000)
    first = client.create_run(exp_id, start_time=ms)
    client.log_batch(
        first.info.run_id,
        metrics=[Metric(k, v, ms, 0) for k, v in metrics.items()]
        + [Metric("loss", v, ms, s) for s, v in enumerate(loss)],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.set_terminated(first.info.run_id, end_time=ms + 1000)
    engine = sa.create_engine(uri)
    meta = sa.MetaData()
    meta.reflect(engine, only=["runs", "params", "metrics", "latest_metrics", "tags"])
    t = meta.tables
    with engine.begin() as conn:
        template = dict(conn.execute(t["runs"].select()).mappings().one())
        tags = [dict(r) for r in conn.execute(t["tags"].select()).mappings()]
        rows = {"runs": [], "params": [], "metrics": [], "latest_metrics": [], "tags": []}
        for started, params, metrics, loss in runs[1:]:
            rid = uuid.uuid4().hex
            ms = int(started.timestamp() * 1000)
            rows["runs"].append({**template, "run_uuid": rid, "name": f"run-{rid[:8]}",
                                 "start_time": ms, "end_time": ms + 1000,
                                 "artifact_uri": f"{folder / 'artifacts' / rid}"})
            rows["params"] += [{"key": k, "value": str(v), "run_uuid": rid} for k, v in params.items()]
            points = [(k, v, 0) for k, v in metrics.items()] + [("loss", v, s) for s, v in enumerate(loss)]
            rows["metrics"] += [{"key": k, "value": v, "timestamp": ms, "run_uuid": rid, "step": s,
                                 "is_nan": False} for k, v, s in points]
            last = {}
            for k, v, s in points:
                last[k] = (v, s)
            rows["latest_metrics"] += [{"key": k, "value": v, "timestamp": ms, "step": s, "is_nan": False,
                                        "run_uuid": rid} for k, (v, s) in last.items()]
            rows["tags"] += [{**tag, "run_uuid": rid} for tag in tags]
        for name in ("runs", "params", "metrics", "latest_metrics", "tags"):
            if rows[name]:
                conn.execute(t[name].insert(), rows[name])
    engine.dispose()
    return exp_id


def timed(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench(n: int, repeat: int, folder: Path) -> dict:
    import mlflow

    from metastore.backends.sql_query import read_catalog
    from metastore.query.compile import compile_query
    from metastore.query.parse import parse

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = load_metastore(f"sqlite:///{folder / 'metastore.db'}", n)
    t1 = time.perf_counter()
    exp_id = load_mlflow(folder, n)
    t2 = time.perf_counter()
    print(f"\nN = {n:,} runs: loaded metastore in {t1 - t0:.1f} s, MLflow in {t2 - t1:.1f} s")

    def sql(text):
        def go():
            with store.backend.read() as s:
                return [dict(r._mapping) for r in s.connection().execute(sa.text(text))]
        return go

    out = {}
    for name, query, mlflow_kw, hand in (
        ("Q9", Q9, {"filter_string": "params.algorithm = 'linear' and metrics.rmse < 55"}, SQL_Q9),
        ("Q1", Q1, {"order_by": ["metrics.rmse ASC"], "max_results": 1}, SQL_Q1),
    ):
        ours, res = timed(lambda q=query: store.query(q), repeat)
        theirs, df = timed(
            lambda kw=mlflow_kw: mlflow.search_runs(experiment_ids=[exp_id], max_results=kw.get("max_results", 100_000),
                                                    **{k: v for k, v in kw.items() if k != "max_results"}),
            repeat,
        )
        handmade, rows = timed(sql(hand), repeat)
        assert len(res) == len(df) == len(rows), (name, len(res), len(df), len(rows))
        assert [r["number"] for r in res] == [r["number"] for r in rows] or name == "Q9"
        out[name] = (ours, theirs, handmade, len(res))
        print(
            f"  {name}: metastore {ours * 1e3:8.2f} ms | MLflow {theirs * 1e3:9.2f} ms | hand SQL "
            f"{handmade * 1e3:7.2f} ms | rows {len(res):>5} | MLflow/metastore {theirs / ours:6.1f}x"
            f" | metastore/SQL {ours / handmade:5.2f}x"
        )
    def load_catalog(store):
        with store.backend.read() as s:
            return read_catalog(s.connection())

    catalog = load_catalog(store)
    compile_time, _ = timed(lambda: compile_query(parse(Q9), store.dialect, catalog=catalog).sql(), max(repeat, 50))
    catalog_time, _ = timed(lambda: load_catalog(store), repeat)
    print(f"  parse + compile one query: {compile_time * 1e3:.2f} ms; reading the catalog: {catalog_time * 1e3:.2f} ms")
    out["compile"] = compile_time
    store.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, action="append", help="number of runs (repeatable)")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (median)")
    parser.add_argument("--keep", type=Path, help="keep the stores in this folder")
    args = parser.parse_args(argv)
    sizes = args.n or [1_000, 10_000]
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("the benchmark needs mlflow: pip install mlflow", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        results = {n: bench(n, args.repeat, root / f"n{n}") for n in sizes}
    print("\nsummary (median of", args.repeat, "warm runs)")
    for n, r in results.items():
        for q in ("Q9", "Q1"):
            ours, theirs, hand, _ = r[q]
            print(f"  N={n:>6,} {q}: {theirs / ours:6.1f}x faster than MLflow, {ours / hand:5.2f}x the hand-written SQL")
        print(f"  N={n:>6,} parse + compile: {r['compile'] * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
