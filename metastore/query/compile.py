"""AST → one sqlglot SELECT, for SQLite, PostgreSQL, MySQL/MariaDB or DuckDB.

The compiler is split by stage, each in its own module:

    values.py       Val (a compiled value and its type) and Column (an output column)
    expressions.py  expressions → values: operators, functions, aggregates, type checks
    frames.py       sources and stages: where / order by / limit / group by / show
    lineage_sql.py  lineage references and the recursive walk over edges
    dialects.py     everything that differs between databases
    nodes.py        sqlglot node builders the others share

This module is the driver: it holds the state of one compilation (bound values, CTEs,
generated aliases) and runs the source and stages in order.

Values never enter the SQL as text: they are bind parameters (`:p1`) when a query runs,
and literals quoted by sqlglot when the SQL is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from metastore.query import ast
from metastore.query.dialects import dialect_name, to_sql
from metastore.query.errors import QueryError, at
from metastore.query.expressions import Expressions
from metastore.query.frames import EntityFrame, Sources
from metastore.query.lineage_sql import LineageSQL
from metastore.query.resolve import ATTRS, OPEN_CATALOG, Catalog, check_ref, source_kind
from metastore.query.values import Column


@dataclass
class Compiled:
    """A compiled query: the statement, its bound values and how to shape the rows."""

    statement: exp.Expression
    dialect: str
    params: dict[str, Any]
    columns: list[Column]
    # (reference, SQL selecting the ids it names): checked before the query runs
    ref_checks: list[tuple[ast.Ref, str]] = field(default_factory=list)
    # A faster statement to try first, and the row count that proves it right: see
    # EntityFrame.top_rows_shortcut.
    shortcut: tuple[str, int] | None = None
    # (param key, the kind of value it meets: number, text or bool, where, its name):
    # checked against the types the store holds for that key before the query runs
    type_checks: list[tuple[str, str, Any, str]] = field(default_factory=list)
    _sql: str | None = None

    def sql(self, pretty: bool = False) -> str:
        if pretty:
            return to_sql(self.statement, self.dialect, pretty=True)
        if self._sql is None:
            self._sql = to_sql(self.statement, self.dialect)
        return self._sql


def compile_query(
    query: ast.Query,
    dialect: str = "sqlite",
    catalog: Catalog = OPEN_CATALOG,
    experiment: str | None = None,
    inline: bool = False,
) -> Compiled:
    return Compiler(query, dialect_name(dialect), catalog, experiment, inline).run()


class Compiler(Expressions, Sources, LineageSQL):
    def __init__(self, query, dialect, catalog, experiment, inline):
        self.q = query
        self.text = query.text
        self.dialect = dialect
        self.catalog = catalog
        self.experiment = experiment
        self.inline = inline
        self.params: dict[str, Any] = {}
        self.ctes: list[tuple[str, exp.Expression]] = []
        self.ref_checks: list[tuple[ast.Ref, exp.Select]] = []
        self.type_checks: list[tuple[str, str, Any, str]] = []
        self.n = 0

    def alias(self, prefix: str) -> str:
        """A table alias no other part of the statement uses."""
        self.n += 1
        return f"{prefix}{self.n}"

    def lit(self, value: Any) -> exp.Expression:
        """A value for the SQL: a bind parameter, or (for display) a quoted literal."""
        if isinstance(value, bool):
            value = int(value)
        if value is None:
            return exp.Null()
        if self.inline:
            if isinstance(value, int | float):
                return exp.Literal.number(repr(value) if isinstance(value, float) else value)
            return exp.Literal.string(str(value))
        name = f"p{len(self.params) + 1}"
        self.params[name] = value
        return exp.var(f":{name}")

    def err(self, message, node, suggestion=None) -> QueryError:
        return at(message, self.text, getattr(node, "pos", None), suggestion)

    def col(self, table: str, name: str) -> exp.Column:
        return exp.column(name, table=table)

    def run(self) -> Compiled:
        src = self.q.source
        if isinstance(src, ast.LineageSource):
            check_ref(src.ref, self.text)
            frame = self.lineage_frame(src)
        else:
            frame = self.entity_frame(source_kind(src, self.text))
        for stage in self.q.stages:
            frame = frame.apply(stage)
        select, columns = frame.finish()
        for name, body in self.ctes:
            select = select.with_(name, as_=body, recursive=True, copy=False)
        checks = [(ref, to_sql(sel, self.dialect)) for ref, sel in self.ref_checks]
        shortcut = None
        if isinstance(frame, EntityFrame) and frame.shortcut is not None:
            fast, n = frame.shortcut
            for name, body in self.ctes:
                fast = fast.with_(name, as_=body.copy(), recursive=True, copy=False)
            shortcut = (to_sql(fast, self.dialect), n)
        return Compiled(select, self.dialect, self.params, columns, checks, shortcut,
                        type_checks=self.type_checks)


__all__ = ["compile_query", "Compiled", "Column", "ATTRS", "dialect_name"]
