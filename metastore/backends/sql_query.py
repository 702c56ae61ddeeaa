"""Queries on the SQL databases: the catalog a query is resolved against, and running
the statement the compiler made. The compiler (`metastore.query`) knows no sessions;
this is where its SQL meets the database.

The statements go through a small connection interface (`Connection`) with two
implementations: `SAConnection` over a SQLAlchemy session (the SQL backend, every
database) and `SQLiteConnection` over Python's own sqlite3 module (the quick SQLite
reader, `backends/sqlite_reader.py`, which answers `metastore query` without loading
SQLAlchemy). The statements, checks and deadlines are the same for both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from metastore import fulltext
from metastore.backends.base import QueryStream
from metastore.query.cache import compile_cached, inline_sql
from metastore.query.catalog import Catalog
from metastore.query.errors import QueryError, at, did_you_mean
from metastore.query.run import compile_text, shape_names, shape_rows

if TYPE_CHECKING:
    from metastore.query.compile import Compiled
    from metastore.records import QueryAnswer


class Connection:
    """What running a query needs of a database connection."""

    #: "sqlite", "postgresql", "mysql" or "mariadb".
    name: str
    #: The DB-API connection beneath (SQLite: for its progress handler and functions).
    driver: Any
    #: The exceptions the database raises.
    errors: tuple[type[BaseException], ...]

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        """Every row of a statement (named parameters written `:name`)."""
        raise NotImplementedError

    def cursor(self, sql: str, params: dict | None = None):
        """The rows of a statement read as they are iterated (has `close()`)."""
        raise NotImplementedError

    def session(self, sql: str) -> None:
        """Run a setting (`SET …`) on this connection."""
        raise NotImplementedError

    def rollback(self) -> None:
        """End the read transaction, so the next statement sees what others wrote."""

    def quote(self, name: str) -> str:
        return f'"{name}"'


class SAConnection(Connection):
    """A SQLAlchemy session's connection (the SQL backend, on every database)."""

    def __init__(self, session):
        import sqlalchemy as sa

        self._sa = sa
        self._session = session
        self._conn = session.connection()
        dialect = self._conn.dialect
        self.name = "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name
        self.driver = self._conn.connection.driver_connection
        self.errors = (sa.exc.DBAPIError,)
        self.quote = dialect.identifier_preparer.quote

    def rows(self, sql, params=None):
        return self._conn.execute(self._sa.text(sql), params or {}).all()

    def cursor(self, sql, params=None):
        return self._conn.execution_options(stream_results=True, yield_per=500).execute(
            self._sa.text(sql), params or {})

    def session(self, sql):
        self._conn.exec_driver_sql(sql)

    def rollback(self):
        self._session.rollback()
        self._conn = self._session.connection()
        self.driver = self._conn.connection.driver_connection


class SQLiteConnection(Connection):
    """A connection of Python's sqlite3 module, in autocommit mode (each read sees what
    is committed when it starts)."""

    name = "sqlite"

    def __init__(self, driver):
        import sqlite3

        self.driver = driver
        self.errors = (sqlite3.Error,)

    def rows(self, sql, params=None):
        return self.driver.execute(sql, params or {}).fetchall()

    def cursor(self, sql, params=None):
        cur = self.driver.execute(sql, params or {})
        cur.arraysize = 500
        return cur


def run_query(
    backend, text: str, experiment: str | None = None, timeout: float | None = None
) -> QueryAnswer:
    """Answer a query on a SQL backend (SQLite, PostgreSQL, MySQL/MariaDB), cancelled by
    the database when it runs past `timeout` seconds (the backend's default when None)."""
    from metastore.records import QueryAnswer

    with stream_query(backend, text, experiment, timeout) as answer:
        rows = list(answer.rows)
    return QueryAnswer(columns=answer.columns, rows=rows, sql=answer.sql, dialect=answer.dialect)


