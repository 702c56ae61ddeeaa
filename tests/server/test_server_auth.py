"""Tokens: who may read, who may write, and the cookie login for browsers."""

from __future__ import annotations

import hashlib
import sys

import pytest
from sqlmodel import select
from typer.testing import CliRunner

import metastore
from metastore.backends.http import AccessDenied
from metastore.cli import app as cli
from metastore.errors import InvalidValue
from metastore.models import ApiToken
from metastore.server import background_server, create_token, list_tokens, revoke_token
from metastore.server.auth import is_loopback

pytestmark = pytest.mark.server


def test_no_token_is_401_and_a_valid_token_reads(live):
    with live.client(token=None) as c:
        r = c.get("/api/experiments")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "Unauthorized"
        # the liveness probe and the API description need no token
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/openapi.json").status_code == 200
    with live.client(token="mst_not-a-real-token") as c:
        assert c.get("/api/runs").status_code == 401
    with live.client() as c:
        assert c.get("/api/runs").json() == []
        assert c.get("/api/session").json()["name"] == "writer"


def test_bearer_scheme_is_required(live):
    with live.client(token=None) as c:
        r = c.get("/api/runs", headers={"authorization": f"Basic {live.token}"})
        assert r.status_code == 401


def test_remote_store_without_or_with_a_bad_token_is_refused(live):
    with pytest.raises(AccessDenied, match="needs a token"):
        metastore.open(live.url)
    with pytest.raises(AccessDenied, match="invalid or revoked"):
        metastore.open(live.url, token="mst_wrong")


def test_read_only_token_reads_but_cannot_write(live):
    with live.remote() as writer:
        with writer.start_run(experiment="e", capture=False) as run:
            run.log_metric("rmse", 1.5)
    with live.remote("ro") as reader:
        assert reader.backend.read_only
        assert reader.get_run(run.id).metrics["rmse"] == 1.5
        with pytest.raises(AccessDenied, match="read-only"):
            reader.start_run(experiment="e", capture=False)
        with pytest.raises(AccessDenied):
            reader.backend.log_params(run.id, {"lr": 0.1})
        with pytest.raises(AccessDenied):
            reader.backend.blobs.put_bytes(b"content")
        with pytest.raises(AccessDenied):
            reader.delete_run(run.id)
        with pytest.raises(AccessDenied):
            reader.purge()
    with live.client("ro") as c:
        for method, path in [
            ("POST", "/api/experiments"),
            ("PUT", f"/api/tags/run/{run.id}"),
            ("DELETE", f"/api/runs/{run.id}"),
            ("PUT", "/api/blobs/" + "0" * 64),
        ]:
            r = c.request(method, path, json={"name": "x"})
            assert r.status_code == 403, (method, path)
            assert r.json()["error"]["type"] == "Forbidden"
    assert live.store.get_run(run.id).params == {}
    assert [e.name for e in live.store.experiments()] == ["e"]


def test_tokens_are_stored_hashed_and_revocation_is_immediate(live):
    with live.store.backend.read() as s:
        rows = {t.name: t for t in s.exec(select(ApiToken))}
    assert rows["writer"].token_hash == hashlib.sha256(live.token.encode()).hexdigest()
    assert all(live.token not in (t.token_hash, t.name) for t in rows.values())
    with live.client() as c:
        assert c.get("/api/runs").status_code == 200
        revoke_token(live.store, "writer")
        assert c.get("/api/runs").status_code == 401
    assert [t.name for t in list_tokens(live.store)] == ["reader"]
    # a revoked token's name can be given to a new token
    fresh = create_token(live.store, "writer")
    with live.client(fresh) as c:
        assert c.get("/api/runs").status_code == 200


def test_token_names_are_unique(local):
    create_token(local, "ci")
    with pytest.raises(metastore.MetastoreError, match="already exists"):
        create_token(local, "ci")


def test_no_auth_only_on_loopback(local):
    assert is_loopback("127.0.0.1") and is_loopback("127.8.0.1") and is_loopback("::1")
    assert is_loopback("localhost") and is_loopback("[::1]")
    for host in ("0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.org", ""):
        assert not is_loopback(host)
        with pytest.raises(InvalidValue, match="loopback"):
            with background_server(local, auth=False, host=host):
                pass
    with background_server(local, auth=False) as url:
        with metastore.open(url) as remote:
            assert remote.backend.principal == "anonymous" and not remote.backend.read_only
            remote.create_experiment("open")
    assert [e.name for e in local.experiments()] == ["open"]


def test_cli_refuses_no_auth_on_a_public_address(tmp_path):
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "server", "--host", "0.0.0.0", "--no-auth",
         "--url", f"sqlite:///{tmp_path / 'm.db'}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "loopback" in result.stderr and "Traceback" not in result.stderr


