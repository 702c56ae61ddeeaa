"""The typed syntax tree of a query, as the parser builds it.

Every node keeps its place in the text (`Pos`) so later stages can point a caret at
it. Nodes are plain frozen dataclasses: the resolver and compiler never mutate them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pos:
    line: int
    column: int
    start: int  # character offsets into the query text
    end: int


NOWHERE = Pos(1, 1, 0, 0)


# ---- expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    pos: Pos = field(default=NOWHERE, compare=False, kw_only=True)


@dataclass(frozen=True)
class Literal(Expr):
    value: Any  # int | float | str | bool | None


@dataclass(frozen=True)
class Field(Expr):
    """A name, possibly qualified: `rmse`, `metrics.rmse`, `loss.min`, `` `train/loss` ``."""

    parts: tuple[str, ...]
    quoted: tuple[bool, ...] = ()

    @property
    def text(self) -> str:
        quoted = self.quoted or (False,) * len(self.parts)
        return ".".join(
            f"`{p.replace('`', '``')}`" if q else p for p, q in zip(self.parts, quoted, strict=True)
        )


@dataclass(frozen=True)
class Call(Expr):
    """A function or aggregate call: count(), mean(rmse), std(r2)."""

    name: str
    args: tuple[Expr, ...]
    star: bool = False


@dataclass(frozen=True)
class Arith(Expr):
    op: str  # + - * /
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # = != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class In(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Contains(Expr):
    """`text contains "word"`: a case-insensitive substring test."""

    operand: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Matches(Expr):
    """`text matches "diverged epoch"`: every word of the pattern is a word of the text
    (metastore/fulltext.py says what a word is; a note's text uses the note index)."""

    operand: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Like(Expr):
    operand: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Regex(Expr):
    operand: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class And(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Config(Expr):
    """`config` in a group by: a run's params (but `excluded`) and its input versions."""

    excluded: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ref:
    """A lineage end named in a query.

    Written compactly, as the CLI and Python write references (`diabetes#4`, `run:4`,
    `model:regressor@3`, `model:regressor` for its latest version), or spelled out
    (`run 4`, `run "diabetes#4"`, `model "regressor" version 3`, `model "regressor"` for
    every version). Both forms of one reference parse to equal Refs."""

    kind: str  # "run" or an asset kind
    value: str | int
    version: int | str | None = None  # a number, "latest", or None for every version
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def text(self) -> str:
        """The reference as the query language prints it: the compact form where there
        is one, so it can be pasted back into a query or a command."""
        value = str(self.value)
        if self.kind == "run":
            if isinstance(self.value, str) and RUN_REF.fullmatch(value):
                return value
            if COMPACT_NAME.fullmatch(value) and not (isinstance(self.value, str) and value.isascii() and value.isdigit()):
                return f"run:{value}"
            return f"run {_quote(value) if isinstance(self.value, str) else value}"
        if self.version is None:  # `kind:name` alone would mean the latest version
            return f"{self.kind} {_quote(value)}"
        if COMPACT_NAME.fullmatch(value):
            return f"{self.kind}:{value}@{self.version}"
        return f"{self.kind} {_quote(value)} version {self.version}"


# What the grammar's COMPACT_REF and RUN_REF accept as a name (grammar/query.lark).
COMPACT_NAME = re.compile(r"[^\s@,()\[\]\"'`]+")
RUN_REF = re.compile(r"[^\s@#:,()\[\]\"'`]+#[0-9]+")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Lineage(Expr):
    """A lineage predicate: the row is related to `ref` through lineage edges.

    relation: uses (ref → row by a `used` edge), used_by (row → ref by `used`),
    produced (row → ref by `produced`), produced_by (ref → row by `produced`),
    downstream (ref →…→ row), upstream (row →…→ ref). `depth` bounds the hops."""

    relation: str
    ref: Ref
    depth: int | None = None


# ---- sources and stages ------------------------------------------------------------------


@dataclass(frozen=True)
class EntitySource:
    name: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class LineageSource:
    direction: str  # upstream | downstream
    ref: Ref
    depth: int | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


Source = EntitySource | LineageSource


@dataclass(frozen=True)
class Where:
    condition: Expr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class OrderItem:
    expr: Expr
    desc: bool = False


@dataclass(frozen=True)
class OrderBy:
    items: tuple[OrderItem, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Limit:
    count: int
    per: tuple[Expr, ...] = ()
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class GroupBy:
    keys: tuple[Expr, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class ShowItem:
    expr: Expr
    alias: str | None = None


@dataclass(frozen=True)
class Show:
    items: tuple[ShowItem, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


Stage = Where | OrderBy | Limit | GroupBy | Show


@dataclass(frozen=True)
class Query:
    source: Source
    stages: tuple[Stage, ...]
    text: str = field(default="", compare=False)


def render(e: Expr) -> str:
    """The canonical text of an expression: used for column names ("mean(rmse)")."""
    match e:
        case Literal(value=v):
            if v is None:
                return "null"
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return _quote(v)
            return repr(v)
        case Field():
            return e.text
        case Call(name=n, args=a, star=s):
            return f"{n}({'*' if s else ', '.join(render(x) for x in a)})"
        case Arith(op=op, left=left, right=right):
            return f"{_operand(left, op, False)} {op} {_operand(right, op, True)}"
        case Neg(operand=o):
            return f"-{render(o)}"
        case Compare(op=op, left=left, right=right):
            return f"{render(left)} {op} {render(right)}"
        case And(items=items):
            return " and ".join(render(i) for i in items)
        case Or(items=items):
            return "(" + " or ".join(render(i) for i in items) + ")"
        case Not(operand=o):
            return f"not {render(o)}"
        case In(operand=o, items=items, negated=n):
            return f"{render(o)} {'not in' if n else 'in'} ({', '.join(render(i) for i in items)})"
        case Contains(operand=o, pattern=p, negated=n):
            return f"{render(o)} {'not contains' if n else 'contains'} {render(p)}"
        case Matches(operand=o, pattern=p, negated=n):
            return f"{render(o)} {'not matches' if n else 'matches'} {render(p)}"
        case Like(operand=o, pattern=p, negated=n):
            return f"{render(o)} {'not like' if n else 'like'} {render(p)}"
        case Regex(operand=o, pattern=p, negated=n):
            return f"{render(o)} {'!~' if n else '~'} {render(p)}"
        case Between(operand=o, low=lo, high=hi, negated=n):
            return f"{render(o)} {'not between' if n else 'between'} {render(lo)} and {render(hi)}"
        case IsNull(operand=o, negated=n):
            return f"{render(o)} is {'not null' if n else 'null'}"
        case Config():
            return "config"
        case Lineage(relation=r, ref=ref, depth=d):
            return f"{_RELATION_WORDS[r]} {ref.text}" + (f" depth {d}" if d else "")
    return "?"


_RELATION_WORDS = {"uses": "uses", "used_by": "used by", "produced": "produced",
                   "produced_by": "produced by", "upstream": "upstream of", "downstream": "downstream of"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _operand(e: Expr, op: str, right: bool) -> str:
    text = render(e)
    if isinstance(e, Arith):
        inner, outer = _PRECEDENCE[e.op], _PRECEDENCE[op]
        if inner < outer or (right and inner == outer and op in "-/"):
            return f"({text})"
    return text
