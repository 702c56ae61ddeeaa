"""The benchmark script still runs, and its SQL walk agrees with networkx's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lineage.py"


@pytest.mark.slow
def test_benchmark_runs_at_a_tiny_size(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "300", "--repeats", "1", "--backends", "sqlite",
         "--sqlite-path", str(tmp_path / "bench.db")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "generated 300 runs" in res.stdout and "depth 10: median" in res.stdout
    assert "!!" not in res.stdout  # SQL and networkx found the same edges everywhere
    assert res.stdout.count("downstream") >= 9 and res.stdout.count("upstream") >= 9
