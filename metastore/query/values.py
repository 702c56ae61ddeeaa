"""Compiled values and their types: what an expression becomes before it is placed in SQL.

A value's type decides how it may be compared, sorted, grouped and shown. The types are
number, int, text, time, bool, param, any and null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from metastore.query import ast


@dataclass
class Val:
    """A compiled value.

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
    # How to sort when the text would sort wrongly: `ref` sorts diabetes#2 before
    # diabetes#10 by (experiment, number), not as text.
    order: list[exp.Expression] | None = None
    #: The param's key, for a check of its stored types against what it is compared with.
    key: str | None = None
    #: The note's id when the value is a note's text: `matches` then asks the note index.
    note_id: exp.Expression | None = None

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
        if self.order:
            return self.order
        if self.type == "param":
            return [self.num, self.text]
        if self.type == "any":
            return [self.numeric(), self.textual()]
        return [self.sql]

    def group_keys(self) -> list[exp.Expression]:
        if self.order:  # grouped by them too, so groups can be sorted by them
            return [self.sql, *self.order]
        if self.type == "param":
            return [self.ptype, self.num, self.text]
        if self.type == "any":
            return [self.metric, self.ptype, self.num, self.text, self.tag]
        return [self.sql]


@dataclass
class Column:
    """An output column: its name, how the runner decodes it, how many SQL columns it takes."""

    name: str
    type: str
    width: int


def literal_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    return "text"


def a_type(t: str) -> str:
    """A type as a sentence says it: "rmse is a number"."""
    return {"text": "text", "time": "a time", "number": "a number", "int": "a number",
            "null": "null", "bool": "true/false"}.get(t, t)


def column_name(e: ast.Expr) -> str:
    """The name of the column an expression shows as, without an `as`."""
    if isinstance(e, ast.Field):
        return ".".join(e.parts)
    return ast.render(e)
