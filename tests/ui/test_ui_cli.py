"""`metastore ui`: serves the UI on 127.0.0.1 from the local store, refuses a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from metastore.cli import app

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.server
def test_metastore_ui_serves_the_local_store(demo_store_path, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    import shutil

    shutil.copytree(demo_store_path, project / ".metastore")
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("METASTORE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "metastore.cli", "ui", "--port", str(port), "--no-browser"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        html = None
        for _ in range(150):
            try:
                html = httpx.get(f"http://127.0.0.1:{port}/experiments/diabetes").text
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                time.sleep(0.2)
        assert html is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert 'id="runs-table"' in html and "lr-10f-norm" in html
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"http://127.0.0.1:{port}/" in out


def test_metastore_ui_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            app, ["ui", "--store", str(tmp_path / ".metastore"), "--port", str(port), "--no-browser"]
        )
    assert result.exit_code != 0
    assert f"port {port}" in str(result.exception)
