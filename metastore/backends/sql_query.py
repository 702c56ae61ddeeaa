"""Queries on the SQL backend: the catalog a query is resolved against, and running
the statement the compiler made. The compiler (`metastore.query`) knows no sessions;
this is where its SQL meets the database.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from metastore.query.compile import Compiled
from metastore.query.errors import QueryError, at, did_you_mean
from metastore.query.resolve import Catalog
from metastore.query.run import compile_cached, compile_text, inline_sql, shape
from metastore.records import QueryAnswer


def run_query(backend, text: str, experiment: str | None = None) -> QueryAnswer:
    """Answer a query on a SQL backend (SQLite, PostgreSQL, MySQL/MariaDB)."""
    if not isinstance(text, str):
        raise QueryError(f"a query is text, not {type(text).__name__}")
    with backend.read() as s:
        conn = s.connection()
        if conn.execute(_RUNNING).first() is not None:
            # a run still says running: mark it crashed first if its process is gone,
            # so `status` is current (reconcile_crashed is the one place that decides)
            s.rollback()  # end this read so the query sees what reconciling wrote
            backend.reconcile_crashed()
            conn = s.connection()
        if experiment is not None:
            _check_experiment(conn, experiment)
        catalog = read_catalog(conn)
        compiled = compile_cached(text, backend.dialect, catalog, experiment)
        if backend.dialect == "sqlite":
            _sqlite_functions(conn)
        _check_refs(conn, compiled, text, experiment)
        try:
            raw = None
            if compiled.shortcut is not None:
                fast, needed = compiled.shortcut
                raw = conn.execute(sa.text(fast), compiled.params).all()
                if len(raw) < needed:
                    raw = None
            if raw is None:
                raw = conn.execute(sa.text(compiled.sql()), compiled.params).all()
        except sa.exc.DBAPIError as e:
            raise QueryError(
                f"the database rejected the query: {getattr(e, 'orig', e)}",
                text=text,
                suggestion="this is a bug in metastore if the query is valid; `--sql` shows the SQL",
            ) from None
    columns, rows = shape(compiled.columns, raw)
    return QueryAnswer(columns=columns, rows=rows, sql=inline_sql(compiled), dialect=compiled.dialect)


_RUNNING = sa.text("SELECT 1 FROM run WHERE status = 'running' AND pid IS NOT NULL LIMIT 1")


def compile_query_text(backend, text: str, experiment: str | None = None) -> str:
    """The SQL `run_query` would run, with names resolved against the store's catalog
    and the values written in."""
    with backend.read() as s:
        catalog = read_catalog(s.connection())
    return compile_text(text, backend.dialect, catalog=catalog, experiment=experiment)


def read_catalog(conn) -> Catalog:
    """The catalog in one statement. The keys are few and indexed, so each list walks
    the index from one key to the next (a "loose index scan") instead of reading every
    row: this stays fast at millions of metric and param rows."""
    q = conn.dialect.identifier_preparer.quote
    key = q("key")

    def walk(name: str, table: str) -> str:
        return (
            f"{name}(v) AS (SELECT MIN({key}) FROM {table} UNION ALL "
            f"SELECT (SELECT MIN({key}) FROM {table} WHERE {key} > {name}.v) FROM {name} "
            f"WHERE {name}.v IS NOT NULL)"
        )

    sql = (
        f"WITH RECURSIVE {walk('mk', 'metric_summary')}, {walk('pk', 'param')} "
        "SELECT 'metric', v FROM mk WHERE v IS NOT NULL "
        "UNION ALL SELECT 'param', v FROM pk WHERE v IS NOT NULL "
        f"UNION ALL SELECT entity_type, {key} FROM tag GROUP BY entity_type, {key}"
    )
    try:
        rows = conn.execute(sa.text(sql)).all()
    except sa.exc.DBAPIError:  # a database without recursive CTEs: read them plainly
        conn.rollback()
        rows = conn.execute(sa.text(
            f"SELECT DISTINCT 'metric', {key} FROM metric_summary UNION ALL "
            f"SELECT DISTINCT 'param', {key} FROM param UNION ALL "
            f"SELECT DISTINCT entity_type, {key} FROM tag"
        )).all()
    metrics, params, tags = set(), set(), {}
    for what, k in rows:
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
    )


def _sqlite_functions(conn) -> None:
    """SQLite has no REGEXP function of its own; give it Python's."""
    raw = conn.connection.driver_connection
    if getattr(raw, "_metastore_regexp", False):
        return

    def regexp(pattern, value):
        if pattern is None or value is None:
            return None
        return re.search(pattern, str(value)) is not None

    raw.create_function("regexp", 2, regexp, deterministic=True)
    try:
        raw._metastore_regexp = True
    except AttributeError:
        pass


def _check_experiment(conn, name: str) -> None:
    """A scope that names no experiment is a mistake, not an empty answer."""
    names = [r[0] for r in conn.execute(_EXPERIMENTS)]
    if name not in names:
        raise QueryError(f"no experiment named {name!r}", suggestion=did_you_mean(name, names))


_EXPERIMENTS = sa.text("SELECT name FROM experiment WHERE deleted_at IS NULL")


def _check_refs(conn, compiled: Compiled, text: str, experiment: str | None) -> None:
    """A lineage reference must name something, and a run number only one run."""
    for ref, sql in compiled.ref_checks:
        used = {k: v for k, v in compiled.params.items() if f":{k}" in sql}
        count = conn.execute(sa.text(f"SELECT COUNT(*) FROM ({sql}) AS x"), used).scalar()
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
        names = [r[0] for r in conn.execute(sa.text("SELECT name FROM asset WHERE kind = :k"), {"k": ref.kind})]
        if ref.value in names and isinstance(ref.version, str) and ref.version != "latest":
            raise at(f"{ref.kind}:{ref.value} has no alias {ref.version!r}", text, ref.pos,
                     "see its aliases with `metastore alias list`")
        if ref.value in names:
            raise at(f"{ref.kind}:{ref.value} has no version {ref.version}", text, ref.pos)
        raise at(f"no {ref.kind} named {ref.value!r}", text, ref.pos, did_you_mean(str(ref.value), names))
