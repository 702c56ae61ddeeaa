"""Long histories: one metric of N steps logged, read back and drawn.

    python benchmarks/long_history.py              # N = 1,000,000
    python benchmarks/long_history.py -n 100000

On a SQLite store in a temporary directory, prints seconds for:

  log_series       run.log_series(key, N values) and the flush that writes them (goal < 10 s)
  metric_series    run.metric_series(key): steps and values as numpy arrays (goal < 1 s)
  metric_series ↓  run.metric_series(key, max_points=1000): downsampled in the backend
  metric_history   run.metric_history(key): one Metric object per point (the old way)
  run page         GET /runs/{id} of the web UI (in process), and its size (goal < 500 KB)

and the peak memory of metric_series against metric_history (tracemalloc), with the
ratio metric_history / metric_series measured in the same run.
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
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def peak(fn) -> float:
    tracemalloc.start()
    fn()
    mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--steps", type=int, default=1_000_000)
    args = ap.parse_args()
    import numpy as np
    from fastapi.testclient import TestClient

    import metastore
    from metastore.server import create_app

    folder = Path(tempfile.mkdtemp(prefix="metastore-history-"))
    store = metastore.open(f"sqlite:///{folder / 'metastore.db'}")
    values = np.cumsum(np.random.default_rng(0).normal(size=args.steps))
    with store.start_run(experiment="long", capture=False, flush_interval=3600) as run:
        t_log, _ = timed(lambda: (run.log_series("loss", values), run.flush()))
    got = store.get_run(run.id)
    t_series, series = timed(lambda: got.metric_series("loss"))
    t_small, small = timed(lambda: got.metric_series("loss", max_points=1000))
    t_hist, hist = timed(lambda: got.metric_history("loss"))
    assert len(series) == len(hist) == args.steps
    del hist
    with TestClient(create_app(store, auth=False)) as client:
        t_page, page = timed(lambda: client.get(f"/runs/{run.id}"))
    mb_series = peak(lambda: got.metric_series("loss"))
    mb_hist = peak(lambda: got.metric_history("loss"))
    store.close()

    print(f"# long_history: {args.steps:,} steps; {platform.node()} {platform.machine()} "
          f"{os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"metastore {metastore.__version__}, {datetime.now().isoformat(timespec='minutes')}")
    print(f"log_series + flush          {t_log:8.2f} s")
    print(f"metric_series               {t_series:8.2f} s   peak {mb_series:7.1f} MB")
    print(f"metric_series max_points=1000 {t_small:6.2f} s   {len(small)} points")
    print(f"metric_history              {t_hist:8.2f} s   peak {mb_hist:7.1f} MB")
    print(f"run page                    {t_page:8.2f} s   {len(page.content) / 1e3:7.1f} KB "
          f"(status {page.status_code})")
    print(f"metric_series is {t_hist / t_series:.1f}x faster than metric_history and takes "
          f"{mb_hist / mb_series:.1f}x less memory")


if __name__ == "__main__":
    main()
