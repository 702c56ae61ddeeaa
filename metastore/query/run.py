"""A query's answer as a Result, and the stage that turns compiled SQL rows into one.

Light on purpose: the parser and the compiler load only when a query is compiled
(`compile_text`, or a miss of the compiled-query cache, `query/cache.py`).

Running the SQL is the backend's (`Backend.query`): the SQL backend compiles and
executes it (`metastore.backends.sql_query`), the HTTP backend asks the server. Both
hand back a `QueryAnswer`, which becomes the `Result` users see.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from metastore import params as param_codec
from metastore.query.errors import QueryError

if TYPE_CHECKING:
    from metastore.query.values import Column
    from metastore.records import QueryAnswer


class Result:
    """The answer to a query: `columns`, one dict per row, and the SQL that produced it.

    `rows` hold Python values (datetimes stay datetimes); `to_dict()` is the JSON-safe
    form (times as ISO text) the CLI and the web server send."""

    def __init__(self, answer: QueryAnswer):
        self.columns = answer.columns
        self.rows = answer.rows
        #: The SQL that ran, with the values written in (quoted by sqlglot), for reading.
        self.sql = answer.sql
        self.dialect = answer.dialect

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


def compile_text(
    text: str, dialect: str = "sqlite", *, catalog=None, experiment: str | None = None
) -> str:
    """SQL text for a query. Without a catalog, names that are not attributes compile to
    a lookup in metrics, then params, then tags; with a store's catalog, they are resolved
    exactly as its `query` does."""
    from metastore.query.compile import compile_query  # the compiler loads when it is needed
    from metastore.query.parse import parse

    query = parse(text)
    kwargs = {"catalog": catalog} if catalog is not None else {}
    compiled = compile_query(query, dialect, experiment=experiment, inline=True, **kwargs)
    return compiled.sql()


def execute(
    backend, text: str, experiment: str | None = None, timeout: float | None = None
) -> Result:
    """Answer a query on any backend, within `timeout` seconds (None: the backend's
    default deadline)."""
    return Result(backend.query(text, experiment=experiment, timeout=timeout))


def stream(backend, text: str, experiment: str | None = None, timeout: float | None = None):
    """`execute`, its rows read as they come: a context manager giving a
    `QueryStream` (columns, then rows one by one), for answers too big to hold."""
    return backend.query_stream(text, experiment=experiment, timeout=timeout)


def shape(columns: list[Column], raw) -> tuple[list[str], list[dict]]:
    names = shape_names(columns)
    return names, list(shape_rows(columns, names, raw))


def shape_names(columns: list[Column]) -> list[str]:
    """The answer's column names, made unique (`rmse`, `rmse_2`)."""
    return _unique([c.name for c in columns])


#: Kinds of one SQL column whose value is the driver's, converted only when the driver
#: gave another type (a Decimal, an int for a float): no call for most cells.
_PLAIN_KINDS = {"int": int, "number": float, "text": str}


def shape_rows(columns: list[Column], names: list[str], raw) -> Iterator[dict]:
    """Each SQL row as a dict of Python values, as the rows come."""
    plan = []
    i = 0
    for name, col in zip(names, columns, strict=True):
        plain = _PLAIN_KINDS.get(col.type) if col.width == 1 else None
        plan.append((name, col.type, i, i + col.width, plain))
        i += col.width
    for r in raw:
        row = {}
        for name, kind, a, b, plain in plan:
            if plain is None:
                row[name] = _decode(kind, r[a:b])
            else:
                v = r[a]
                row[name] = v if v is None or type(v) is plain else plain(v)
        yield row


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


__all__ = ["Result", "execute", "stream", "compile_text"]
