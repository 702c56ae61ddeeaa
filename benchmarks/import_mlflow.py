"""Import an MLflow store of N runs (written by MLflow's own client) into metastore.

    python benchmarks/import_mlflow.py                 # 10,000 runs, file store
    python benchmarks/import_mlflow.py --runs 1000 --layout sql
    python benchmarks/import_mlflow.py --reuse /tmp/mlflow-bench   # skip the writing

Each run gets 5 params and 3 metrics with 5 steps each, written with one `log_batch`
per run (MLflow's fastest path), then ended. The script prints how long MLflow took to
write the store, how long `metastore.importers.import_path` took to import it into a
fresh SQLite store, runs per second, and the ratio (MLflow write time / import time:
above 1 means importing is faster than MLflow was at writing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def write_mlflow(root: Path, layout: str, n: int) -> float:
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.13+ refuses file stores otherwise
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"file://{root / 'mlruns'}" if layout == "files" else f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)  # the sql store migrates here: not counted
    exp = client.create_experiment("bench")
    started = time.perf_counter()
    for i in range(n):
        run = client.create_run(exp, run_name=f"run-{i}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            params=[
                Param("lr", str(0.001 * (1 + i % 10))),
                Param("batch", str(2 ** (4 + i % 4))),
                Param("optimizer", ["adam", "sgd"][i % 2]),
                Param("dropout", str(0.1 * (i % 5))),
                Param("use_bn", str(i % 2 == 0)),
            ],
            metrics=[
                Metric(key, 1.0 / (step + 1) + i * 1e-6, now + step, step)
                for key in ("loss", "acc", "val_loss")
                for step in range(5)
            ],
        )
        client.set_terminated(run.info.run_id)
        if (i + 1) % 1000 == 0:
            print(f"  mlflow wrote {i + 1} runs ({time.perf_counter() - started:.0f} s)", flush=True)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--layout", choices=["files", "sql"], default="files")
    ap.add_argument("--reuse", help="folder with an MLflow store written by an earlier run of this script")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = ap.parse_args()

    import metastore
    from metastore.importers import import_path

    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    source = Path(args.reuse) if args.reuse else work
    write_seconds = None
    if not args.reuse:
        print(f"writing {args.runs} runs with MLflow's client ({args.layout} store) …", flush=True)
        write_seconds = write_mlflow(work, args.layout, args.runs)
    path = source / ("mlruns" if (source / "mlruns").is_dir() and args.layout == "files" else "mlflow.db")
    store = metastore.open(f"sqlite:///{work / 'metastore' / 'metastore.db'}")
    started = time.perf_counter()
    report = import_path(store.backend, path, "mlflow")
    import_seconds = time.perf_counter() - started
    again_started = time.perf_counter()
    again = import_path(store.backend, path, "mlflow")
    again_seconds = time.perf_counter() - again_started
    store.close()

    print(f"\nsource          {path} ({args.layout})")
    print(f"report          {report.summary()}")
    if write_seconds is not None:
        print(f"mlflow write    {write_seconds:8.1f} s  ({args.runs / write_seconds:8.0f} runs/s)")
    print(f"metastore import{import_seconds:8.1f} s  ({report.imported / import_seconds:8.0f} runs/s)")
    print(f"re-import       {again_seconds:8.1f} s  ({again.already_present} already present)")
    print(f"re-import/import{again_seconds / import_seconds:8.2f}   (all present: checked by key, not read back whole)")
    if write_seconds is not None:
        print(f"ratio           {write_seconds / import_seconds:8.1f}x  (MLflow write time / import time)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    if not report.complete or report.skipped:
        sys.exit(1)


if __name__ == "__main__":
    main()
