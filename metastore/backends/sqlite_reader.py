"""A SQLite store opened for questions, without loading the database layer.

`metastore query` on a SQLite store spends most of its wall time importing SQLAlchemy,
SQLModel and the tables, none of which a query needs: the query language compiles to
SQL text, and Python's sqlite3 module runs it. `SQLiteReader` answers `query`,
`query_stream` and `compile_query` that way, through the same code as the SQL backend
(`sql_query`: catalog, checks, deadline, cursor), and hands every other primitive to a
full `SQLBackend`, opened on first use. A store that is missing, at another schema
revision or not a SQLite file is opened fully at once, so creating, upgrading and the
errors are the SQL backend's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from metastore.backends import sql_query
from metastore.backends.base import Backend
from metastore.vocabulary import SCHEMA_REVISION

#: Seconds a read waits for a writer's lock (as the SQL backend's busy timeout).
BUSY_TIMEOUT = 60.0


class SQLiteReader(Backend):
    """A SQLite store: queries on the sqlite3 module, the rest on `SQLBackend`."""

    dialect = "sqlite"
    #: Compiled queries are kept in the user's cache folder too (`query/cache.py`): the
    #: next process asking the same question loads neither parser nor compiler.
    compile_cache_on_disk = True

    def __init__(self, url: str, blobs, *, create: bool = True):
        self.url = url
        self._blobs = blobs
        self._create = create
        self._full: Backend | None = None
        self._db: sqlite3.Connection | None = None
        path = database_file(url)
        if path is not None and path.is_file():
            self._db = _open_current(path)
        if self._db is None:
            self.full()

    def full(self) -> Backend:
        """The SQL backend behind this store (opened on first use)."""
        if self._full is None:
            from metastore.backends.sql import SQLBackend

            self._full = SQLBackend(self.url, self._blobs, create=self._create)
        return self._full

    def __getattr__(self, name: str):
        # attributes of the SQL backend this class does not have (blobs, read, …);
        # names starting with _ are this object's own, never forwarded
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full(), name)

    # -- questions, on sqlite3 ------------------------------------------------------------
    @contextmanager
    def query_connection(self) -> Iterator[sql_query.Connection]:
        yield sql_query.SQLiteConnection(self._db)

    def query(self, text, experiment=None, timeout=None):
        if self._db is None:
            return self.full().query(text, experiment, timeout)
        return sql_query.run_query(self, text, experiment, timeout)

    def query_stream(self, text, experiment=None, timeout=None):
        if self._db is None:
            return self.full().query_stream(text, experiment, timeout)
        return sql_query.stream_query(self, text, experiment, timeout)

    def compile_query(self, text, experiment=None):
        if self._db is None:
            return self.full().compile_query(text, experiment)
        return sql_query.compile_query_text(self, text, experiment)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._full is not None:
            self._full.close()

    def __repr__(self) -> str:
        return f"SQLiteReader({self.url!r})"


def _forward(name: str):
    def primitive(self, *args, **kwargs):
        return getattr(self.full(), name)(*args, **kwargs)

    primitive.__name__ = primitive.__qualname__ = name
    primitive.__doc__ = getattr(Backend, name).__doc__
    return primitive


# Every other primitive (abstract or built on the others) is the SQL backend's own.
for _name, _value in vars(Backend).items():
    if callable(_value) and not _name.startswith("_") and _name not in vars(SQLiteReader):
        setattr(SQLiteReader, _name, _forward(_name))
SQLiteReader.__abstractmethods__ = frozenset()


def database_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///path` URL; None for anything else (a driver,
    options, memory), which the SQL backend opens."""
    head, sep, path = url.partition(":///")
    if head != "sqlite" or not sep or "?" in path or not path or path.startswith(":memory:"):
        return None
    return Path(path)


def _open_current(path: Path) -> sqlite3.Connection | None:
    """A connection to the store at `path` when its schema is the one this code reads;
    None otherwise (the SQL backend then creates, upgrades or refuses it)."""
    db = None
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None,
                             check_same_thread=False)
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None
    if row is not None and row[0] == SCHEMA_REVISION:
        return db
    if db is not None:
        db.close()
    return None
