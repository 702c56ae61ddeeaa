"""The package's architecture, checked: the import contracts in pyproject.toml
(layers pointing down, database sessions only in the SQL backend, no import cycles)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run(
        # no cache: a graph cached before a module was added gives a stale verdict
        [exe, "--no-cache", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
