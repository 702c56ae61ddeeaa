"""A live metastore server on a loopback port, over a SQLite store, with two tokens."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

import metastore
from metastore.server import Limits, background_server, create_token

pytestmark = pytest.mark.server

#: Small limits so the size tests send kilobytes, not gigabytes.
TEST_LIMITS = Limits(max_body_bytes=64 * 1024, max_blob_bytes=256 * 1024, max_query_chars=2_000)


@dataclass
class Live:
    url: str
    store: metastore.SQLStore
    token: str
    read_only_token: str

    def client(self, token: str | None = "rw", **kw) -> httpx.Client:
        token = {"rw": self.token, "ro": self.read_only_token}.get(token, token)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def remote(self, token: str = "rw"):
        token = {"rw": self.token, "ro": self.read_only_token}.get(token, token)
        return metastore.open(self.url, token=token)


@pytest.fixture
def local(tmp_path):
    s = metastore.open(f"sqlite:///{tmp_path / 'db' / 'metastore.db'}", blobs=tmp_path / "blobs")
    yield s
    s.close()


@pytest.fixture
def live(local):
    rw = create_token(local, "writer")
    ro = create_token(local, "reader", read_only=True)
    with background_server(local, limits=TEST_LIMITS) as url:
        yield Live(url, local, rw, ro)
