"""Logging from a training loop: metastore's recording API against MLflow's, in one process.

    python benchmarks/logging_vs_mlflow.py               # 500 runs each way
    python benchmarks/logging_vs_mlflow.py -n 100        # fewer runs
    python benchmarks/logging_vs_mlflow.py -n 500 --mlflow-runs 100

Each run logs 10 params and 5 metrics over 20 steps (100 points), on SQLite files in a
temporary directory. Ways of logging:

  per-value   metastore: run.log_param(k, v) x10, run.log_metric(k, v, step) x100
              MLflow:    mlflow.log_param x10, mlflow.log_metric(k, v, step=) x100 (fluent)
  batch       metastore: run.log_params(dict) once, run.log_metrics(dict, step) per step
              MLflow:    MlflowClient.log_batch(params, metrics) once a run
  series      metastore: run.log_series(key, values) per metric (no MLflow peer)

metastore runs with capture=False (MLflow captures little by default) and once more with
the default capture. Printed: ms per run (the median of --repeat rounds of the whole
set, with min-max) and the ratio MLflow/metastore (> 1: metastore is faster). Goals
(issue 11): per-value >= 10x MLflow's fluent API, batch >= 3x MLflow's log_batch.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

PARAMS = {f"p{i}": (i * 0.1 if i % 2 else f"v{i}") for i in range(10)}
METRICS = [f"m{i}" for i in range(5)]
STEPS = 20


def value(m: int, step: int, run: int) -> float:
    return 1.0 / (1 + step) + m * 0.01 + run * 1e-6


# -- metastore ---------------------------------------------------------------------------
def ms_per_value(store, i, capture=False):
    with store.start_run(experiment="bench", capture=capture) as run:
        for k, v in PARAMS.items():
            run.log_param(k, v)
        for step in range(STEPS):
            for m, key in enumerate(METRICS):
                run.log_metric(key, value(m, step, i), step=step)


def ms_batch(store, i, capture=False):
    with store.start_run(experiment="bench", capture=capture) as run:
        run.log_params(PARAMS)
        for step in range(STEPS):
            run.log_metrics({key: value(m, step, i) for m, key in enumerate(METRICS)}, step=step)


def ms_series(store, i, capture=False):
    with store.start_run(experiment="bench", capture=capture) as run:
        run.log_params(PARAMS)
        for m, key in enumerate(METRICS):
            run.log_series(key, [value(m, step, i) for step in range(STEPS)])


# -- MLflow ------------------------------------------------------------------------------
def mlflow_fluent(mlflow, i):
    with mlflow.start_run():
        for k, v in PARAMS.items():
            mlflow.log_param(k, v)
        for step in range(STEPS):
            for m, key in enumerate(METRICS):
                mlflow.log_metric(key, value(m, step, i), step=step)


def mlflow_batch(client, experiment_id, i):
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric(key, value(m, step, i), now, step)
            for step in range(STEPS)
            for m, key in enumerate(METRICS)
        ],
        params=[Param(k, str(v)) for k, v in PARAMS.items()],
    )
    client.set_terminated(run.info.run_id)


def timed(fn, n: int) -> float:
    """ms per run for n runs of fn(i)."""
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t) * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--runs", type=int, default=500, help="metastore runs per way")
    ap.add_argument("--mlflow-runs", type=int, default=None, help="MLflow runs (default -n)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the median is printed")
    args = ap.parse_args()
    n, mn = args.runs, args.mlflow_runs or args.runs

    import mlflow
    from mlflow.tracking import MlflowClient

    import metastore

    root = Path(tempfile.mkdtemp(prefix="metastore-logbench-"))
    results: dict[str, list[float]] = {}

    def record(name, ms):
        results.setdefault(name, []).append(ms)

    for r in range(args.repeat):
        # each round on fresh stores, metastore and MLflow interleaved so both see the
        # same machine load
        store = metastore.open(f"sqlite:///{root / f'ms{r}' / 'metastore.db'}")
        uri = f"sqlite:///{root / f'mlflow{r}.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("bench")
        client = MlflowClient(uri)
        exp_id = client.get_experiment_by_name("bench").experiment_id
        ms_per_value(store, -1)  # warm both
        mlflow_batch(client, exp_id, -1)
        record("metastore per-value", timed(lambda i, store=store: ms_per_value(store, i), n))
        record("mlflow per-value (fluent)", timed(lambda i: mlflow_fluent(mlflow, i), mn))
        record("metastore batch", timed(lambda i, store=store: ms_batch(store, i), n))
        record("mlflow batch (log_batch)", timed(lambda i, c=client, e=exp_id: mlflow_batch(c, e, i), mn))
        record("metastore series", timed(lambda i, store=store: ms_series(store, i), n))
        record("metastore per-value, default capture",
               timed(lambda i, store=store: ms_per_value(store, i, capture=True), n))
        record("metastore batch, default capture",
               timed(lambda i, store=store: ms_batch(store, i, capture=True), n))
        store.close()

    print(f"# logging_vs_mlflow: {n} metastore runs, {mn} MLflow runs per way, "
          f"{args.repeat} rounds; {platform.node()} {platform.machine()} "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"mlflow {mlflow.__version__}, metastore {metastore.__version__}, "
          f"{datetime.now().isoformat(timespec='minutes')}")
    print(f"{'way':40} {'ms/run':>8} {'min-max':>15}")
    med = {k: statistics.median(v) for k, v in results.items()}
    for k, v in results.items():
        print(f"{k:40} {med[k]:8.2f} {min(v):7.2f}-{max(v):<7.2f}")
    print()
    pairs = [
        ("per-value", "metastore per-value", "mlflow per-value (fluent)", 10),
        ("batch", "metastore batch", "mlflow batch (log_batch)", 3),
        ("series vs log_batch", "metastore series", "mlflow batch (log_batch)", 3),
        ("per-value, capture", "metastore per-value, default capture",
         "mlflow per-value (fluent)", 10),
        ("batch, capture", "metastore batch, default capture", "mlflow batch (log_batch)", 3),
    ]
    for label, ours, theirs, goal in pairs:
        ratios = [t / o for o, t in zip(results[ours], results[theirs], strict=True)]
        print(f"{label:24} metastore {statistics.median(ratios):6.1f}x faster than MLflow "
              f"(rounds {min(ratios):.1f}-{max(ratios):.1f}; goal >= {goal}x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
