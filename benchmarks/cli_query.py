"""The command line at scale: `metastore query` against the sqlite3 shell, `metastore
runs` against `mlflow runs list`, and what printing costs beside the query.

    python benchmarks/cli_query.py                        # 100,000 and 10,000 runs, 5 rounds
    python benchmarks/cli_query.py -n 20000 --runs-n 2000 --rounds 3
    python benchmarks/cli_query.py --keep /tmp/cli-bench  # reuse the stores next time

Stores (`_stores.py`): N runs of 6 params and 3 metrics, half of them linear, rmse
uniform in 50-70. Each round starts a fresh process per command, in turn, output to a
file, and times its wall clock (start-up included, as a user waits for it):

  query   metastore query 'runs where algorithm = "linear" and rmse < 54'   (~10% of N)
          in table, json and csv, against `sqlite3 DB "SQL"` running the SQL that
          `metastore query --sql` prints (goal: within 1.5x)
  top 10  metastore query 'runs order by rmse limit 10' against its SQL in sqlite3
  runs    metastore runs, against `mlflow runs list` on an MLflow store of the same runs
          (goal: faster than MLflow)

and, in one process, the time to print the 10% answer in each format beside the time
to run the query (`store.query`): printing should cost no more than the query.
Printed: min, median and max wall seconds, the ratios of medians, the median CPU time
(user + system: on a shared machine a process mostly waits for a core, which inflates
wall time but not CPU time) and its ratio, the machine, its load and the date.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _stores  # noqa: E402

WHERE = 'runs where algorithm = "linear" and rmse < 54'
TOP = "runs order by rmse limit 10"
CLI = "import sys; from metastore.cli import main; sys.argv[0] = 'metastore'; main()"


def run(argv: list[str], env: dict, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with out.open("w") as f:
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=f, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rounds(commands: dict[str, list[str]], n: int, env: dict, work: Path) -> dict[str, list[tuple]]:
    times: dict[str, list[tuple]] = {k: [] for k in commands}
    for argv in commands.values():  # warm the page cache, the parser tables and compiled queries
        run(argv, env, work / "out")
    for _ in range(n):
        for name, argv in commands.items():
            times[name].append(run(argv, env, work / "out"))
    return times


def show(times: dict[str, list[tuple]], peer: str) -> None:
    """Wall time, as a user waits for it, and CPU time (user + system), which a shared
    machine's load inflates far less: on a busy machine a command waits for a core."""
    base = statistics.median(w for w, _ in times[peer])
    base_cpu = statistics.median(c for _, c in times[peer])
    print(f"  {'command':34} {'min s':>7} {'median s':>9} {'max s':>7}  {'/ ' + peer:>16}"
          f"  {'cpu s':>6}  {'cpu /':>6}")
    for name, ts in times.items():
        walls = [w for w, _ in ts]
        med, cpu = statistics.median(walls), statistics.median(c for _, c in ts)
        print(f"  {name:34} {min(walls):7.3f} {med:9.3f} {max(walls):7.3f}  {med / base:15.2f}x"
              f"  {cpu:6.3f}  {cpu / base_cpu:5.2f}x")


def printing_cost(db: Path, repeat: int) -> None:
    """In one process: run the 10% query, then print its rows in each format."""
    import metastore
    from metastore.cli.answer import print_rows

    store = metastore.open(f"sqlite:///{db}")
    store.query(WHERE)  # warm
    q = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = store.query(WHERE)
        q.append(time.perf_counter() - t)
    n = len(result)
    print(f"\n  in one process, {n:,} rows: query {statistics.median(q) * 1e3:.0f} ms (median of {repeat})")
    for fmt in ("table", "json", "csv", "markdown"):
        p = []
        for _ in range(repeat):
            sink = io.StringIO()
            t = time.perf_counter()
            with redirect_stdout(sink):
                print_rows(result.columns, iter(result.rows), fmt)
            p.append(time.perf_counter() - t)
        print(f"  print as {fmt:9} {statistics.median(p) * 1e3:6.0f} ms   "
              f"= {statistics.median(p) / statistics.median(q):4.2f}x the query")
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="runs in the query store")
    ap.add_argument("--runs-n", type=int, default=10_000, help="runs for `runs` vs MLflow")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the stores in this folder")
    ap.add_argument("--no-mlflow", action="store_true", help="skip `mlflow runs list`")
    args = ap.parse_args()
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "METASTORE_PAGER": ""}
    work = Path(tempfile.mkdtemp(prefix="metastore-cli-bench-"))
    root = args.keep or work
    import metastore

    print(f"# cli_query: {args.rounds} rounds; {platform.node()} {platform.machine()} "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, Python "
          f"{platform.python_version()}, sqlite {__import__('sqlite3').sqlite_version}, "
          f"metastore {metastore.__version__}, {datetime.now().isoformat(timespec='minutes')}")
    t = time.perf_counter()
    big = _stores.build(root / f"n{args.n}", args.n)
    print(f"  store of {args.n:,} runs ready in {time.perf_counter() - t:.1f} s")
    shell = shutil.which("sqlite3")

    def ms(*a: str, db: Path = big) -> list[str]:
        return [py, "-c", CLI, *a, "--store", str(db.parent)]

    def sql_of(text: str) -> str:
        return subprocess.run(ms("query", text, "--sql"), env=env, check=True,
                              capture_output=True, text=True).stdout.strip()

    print(f"\nN = {args.n:,}: {WHERE!r} ({len(metastore.open(f'sqlite:///{big}').query(WHERE)):,} rows)")
    commands = {f"metastore query -f {f}": ms("query", WHERE, "-f", f) for f in ("table", "json", "csv")}
    if shell:
        commands["sqlite3 shell, same SQL"] = [shell, str(big), sql_of(WHERE)]
    show(rounds(commands, args.rounds, env, work), "sqlite3 shell, same SQL" if shell else "metastore query -f csv")
    print(f"\nN = {args.n:,}: {TOP!r}")
    commands = {"metastore query": ms("query", TOP)}
    if shell:
        commands["sqlite3 shell, same SQL"] = [shell, str(big), sql_of(TOP)]
    commands["python -c pass"] = [py, "-c", "pass"]
    show(rounds(commands, args.rounds, env, work), "sqlite3 shell, same SQL" if shell else "metastore query")

    printing_cost(big, args.rounds)

    small = _stores.build(root / f"n{args.runs_n}", args.runs_n)
    print(f"\nN = {args.runs_n:,}: metastore runs (piped) against mlflow runs list")
    commands = {"metastore runs": ms("runs", db=small),
                "metastore runs -f csv": ms("runs", "-f", "csv", db=small)}
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(py))
    if mlflow_cli and not args.no_mlflow:
        from query_vs_mlflow import load_mlflow

        folder = root / f"mlflow{args.runs_n}"
        if not (folder / "mlflow.db").exists():
            folder.mkdir(parents=True, exist_ok=True)
            load_mlflow(folder, args.runs_n)
        import mlflow

        exp = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").get_experiment_by_name("bench")
        commands["mlflow runs list"] = [mlflow_cli, "runs", "list", "--experiment-id", exp.experiment_id]
        env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
        show(rounds(commands, args.rounds, env, work), "mlflow runs list")
    else:
        show(rounds(commands, args.rounds, env, work), "metastore runs")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
