"""Synthetic stores the command-line benchmarks share: N runs of 6 params and 3 final
metrics (the runs of query_vs_mlflow.py without the loss history), written through
`create_runs` in batches so 100,000 runs load in minutes."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

FEATURES = ["age,sex,bmi,bp", "bmi,bp,s5", "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"]


def synthetic(n: int, seed: int = 0):
    """(started, params, metrics) of n runs; half are linear, rmse uniform in 50-70."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    for i in range(n):
        rmse = rng.uniform(50, 70)
        params = {
            "algorithm": "linear" if rng.random() < 0.5 else "random_forest",
            "features": rng.choice(FEATURES),
            "normalize": rng.random() < 0.5,
            "seed": rng.randrange(10),
            "alpha": round(rng.uniform(0.01, 1), 3),
            "n_estimators": rng.choice([10, 50, 100, 200]),
        }
        yield start + timedelta(seconds=i), params, {"rmse": rmse, "r2": rng.uniform(0, 0.5),
                                                     "mae": rmse * 0.8}


def build(folder: Path, n: int, experiment: str = "bench", batch: int = 1000) -> Path:
    """A store of n runs in `folder` (reused when it already holds n runs): its db file."""
    import metastore
    from metastore.records import MetricPoint, RunRecord

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "metastore.db"
    store = metastore.open(f"sqlite:///{db}")
    try:
        have = store.run_counts().get(experiment, 0)
        if have == n:
            return db
        if have:
            raise SystemExit(f"{folder} holds {have} runs, not {n}: pick another folder")
        records = []
        for started, params, metrics in synthetic(n):
            points = [MetricPoint(key=k, value=v, step=0, timestamp=started)
                      for k, v in metrics.items()]
            records.append(RunRecord(experiment=experiment, status="finished", started=started,
                                     ended=started + timedelta(seconds=1), params=params,
                                     metrics=points))
            if len(records) == batch:
                store.backend.create_runs(records)
                records = []
        if records:
            store.backend.create_runs(records)
    finally:
        store.close()
    return db