def test_cli_token_create_list_revoke(tmp_path):
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'db' / 'metastore.db'}"
    created = runner.invoke(cli, ["token", "create", "--name", "ci", "--url", url])
    assert created.exit_code == 0, created.output
    token = created.output.split()[-1]
    ro = runner.invoke(cli, ["token", "create", "--name", "dash", "--read-only", "--url", url])
    ro_token = ro.output.split()[-1]
    listed = runner.invoke(cli, ["token", "list", "--url", url, "--format", "json"])
    assert '"name": "ci"' in listed.output and token not in listed.output
    with metastore.open(url, blobs=tmp_path / "blobs") as local:
        with background_server(local) as server_url:
            with metastore.open(server_url, token=token) as remote:
                remote.create_experiment("from-ci")
            with metastore.open(server_url, token=ro_token) as remote:
                assert remote.backend.read_only
            revoked = runner.invoke(cli, ["token", "revoke", "ci", "--url", url])
            assert revoked.exit_code == 0
            with pytest.raises(AccessDenied):
                metastore.open(server_url, token=token)
    again = runner.invoke(cli, ["token", "revoke", "ci", "--url", url])
    assert again.exit_code != 0


# -- browsers: the login form and its cookie -----------------------------------------------


def test_pages_redirect_to_login_and_the_cookie_authenticates(live):
    with live.client(token=None, follow_redirects=False) as c:
        r = c.get("/runs?experiment=diabetes")
        assert r.status_code == 303
        assert r.headers["location"] == "/login?next=%2Fruns%3Fexperiment%3Ddiabetes"
        form = c.get("/login?next=/runs")
        assert form.status_code == 200 and 'name="token"' in form.text
        assert 'value="/runs"' in form.text
        bad = c.post("/login", data={"token": "mst_wrong", "next": "/runs"})
        assert bad.status_code == 401 and "not valid" in bad.text
        assert "metastore_token" not in c.cookies
        good = c.post("/login", data={"token": live.token, "next": "/runs"})
        assert good.status_code == 303 and good.headers["location"] == "/runs"
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        # the cookie now stands in for the Authorization header
        assert c.get("/api/session").json()["name"] == "writer"
        origin = {"origin": live.url}
        assert c.post("/api/experiments", json={"name": "web"}, headers=origin).status_code == 200
        out = c.get("/logout")
        assert out.status_code == 303
        c.cookies.clear()
        assert c.get("/api/session").status_code == 401


def test_cookie_writes_from_another_site_are_refused(live):
    with live.client(token=None) as c:
        c.cookies.set("metastore_token", live.token)
        for headers in ({"origin": "https://evil.example"}, {"referer": "https://evil.example/x"}, {}):
            r = c.post("/api/experiments", json={"name": "csrf"}, headers=headers)
            assert r.status_code == 403, headers
        # reading with the cookie is fine from anywhere the browser sends it
        assert c.get("/api/experiments").status_code == 200
    assert live.store.experiments() == []


def test_login_never_redirects_off_site(live):
    with live.client(token=None, follow_redirects=False) as c:
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x"):
            r = c.post("/login", data={"token": live.token, "next": target})
            assert r.headers["location"] == "/", target


def test_read_only_cookie_cannot_write(live):
    with live.client(token=None) as c:
        c.post("/login", data={"token": live.read_only_token, "next": "/"})
        r = c.post("/api/experiments", json={"name": "x"}, headers={"origin": live.url})
        assert r.status_code == 403


def test_metastore_server_command_serves_with_tokens(tmp_path):
    """The real command: uvicorn in a subprocess, a token made by `metastore token`."""
    import os
    import socket
    import subprocess
    import time

    import httpx

    url = f"sqlite:///{tmp_path / 'db' / 'metastore.db'}"
    env = {**os.environ, "METASTORE_URL": url}
    made = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "token", "create", "--name", "ci"],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )
    token = made.stdout.split()[-1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "metastore.cli", "server", "--port", str(port),
         "--blobs", str(tmp_path / "blobs"), "--no-ui"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # bounded: at most about a minute
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                break
            time.sleep(0.2)
        assert httpx.get(f"{base}/api/runs", timeout=10).status_code == 401
        with metastore.open(base, token=token) as remote:
            with remote.start_run(experiment="served", capture=False) as run:
                run.log_metric("rmse", 50.0)
            assert remote.get_run(run.id).metrics["rmse"] == 50.0
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "tokens required" in output
    with metastore.open(url, blobs=tmp_path / "blobs") as local:
        assert local.get_run(run.id).metrics["rmse"] == 50.0
