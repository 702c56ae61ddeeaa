"""sqlglot node builders shared by the compiler's stages.

They build nodes directly rather than through sqlglot's string-accepting helpers: parsing
("e.id") and copying made up most of the compile time of a query.
"""

from __future__ import annotations

from sqlglot import exp


def c(ref: str) -> exp.Column:
    """`"e.id"` as a column."""
    table, _, name = ref.rpartition(".")
    return exp.column(name, table=table or None)


def eq(a: str, b: str) -> exp.EQ:
    return exp.EQ(this=c(a), expression=c(b))


def join(table: exp.Expression, on: exp.Expression, left: bool = False) -> exp.Join:
    """A JOIN node built directly: given one, sqlglot's `join` neither parses nor copies."""
    return exp.Join(this=table, on=on, side="LEFT" if left else None)


def table(name: str, alias: str | None = None) -> exp.Table:
    t = exp.Table(this=exp.to_identifier(name))
    if alias:
        t.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return t


def and_(*conds) -> exp.Expression:
    return exp.and_(*conds, copy=False)


def or_(*conds) -> exp.Expression:
    return exp.or_(*conds, copy=False)


def not_(cond) -> exp.Expression:
    return exp.not_(cond, copy=False)


def is_null(e: exp.Expression) -> exp.Is:
    return exp.Is(this=e, expression=exp.null())


def concat(*parts) -> exp.Expression:
    out = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=out, expression=p, safe=True)
    return out


def as_text(e) -> exp.Expression:
    return exp.cast(e, exp.DataType.build("VARCHAR(40)"))
