"""Long histories: one metric of N steps logged, read back and drawn.

    python benchmarks/long_history.py              # N = 1,000,000; MLflow at 20,000
    python benchmarks/long_history.py -n 100000 --mlflow-steps 5000

On a SQLite store in a temporary directory, prints wall and CPU seconds for:

  log_series       run.log_series(key, N values) and the flush that writes them (goal < 10 s)
  log_metric loop  N calls of run.log_metric(key, v, step=i), buffered, and the end of the run
  metric_series    run.metric_series(key): steps and values as numpy arrays (goal < 1 s)
  metric_series ↓  run.metric_series(key, max_points=1000): downsampled in the backend
  metric_history   run.metric_history(key): one Metric object per point (the old way)
  run page         GET /runs/{id} of the web UI (in process), and its size (goal < 1 s, < 500 KB)

the peak memory of metric_series against metric_history (tracemalloc; goal < 200 MB),
and, at --mlflow-steps (MLflow cannot log a million steps in reasonable time), the same
history logged with MLflow's `log_batch` (1,000 metrics a call, its limit) and read with
`get_metric_history`, beside metastore's `log_series` and `metric_series` at that size:
the ratio is printed. CPU time is printed because this machine is shared: wall time
moves with the load, CPU time much less.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import tracemalloc
from datetime import datetime
from pathlib import Path


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def peak(fn) -> float:
    tracemalloc.start()
    fn()
    mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return mb


def line(label: str, t: tuple[float, float], extra: str = "") -> None:
    print(f"{label:32s} {t[0]:8.2f} s wall {t[1]:8.2f} s cpu   {extra}")


def metastore_at(store, values, key="loss"):
    with store.start_run(experiment="long", capture=False, flush_interval=3600) as run:
        t_log, _ = timed(lambda: (run.log_series(key, values), run.flush()))
    got = store.get_run(run.id)
    t_read, series = timed(lambda: got.metric_series(key))
    assert len(series) == len(values)
    return run, got, t_log, t_read


def mlflow_at(folder: Path, values):
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.create_experiment("long", artifact_location=str(folder / "mlartifacts"))
    run = client.create_run(exp)
    now = int(time.time() * 1000)

    def log():
        for i in range(0, len(values), 1000):
            client.log_batch(run.info.run_id, metrics=[
                Metric("loss", float(v), now, i + j) for j, v in enumerate(values[i:i + 1000])
            ])

    t_log, _ = timed(log)
    t_read, hist = timed(lambda: client.get_metric_history(run.info.run_id, "loss"))
    assert len(hist) == len(values)
    return t_log, t_read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--steps", type=int, default=1_000_000)
    ap.add_argument("--mlflow-steps", type=int, default=20_000,
                    help="history length for the side-by-side with MLflow (0: skip)")
    args = ap.parse_args()
    import numpy as np
    from fastapi.testclient import TestClient

    import metastore
    from metastore.server import create_app

    print(f"# long_history: {args.steps:,} steps; {platform.node()} {platform.machine()} "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, Python "
          f"{platform.python_version()}, metastore {metastore.__version__}, "
          f"{datetime.now().isoformat(timespec='minutes')}")
    folder = Path(tempfile.mkdtemp(prefix="metastore-history-"))
    store = metastore.open(f"sqlite:///{folder / 'metastore.db'}")
    values = np.cumsum(np.random.default_rng(0).normal(size=args.steps))
    run, got, t_log, t_series = metastore_at(store, values)

    def loop():
        with store.start_run(experiment="long", capture=False) as loop_run:
            for i, v in enumerate(values.tolist()):
                loop_run.log_metric("loss", v, step=i)

    t_loop, _ = timed(loop)
    t_small, small = timed(lambda: got.metric_series("loss", max_points=1000))
    t_hist, hist = timed(lambda: got.metric_history("loss"))
    assert len(hist) == args.steps
    del hist
    with TestClient(create_app(store, auth=False)) as client:
        client.get(f"/runs/{run.id}")  # the first request pays for templates and imports
        t_page, page = timed(lambda: client.get(f"/runs/{run.id}"))
    mb_series = peak(lambda: got.metric_series("loss"))
    mb_hist = peak(lambda: got.metric_history("loss"))
    store.close()

    line("log_series + flush", t_log, "goal < 10 s")
    line("log_metric loop + end of run", t_loop, "goal < 10 s")
    line("metric_series", t_series, f"peak {mb_series:7.1f} MB; goal < 1 s, < 200 MB")
    line("metric_series max_points=1000", t_small, f"{len(small)} points")
    line("metric_history (objects)", t_hist, f"peak {mb_hist:7.1f} MB")
    line("run page", t_page, f"{len(page.content) / 1e3:7.1f} KB (status {page.status_code});"
         " goal < 1 s, < 500 KB")
    print(f"metric_series is {t_hist[0] / t_series[0]:.1f}x faster than metric_history and "
          f"takes {mb_hist / mb_series:.1f}x less memory")

    if args.mlflow_steps:
        n = args.mlflow_steps
        side = Path(tempfile.mkdtemp(prefix="metastore-history-side-"))
        small_store = metastore.open(f"sqlite:///{side / 'metastore.db'}")
        _, _, m_log, m_read = metastore_at(small_store, values[:n])
        small_store.close()
        f_log, f_read = mlflow_at(side, values[:n])
        print(f"\nat {n:,} steps, against MLflow (log_batch x{-(-n // 1000)}, get_metric_history):")
        line("metastore log_series + flush", m_log)
        line("mlflow log_batch", f_log)
        line("metastore metric_series", m_read)
        line("mlflow get_metric_history", f_read)
        print(f"logging: metastore {f_log[0] / m_log[0]:.1f}x faster than MLflow; "
              f"reading: {f_read[0] / m_read[0]:.1f}x faster")


if __name__ == "__main__":
    main()
