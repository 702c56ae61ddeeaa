"""Request bodies, blob uploads and query texts have size limits; uploads must match
their digest."""

from __future__ import annotations

import hashlib

import pytest

from metastore.errors import InvalidValue

pytestmark = pytest.mark.server

# TEST_LIMITS in conftest: 64 KiB JSON bodies, 256 KiB blobs, 2,000-character queries.


def test_oversized_json_body_is_413(live):
    with live.client() as c:
        r = c.post("/api/experiments", json={"name": "e", "description": "x" * 100_000})
        assert r.status_code == 413
        assert r.json()["error"]["type"] == "TooLarge"
    assert live.store.experiments() == []


def test_oversized_chunked_body_is_cut_off(live):
    def body():  # no Content-Length: the server has to count
        yield b'{"name": "e", "description": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    with live.client() as c:
        r = c.post("/api/experiments", content=body(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    assert live.store.experiments() == []


def test_body_under_the_limit_passes(live):
    with live.client() as c:
        r = c.post("/api/experiments", json={"name": "e", "description": "x" * 10_000})
        assert r.status_code == 200


def test_oversized_blob_upload_is_413_and_nothing_is_stored(live):
    data = b"\x01" * (300 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    with live.client() as c:
        r = c.put(f"/api/blobs/{digest}", content=data)
        assert r.status_code == 413

        def chunks():
            for i in range(0, len(data), 8192):
                yield data[i : i + 8192]

        r = c.put(f"/api/blobs/{digest}", content=chunks())
        assert r.status_code == 413
    assert not live.store.backend.blobs.exists(digest)


def test_blob_larger_than_a_json_body_uploads_fine(live):
    data = b"\x02" * (200 * 1024)  # over the JSON limit, under the blob limit
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            v = run.log_asset(data, kind="model", name="big")
        assert remote.get_asset("model", "big").read_bytes() == data
    assert live.store.backend.blobs.read_bytes(v.digest) == data


def test_remote_client_reports_the_limit(live):
    with live.remote() as remote:
        with remote.start_run(experiment="e", capture=False) as run:
            with pytest.raises(InvalidValue, match="limit"):
                run.note("n" * 100_000)


def test_upload_must_hash_to_its_digest(live):
    wrong = hashlib.sha256(b"something else").hexdigest()
    with live.client() as c:
        r = c.put(f"/api/blobs/{wrong}", content=b"the real bytes")
        assert r.status_code == 422
        assert r.json()["error"]["type"] == "IntegrityFailure"
        for bad in ("abc", "G" * 64, "A" * 64):
            assert c.put(f"/api/blobs/{bad}", content=b"x").status_code == 400
    assert not live.store.backend.blobs.exists(wrong)
    assert list(live.store.backend.blobs.digests()) == []


def test_version_naming_a_blob_never_uploaded_is_refused(live):
    missing = hashlib.sha256(b"never sent").hexdigest()
    with live.client() as c:
        r = c.post("/api/assets", json={"kind": "model", "name": "m", "uri": "blob:", "digest": missing})
        assert r.status_code == 400
        assert "has not been uploaded" in r.json()["error"]["message"]
    assert live.store.backend.list_assets() == []


def test_query_text_has_a_size_limit(live):
    with live.client() as c:
        r = c.post("/api/query", json={"text": "runs where " + " or ".join(["rmse < 1"] * 400)})
        assert r.status_code == 413
        assert "query text is longer than 2000" in r.json()["error"]["message"]
        r = c.post("/api/query/sql", json={"text": "runs " + "x" * 3000})
        assert r.status_code == 413
