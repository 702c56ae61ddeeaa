"""Run a compiled query through SQLAlchemy and shape the rows into a Result."""

from __future__ import annotations

import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metastore import params as param_codec
from metastore.query import ast
from metastore.query.compile import Column, Compiled, compile_query
from metastore.query.errors import QueryError, at, did_you_mean
from metastore.query.parse import parse
from metastore.query.resolve import load_catalog, read_catalog


class Result:
    """The answer to a query: `columns`, one dict per row, and the SQL that produced it.

    `rows` hold Python values (datetimes stay datetimes); `to_dict()` is the JSON-safe
    form (times as ISO text) the CLI and the web server send."""

    def __init__(self, columns: list[str], rows: list[dict[str, Any]], compiled: Compiled):
        self.columns = columns
        self.rows = rows
        self._compiled = compiled

    @property
    def sql(self) -> str:
        """The SQL that ran, with the values written in (quoted by sqlglot), for reading."""
        return _inline_sql(self._compiled)

    @property
    def dialect(self) -> str:
        return self._compiled.dialect

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]

    def __repr__(self) -> str:
        return f"<Result {len(self.rows)} rows × {len(self.columns)} columns: {', '.join(self.columns)}>"

    def column(self, name: str) -> list[Any]:
        return [r[name] for r in self.rows]

    def scalar(self) -> Any:
        """The single value of a one-row, one-column result."""
        if len(self.rows) != 1 or len(self.columns) != 1:
            raise QueryError(f"expected one value, got {len(self.rows)} rows × {len(self.columns)} columns")
        return self.rows[0][self.columns[0]]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def to_records(self) -> list[dict[str, Any]]:
        """Rows with JSON-safe values."""
        return [{k: jsonable(v) for k, v in r.items()} for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.to_records(), "sql": self.sql}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)


def jsonable(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Decimal):
        return float(v)
    return v


def compile_text(text: str, dialect: str = "sqlite", *, store=None, experiment: str | None = None) -> str:
    """SQL text for a query. Without a store, names that are not attributes compile to a
    lookup in metrics, then params, then tags; with one, they are resolved against its
    catalog exactly as `store.query` does."""
    query = parse(text)
    catalog = load_catalog(store) if store is not None else None
    kwargs = {"catalog": catalog} if catalog is not None else {}
    compiled = compile_query(query, dialect, experiment=experiment, inline=True, **kwargs)
    return compiled.sql()


def execute(store, text: str, experiment: str | None = None) -> Result:
    """Answer a query on a store (any SQLStore: SQLite, PostgreSQL, MySQL/MariaDB)."""
    if not hasattr(store, "reader"):
        from metastore.store import Store

        if type(store).query is not Store.query:  # e.g. a remote store answers itself
            return store.query(text, experiment=experiment)
        raise QueryError(f"queries need a SQL store, not {type(store).__name__}")
    if not isinstance(text, str):
        raise QueryError(f"a query is text, not {type(text).__name__}")
    with store.read() as s:
        conn = s.connection()
        if conn.execute(_RUNNING).first() is not None:
            # a run still says running: mark it crashed first if its process is gone,
            # so `status` is current (reconcile_crashed is the one place that decides)
            s.rollback()  # end this read so the query sees what reconciling wrote
            store.reconcile_crashed()
            conn = s.connection()
        if experiment is not None:
            _check_experiment(conn, experiment)
        catalog = read_catalog(conn)
        compiled = _compile_cached(text, store.dialect, catalog, experiment)
        if store.dialect == "sqlite":
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
    return Result(*shape(compiled.columns, raw), compiled)


_RUNNING = sa.text("SELECT 1 FROM run WHERE status = 'running' AND pid IS NOT NULL LIMIT 1")
_CACHE: OrderedDict[tuple, Compiled] = OrderedDict()
_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def _compile_cached(text: str, dialect: str, catalog, experiment) -> Compiled:
    """Compiled queries are kept (keyed by text, dialect, scope and the catalog they were
    bound against), so a dashboard asking the same question again skips parse and compile."""
    key = (text, dialect, experiment, catalog.key())
    with _CACHE_LOCK:  # the web server answers queries from several threads
        compiled = _CACHE.get(key)
        if compiled is not None:
            _CACHE.move_to_end(key)
            return compiled
    try:
        compiled = compile_query(parse(text), dialect, catalog=catalog, experiment=experiment)
        compiled.sql()
    except RecursionError:  # a backstop: parse limits nesting well below this
        raise QueryError("the query nests too deeply to compile", text=text) from None
    with _CACHE_LOCK:
        _CACHE[key] = compiled
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return compiled


def shape(columns: list[Column], raw) -> tuple[list[str], list[dict]]:
    names = _unique([c.name for c in columns])
    rows = []
    for r in raw:
        row, i = {}, 0
        for name, col in zip(names, columns, strict=True):
            row[name] = _decode(col.type, r[i : i + col.width])
            i += col.width
        rows.append(row)
    return names, rows


def _decode(kind: str, parts) -> Any:
    v = parts[0]
    if kind == "param":
        ptype, text = parts
        return None if ptype is None else param_codec.decode(ptype, None, text)
    if kind == "any":
        metric, ptype, text, tag = parts
        if metric is not None:
            return float(metric)
        if ptype is not None:
            return param_codec.decode(ptype, None, text)
        return tag
    if v is None:
        return None
    if kind == "int":
        return int(v)
    if kind == "number":
        return float(v)
    if kind == "bool":
        return bool(v)
    if kind == "time":
        if isinstance(v, str):
            return datetime.fromisoformat(v)
        return v
    if kind == "text":
        return v if isinstance(v, str) else str(v)
    if isinstance(v, Decimal):
        return float(v)
    return v


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 1
            out.append(n)
    return out


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
        if ref.value in names:
            raise at(f"{ref.kind}:{ref.value} has no version {ref.version}", text, ref.pos)
        raise at(f"no {ref.kind} named {ref.value!r}", text, ref.pos, did_you_mean(str(ref.value), names))


def _inline_sql(compiled: Compiled) -> str:
    sql = compiled.sql()
    if not compiled.params:
        return sql
    from sqlglot import exp

    def literal(v):
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, int | float):
            return exp.Literal.number(v).sql(dialect=compiled.dialect)
        return exp.Literal.string(str(v)).sql(dialect=compiled.dialect)

    return re.sub(r":(p\d+)\b", lambda m: literal(compiled.params[m.group(1)]), sql)


__all__ = ["Result", "execute", "compile_text", "ast"]
