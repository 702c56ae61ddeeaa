"""The scale-out deployment: PostgreSQL, several server workers behind one port, blobs
in S3-compatible storage (fsspec/s3fs) — against moto's standalone S3 server, started
here on a loopback port (nothing leaves the machine)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

REPO = Path(__file__).resolve().parent.parent
BUCKET = "metastore-blobs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free port, a bucket in it, and the environment that points
    boto3/s3fs at it (AWS_ENDPOINT_URL, fake credentials)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    saved = {k: os.environ.get(k) for k in ENV}
    try:
        wait_for(port, proc)
        os.environ.update({**ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": ""}


def keys(client, prefix: str) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def record(store, tmp_path: Path) -> dict:
    """Asset versions (bytes, a file, a directory) and a run's artifacts."""
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"\x89PNG a")
    (folder / "b.png").write_bytes(b"\x89PNG b")
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 70_000)
    with store.start_run(experiment="s3", capture=False) as run:
        run.log_params({"lr": 0.1})
        data = run.use_asset(b"x,y\n1,2\n", kind="dataset", name="table")
        images = run.use_asset(folder, kind="dataset", name="images")
        model = run.log_asset(weights, kind="model", name="net")
        second = run.log_asset(b"w2", kind="model", name="net")
    return {"run": run, "data": data, "images": images, "model": model, "second": second}


def check_read_back(store, got: dict, tmp_path: Path) -> None:
    run = store.get_run(got["run"].id)
    assert {v.ref for v in run.outputs} == {"model:net@1", "model:net@2"}
    with store.get_asset("model", "net", 1).open() as f:
        assert f.read() == b"w" * 70_000
    assert store.get_asset("model", "net", 2).read_bytes() == b"w2"
    assert store.get_asset("dataset", "table").read_bytes() == b"x,y\n1,2\n"
    target = store.get_asset("dataset", "images").path(tmp_path / "out")
    assert sorted(p.name for p in Path(target).iterdir()) == ["a.png", "b.png"]


def test_blobs_in_s3_through_fsspec(s3, tmp_path):
    import metastore

    store = metastore.open(f"sqlite:///{tmp_path / 'm.db'}", blobs=f"s3://{BUCKET}/local")
    got = record(store, tmp_path)
    check_read_back(store, got, tmp_path)
    # content-addressed objects in the bucket: one per distinct content (a directory is
    # its files and its manifest)
    assert len(keys(s3, "local/")) == 6
    digest = store.get_asset("model", "net", 1).digest
    assert f"local/sha256/{digest[:2]}/{digest[2:]}" in keys(s3, "local/")
    store.close()


def test_a_server_with_two_workers_on_postgres_and_s3(s3, tmp_path):
    import metastore
    from tests.conftest import make_database

    url, drop = make_database("postgres", tmp_path)
    port = free_port()
    # the server finds the endpoint the way docs/server.md says: fsspec's own variable
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "FSSPEC_S3_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]}
    env.pop("AWS_ENDPOINT_URL")
    server = subprocess.Popen(
        [sys.executable, "-m", "metastore.cli", "server", "--no-auth", "--port", str(port),
         "--workers", "2", "--url", url, "--blobs", f"s3://{BUCKET}/team"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(port, server)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        # a supervisor and its worker processes (and uvicorn's resource tracker)
        assert len(children) >= 2
        client = metastore.open(f"http://127.0.0.1:{port}")
        got = record(client, tmp_path)
        check_read_back(client, got, tmp_path)
        # many requests spread over both workers answer alike
        assert {len(client.runs("s3")) for _ in range(20)} == {1}
        assert len(keys(s3, "team/")) == 6
        direct = metastore.open(url, blobs=f"s3://{BUCKET}/team", create=False)
        assert direct.get_asset("model", "net", 1).read_bytes() == b"w" * 70_000
        direct.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        drop()
