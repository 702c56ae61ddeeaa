"""Opening stores by URL scheme: the registry, and a third party's backend through the
`metastore.backends` entry point group."""

from __future__ import annotations

import sys
import textwrap

import pytest

import metastore
from metastore import backends
from metastore.backends.base import Backend
from metastore.backends.sql import SQLBackend
from metastore.errors import InvalidURL


def test_the_scheme_picks_the_backend(tmp_path):
    store = metastore.open(f"sqlite+pysqlite:///{tmp_path / 'm.db'}")
    assert isinstance(store.backend, SQLBackend)
    assert backends.scheme_of("postgresql+psycopg://u@h/db") == "postgresql"
    store.close()


def test_an_unknown_scheme_names_the_known_ones():
    with pytest.raises(InvalidURL, match="no backend serves ftp:// URLs") as e:
        metastore.open("ftp://example.org/store")
    assert "sqlite" in e.value.hint and "metastore.backends" in e.value.hint


class MemoryBackend(SQLBackend):
    """A stand-in for a third party's backend: an in-process SQLite file under a new
    scheme, so the whole interface is there."""


def _open_memory(url, *, blobs, token=None, create=True) -> Backend:
    path = url.split("://", 1)[1]
    return MemoryBackend(f"sqlite:///{path}", blobs, create=create)


def test_register_a_scheme_in_code(tmp_path):
    backends.register("mem", _open_memory)
    try:
        store = metastore.open(f"mem://{tmp_path / 'x.db'}", blobs=tmp_path / "blobs")
        assert isinstance(store.backend, MemoryBackend)
        with store.start_run(experiment="e", capture=False) as run:
            run.log_metric("m", 1.0)
        assert store.query("runs show m").rows == [{"m": 1.0}]
        store.close()
    finally:
        backends._registered.pop("mem")


def test_a_plugin_adds_a_scheme_through_an_entry_point(tmp_path, monkeypatch):
    # An installed distribution is a .dist-info folder on sys.path: write one.
    dist = tmp_path / "site" / "metastore_memplugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: metastore-memplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [metastore.backends]
        plugmem = tests.test_backends:_open_memory
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(sys.modules, "tests.test_backends", sys.modules[__name__])
    store = metastore.open(f"plugmem://{tmp_path / 'p.db'}", blobs=tmp_path / "blobs")
    assert isinstance(store.backend, MemoryBackend)
    assert store.experiments() == []
    store.close()
