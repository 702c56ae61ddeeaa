"""Blob downloads cannot escape the blob root, whatever the path says."""

from __future__ import annotations

import hashlib
import http.client
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.server

SECRET = b"top secret: outside the blob root"


def raw_get(url: str, path: str, token: str) -> tuple[int, bytes]:
    """Send the path byte for byte: http clients normalise '..' away, attackers don't."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def secret(live, tmp_path):
    """A file next to the blob root and the database, which no request may read."""
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    return path


ATTEMPTS = [
    "/api/blobs/../secret.txt",
    "/api/blobs/..%2Fsecret.txt",
    "/api/blobs/..%2F..%2Fsecret.txt",
    "/api/blobs/%2e%2e%2fsecret.txt",
    "/api/blobs/%2E%2E/%2E%2E/secret.txt",
    "/api/blobs/....//....//secret.txt",
    "/api/blobs/..%5c..%5csecret.txt",
    "/api/blobs/%252e%252e%252fsecret.txt",
    "/api/blobs/sha256%2F..%2F..%2Fsecret.txt",
    "/api/blobs/%2Fetc%2Fpasswd",
    "/api/blobs//etc/passwd",
    "/api/blobs/" + "../" * 20 + "etc/passwd",
    "/api/blobs/" + ("a" * 58) + "%2F..%2F..",
    "/api/blobs/" + "..%2F" * 12 + "x" * 4,
    "/api/blobs/..%00" + "a" * 59,
    "/api/versions/..%2F..%2Fsecret.txt/content",
    "/api/blobs/~%2Fsecret.txt",
]


@pytest.mark.parametrize("path", ATTEMPTS)
def test_traversal_attempts_never_read_outside(live, secret, path):
    status, body = raw_get(live.url, path, live.token)
    assert status in (400, 404, 405, 422), (status, body[:200])
    assert SECRET not in body and b"root:" not in body


def test_a_symlink_planted_in_the_blob_root_is_not_followed_out(live, secret):
    # Even a digest that names the secret's real content is refused when the blob file
    # is a link leading out of the root.
    digest = hashlib.sha256(SECRET).hexdigest()
    link = live.store.backend.blobs.local_path(digest)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    status, body = raw_get(live.url, f"/api/blobs/{digest}", live.token)
    assert status == 404 and SECRET not in body


def test_external_uri_versions_are_not_served_by_the_server(live, secret):
    with live.client() as c:
        digest = hashlib.sha256(SECRET).hexdigest()
        r = c.post("/api/assets", json={"kind": "dataset", "name": "ext", "digest": digest,
                                        "uri": secret.as_uri()})
        assert r.status_code == 200
        vid = r.json()["version"]["id"]
        r = c.get(f"/api/versions/{vid}/content")
        assert r.status_code == 404 and SECRET not in r.content
        assert "referenced" in r.json()["error"]["message"]


def test_a_stored_blob_downloads(live):
    data = b"model weights"
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            v = run.log_asset(data, kind="model", name="m", meta={"filename": "m.bin"})
    status, body = raw_get(live.url, f"/api/blobs/{v.digest}", live.token)
    assert status == 200 and body == data
    with live.client() as c:
        r = c.get(f"/api/versions/{v.id}/content")
        assert r.content == data
        assert r.headers["content-disposition"] == 'attachment; filename="m.bin"'
        assert r.headers["x-content-sha256"] == v.digest


def test_a_corrupt_blob_is_not_served(live):
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            v = run.log_asset(b"precious", kind="model", name="m")
    live.store.backend.blobs.local_path(v.digest).write_bytes(b"tampered")
    status, body = raw_get(live.url, f"/api/blobs/{v.digest}", live.token)
    assert status == 422 and b"tampered" not in body
