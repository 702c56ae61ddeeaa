"""Backends by URL scheme: how `metastore.open(url)` finds the code behind a URL.

A backend registers the URL schemes it serves. The built-in ones are the SQL backend
(sqlite, postgresql, mysql/mariadb, with or without a `+driver`) and the HTTP backend
(http, https: a metastore server). A third party adds one with an entry point in the
group `metastore.backends`, named after its scheme, whose object is a callable
`(url, *, blobs, token, create) -> Backend`:

    [project.entry-points."metastore.backends"]
    duckdb = "metastore_duckdb:open_backend"
"""

from __future__ import annotations

import os
from collections.abc import Callable

from metastore.backends.base import Backend
from metastore.errors import InvalidURL

Opener = Callable[..., Backend]
ENTRY_POINT_GROUP = "metastore.backends"


def _sql(url: str, *, blobs, token=None, create: bool = True) -> Backend:
    from metastore.backends.sql import SQLBackend

    return SQLBackend(url, blobs, create=create)


def _http(url: str, *, blobs=None, token=None, create: bool = True, **options) -> Backend:
    from metastore.backends.http import HTTPBackend

    return HTTPBackend(url, token=token or os.environ.get("METASTORE_TOKEN"), **options)


_BUILTIN: dict[str, Opener] = {
    "sqlite": _sql,
    "postgresql": _sql,
    "postgres": _sql,
    "mysql": _sql,
    "mariadb": _sql,
    "http": _http,
    "https": _http,
}
_registered: dict[str, Opener] = {}


def register(scheme: str, opener: Opener) -> None:
    """Serve URLs of `scheme` with `opener` (what an entry point does, for code)."""
    _registered[scheme.lower()] = opener


def scheme_of(url: str) -> str:
    """The scheme that picks the backend: `postgresql+psycopg://` → "postgresql"."""
    head, sep, _ = url.partition(":")
    if not sep or not head:
        raise InvalidURL(f"{url!r} is not a store URL", hint="e.g. sqlite:///path/metastore.db")
    return head.split("+", 1)[0].lower()


def opener_for(url: str) -> Opener:
    scheme = scheme_of(url)
    if scheme in _registered:
        return _registered[scheme]
    if scheme in _BUILTIN:  # before the entry points: scanning them costs a cold start
        return _BUILTIN[scheme]
    from importlib import metadata  # costs a cold start (email, zipfile): only for plugins

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() == scheme:
            return ep.load()
    known = sorted({*_BUILTIN, *_registered,
                    *(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))})
    raise InvalidURL(
        f"no backend serves {scheme}:// URLs",
        hint=f"known schemes: {', '.join(known)}; a plugin adds one through the"
        f" '{ENTRY_POINT_GROUP}' entry point group",
    )


def open_backend(url: str, *, blobs=None, token: str | None = None, create: bool = True,
                 lazy: bool = False, **options) -> Backend:
    """The backend behind a store URL. `options` go to the opener as they are (the HTTP
    backend's `retry_for` and `spool`); none are passed when none are given. `lazy`: a
    SQLite file is opened by `sqlite_reader.SQLiteReader` (queries without loading
    SQLAlchemy; the SQL backend on the first other call)."""
    opener = opener_for(url)
    if lazy and opener is _sql and scheme_of(url) == "sqlite" and not options:
        from metastore.backends.sqlite_reader import SQLiteReader

        return SQLiteReader(url, blobs, create=create)
    return opener(url, blobs=blobs, token=token, create=create, **options)


__all__ = ["Backend", "open_backend", "register", "scheme_of", "ENTRY_POINT_GROUP"]
