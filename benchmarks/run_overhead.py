"""The overhead of `metastore run` on a training loop: the audit hook that notes the
files a Python child opens, and the system-metrics sampler.

    python benchmarks/run_overhead.py                  # 5 repeats, sampler every 1 s
    python benchmarks/run_overhead.py --repeats 3 --interval 0.2

The child is a small NumPy training loop that also opens a few files per epoch (what
the audit hook sees). The script times it run plainly, under `metastore run
--no-files --system-metrics 0` (the wrapper alone), with the audit hook, and with hook
and sampler, taking the best of the repeats, and prints each as a ratio to the plain
run (1.00 = no overhead).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import numpy as np, json, sys
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 50)); w = np.zeros(50); y = X @ rng.normal(size=50)
    for epoch in range(int(sys.argv[1])):
        for i in range(0, len(X), 256):
            xb, yb = X[i:i + 256], y[i:i + 256]
            w -= 0.001 * xb.T @ (xb @ w - yb) / len(xb)
        with open("config.json", "w") as f:
            json.dump({"epoch": epoch}, f)
        with open("config.json") as f:
            json.load(f)
    np.save("weights.npy", w)
    """
)


def timed(cmd, cwd, env) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metastore-run-bench-"))
    (work / "train.py").write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = [sys.executable, "train.py", str(args.epochs)]
    wrap = [sys.executable, "-m", "metastore.cli", "run", "--store", str(work / ".metastore")]
    variants = {
        "plain": child,
        "metastore run (no hook, no sampler)": [*wrap, "--no-files", "--system-metrics", "0", "--", *child],
        "+ audit hook": [*wrap, "--system-metrics", "0", "--", *child],
        "+ audit hook + sampler": [*wrap, "--system-metrics", str(args.interval), "--", *child],
    }
    best = {name: min(timed(cmd, work, env) for _ in range(args.repeats)) for name, cmd in variants.items()}
    base = best["plain"]
    print(f"{'variant':40} {'best s':>8} {'ratio':>6}")
    for name, seconds in best.items():
        print(f"{name:40} {seconds:8.3f} {seconds / base:6.2f}")


if __name__ == "__main__":
    main()
