"""Cold start: what a command costs before it does anything, beside MLflow's.

    python benchmarks/cold_start.py                  # 7 rounds, demo store in a temp dir
    python benchmarks/cold_start.py --rounds 15 --store /path/to/.metastore

Each round starts a fresh interpreter for every command, in turn (so all see the same
machine load), and times its wall clock:

  python -c pass                      the interpreter alone
  python -c "import metastore"        goal < 0.15 s
  metastore query '...'               on the 12-run demo store; goal < 0.3 s (the
                                      question asked before: its SQL from the cache)
  metastore query, new text           a question not asked before (compiled: lark and
                                      sqlglot load), a different one every round
  metastore --help                    the whole typer app
  python -c "import mlflow"           the peer
  mlflow --help

Printed: the machine, its load average and the date; min, median and max wall seconds
over the rounds, each command's median as a fraction of `import mlflow`'s, and its
median CPU time (user + system), which a busy shared machine inflates far less. The
query parser's tables and compiled queries are cached in the user's cache folder
(metastore.resources.user_cache_dir); a first run before the rounds fills it.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

QUERY = 'runs where rmse < 55 show number, r2'
CLI = "import sys; from metastore.cli import main; sys.argv[0] = 'metastore'; main()"


def wall(argv: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--store", help="a store to query (default: the demo, recorded once)")
    args = ap.parse_args()
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    work = Path(tempfile.mkdtemp(prefix="metastore-coldstart-"))
    if args.store:
        store = ["--store", args.store]
    else:
        subprocess.run([py, "-c", CLI, "demo"], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        store = []
    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(py))
    commands = {
        "python -c pass": [py, "-c", "pass"],
        "import metastore": [py, "-c", "import metastore"],
        "metastore query": [py, "-c", CLI, "query", QUERY, *store],
        "metastore query, new text": [py, "-c", CLI, "query", "{fresh}", *store],
        "metastore --help": [py, "-c", CLI, "--help"],
        "import mlflow": [py, "-c", "import mlflow"],
    }
    if mlflow_cli:
        commands["mlflow --help"] = [mlflow_cli, "--help"]
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    wall(commands["metastore query"], work, env)  # builds the parser cache
    stamp = time.time_ns()
    for n in range(args.rounds):
        for name, argv in commands.items():
            # a question no earlier run asked (a limit never used): compiled afresh
            fresh = f"{QUERY} limit {stamp % 10**9 + n}"
            times[name].append(wall([a.replace("{fresh}", fresh) for a in argv], work, env))
    import mlflow

    import metastore

    print(f"# cold_start: {args.rounds} rounds; {platform.node()} {platform.machine()} "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"Python {platform.python_version()}, "
          f"mlflow {mlflow.__version__}, metastore {metastore.__version__}, "
          f"{datetime.now().isoformat(timespec='minutes')}")
    print(f"{'command':26} {'min s':>7} {'median s':>9} {'max s':>7}  {'/ import mlflow':>15}"
          f"  {'cpu s':>6}")
    peer = statistics.median(w for w, _ in times["import mlflow"])
    for name, ts in times.items():
        walls = [w for w, _ in ts]
        med = statistics.median(walls)
        cpu = statistics.median(c for _, c in ts)
        print(f"{name:26} {min(walls):7.3f} {med:9.3f} {max(walls):7.3f}  {med / peer:15.2f}"
              f"  {cpu:6.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