@contextmanager
def stream_query(
    backend, text: str, experiment: str | None = None, timeout: float | None = None
) -> Iterator[QueryStream]:
    """`run_query` with its rows read from the cursor as the caller iterates (inside the
    `with` block, under the same deadline): printing 100,000 rows starts at the first."""
    if not isinstance(text, str):
        raise QueryError(f"a query is text, not {type(text).__name__}")
    seconds = backend.query_timeout if timeout is None else float(timeout)
    if not seconds > 0:
        raise QueryError(f"a timeout is a positive number of seconds, not {timeout!r}")
    with backend.query_connection() as conn:
        version, catalog = _unchanged(backend, conn)
        if catalog is None and conn.rows(_RUNNING):
            # a run still says running: mark it crashed first if its process is gone,
            # so `status` is current (reconcile_crashed is the one place that decides)
            conn.rollback()  # end this read so the query sees what reconciling wrote
            backend.reconcile_crashed()
            version = None  # and check again next time: its process may end meanwhile
        with deadline(conn, seconds, text):
            if catalog is None:
                catalog = read_catalog(conn)
                if version is not None:
                    backend._unchanged_since = (conn.driver, version, catalog)
            raw, compiled = _run(backend, conn, text, experiment, catalog)
            names = shape_names(compiled.columns)
            try:
                yield QueryStream(names, shape_rows(compiled.columns, names, raw),
                                  inline_sql(compiled), compiled.dialect)
            finally:
                # a reader that stops early leaves rows on the cursor: drop them before
                # the connection is used again (MySQL refuses statements until then)
                if hasattr(raw, "close"):
                    raw.close()


def _unchanged(backend, conn) -> tuple[int | None, Catalog | None]:
    """On SQLite: the connection's data version, and the catalog kept for it when the
    database has not changed since (then no run said running either: see
    `stream_query`). A query's fixed reads are so paid once per change of the store,
    not per query. `PRAGMA data_version` moves whenever another connection commits;
    queries run on reading connections, which never write (the SQL backend writes
    through its writer engine, the SQLite reader through the SQL backend), so every
    write moves it. Elsewhere (None, None): the reads are made every time."""
    if conn.name != "sqlite":
        return None, None
    version = conn.driver.execute("PRAGMA data_version").fetchone()[0]
    kept = getattr(backend, "_unchanged_since", None)
    if kept is not None and kept[0] is conn.driver and kept[1] == version:
        return version, kept[2]
    return version, None


def _run(backend, conn, text: str, experiment: str | None, catalog: Catalog):
    """The compiled query and its rows (an iterator over the cursor)."""
    if experiment is not None:
        _check_experiment(conn, experiment)
    compiled = compile_cached(text, backend.dialect, catalog, experiment,
                              disk=getattr(backend, "compile_cache_on_disk", False))
    if backend.dialect == "sqlite":
        _sqlite_functions(conn)
    _check_refs(conn, compiled, text, experiment)
    _check_types(conn, compiled, text)
    try:
        raw = None
        if compiled.shortcut is not None:
            fast, needed = compiled.shortcut
            raw = conn.rows(fast, compiled.params)
            if len(raw) < needed:
                raw = None
        if raw is None:
            raw = _rows(conn, conn.cursor(compiled.sql(), compiled.params), text)
    except conn.errors as e:
        _rejected(e, text)
    return raw, compiled


def _rows(conn, result, text: str):
    """The cursor's rows; an error while reading them is the query's, as at its start."""
    try:
        yield from result
    except conn.errors as e:
        _rejected(e, text)
    finally:
        result.close()


def _rejected(e: BaseException, text: str):
    if timed_out(e):
        raise e
    raise QueryError(
        f"the database rejected the query: {getattr(e, 'orig', e)}",
        text=text,
        suggestion="this is a bug in metastore if the query is valid; `--sql` shows the SQL",
    ) from None


#: SQLite calls the deadline check every this many virtual-machine steps.
_SQLITE_STEPS = 1000


