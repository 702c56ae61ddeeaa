"""AST → one sqlglot SELECT, for SQLite, PostgreSQL, MySQL/MariaDB or DuckDB.

Stages apply left to right to a *frame* (the rows so far):

- an entity frame (runs, experiments, asset versions, lineage nodes) is one SELECT over
  the entity's table; every name a stage mentions becomes a LEFT JOIN made on first use
  (a metric joins `metric_summary`, a param `param`, a tag `tag`), so a row that lacks a
  field sees NULL, which no comparison keeps and `order by` puts last;
- `where`, `order by`, `limit` and `show` fuse into that SELECT. A stage that must see the
  result of an earlier `limit` (a `where` after a `limit`, `limit N per F`) seals the frame:
  the SELECT so far becomes a subquery of row ids and the frame continues on those ids;
- `group by` turns the frame into groups; a `where` on groups becomes HAVING, and a stage
  after a `limit` on groups continues on the grouped rows as a derived table.

Values never enter the SQL as text: they are bind parameters (`:p1`) when a query runs,
and literals quoted by sqlglot when the SQL is shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlglot import exp

from metastore.query import ast
from metastore.query.errors import QueryError, at
from metastore.query.resolve import (
    ATTRS,
    OPEN_CATALOG,
    AnyRef,
    Attr,
    Catalog,
    MetricRef,
    ParamRef,
    SourceKind,
    TagRef,
    bind,
    check_ref,
    source_kind,
)


def _c(ref: str) -> exp.Column:
    """`"e.id"` as a column, built without parsing (sqlglot's parser is slow)."""
    table, _, name = ref.rpartition(".")
    return exp.column(name, table=table or None)


def _eq(a: str, b: str) -> exp.EQ:
    return exp.EQ(this=_c(a), expression=_c(b))


def _join(table: exp.Expression, on: exp.Expression, left: bool = False) -> exp.Join:
    """A JOIN node built directly: given one, sqlglot's `join` neither parses nor copies."""
    return exp.Join(this=table, on=on, side="LEFT" if left else None)


def _t(name: str, alias: str | None = None) -> exp.Table:
    table = exp.Table(this=exp.to_identifier(name))
    if alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return table


def _and(*conds) -> exp.Expression:
    return exp.and_(*conds, copy=False)


def _or(*conds) -> exp.Expression:
    return exp.or_(*conds, copy=False)


def _not(cond) -> exp.Expression:
    return exp.not_(cond, copy=False)


MAX_DEPTH = 100  # lineage walks stop here even in a (forbidden) cycle
AGGREGATES = {"count", "min", "max", "mean", "avg", "sum", "std", "stddev"}
FUNCTIONS = {"abs", "round", "lower", "upper", "coalesce"}
DIALECTS = {"sqlite": "sqlite", "postgres": "postgres", "postgresql": "postgres", "mysql": "mysql",
            "mariadb": "mysql", "duckdb": "duckdb"}


def dialect_name(dialect: str) -> str:
    try:
        return DIALECTS[dialect.lower()]
    except KeyError:
        raise QueryError(
            f"unknown SQL dialect {dialect!r}", suggestion="use sqlite, postgres, mysql or duckdb"
        ) from None


# ---- values ------------------------------------------------------------------------------


@dataclass
class Val:
    """A compiled value. `type` is number, int, text, time, bool, param, any or null.

    Params (and, without a catalog, names of unknown kind) carry several SQL parts, since
    a param is a number or a text depending on the run: which part is used depends on
    what it is compared with."""

    type: str
    sql: exp.Expression | None = None
    num: exp.Expression | None = None
    text: exp.Expression | None = None
    ptype: exp.Expression | None = None
    metric: exp.Expression | None = None
    tag: exp.Expression | None = None
    agg: bool = False
    literal: Any = None
    is_literal: bool = False
    node: ast.Expr | None = None

    def numeric(self) -> exp.Expression:
        if self.type == "param":
            return self.num
        if self.type == "any":
            return exp.func("COALESCE", self.metric, self.num)
        return self.sql

    def textual(self) -> exp.Expression:
        if self.type == "param":
            return self.text
        if self.type == "any":
            return exp.func("COALESCE", self.text, self.tag)
        return self.sql

    def columns(self) -> list[exp.Expression]:
        """What to select to show this value (decoded by the runner)."""
        if self.type == "param":
            return [self.ptype, self.text]
        if self.type == "any":
            return [self.metric, self.ptype, self.text, self.tag]
        return [self.sql]

    def sort_keys(self) -> list[exp.Expression]:
        if self.type == "param":
            return [self.num, self.text]
        if self.type == "any":
            return [self.numeric(), self.textual()]
        return [self.sql]

    def group_keys(self) -> list[exp.Expression]:
        if self.type == "param":
            return [self.ptype, self.num, self.text]
        if self.type == "any":
            return [self.metric, self.ptype, self.num, self.text, self.tag]
        return [self.sql]


@dataclass
class Column:
    name: str
    type: str  # how the runner decodes it
    width: int  # how many SQL columns it takes


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
    # EntityFrame.shortcut.
    shortcut: tuple[str, int] | None = None
    _sql: str | None = None

    def sql(self, pretty: bool = False) -> str:
        if pretty:
            return self.statement.sql(dialect=self.dialect, pretty=True)
        if self._sql is None:
            self._sql = self.statement.sql(dialect=self.dialect)
        return self._sql


def compile_query(
    query: ast.Query,
    dialect: str = "sqlite",
    catalog: Catalog = OPEN_CATALOG,
    experiment: str | None = None,
    inline: bool = False,
) -> Compiled:
    return _Compiler(query, dialect_name(dialect), catalog, experiment, inline).run()


_OPS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


class _Expressions:
    """How each kind of expression compiles; mixed into _Compiler."""

    def project(self, select: exp.Select, projection: list[tuple[str, Val]]):
        exprs, columns, i = [], [], 0
        for name, v in projection:
            parts = v.columns()
            for p in parts:
                exprs.append(p.copy().as_(f"c{i}"))
                i += 1
            columns.append(Column(name, v.type, len(parts)))
        return select.select(*exprs, append=False, copy=False), columns


    def expr(self, node: ast.Expr, scope) -> Val:
        match node:
            case ast.Literal(value=value):
                t = ("null" if value is None else "bool" if isinstance(value, bool)
                     else "int" if isinstance(value, int) else "number" if isinstance(value, float) else "text")
                return Val(t, sql=self.lit(value), literal=value, is_literal=True, node=node)
            case ast.Field():
                return scope.field(node)
            case ast.Call():
                return self.call(node, scope)
            case ast.Arith(op=op, left=left, right=right):
                lv, rv = self.number_of(self.expr(left, scope), left), self.number_of(self.expr(right, scope), right)
                a, b = lv.numeric(), rv.numeric()
                if op == "+":
                    out = exp.Add(this=a, expression=b)
                elif op == "-":
                    out = exp.Sub(this=a, expression=b)
                elif op == "*":
                    out = exp.Mul(this=a, expression=b)
                else:
                    # float division everywhere, and NULL (not an error) for division by zero
                    out = exp.Div(this=exp.Mul(this=a, expression=exp.Literal.number("1.0")),
                                  expression=exp.func("NULLIF", b, exp.Literal.number(0)))
                return Val("number", sql=exp.paren(out), agg=lv.agg or rv.agg, node=node)
            case ast.Neg(operand=o):
                v = self.number_of(self.expr(o, scope), o)
                return Val("number", sql=exp.Neg(this=v.numeric()), agg=v.agg, node=node)
            case ast.And(items=items):
                vals = [self.expr(i, scope) for i in items]
                return Val("bool", sql=_and(*[self.condition(v, i) for v, i in zip(vals, items, strict=True)]),
                           agg=any(v.agg for v in vals), node=node)
            case ast.Or(items=items):
                vals = [self.expr(i, scope) for i in items]
                return Val("bool", sql=exp.paren(_or(*[self.condition(v, i) for v, i in zip(vals, items, strict=True)])),
                           agg=any(v.agg for v in vals), node=node)
            case ast.Not(operand=o):
                v = self.expr(o, scope)
                return Val("bool", sql=_not(exp.paren(self.condition(v, o))), agg=v.agg, node=node)
            case ast.Compare():
                return self.compare(node, scope)
            case ast.In(operand=o, items=items, negated=neg):
                v = self.expr(o, scope)
                if not items:
                    return Val("bool", sql=exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1 if neg else 0)), node=node)
                vals = [self.value(i, scope) for i in items]
                cond = self.in_list(v, vals)
                if cond is None:
                    ors = [self.compare_vals(v, "=", iv, node) for iv in vals]
                    cond = exp.paren(_or(*ors)) if len(ors) > 1 else ors[0]
                if neg:
                    cond = _and(self.not_null(v), _not(exp.paren(cond)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Between(operand=o, low=lo, high=hi, negated=neg):
                v = self.expr(o, scope)
                cond = _and(self.compare_vals(v, ">=", self.value(lo, scope), node),
                                self.compare_vals(v, "<=", self.value(hi, scope), node))
                if neg:
                    cond = _and(self.not_null(v), _not(exp.paren(cond)))
                return Val("bool", sql=exp.paren(cond), agg=v.agg, node=node)
            case ast.IsNull(operand=o, negated=neg):
                v = self.expr(o, scope)
                cond = self.not_null(v) if neg else _not(exp.paren(self.not_null(v)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Like(operand=o, pattern=p, negated=neg):
                v = self.expr(o, scope)
                pattern = self.expr(p, scope)
                if not pattern.is_literal or not isinstance(pattern.literal, str):
                    raise self.err("like needs a quoted pattern, e.g. like \"*bmi*\"", p)
                if v.type in ("number", "int", "bool"):
                    raise self.err(f"{_column_name(o)} is a number; like matches text", o)
                sql_pattern = _glob_to_like(pattern.literal.lower())
                cond = exp.Escape(
                    this=exp.Like(this=exp.Lower(this=v.textual()), expression=self.lit(sql_pattern)),
                    expression=exp.Literal.string("!"),
                )
                if neg:
                    cond = _and(self.not_null(v), _not(exp.paren(cond)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Regex(operand=o, pattern=p, negated=neg):
                v = self.expr(o, scope)
                pattern = self.expr(p, scope)
                if not pattern.is_literal or not isinstance(pattern.literal, str):
                    raise self.err('~ needs a quoted regular expression, e.g. ~ "^bmi"', p)
                try:
                    re.compile(pattern.literal)
                except re.error as e:
                    raise self.err(f"not a regular expression: {e}", p) from None
                text = v.textual()
                if self.dialect == "mysql":
                    cond = exp.func("REGEXP_INSTR", self.exact(text), self.lit(pattern.literal)) > exp.Literal.number(0)
                else:
                    cond = exp.RegexpLike(this=text, expression=self.lit(pattern.literal))
                if neg:
                    cond = _and(self.not_null(v), _not(exp.paren(cond)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Lineage():
                if not isinstance(scope, EntityFrame):
                    raise self.err("lineage predicates filter rows before group by", node)
                return Val("bool", sql=self.lineage_predicate(node, scope), node=node)
        raise self.err("this cannot be used here", node)


    def in_list(self, v: Val, vals: list[Val]) -> exp.Expression | None:
        """`x in (1, 2, …)` as SQL IN when every item is a number or every item a string
        (a long list as a chain of ORs would be too deep for the database)."""
        if len(vals) < 2 or not all(i.is_literal and i.type in ("int", "number", "text") for i in vals):
            return None
        numbers = all(i.type in ("int", "number") for i in vals)
        if not numbers and not all(i.type == "text" for i in vals):
            return None
        if numbers and v.type in ("number", "int", "param", "any"):
            return exp.In(this=v.numeric(), expressions=[self.lit(i.literal) for i in vals])
        if not numbers and v.type in ("text", "param", "any"):
            return exp.In(this=self.exact(v.textual()), expressions=[self.lit(i.literal) for i in vals])
        return None  # a type mismatch: compare_vals explains it

    def value(self, node: ast.Expr, scope) -> Val:
        """A value on the right of a comparison: a bare unknown name there is probably a
        string without quotes."""
        if isinstance(node, ast.Field):
            return scope.field(node, as_value=True)
        return self.expr(node, scope)


    def number_of(self, v: Val, node) -> Val:
        if v.type in ("text", "time", "null") and not v.is_literal:
            raise self.err(f"{_column_name(node)} is {_a(v.type)}; arithmetic needs numbers", node)
        if v.is_literal and not isinstance(v.literal, int | float):
            raise self.err("arithmetic needs numbers", node)
        return v


    def not_null(self, v: Val) -> exp.Expression:
        if v.type == "param":
            return exp.Is(this=v.ptype, expression=exp.null()).not_()
        if v.type == "any":
            return _or(exp.Is(this=v.metric, expression=exp.null()).not_(), exp.Is(this=v.ptype, expression=exp.null()).not_(), exp.Is(this=v.tag, expression=exp.null()).not_())
        return _not(exp.Is(this=v.sql, expression=exp.null()))


    def condition(self, v: Val, node) -> exp.Expression:
        """A value used as a condition: booleans as they are, a bool param or attribute as
        true/false; anything else is an error a person can fix."""
        if v.type == "bool":
            if v.is_literal:
                return exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1 if v.literal else 0))
            if isinstance(v.sql, exp.Column | exp.Subquery):
                if self.dialect in ("postgres", "duckdb"):
                    return exp.EQ(this=v.sql, expression=exp.true())
                return exp.EQ(this=v.sql, expression=exp.Literal.number(1))
            return v.sql
        if v.type == "param":
            return exp.NEQ(this=v.num, expression=exp.Literal.number(0))
        if v.type == "any":
            return exp.NEQ(this=v.numeric(), expression=exp.Literal.number(0))
        name = _column_name(node)
        if v.type == "null":
            raise self.err("null is neither true nor false", node, "write `x is null` to test for it")
        raise self.err(
            f"{name} is {_a(v.type)}, not true/false", node,
            f"compare it, e.g. {name} = …" if v.type != "null" else None,
        )


    def compare(self, node: ast.Compare, scope) -> Val:
        left = self.expr(node.left, scope)
        right = self.value(node.right, scope)
        return Val("bool", sql=self.compare_vals(left, node.op, right, node), agg=left.agg or right.agg, node=node)


    def compare_vals(self, left: Val, op: str, right: Val, node) -> exp.Expression:
        if left.is_literal and not right.is_literal:
            flip = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
            return self.compare_vals(right, flip, left, node)
        cls = _OPS[op]
        if right.type == "null":
            if op not in ("=", "!="):
                raise self.err("compare with null using is null / is not null", node)
            return _not(exp.paren(self.not_null(left))) if op == "=" else self.not_null(left)
        lt, rt = left.type, right.type
        if right.is_literal:
            value = right.literal
            if lt in ("param", "any"):
                if isinstance(value, bool):
                    return cls(this=left.num if lt == "param" else left.num, expression=exp.Literal.number(int(value)))
                if isinstance(value, int | float):
                    return cls(this=left.numeric(), expression=self.lit(value))
                return cls(this=self.exact(left.textual()), expression=self.lit(value))
            if lt in ("number", "int"):
                if isinstance(value, str):
                    hint = f"did you mean {value}?" if _is_number(value) else None
                    raise self.err(f"{_column_name(left.node)} is a number; compare it with a number", right.node or node, hint)
                return cls(this=left.sql, expression=self.lit(value))
            if lt == "bool":
                if not isinstance(value, bool | int) or op not in ("=", "!="):
                    raise self.err(f"{_column_name(left.node)} is true/false; compare it with = true or = false",
                                   right.node or node)
                cond = self.condition(left, node)
                return cond if bool(value) == (op == "=") else _not(exp.paren(cond))
            if lt == "time":
                if not isinstance(value, str):
                    raise self.err(f"{_column_name(left.node)} is a time; compare it with a date in quotes", right.node or node,
                                   'e.g. started > "2026-11-23"')
                return cls(this=left.sql, expression=self.time_literal(value, right.node or node))
            if lt == "text":
                if not isinstance(value, str):
                    raise self.err(f"{_column_name(left.node)} is text; compare it with a string", right.node or node,
                                   f'did you mean "{value}"?')
                return cls(this=self.exact(left.sql), expression=self.lit(value))
            raise self.err("cannot compare these", node)
        # two non-literal values
        numeric = {"number", "int", "bool"}
        if lt in numeric or rt in numeric:
            return cls(this=left.numeric(), expression=right.numeric())
        if lt == "time" and rt == "time":
            return cls(this=left.sql, expression=right.sql)
        return cls(this=self.exact(left.textual()), expression=self.exact(right.textual()))


    def call(self, node: ast.Call, scope) -> Val:
        name = node.name
        if name in AGGREGATES:
            if not isinstance(scope, GroupedFrame):
                if isinstance(scope, ColumnsFrame):
                    if ast.render(node) in scope.vals:
                        return scope.vals[ast.render(node)]
                    raise self.err(f"{name}() is not a column here", node,
                                   "show the aggregate before the limit on groups")
                hint = None
                if node.args and isinstance(node.args[0], ast.Field) and name in ("min", "max", "count", "mean", "avg"):
                    base = ast.render(node.args[0])
                    hint = f"for the {name} of a metric over its steps write {base}.{'mean' if name == 'avg' else name}; to aggregate over runs, group by first"
                raise self.err(f"{name}() aggregates groups of rows: use it after group by or in show", node,
                               hint)
            if name == "count" and (node.star or not node.args):
                return Val("int", sql=exp.func("COUNT", exp.Star()), agg=True, node=node)
            if len(node.args) != 1:
                raise self.err(f"{name}() takes one value", node)
            arg = self.expr(node.args[0], scope.inner)
            if arg.agg:
                raise self.err("aggregates cannot be nested", node)
            if name == "count":
                target = arg.columns()[0] if arg.type not in ("param", "any") else (arg.ptype if arg.type == "param" else arg.numeric())
                return Val("int", sql=exp.func("COUNT", target), agg=True, node=node)
            if name in ("min", "max"):
                if arg.type in ("time", "text", "int", "number"):
                    return Val(arg.type, sql=exp.func(name.upper(), arg.sql), agg=True, node=node)
                return Val("number", sql=exp.func(name.upper(), self.number_of(arg, node.args[0]).numeric()), agg=True, node=node)
            x = self.number_of(arg, node.args[0]).numeric()
            if arg.type == "bool":
                x = exp.Case(ifs=[exp.If(this=self.condition(arg, node.args[0]), true=exp.Literal.number(1))],
                             default=exp.Literal.number(0))
            if name in ("mean", "avg"):
                return Val("number", sql=exp.func("AVG", x), agg=True, node=node)
            if name == "sum":
                return Val("number", sql=exp.func("SUM", x), agg=True, node=node)
            return Val("number", sql=self.std(x), agg=True, node=node)
        if name in FUNCTIONS:
            args = [self.expr(a, scope) for a in node.args]
            if name == "abs" and len(args) == 1:
                return Val("number", sql=exp.func("ABS", self.number_of(args[0], node.args[0]).numeric()), agg=args[0].agg, node=node)
            if name == "round" and 1 <= len(args) <= 2:
                digits = [exp.Literal.number(int(args[1].literal))] if len(args) == 2 and args[1].is_literal and isinstance(args[1].literal, int) else []
                if len(args) == 2 and not digits:
                    raise self.err("round(x, n) needs a whole number n", node)
                x = self.number_of(args[0], node.args[0]).numeric()
                if self.dialect == "postgres":  # PostgreSQL rounds to n digits only NUMERIC
                    x = exp.cast(x, exp.DataType.build("DECIMAL"))
                return Val("number", sql=exp.func("ROUND", x, *digits),
                           agg=args[0].agg, node=node)
            if name in ("lower", "upper") and len(args) == 1:
                cls = exp.Lower if name == "lower" else exp.Upper
                return Val("text", sql=cls(this=args[0].textual()), agg=args[0].agg, node=node)
            if name == "coalesce" and args:
                types = {a.type for a in args if a.type != "null"}
                t = types.pop() if len(types) == 1 else "number"
                parts = [a.numeric() if t in ("number", "int") else a.textual() if t in ("text", "param", "any") else a.sql for a in args]
                return Val("text" if t in ("param", "any") else t, sql=exp.func("COALESCE", *parts), agg=any(a.agg for a in args), node=node)
            raise self.err(f"wrong number of arguments to {name}()", node)
        known = sorted(AGGREGATES | FUNCTIONS)
        from metastore.query.errors import did_you_mean

        raise self.err(f"unknown function {name}()", node, did_you_mean(name, known) or f"known: {', '.join(known)}")


# ---- the compiler --------------------------------------------------------------------------


class _Compiler(_Expressions):
    def __init__(self, query, dialect, catalog, experiment, inline):
        self.q = query
        self.text = query.text
        self.dialect = dialect
        self.catalog = catalog
        self.experiment = experiment
        self.inline = inline
        self.params: dict[str, Any] = {}
        self.ctes: list[tuple[str, exp.Expression]] = []
        self.ref_checks: list = []
        self.n = 0

    # -- helpers
    def alias(self, prefix: str) -> str:
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

    # -- entry
    def run(self) -> Compiled:
        src = self.q.source
        if isinstance(src, ast.LineageSource):
            check_ref(src.ref, self.text)
            frame = self.lineage_frame(src)
        else:
            kind = source_kind(src, self.text)
            frame = self.entity_frame(kind)
        for stage in self.q.stages:
            frame = frame.apply(stage)
        select, columns = frame.finish()
        if self.ctes:
            for name, body in self.ctes:
                select = select.with_(name, as_=body, recursive=True, copy=False)
        checks = [(ref, sel.sql(dialect=self.dialect)) for ref, sel, _ in self.ref_checks]
        shortcut = None
        if isinstance(frame, EntityFrame) and frame.shortcut is not None:
            fast, n = frame.shortcut
            if self.ctes:
                for name, body in self.ctes:
                    fast = fast.with_(name, as_=body.copy(), recursive=True, copy=False)
            shortcut = (fast.sql(dialect=self.dialect), n)
        return Compiled(select, self.dialect, self.params, columns, checks, shortcut)

    # -- sources
    def entity_frame(self, kind: SourceKind) -> EntityFrame:
        live_run = lambda r, e: _and(  # noqa: E731
            exp.Is(this=exp.column("deleted_at", table=r), expression=exp.null()),
            exp.Is(this=exp.column("deleted_at", table=e), expression=exp.null()),
        )
        if kind.rows == "run":
            sel = (
                exp.select()
                .from_(_t("run", "r"), copy=False)
                .join(_join(_t("experiment", "e"), on=_eq("e.id", "r.experiment_id"), left=False), copy=False)
            )
            where = [live_run("r", "e")]
            if self.experiment is not None:
                where.append(exp.EQ(this=self.col("e", "name"), expression=self.lit(self.experiment)))
            return EntityFrame(self, "run", sel, where, id_sql=self.col("r", "id"),
                               run_id=self.col("r", "id"))
        if kind.rows == "experiment":
            sel = exp.select().from_(_t("experiment", "e"), copy=False)
            where = [exp.Is(this=self.col("e", "deleted_at"), expression=exp.null())]
            if self.experiment is not None:
                where.append(exp.EQ(this=self.col("e", "name"), expression=self.lit(self.experiment)))
            return EntityFrame(self, "experiment", sel, where, id_sql=self.col("e", "id"))
        sel = (
            exp.select()
            .from_(_t("asset_version", "v"), copy=False)
            .join(_join(_t("asset", "a"), on=_eq("a.id", "v.asset_id"), left=False), copy=False)
        )
        where = []
        if kind.asset_kind:
            where.append(exp.EQ(this=self.col("a", "kind"), expression=self.lit(kind.asset_kind)))
        if self.experiment is not None:
            where.append(self.col("v", "id").isin(query=self.versions_of_experiment()))
        frame = EntityFrame(self, "version", sel, where, id_sql=self.col("v", "id"),
                            run_id=self.col("v", "created_by"))
        return frame

    def versions_of_experiment(self) -> exp.Select:
        """Ids of asset versions a live run of the scoped experiment used or produced."""
        runs = self.live_runs(self.experiment)
        used = (
            exp.select(_c("le.src_id")).from_(_t("lineage_edge", "le"), copy=False)
            .where(_and(exp.EQ(this=self.col("le", "src_type"), expression=self.lit("asset_version")),
                            exp.EQ(this=self.col("le", "dst_type"), expression=self.lit("run")),
                            self.col("le", "dst_id").isin(query=runs)), copy=False)
        )
        made = (
            exp.select(_c("le.dst_id")).from_(_t("lineage_edge", "le"), copy=False)
            .where(_and(exp.EQ(this=self.col("le", "dst_type"), expression=self.lit("asset_version")),
                            exp.EQ(this=self.col("le", "src_type"), expression=self.lit("run")),
                            self.col("le", "src_id").isin(query=self.live_runs(self.experiment))), copy=False)
        )
        return exp.select(_c("u.src_id")).from_(exp.union(used, made, distinct=True).subquery("u"), copy=False)

    def live_runs(self, experiment: str | None = None, dead: bool = False) -> exp.Select:
        cond = _and(exp.Is(this=self.col("lr", "deleted_at"), expression=exp.null()),
                        exp.Is(this=self.col("le2", "deleted_at"), expression=exp.null()))
        if dead:
            cond = _not(exp.paren(cond))
        sel = (
            exp.select(_c("lr.id")).from_(_t("run", "lr"), copy=False)
            .join(_join(_t("experiment", "le2"), on=_eq("le2.id", "lr.experiment_id"), left=False), copy=False)
            .where(cond, copy=False)
        )
        if experiment is not None:
            sel = sel.where(exp.EQ(this=self.col("le2", "name"), expression=self.lit(experiment)), copy=False)
        return sel

    def lineage_frame(self, src: ast.LineageSource) -> EntityFrame:
        reach = self.reach(src.ref, src.direction, src.depth)
        nodes = (
            exp.select(
                exp.column("node_type").as_("type"),
                exp.column("node_id").as_("id"),
                exp.func("MIN", exp.column("depth")).as_("depth"),
            )
            .from_(reach, copy=False)
            .group_by("node_type", "node_id", copy=False)
            .having(exp.func("MIN", exp.column("depth")) > exp.Literal.number(0), copy=False)
        )
        sel = (
            exp.select()
            .from_(nodes.subquery("n"), copy=False)
            .join(_join(_t("run", "r"),
                  on=_and(exp.EQ(this=self.col("n", "type"), expression=exp.Literal.string("run")),
                              exp.EQ(this=self.col("r", "id"), expression=self.col("n", "id"))),
                  left=True), copy=False)
            .join(_join(_t("experiment", "e"), on=_eq("e.id", "r.experiment_id"), left=True), copy=False)
            .join(_join(_t("asset_version", "v"),
                  on=_and(exp.EQ(this=self.col("n", "type"), expression=exp.Literal.string("asset_version")),
                              exp.EQ(this=self.col("v", "id"), expression=self.col("n", "id"))),
                  left=True), copy=False)
            .join(_join(_t("asset", "a"), on=_eq("a.id", "v.asset_id"), left=True), copy=False)
        )
        where = [
            _or(
                exp.NEQ(this=self.col("n", "type"), expression=exp.Literal.string("run")),
                _and(exp.Is(this=self.col("r", "deleted_at"), expression=exp.null()),
                         exp.Is(this=self.col("e", "deleted_at"), expression=exp.null())),
            )
        ]
        run_id = exp.func("COALESCE", self.col("r", "id"), self.col("v", "created_by"))
        return EntityFrame(self, "node", sel, where, id_sql=self.col("n", "id"), run_id=run_id)

    # -- lineage
    def seeds(self, ref: ast.Ref) -> tuple[str, exp.Select]:
        """(node type, SELECT of the ids a reference names)."""
        if ref.kind == "run":
            sel = (
                exp.select(_c("sr.id")).from_(_t("run", "sr"), copy=False)
                .join(_join(_t("experiment", "se"), on=_eq("se.id", "sr.experiment_id"), left=False), copy=False)
                .where(exp.Is(this=self.col("sr", "deleted_at"), expression=exp.null()), copy=False)
                .where(exp.Is(this=self.col("se", "deleted_at"), expression=exp.null()), copy=False)
            )
            value = ref.value
            experiment = self.experiment
            if isinstance(value, str) and "#" in value:
                experiment, _, number = value.rpartition("#")
                if not number.isdigit():
                    raise self.err(f"{value!r} is not experiment#number", ref)
                value = int(number)
            if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
                sel = sel.where(exp.EQ(this=self.col("sr", "number"), expression=self.lit(int(value))), copy=False)
            else:
                sel = sel.where(_or(exp.EQ(this=self.col("sr", "id"), expression=self.lit(value.upper())),
                                        exp.EQ(this=self.col("sr", "name"), expression=self.lit(value))), copy=False)
            if experiment is not None:
                sel = sel.where(exp.EQ(this=self.col("se", "name"), expression=self.lit(experiment)), copy=False)
            self.ref_checks.append((ref, sel, None))
            return "run", sel
        sel = (
            exp.select(_c("sv.id")).from_(_t("asset_version", "sv"), copy=False)
            .join(_join(_t("asset", "sa"), on=_eq("sa.id", "sv.asset_id"), left=False), copy=False)
            .where(exp.EQ(this=self.col("sa", "kind"), expression=self.lit(ref.kind)), copy=False)
            .where(exp.EQ(this=self.col("sa", "name"), expression=self.lit(str(ref.value))), copy=False)
        )
        if ref.version == "latest":
            latest = (
                exp.select(exp.func("MAX", exp.column("version", table="sv2")))
                .from_(_t("asset_version", "sv2"), copy=False)
                .where(_eq("sv2.asset_id", "sa.id"), copy=False)
            )
            sel = sel.where(exp.EQ(this=self.col("sv", "version"), expression=latest.subquery()), copy=False)
        elif ref.version is not None:
            sel = sel.where(exp.EQ(this=self.col("sv", "version"), expression=self.lit(int(ref.version))), copy=False)
        self.ref_checks.append((ref, sel, None))
        return "asset_version", sel

    def reach(self, ref: ast.Ref, direction: str, depth: int | None) -> exp.Table:
        """A recursive CTE of every (node_type, node_id, depth) reachable from `ref`."""
        node_type, seeds = self.seeds(ref)
        name = self.alias("reach")
        varchar = lambda n: exp.DataType.build(f"VARCHAR({n})")  # noqa: E731
        anchor = exp.select(
            exp.cast(exp.Literal.string(node_type), varchar(16)).as_("node_type"),
            exp.cast(exp.column("id", table="s0"), varchar(26)).as_("node_id"),
            exp.Literal.number(0).as_("depth"),
        ).from_(seeds.subquery("s0"), copy=False)
        near, far = ("src", "dst") if direction == "downstream" else ("dst", "src")
        step = (
            exp.select(
                exp.column(f"{far}_type", table="le"),
                exp.column(f"{far}_id", table="le"),
                exp.column("depth", table=name) + exp.Literal.number(1),
            )
            .from_(_t("lineage_edge", "le"), copy=False)
            .join(_join(
                _t(name),
                on=_and(
                    exp.EQ(this=exp.column(f"{near}_type", table="le"), expression=exp.column("node_type", table=name)),
                    exp.EQ(this=exp.column(f"{near}_id", table="le"), expression=exp.column("node_id", table=name)),
                ),
            ), copy=False)
            .where(exp.column("depth", table=name) < exp.Literal.number(min(depth or MAX_DEPTH, MAX_DEPTH)), copy=False)
            .where(
                _not(exp.paren(_and(
                    exp.EQ(this=exp.column(f"{far}_type", table="le"), expression=exp.Literal.string("run")),
                    exp.column(f"{far}_id", table="le").isin(query=self.live_runs(dead=True)),
                )))
            , copy=False)
        )
        body = exp.union(anchor, step, distinct=True)
        self.ctes.append((f"{name}(node_type, node_id, depth)", body))
        return _t(name)

    def lineage_predicate(self, node: ast.Lineage, frame: EntityFrame) -> exp.Expression:
        check_ref(node.ref, self.text)
        if frame.rows == "experiment":
            raise self.err("lineage predicates apply to runs, assets and lineage rows", node)
        row_id = frame.id_sql
        if node.relation in ("upstream", "downstream"):
            # rows upstream of REF are found walking up from REF, and vice versa
            walk = "upstream" if node.relation == "upstream" else "downstream"
            reach = self.reach(node.ref, walk, node.depth)
            ids = (
                exp.select(_c("rc.node_id")).from_(reach.as_("rc"), copy=False)
                .where(exp.column("depth", table="rc") > exp.Literal.number(0), copy=False)
            )
            return row_id.isin(query=ids)
        node_type, seeds = self.seeds(node.ref)
        relation = "used" if node.relation in ("uses", "used_by") else "produced"
        # uses / produced by: REF → row;  used by / produced: row → REF
        ref_is_src = node.relation in ("uses", "produced_by")
        ref_end, row_end = ("src", "dst") if ref_is_src else ("dst", "src")
        ids = (
            exp.select(exp.column(f"{row_end}_id", table="le"))
            .from_(_t("lineage_edge", "le"), copy=False)
            .where(exp.EQ(this=exp.column("relation", table="le"), expression=self.lit(relation)), copy=False)
            .where(exp.EQ(this=exp.column(f"{ref_end}_type", table="le"), expression=self.lit(node_type)), copy=False)
            .where(exp.column(f"{ref_end}_id", table="le").isin(query=seeds), copy=False)
        )
        return row_id.isin(query=ids)

    # -- dialect-specific pieces
    def duration(self, started, ended) -> exp.Expression:
        if self.dialect == "sqlite":
            diff = exp.Sub(this=exp.func("JULIANDAY", ended), expression=exp.func("JULIANDAY", started))
            return exp.Mul(this=exp.paren(diff), expression=exp.Literal.number("86400.0"))
        if self.dialect == "mysql":
            micro = exp.Anonymous(this="TIMESTAMPDIFF", expressions=[exp.var("MICROSECOND"), started, ended])
            return exp.Div(this=micro, expression=exp.Literal.number("1000000.0"))
        return exp.Extract(this=exp.var("EPOCH"), expression=exp.paren(exp.Sub(this=ended, expression=started)))

    def concat(self, *parts) -> exp.Expression:
        out = parts[0]
        for p in parts[1:]:
            out = exp.DPipe(this=out, expression=p, safe=True)
        return out

    def as_text(self, e) -> exp.Expression:
        return exp.cast(e, exp.DataType.build("VARCHAR(40)"))

    def exact(self, e: exp.Expression) -> exp.Expression:
        """Text compared case- and space-exactly on MySQL/MariaDB too."""
        if self.dialect == "mysql":
            return exp.Collate(this=e, expression=exp.var("utf8mb4_bin"))
        return e

    def std(self, x: exp.Expression) -> exp.Expression:
        if self.dialect != "sqlite":
            return exp.func("STDDEV_SAMP", x)
        # SQLite has no STDDEV: the sample standard deviation from sums (clamped at 0
        # against rounding), NULL for fewer than two values, as elsewhere.
        n = exp.func("COUNT", x)
        s = exp.func("SUM", x)
        ss = exp.func("SUM", exp.Mul(this=x, expression=x))
        var = exp.Div(
            this=exp.paren(exp.Sub(this=ss, expression=exp.Div(this=exp.Mul(this=s, expression=s),
                                                                expression=n))),
            expression=exp.paren(exp.Sub(this=n, expression=exp.Literal.number(1))),
        )
        safe = exp.Case(ifs=[exp.If(this=exp.LT(this=var, expression=exp.Literal.number(0)),
                                    true=exp.Literal.number(0))], default=var)
        return exp.Case(
            ifs=[exp.If(this=n > exp.Literal.number(1), true=exp.func("SQRT", safe))],
            default=exp.null(),
        )

    def time_literal(self, value: str, node) -> exp.Expression:
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise self.err(
                f"{value!r} is not a date or time", node,
                'write it like "2026-11-23" or "2026-11-23 09:30"',
            ) from None
        if t.tzinfo is not None:
            from datetime import UTC

            t = t.astimezone(UTC).replace(tzinfo=None)
        text = t.strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.dialect == "sqlite":
            return self.lit(text)
        if self.dialect == "mysql":  # DATETIME alone would drop the microseconds
            return exp.cast(self.lit(text), exp.DataType.build("DATETIME(6)", dialect="mysql"))
        return exp.cast(self.lit(text), exp.DataType.build("TIMESTAMP"))


# ---- frames ----------------------------------------------------------------------------------


class EntityFrame:
    """Rows of one entity (runs, experiments, asset versions, lineage nodes)."""

    def __init__(self, c: _Compiler, rows: str, select: exp.Select, where: list,
                 id_sql: exp.Expression, run_id: exp.Expression | None = None):
        self.c = c
        self.rows = rows
        self.select = select
        self.where = list(where)
        self.id_sql = id_sql
        self.run_id = run_id
        self.joins: dict[tuple, str] = {}
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.aliases: dict[str, Val] = {}
        self.projection: list[tuple[str, Val]] | None = None
        self.mentioned: list[tuple[str, Val]] = []

    # -- stages
    def apply(self, stage) -> Any:
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    self.seal()
                v = self.expr(cond)
                self.where.append(self.c.condition(v, cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    self.seal()
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per:
                    self.seal_per(n, per)
                elif self.limit is not None:
                    self.limit = min(self.limit, n)
                else:
                    self.limit = n
            case ast.GroupBy(keys=keys):
                if self.limit is not None:
                    self.seal()
                return GroupedFrame(self, keys)
            case ast.Show(items=items):
                if any(_has_aggregate(i.expr) for i in items):
                    if self.limit is not None:
                        self.seal()
                    return GroupedFrame(self, ()).apply(stage)
                self.projection = []
                for item in items:
                    v = self.expr(item.expr)
                    name = item.alias or _column_name(item.expr)
                    self.projection.append((name, v))
                self.aliases.update({n: v for n, v in self.projection})
        return self

    def seal(self) -> None:
        """Freeze the rows so far (filters, order, limit) into a subquery of ids."""
        inner = self.build(ids_only=True)
        s = self.c.alias("s")
        ids = exp.select(exp.column("id", table=s)).from_(inner.subquery(s), copy=False)
        self.where = [self.id_sql.isin(query=ids)]
        self.limit = None

    def seal_per(self, n: int, per: tuple) -> None:
        keys = [k for e in per for k in self.expr(e).group_keys()]
        order = self.order_sql()
        rn = exp.Window(this=exp.func("ROW_NUMBER"), partition_by=keys, order=exp.Order(expressions=order))
        inner = self.build(ids_only=True, extra=[rn.as_("rn")])
        s = self.c.alias("s")
        ids = (
            exp.select(exp.column("id", table=s)).from_(inner.subquery(s), copy=False)
            .where(exp.column("rn", table=s) <= exp.Literal.number(n), copy=False)
        )
        self.where = [self.id_sql.isin(query=ids)]
        self.limit = None

    def order_sql(self) -> list[exp.Ordered]:
        if not self.order:
            # no order asked for: the rows' natural order, so answers are stable
            return [exp.Ordered(this=k) for k in self.natural_order()]
        out = []
        for v, desc in self.order:
            for k in v.sort_keys():
                out.append(exp.Ordered(this=k, desc=desc, nulls_first=False))
        if out:
            out.append(exp.Ordered(this=self.id_sql))  # ties break the same on every database
        return out

    def natural_order(self) -> list[exp.Expression]:
        col = self.c.col
        return {
            "run": [col("e", "id"), col("r", "number")],
            "experiment": [col("e", "id")],
            "version": [col("a", "kind"), col("a", "name"), col("v", "version")],
            "node": [col("n", "depth"), col("n", "type"), col("n", "id")],
        }[self.rows]

    def build(self, ids_only: bool = False, extra=(), final: bool = False) -> exp.Select:
        sel = self.select if final else self.select.copy()
        if ids_only:
            sel = sel.select(self.id_sql.copy().as_("id"), *extra, append=False, copy=False)
        if self.where:
            sel = sel.where(_and(*self.where), append=False, copy=False)
        if not extra:
            order = self.order_sql()
            if order and (self.limit is not None or not ids_only):
                sel = sel.order_by(*order, append=False, copy=False)
            if self.limit is not None:
                sel = sel.limit(self.limit, copy=False)
        return sel

    def finish(self) -> tuple[exp.Select, list[Column]]:
        projection = self.projection or self.default_projection()
        select, columns = self.c.project(self.build(final=True), projection)
        self.shortcut = self.top_rows_shortcut(select)
        return select, columns

    shortcut: tuple[exp.Select, int] | None = None

    def top_rows_shortcut(self, select: exp.Select) -> tuple[exp.Select, int] | None:
        """`order by rmse limit k`: nulls sort last, so when at least k rows have an rmse
        the answer is the first k of the rows that have one. That query can INNER JOIN
        the metric and walk its (key, last) index instead of reading every run; if it
        returns fewer than k rows the runner falls back to the full statement."""
        if self.limit is None or not self.order:
            return None
        first = self.order[0][0]
        if first.type not in ("number", "int") or not isinstance(first.sql, exp.Column):
            return None
        alias = first.sql.table
        if not alias or alias not in self.joins.values():
            return None
        fast = select.copy()
        for join in fast.args.get("joins") or []:
            if join.alias_or_name == alias and join.side == "LEFT":
                join.set("side", None)
                return fast, self.limit
        return None

    def default_projection(self) -> list[tuple[str, Val]]:
        names = {
            "run": ["experiment", "number", "name", "status"],
            "experiment": ["name", "runs", "created", "description"],
            "version": ["kind", "name", "version", "digest", "size", "created_by"],
            "node": ["depth", "type", "ref", "kind", "name", "version"],
        }[self.rows]
        out = [(n, self.field(ast.Field(parts=(n,), quoted=(False,)))) for n in names]
        seen = set(names)
        for name, v in self.mentioned:
            if name not in seen:
                seen.add(name)
                out.append((name, v))
        return out

    # -- names
    def expr(self, node: ast.Expr) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        if len(f.parts) == 1 and name in self.aliases:
            return self.aliases[name]
        try:
            b = bind(f, self.rows, self.c.catalog, self.c.text)
        except QueryError as e:
            if as_value and len(f.parts) == 1 and e.message.startswith("unknown field"):
                # `algorithm = linear`: a bare word where a string was meant
                e.suggestion = e.hint = f'did you mean the string "{name}"?'
            raise
        v = self.binding(b)
        v.node = f
        if not isinstance(b, Attr):
            self.mentioned.append((name, v))
        return v

    def join(self, key: tuple, table: str, prefix: str, on) -> str:
        if key not in self.joins:
            a = self.c.alias(prefix)
            self.joins[key] = a
            self.select = self.select.join(_join(_t(table, a), on=on(a), left=True), copy=False)
        return self.joins[key]

    def binding(self, b) -> Val:
        c = self.c
        if isinstance(b, Attr):
            return Val(b.type, sql=self.attribute(b.name))
        if isinstance(b, MetricRef):
            if b.agg == "mean":
                sub = (
                    exp.select(exp.func("AVG", exp.column("value", table="mh")))
                    .from_(_t("metric", "mh"), copy=False)
                    .where(exp.EQ(this=exp.column("run_id", table="mh"), expression=self.run_id), copy=False)
                    .where(exp.EQ(this=exp.column("key", table="mh"), expression=c.lit(b.key)), copy=False)
                )
                return Val("number", sql=sub.subquery())
            a = self.metric_join(b.key)
            column = {"count": "count", "last_step": "last_step"}.get(b.agg, b.agg)
            return Val("int" if b.agg in ("count", "last_step") else "number",
                       sql=exp.column(column, table=a))
        if isinstance(b, ParamRef):
            a = self.param_join(b.key)
            return Val("param", num=exp.column("num", table=a), text=exp.column("text", table=a),
                       ptype=exp.column("type", table=a))
        if isinstance(b, TagRef):
            return Val("text", sql=exp.column("value", table=self.tag_join(b.key)))
        if isinstance(b, AnyRef):
            m, p, t = self.metric_join(b.key), self.param_join(b.key), self.tag_join(b.key)
            return Val("any", metric=exp.column("last", table=m), num=exp.column("num", table=p),
                       text=exp.column("text", table=p), ptype=exp.column("type", table=p),
                       tag=exp.column("value", table=t))
        raise AssertionError(b)

    def metric_join(self, key: str) -> str:
        c = self.c
        return self.join(("m", key), "metric_summary", "m", lambda a: _and(
            exp.EQ(this=exp.column("run_id", table=a), expression=self.run_id.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def param_join(self, key: str) -> str:
        c = self.c
        return self.join(("p", key), "param", "p", lambda a: _and(
            exp.EQ(this=exp.column("run_id", table=a), expression=self.run_id.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def tag_join(self, key: str) -> str:
        c = self.c
        if self.rows == "node":
            entity = self.c.col("n", "type")
        else:
            entity = c.lit({"run": "run", "experiment": "experiment", "version": "asset_version"}[self.rows])
        return self.join(("t", key), "tag", "t", lambda a: _and(
            exp.EQ(this=exp.column("entity_type", table=a), expression=entity),
            exp.EQ(this=exp.column("entity_id", table=a), expression=c.as_text(self.id_sql.copy()) if self.rows == "experiment" else self.id_sql.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def attribute(self, name: str) -> exp.Expression:
        c = self.c
        col = c.col
        if self.rows == "run":
            simple = {"id": "id", "number": "number", "name": "name", "status": "status",
                      "started": "started", "ended": "ended", "user": "user", "host": "host",
                      "commit": "git_commit", "branch": "git_branch", "dirty": "git_dirty",
                      "command": "command", "parent": "parent_id", "source": "source"}
            if name in simple:
                return col("r", simple[name])
            if name == "experiment":
                return col("e", "name")
            if name == "duration":
                return c.duration(col("r", "started"), col("r", "ended"))
            if name == "ref":
                return c.concat(col("e", "name"), exp.Literal.string("#"), c.as_text(col("r", "number")))
            if name == "project":
                return self.project("e")
        if self.rows == "experiment":
            if name in ("id", "name", "description", "created"):
                return col("e", name)
            if name == "project":
                return self.project("e")
            if name == "runs":
                return (
                    exp.select(exp.func("COUNT", exp.Star())).from_(_t("run", "rc"), copy=False)
                    .where(_eq("rc.experiment_id", "e.id"), copy=False).where(exp.Is(this=exp.column("deleted_at", table="rc"), expression=exp.null()), copy=False)
                ).subquery()
        if self.rows in ("version", "node"):
            simple = {"digest": "digest", "size": "size", "uri": "uri", "media_type": "media_type",
                      "created": "created", "version": "version"}
            if name in simple:
                return col("v", simple[name])
            if name == "asset":
                return c.concat(col("a", "kind"), exp.Literal.string(":"), col("a", "name"))
            if name == "created_by":
                return self.run_ref(col("v", "created_by"))
            if name == "latest":
                latest = (
                    exp.select(exp.func("MAX", exp.column("version", table="lv")))
                    .from_(_t("asset_version", "lv"), copy=False).where(_eq("lv.asset_id", "v.asset_id"), copy=False)
                )
                return exp.paren(exp.EQ(this=col("v", "version"), expression=latest.subquery()))
            if name == "project":
                return self.project("a")
        if self.rows == "version":
            if name in ("id", "kind"):
                return col("v", "id") if name == "id" else col("a", "kind")
            if name == "name":
                return col("a", "name")
            if name == "ref":
                return self.version_ref()
        if self.rows == "node":
            if name in ("type", "id", "depth"):
                return col("n", name)
            if name == "kind":
                return exp.func("COALESCE", col("a", "kind"), exp.Literal.string("run"))
            if name == "name":
                return exp.func("COALESCE", col("a", "name"), col("r", "name"))
            if name in ("number", "status", "started", "ended"):
                return col("r", name)
            if name == "experiment":
                return col("e", "name")
            if name == "ref":
                return exp.func(
                    "COALESCE",
                    c.concat(col("e", "name"), exp.Literal.string("#"), c.as_text(col("r", "number"))),
                    self.version_ref(),
                )
        raise AssertionError(f"attribute {name} of {self.rows}")

    def version_ref(self) -> exp.Expression:
        c = self.c
        return c.concat(c.col("a", "kind"), exp.Literal.string(":"), c.col("a", "name"),
                        # ":" and "v" apart: ":v" would read as a bind parameter
                        exp.Literal.string(":"), exp.Literal.string("v"),
                        c.as_text(c.col("v", "version")))

    def run_ref(self, run_id: exp.Expression) -> exp.Expression:
        sub = (
            exp.select(self.c.concat(exp.column("name", table="ce"), exp.Literal.string("#"),
                                     self.c.as_text(exp.column("number", table="cr"))))
            .from_(_t("run", "cr"), copy=False)
            .join(_join(_t("experiment", "ce"), on=_eq("ce.id", "cr.experiment_id"), left=False), copy=False)
            .where(exp.EQ(this=exp.column("id", table="cr"), expression=run_id), copy=False)
        )
        return sub.subquery()

    def project(self, table: str) -> exp.Expression:
        sub = (
            exp.select(exp.column("name", table="pj")).from_(_t("project", "pj"), copy=False)
            .where(exp.EQ(this=exp.column("id", table="pj"), expression=exp.column("project_id", table=table)), copy=False)
        )
        return sub.subquery()


class GroupedFrame:
    """Groups of an entity frame's rows: `group by` keys, aggregates, HAVING."""

    def __init__(self, inner: EntityFrame, keys: tuple):
        self.inner = inner
        self.c = inner.c
        self.keys: list[tuple[str, Val, ast.Expr]] = []
        for k in keys:
            v = inner.expr(k)
            if v.agg:
                raise self.c.err("cannot group by an aggregate", k)
            self.keys.append((_column_name(k), v, k))
        self.having: list = []
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.aliases: dict[str, Val] = {}
        self.projection: list[tuple[str, Val]] | None = None

    def apply(self, stage):
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    return self.sealed().apply(stage)
                self.having.append(self.c.condition(self.expr(cond), cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    return self.sealed().apply(stage)
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per or self.limit is not None:
                    return self.sealed().apply(stage)
                self.limit = n
            case ast.GroupBy():
                return self.sealed().apply(stage)
            case ast.Show(items=items):
                self.projection = []
                for item in items:
                    self.projection.append((item.alias or _column_name(item.expr), self.expr(item.expr)))
                self.aliases.update({n: v for n, v in self.projection})
        return self

    def expr(self, node) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        for key_name, v, _ in self.keys:
            if key_name == name:
                return v
        if len(f.parts) == 1 and name in self.aliases:
            return self.aliases[name]
        # a name that is a key under another spelling (metrics.rmse vs rmse)
        v = self.inner.field(f, as_value)
        for _, kv, _ in self.keys:
            if [x.sql(self.c.dialect) for x in kv.group_keys()] == [x.sql(self.c.dialect) for x in v.group_keys()]:
                return kv
        raise self.c.err(
            f"{name!r} is not a group key",
            f,
            f"use an aggregate such as mean({name}) or count(), or add it to group by",
        )

    def build(self) -> exp.Select:
        sel = self.inner.build()
        sel.set("order", None)
        sel.set("limit", None)
        group = [k for _, v, _ in self.keys for k in v.group_keys()]
        if group:
            sel = sel.group_by(*group, copy=False)
        if self.having:
            sel = sel.having(_and(*self.having), copy=False)
        order = []
        for v, desc in self.order:
            order += [exp.Ordered(this=k, desc=desc, nulls_first=False) for k in v.sort_keys()]
        # ties between groups break by the keys, the same on every database
        order += [exp.Ordered(this=k, nulls_first=False) for k in group]
        if order:
            sel = sel.order_by(*order, copy=False)
        if self.limit is not None:
            sel = sel.limit(self.limit, copy=False)
        return sel

    def output(self) -> list[tuple[str, Val]]:
        if self.projection is not None:
            return self.projection
        out = [(n, v) for n, v, _ in self.keys]
        return out + [("count()", Val("int", sql=exp.func("COUNT", exp.Star()), agg=True))]

    def finish(self):
        return self.c.project(self.build(), self.output())

    def sealed(self) -> ColumnsFrame:
        select, columns = self.finish()
        names = [n for n, _ in self.output()]
        vals = [v for _, v in self.output()]
        return ColumnsFrame(self.c, select, columns, names, vals)


class ColumnsFrame:
    """Rows of an earlier result (grouped rows after a limit), by column name."""

    def __init__(self, c: _Compiler, select, columns: list[Column], names, vals):
        self.c = c
        self.alias = c.alias("g")
        self.select = exp.select().from_(select.subquery(self.alias), copy=False)
        self.vals: dict[str, Val] = {}
        i = 0
        for name, col, v in zip(names, columns, vals, strict=True):
            parts = [exp.column(f"c{i + j}", table=self.alias) for j in range(col.width)]
            i += col.width
            if v.type == "param":
                nv = Val("param", ptype=parts[0], text=parts[1], num=exp.cast(parts[1], "DOUBLE"))
            elif v.type == "any":
                nv = Val("any", metric=parts[0], ptype=parts[1], text=parts[2], tag=parts[3],
                         num=exp.cast(parts[2], "DOUBLE"))
            else:
                nv = Val(v.type, sql=parts[0])
            self.vals[name] = nv
        self.where: list = []
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.projection: list[tuple[str, Val]] | None = None

    def apply(self, stage):
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    return self.resealed().apply(stage)
                self.where.append(self.c.condition(self.expr(cond), cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    return self.resealed().apply(stage)
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per:
                    raise self.c.err("limit … per works on runs and assets, before group by", stage)
                self.limit = n if self.limit is None else min(n, self.limit)
            case ast.GroupBy():
                raise self.c.err("group by a second time is not supported", stage)
            case ast.Show(items=items):
                self.projection = [(i.alias or _column_name(i.expr), self.expr(i.expr)) for i in items]
        return self

    def expr(self, node) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        if name in self.vals:
            return self.vals[name]
        raise self.c.err(
            f"{name!r} is not a column here", f,
            f"after a limit on groups the columns are: {', '.join(self.vals)}",
        )

    def build(self) -> exp.Select:
        sel = self.select.copy()
        if self.where:
            sel = sel.where(_and(*self.where), copy=False)
        order = []
        for v, desc in self.order:
            order += [exp.Ordered(this=k, desc=desc, nulls_first=False) for k in v.sort_keys()]
        if order:
            sel = sel.order_by(*order, copy=False)
        if self.limit is not None:
            sel = sel.limit(self.limit, copy=False)
        return sel

    def finish(self):
        proj = self.projection or list(self.vals.items())
        return self.c.project(self.build(), proj)

    def resealed(self) -> ColumnsFrame:
        select, columns = self.finish()
        proj = self.projection or list(self.vals.items())
        return ColumnsFrame(self.c, select, columns, [n for n, _ in proj], [v for _, v in proj])


def _column_name(e: ast.Expr) -> str:
    if isinstance(e, ast.Field):
        return ".".join(e.parts)
    return ast.render(e)


def _has_aggregate(e) -> bool:
    if isinstance(e, ast.Call) and e.name in AGGREGATES:
        return True
    for v in getattr(e, "__dict__", {}).values():
        if isinstance(v, ast.Expr) and _has_aggregate(v):
            return True
        if isinstance(v, tuple) and any(isinstance(x, ast.Expr) and _has_aggregate(x) for x in v):
            return True
    return False


def _glob_to_like(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch in "!%_":
            out.append("!" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _a(t: str) -> str:
    return {"text": "text", "time": "a time", "number": "a number", "int": "a number",
            "null": "null", "bool": "true/false"}.get(t, t)


__all__ = ["compile_query", "Compiled", "Column", "ATTRS", "dialect_name"]
