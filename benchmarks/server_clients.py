"""Many clients logging through a server: `metastore server` against `mlflow server`.

    python benchmarks/server_clients.py                   # 8 clients x 25 runs, 2 workers
    python benchmarks/server_clients.py --clients 8 --runs 10 --workers 2 --rounds 3

Each server gets a PostgreSQL database of its own (created here on
METASTORE_BENCH_PG, default postgresql+psycopg://root@127.0.0.1:5432/test, and dropped
afterwards) and runs with the same number of worker processes. Then `--clients`
client processes start at once, and each records `--runs` runs through the server, the
way a training job does with each tool's public API:

  metastore  metastore.open(URL).start_run(capture=False): log_params (10), log_metrics
             (5 metrics) at each of 20 steps, end of the run (buffered: the values and
             the end go out as one request, after the one that creates the run)
  mlflow     MlflowClient(URL): create_run, log_batch (10 params and 100 metric points,
             one call, MLflow's fastest way), set_terminated

Prints runs per second for each (all clients together, from the first start to the
last end), the ratio (goal: metastore >= 3x MLflow), and checks that every run
arrived with its values.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

PG_ADMIN = os.environ.get("METASTORE_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
PARAMS, METRICS, STEPS = 10, 5, 20
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no server on port {port} after {seconds} s")


def database(admin: sa.Engine, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name, sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)


# -- the clients (each in its own process) ------------------------------------------------


def metastore_client(url: str, runs: int, client: int, ready) -> None:
    import metastore

    store = metastore.open(url)
    store.experiments()  # connected
    ready.wait()
    for r in range(runs):
        with store.start_run(experiment="bench", name=f"c{client}-r{r}", capture=False) as run:
            run.log_params({f"p{i}": i * 0.5 for i in range(PARAMS)})
            for step in range(STEPS):
                run.log_metrics({f"m{k}": step / (k + 1) for k in range(METRICS)}, step=step)
    store.close()


def mlflow_client(url: str, runs: int, client: int, ready) -> None:
    # MLflow's telemetry thread races the requests' reading of os.environ (a client
    # died of KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'); without it MLflow only gains
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - MLflow prints a link per run
    mlflow = MlflowClient(tracking_uri=url)
    experiment = mlflow.get_experiment_by_name("bench").experiment_id
    ready.wait()
    for r in range(runs):
        now = int(time.time() * 1000)
        run = mlflow.create_run(experiment, run_name=f"c{client}-r{r}")
        mlflow.log_batch(
            run.info.run_id,
            params=[Param(f"p{i}", str(i * 0.5)) for i in range(PARAMS)],
            metrics=[Metric(f"m{k}", step / (k + 1), now, step)
                     for step in range(STEPS) for k in range(METRICS)],
        )
        mlflow.set_terminated(run.info.run_id)


def clients(target, url: str, n: int, runs: int) -> float:
    """Seconds from the common start (every client imported and connected) to the last
    client's end."""
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(n + 1)
    procs = [ctx.Process(target=target, args=(url, runs, c, ready)) for c in range(n)]
    for p in procs:
        p.start()
    ready.wait()
    start = time.time()
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a {target.__name__} process failed ({p.exitcode})")
    return time.time() - start


# -- the servers --------------------------------------------------------------------------


def serve_metastore(url: str, workers: int, blobs: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "metastore.cli", "server", "--no-auth", "--no-ui",
         "--port", str(port), "--workers", str(workers), "--url", url, "--blobs", str(blobs)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    wait_for(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def serve_mlflow(url: str, workers: int, artifacts: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--backend-store-uri", url,
         "--artifacts-destination", str(artifacts)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    wait_for(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--runs", type=int, default=25, help="runs per client")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes, each tool")
    ap.add_argument("--rounds", type=int, default=1,
                    help="times each tool's clients run, taking turns (best and each printed)")
    args = ap.parse_args()
    import metastore

    total = args.clients * args.runs
    print(f"# server_clients: {args.clients} clients x {args.runs} runs ({PARAMS} params, "
          f"{METRICS} metrics x {STEPS} steps each), {args.workers} server workers each, "
          f"PostgreSQL; {platform.node()} {os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, metastore "
          f"{metastore.__version__}, {datetime.now().isoformat(timespec='minutes')}")
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    tmp = Path(tempfile.mkdtemp(prefix="metastore-server-bench-"))
    names = []
    times: dict[str, list[float]] = {"metastore": [], "mlflow": []}
    procs = []
    try:
        name, url = database(admin, "ms_bench")
        names.append(name)
        metastore.open(url, blobs=tmp / "blobs").close()  # tables made before the workers start
        proc, ms_server = serve_metastore(url, args.workers, tmp / "blobs")
        procs.append(proc)

        import mlflow  # noqa: F401 - fail early when MLflow is missing
        from mlflow.tracking import MlflowClient

        name, url = database(admin, "mlflow_bench")
        names.append(name)
        proc, ml_server = serve_mlflow(url, args.workers, tmp / "mlartifacts")
        procs.append(proc)
        MlflowClient(tracking_uri=ml_server).create_experiment("bench")
        # the two tools take turns, so a change in the machine's load falls on both
        for _ in range(args.rounds):
            times["metastore"].append(clients(metastore_client, ms_server, args.clients, args.runs))
            times["mlflow"].append(clients(mlflow_client, ml_server, args.clients, args.runs))
        got = metastore.open(ms_server)
        runs = got.runs("bench")
        assert len(runs) == total * args.rounds, f"metastore: {len(runs)} of {total} runs arrived"
        assert len(runs[0].params) == PARAMS and len(runs[0].metric_history("m0")) == STEPS
        got.close()
        found = MlflowClient(tracking_uri=ml_server).search_runs(
            [MlflowClient(tracking_uri=ml_server).get_experiment_by_name("bench").experiment_id],
            max_results=total * args.rounds + 1)
        assert len(found) == total * args.rounds, f"mlflow: {len(found)} of {total} runs arrived"
    finally:
        for proc in procs:
            stop(proc)
        with admin.connect() as c:
            for name in names:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    for tool, seconds in times.items():
        best = min(seconds)
        print(f"{tool:10s} {best:8.2f} s   {total / best:8.1f} runs/s   "
              f"{1000 * best / total:8.1f} ms/run (all clients together; best of {len(seconds)},"
              f" rounds {' '.join(f'{x:.1f}' for x in seconds)} s)")
    ratios = [m / s for s, m in zip(times["metastore"], times["mlflow"], strict=True)]
    print(f"through a server: metastore {min(times['mlflow']) / min(times['metastore']):.1f}x"
          f" MLflow's throughput (rounds {' '.join(f'{r:.1f}' for r in ratios)}; goal >= 3x);"
          f" load now {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()