@contextmanager
def deadline(conn, seconds: float, text: str = "") -> Iterator[None]:
    """Statements on `conn` inside this block are cancelled by the database once
    `seconds` have passed: SQLite through its progress handler, PostgreSQL through
    `statement_timeout`, MariaDB through `max_statement_time` (MySQL
    `max_execution_time`). A cancelled statement becomes a QueryError."""
    conn = connection(conn)
    name = conn.name
    reset = None
    if name == "sqlite":
        raw = conn.driver
        end = time.monotonic() + seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > end else 0, _SQLITE_STEPS)

        def reset():
            raw.set_progress_handler(None, 0)
    elif name == "postgresql":
        # for this transaction only: the pooled connection keeps no trace of it
        conn.session(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")
    elif name in ("mysql", "mariadb"):
        if name == "mariadb":
            setting = f"max_statement_time = {max(0.001, seconds):.3f}"
            off = "max_statement_time = 0"
        else:
            setting = f"max_execution_time = {max(1, round(seconds * 1000))}"
            off = "max_execution_time = 0"
        conn.session(f"SET SESSION {setting}")

        def reset():
            conn.session(f"SET SESSION {off}")
    try:
        yield
    except conn.errors as e:
        if not timed_out(e):
            raise
        raise QueryError(
            f"the query ran past its deadline of {seconds:g} s and was cancelled",
            text=text,
            suggestion="narrow it (a where clause, a limit), or give it more time: "
            "store.query(text, timeout=SECONDS), metastore query --timeout SECONDS",
        ) from None
    finally:
        if reset is not None:
            try:
                reset()
            except conn.errors:  # the connection is gone; the pool drops it
                pass


def connection(conn) -> Connection:
    """`conn` as a `Connection`: one already, a sqlite3 connection, or a SQLAlchemy
    connection or session."""
    if isinstance(conn, Connection):
        return conn
    if type(conn).__module__ == "sqlite3":
        return SQLiteConnection(conn)
    if not hasattr(conn, "connection") or hasattr(conn, "exec_driver_sql"):
        return _PlainSA(conn)
    return SAConnection(conn)


class _PlainSA(SAConnection):
    """A bare SQLAlchemy Connection (no session around it)."""

    def __init__(self, conn):
        import sqlalchemy as sa

        self._sa = sa
        self._session = None
        self._conn = conn
        dialect = conn.dialect
        self.name = "mariadb" if getattr(dialect, "is_mariadb", False) else dialect.name
        self.driver = conn.connection.driver_connection
        self.errors = (sa.exc.DBAPIError,)
        self.quote = dialect.identifier_preparer.quote

    def rollback(self):
        self._conn.rollback()


def timed_out(e: BaseException) -> bool:
    """Whether the database cancelled a statement for running past its deadline (`e`
    a SQLAlchemy error wrapping the driver's, or the driver's own)."""
    orig = getattr(e, "orig", e)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled
        return True
    code = orig.args[0] if orig is not None and orig.args else None
    if code in (1969, 3024):  # MariaDB max_statement_time, MySQL max_execution_time
        return True
    return type(orig).__name__ == "OperationalError" and str(orig) == "interrupted"


_RUNNING = "SELECT 1 FROM run WHERE status = 'running' AND pid IS NOT NULL LIMIT 1"


def compile_query_text(backend, text: str, experiment: str | None = None) -> str:
    """The SQL `run_query` would run, with names resolved against the store's catalog
    and the values written in."""
    with backend.query_connection() as conn:
        catalog = read_catalog(conn)
    return compile_text(text, backend.dialect, catalog=catalog, experiment=experiment)


def read_catalog(conn) -> Catalog:
    """The catalog in one statement. The keys are few and indexed, so each list walks
    the index from one key to the next (a "loose index scan") instead of reading every
    row: this stays fast at millions of metric and param rows."""
    conn = connection(conn)
    key = conn.quote("key")

    def walk(name: str, table: str) -> str:
        return (
            f"{name}(v) AS (SELECT MIN({key}) FROM {table} UNION ALL "
            f"SELECT (SELECT MIN({key}) FROM {table} WHERE {key} > {name}.v) FROM {name} "
            f"WHERE {name}.v IS NOT NULL)"
        )

    # a SQLite store has the note index when its SQLite had FTS5 (migration 0006)
    index = (f" UNION ALL SELECT 'fulltext', name FROM sqlite_master WHERE name = '{fulltext.NOTE_FTS}'"
             if conn.name == "sqlite" else "")
    sql = (
        f"WITH RECURSIVE {walk('mk', 'metric_summary')}, {walk('pk', 'param')} "
        "SELECT 'metric', v FROM mk WHERE v IS NOT NULL "
        "UNION ALL SELECT 'param', v FROM pk WHERE v IS NOT NULL "
        f"UNION ALL SELECT entity_type, {key} FROM tag GROUP BY entity_type, {key}" + index
    )
    try:
        rows = conn.rows(sql)
    except conn.errors:  # a database without recursive CTEs: read them plainly
        conn.rollback()
        rows = conn.rows(
            f"SELECT DISTINCT 'metric', {key} FROM metric_summary UNION ALL "
            f"SELECT DISTINCT 'param', {key} FROM param UNION ALL "
            f"SELECT DISTINCT entity_type, {key} FROM tag" + index
        )
    metrics, params, tags = set(), set(), {}
    for what, k in rows:
        if what == "fulltext":
            continue
        if what == "metric":
            metrics.add(k)
        elif what == "param":
            params.add(k)
        else:
            tags.setdefault(what, set()).add(k)
    return Catalog(
        metrics=frozenset(metrics),
        params=frozenset(params),
        tags={k: frozenset(v) for k, v in tags.items()},
        fulltext=conn.name != "sqlite" or any(what == "fulltext" for what, _ in rows),
    )


def _sqlite_functions(conn) -> None:
    """SQLite has no REGEXP function of its own; give it RE2's (linear time: see
    `metastore.query.regex`)."""
    raw = conn.driver
    if getattr(raw, "_metastore_regexp2", False):
        return
    raw.create_function("regexp", 2, _regexp, deterministic=True)
    try:
        raw._metastore_regexp2 = True
    except AttributeError:
        pass


def _regexp(pattern, value):
    # RE2 loads on the first match, not with every query
    from metastore.query.regex import regexp

    return regexp(pattern, value)


def _check_experiment(conn, name: str) -> None:
    """A scope that names no experiment is a mistake, not an empty answer."""
    names = [r[0] for r in conn.rows(_EXPERIMENTS)]
    if name not in names:
        raise QueryError(f"no experiment named {name!r}", suggestion=did_you_mean(name, names))


_EXPERIMENTS = "SELECT name FROM experiment WHERE deleted_at IS NULL"


def _check_refs(conn, compiled: Compiled, text: str, experiment: str | None) -> None:
    """A lineage reference must name something, and a run number only one run."""
    for ref, sql in compiled.ref_checks:
        used = {k: v for k, v in compiled.params.items() if f":{k}" in sql}
        count = conn.rows(f"SELECT COUNT(*) FROM ({sql}) AS x", used)[0][0]
        if count == 1 or (count and ref.kind != "run"):
            continue
        if ref.kind == "run":
            scope = f" in experiment {experiment!r}" if experiment else ""
            if count == 0:
                raise at(f"no run {ref.value}{scope}", text, ref.pos,
                         "refer to a run by number, \"experiment#number\", id or name")
            raise at(
                f"run {ref.value} exists in {count} experiments", text, ref.pos,
                f'say which: run "EXPERIMENT#{ref.value}", or scope the query with --experiment',
            )
        names = [r[0] for r in conn.rows("SELECT name FROM asset WHERE kind = :k", {"k": ref.kind})]
        if ref.value in names and isinstance(ref.version, str) and ref.version != "latest":
            raise at(f"{ref.kind}:{ref.value} has no alias {ref.version!r}", text, ref.pos,
                     "see its aliases with `metastore alias list`")
        if ref.value in names:
            raise at(f"{ref.kind}:{ref.value} has no version {ref.version}", text, ref.pos)
        raise at(f"no {ref.kind} named {ref.value!r}", text, ref.pos, did_you_mean(str(ref.value), names))


#: The stored param types a value of each kind can meet meaningfully.
_MEETS = {"number": {"number", "bool"}, "text": {"text", "json"}, "bool": {"bool"}}
_WHAT = {"number": "a number", "text": "text", "bool": "true/false", "json": "JSON"}
_ADVICE = {"number": "compare it with a number", "text": "compare it with a string",
           "bool": "compare it with = true or = false"}


def _check_types(conn, compiled: Compiled, text: str) -> None:
    """A param compared with a value of a kind it never holds (`algorithm > 5` where
    algorithm is text in every run) is a mistake, not an empty answer: the types come
    from the data, one indexed lookup per key."""
    seen: dict[str, set[str]] = {}
    q = conn.quote
    types_of = f"SELECT {q('type')} FROM param WHERE {q('key')} = :k GROUP BY {q('type')}"
    for key, kind, pos, name in compiled.type_checks:
        # usually the first row of the key already holds a kind that meets the value:
        # stop there, rather than group every row of the key (100,000 at 100,000 runs)
        meets = sorted(_MEETS[kind])
        marks = ", ".join(f":t{i}" for i in range(len(meets)))
        if conn.rows(f"SELECT 1 FROM param WHERE {q('key')} = :k AND {q('type')} IN ({marks}) "
                     "LIMIT 1", {"k": key, **{f"t{i}": t for i, t in enumerate(meets)}}):
            continue
        if key not in seen:
            seen[key] = {r[0] for r in conn.rows(types_of, {"k": key})}
        types = seen[key]
        if not types or types & _MEETS[kind]:
            continue
        held = " or ".join(sorted(_WHAT.get(t, t) for t in types))
        stored = sorted(types)[0]
        raise at(
            f"{name} is {held} in every run, so it never matches {_WHAT[kind]}", text, pos,
            f"{_ADVICE.get(stored, 'compare it with a value of its type')}"
            + (" (a number is written without quotes)" if stored == "number" else "")
            + (' (text is written in quotes, e.g. "5")' if stored == "text" else ""),
        )

