"""Parse query text into the typed AST (metastore.query.ast) with the Lark grammar.

The grammar file lives in `grammar/query.lark` (found through metastore.resources, so a
checkout and an installed wheel both work). The parser is built once per process.
"""

from __future__ import annotations

import ast as pyast
import functools
import math
import re
import sys

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from metastore.query import ast
from metastore.query.errors import QueryError, at
from metastore.resources import grammar_dir, user_cache_dir

# What a person calls the tokens Lark expects, for "expected …" messages.
_TOKEN_NAMES = {
    "NAME": "a name",
    "BACKTICKED": "a `quoted name`",
    "STRING": "a string",
    "NUMBER": "a number",
    "INT": "a whole number",
    "COMP_OP": "a comparison",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "DOT": "'.'",
    "DIRECTION": "upstream/downstream",
    "ORDER_DIR": "asc/desc",
    "STAR": "'*'",
    "NOT": "not",
    "ADD_OP": "'+'/'-'",
    "MUL_OP": "'*'/'/'",
    "MINUS": "'-'",
    "TILDE": "'~'",
    "COMPACT_REF": "kind:name@version",
    "RUN_REF": "experiment#number",
}

STAGE_WORDS = ("where", "order by", "limit", "group by", "show", "select")


@functools.cache
def parser() -> Lark:
    """Built once per process; its LALR tables (a fifth of a second to build) are kept
    in the user's cache folder, keyed by Lark and Python versions, and used again when
    the grammar and options hash the same (Lark checks)."""
    import lark

    grammar = (grammar_dir() / "query.lark").read_text(encoding="utf-8")
    folder = user_cache_dir()
    cache: bool | str = False
    if folder is not None:
        py = f"{sys.version_info[0]}{sys.version_info[1]}"
        cache = str(folder / f"query-parser-lark{lark.__version__}-py{py}.pickle")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=cache,
    )


def parse(text: str) -> ast.Query:
    """Parse a query; raises QueryError with the place and what was expected."""
    if not isinstance(text, str):
        raise QueryError(f"a query is text, not {type(text).__name__}")
    if not text.strip():
        raise QueryError(
            "empty query",
            suggestion='start with a source, e.g. runs where rmse < 55 show number, rmse',
        )
    try:
        tree = parser().parse(text)
    except UnexpectedInput as e:
        raise _syntax_error(text, e) from None
    _check_size(text, tree)
    try:
        return _ToAst(text).transform(tree)
    except QueryError:
        raise
    except Exception as e:  # noqa: BLE001 - a visit error wraps the real one
        inner = getattr(e, "orig_exc", e)
        if isinstance(inner, QueryError):
            raise inner from None
        raise QueryError(f"cannot read the query: {inner}", text=text) from None


# Databases refuse deeply nested SQL (SQLite: 100 parser levels, 1000 expression levels)
# and Python would run out of stack: say so before either happens.
MAX_DEPTH = 80  # levels of the parse tree: about 35 nested parentheses or nots
MAX_TERMS = 300  # conditions joined by one chain of and/or
MAX_NODES = 20000


def _check_size(text: str, tree) -> None:
    nodes, stack, longest = 0, [(tree, 1)], 0
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if getattr(node, "data", None) == "list":
            longest = max(longest, len(node.children))
        if depth > MAX_DEPTH:
            raise QueryError(
                "the query nests too deeply", text=text,
                suggestion="use fewer nested parentheses or nots",
            )
        if getattr(node, "data", None) in ("and_", "or_") and len(node.children) > MAX_TERMS:
            raise QueryError(
                f"more than {MAX_TERMS} conditions joined by and/or", text=text,
                suggestion="use `in (…)` or `between` instead of many separate conditions",
            )
        if nodes > MAX_NODES and longest * 4 > MAX_NODES:
            raise QueryError(
                f"an `in (…)` list of {longest} values is too long to compile", text=text,
                suggestion="select the runs by what they share instead (`between` a range, "
                "`like` a pattern, a tag), or split the list over several queries",
            )
        if nodes > MAX_NODES:
            raise QueryError(
                "the query is too long to compile", text=text,
                suggestion="use `in (…)` or `between` instead of many separate conditions",
            )
        for child in getattr(node, "children", ()):
            if not isinstance(child, Token):
                # a `not` nests twice in SQL: NOT (…)
                stack.append((child, depth + (2 if node.data == "not_" else 1)))


def _pos(meta_or_token) -> ast.Pos:
    m = meta_or_token
    if isinstance(m, Token):
        return ast.Pos(m.line or 1, m.column or 1, m.start_pos or 0, m.end_pos or 0)
    if getattr(m, "empty", False):
        return ast.NOWHERE
    return ast.Pos(m.line, m.column, m.start_pos, m.end_pos)


def _span(a: ast.Pos, b: ast.Pos) -> ast.Pos:
    return ast.Pos(a.line, a.column, a.start, max(a.end, b.end))


def _unquote_string(token: str) -> str:
    quote = token[0]
    body = token[1:-1]
    if "\\" not in body:
        return body
    # Python's rules for backslash escapes; the other quote needs no escape.
    try:
        return pyast.literal_eval(quote + body + quote)
    except (SyntaxError, ValueError):
        return body.replace("\\" + quote, quote).replace("\\\\", "\\")


# What an alias may be (metastore.records.validate_alias): model:regressor@production
ALIAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _name(token: Token) -> tuple[str, bool]:
    if token.type == "BACKTICKED":
        return token[1:-1].replace("``", "`"), True
    if token.type == "STRING":
        return _unquote_string(token), True
    return str(token), False


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    # ---- query and sources
    def start(self, meta, children):
        source, *stages = children
        return ast.Query(source=source, stages=tuple(stages), text=self.text)

    def entity_source(self, meta, children):
        (name,) = children
        return ast.EntitySource(name=str(name).lower(), pos=_pos(name))

    def lineage_source(self, meta, children):
        direction, ref, *rest = children
        return ast.LineageSource(
            direction=str(direction).lower(), ref=ref, depth=rest[0] if rest else None, pos=_pos(meta)
        )

    def ref(self, meta, children):
        kind, value, *version = children
        return ast.Ref(
            kind=str(kind).lower(), value=value, version=version[0] if version else None, pos=_pos(meta)
        )

    def compact_ref(self, meta, children):
        (token,) = children
        kind, _, rest = str(token).partition(":")
        kind = kind.lower()
        name, sep, version = rest.partition("@")
        value: str | int = int(name) if kind == "run" and _is_int(name) else name
        if not sep:
            # as in the CLI and Python: an asset named without a version is its latest
            return ast.Ref(kind=kind, value=value, version=None if kind == "run" else "latest",
                           pos=_pos(token))
        if _is_int(version):
            number: int | str = int(version)
        elif version.lower() == "latest":
            number = "latest"
        elif kind != "run" and ALIAS_NAME.fullmatch(version) and not (
                version[:1] in "vV" and _is_int(version[1:])):  # v3 is no alias (nor a version here)
            number = version  # an alias: model:regressor@production
        else:
            raise at(f"{version!r} is not a version or an alias", self.text, _pos(token),
                      f"write {kind}:{name}@3, {kind}:{name}@latest or {kind}:{name}@production")
        return ast.Ref(kind=kind, value=value, version=number, pos=_pos(token))

    def compact_run(self, meta, children):
        (token,) = children
        return ast.Ref(kind="run", value=str(token), pos=_pos(token))

    def ref_run(self, meta, children):
        return str(children[0])

    def ref_string(self, meta, children):
        return _unquote_string(children[0])

    def _int(self, token) -> int:
        """An integer of the query; past 64 bits no database column can hold it."""
        n = int(token)
        if not -(2**63) <= n < 2**63:
            raise QueryError(
                f"{str(token)[:30]} is too large: numbers in a query fit in 64 bits",
                text=self.text, line=token.line, column=token.column, length=len(str(token)),
                suggestion="use a number between -9223372036854775808 and 9223372036854775807",
            )
        return n

    def ref_int(self, meta, children):
        return self._int(children[0])

    def version_number(self, meta, children):
        return self._int(children[0])

    def version_latest(self, meta, children):
        return "latest"

    def hops(self, meta, children):
        n = self._int(children[0])
        if n < 1:
            raise QueryError(
                "depth must be at least 1", text=self.text, line=meta.line, column=meta.column,
                length=meta.end_pos - meta.start_pos,
            )
        return n

    # ---- stages
    def where(self, meta, children):
        return ast.Where(condition=children[0], pos=_pos(meta))

    def order(self, meta, children):
        return ast.OrderBy(items=tuple(children), pos=_pos(meta))

    def order_item(self, meta, children):
        expr, *direction = children
        return ast.OrderItem(expr=expr, desc=bool(direction) and str(direction[0]).lower() == "desc")

    def limit(self, meta, children):
        n, *per = children
        return ast.Limit(count=self._int(n), per=tuple(per), pos=_pos(meta))

    def config_key(self, meta, children):
        names = children[1] if len(children) > 1 else []
        return ast.Config(excluded=tuple(names), pos=_pos(meta))

    def except_names(self, meta, children):
        return [str(c) for c in children]

    def group(self, meta, children):
        return ast.GroupBy(keys=tuple(children), pos=_pos(meta))

    def show(self, meta, children):
        return ast.Show(items=tuple(children), pos=_pos(meta))

    def show_item(self, meta, children):
        expr, *alias = children
        return ast.ShowItem(expr=expr, alias=_name(alias[0])[0] if alias else None)

    # ---- boolean structure
    def or_(self, meta, children):
        if len(children) == 1:
            return children[0]
        return ast.Or(items=tuple(children), pos=_pos(meta))

    def and_(self, meta, children):
        if len(children) == 1:
            return children[0]
        return ast.And(items=tuple(children), pos=_pos(meta))

    def not_(self, meta, children):
        return ast.Not(operand=children[0], pos=_pos(meta))

    def compare(self, meta, children):
        left, op, right = children
        op = {"==": "=", "<>": "!="}.get(str(op), str(op))
        return ast.Compare(op=op, left=left, right=right, pos=_pos(meta))

    def in_(self, meta, children):
        operand, *rest = children
        negated = len(rest) == 2
        return ast.In(operand=operand, items=rest[-1], negated=negated, pos=_pos(meta))

    def list(self, meta, children):
        return tuple(c for c in children if c is not None)

    def like(self, meta, children):
        operand, *rest = children
        return ast.Like(operand=operand, pattern=rest[-1], negated=len(rest) == 2, pos=_pos(meta))

    def contains(self, meta, children):
        operand, *rest = children
        return ast.Contains(operand=operand, pattern=rest[-1], negated=len(rest) == 2, pos=_pos(meta))

    def matches(self, meta, children):
        operand, *rest = children
        return ast.Matches(operand=operand, pattern=rest[-1], negated=len(rest) == 2, pos=_pos(meta))

    def regex(self, meta, children):
        return ast.Regex(operand=children[0], pattern=children[1], pos=_pos(meta))

    def not_regex(self, meta, children):
        return ast.Regex(operand=children[0], pattern=children[1], negated=True, pos=_pos(meta))

    def between(self, meta, children):
        operand, *rest = children
        negated = len(rest) == 3
        low, high = rest[-2:]
        return ast.Between(operand=operand, low=low, high=high, negated=negated, pos=_pos(meta))

    def is_null(self, meta, children):
        return ast.IsNull(operand=children[0], negated=len(children) == 2, pos=_pos(meta))

    # ---- lineage predicates
    def uses(self, meta, children):
        return ast.Lineage(relation="uses", ref=children[0], pos=_pos(meta))

    def used_by(self, meta, children):
        return ast.Lineage(relation="used_by", ref=children[0], pos=_pos(meta))

    def produced(self, meta, children):
        return ast.Lineage(relation="produced", ref=children[0], pos=_pos(meta))

    def produced_by(self, meta, children):
        return ast.Lineage(relation="produced_by", ref=children[0], pos=_pos(meta))

    def derived_from(self, meta, children):
        ref, *depth = children
        return ast.Lineage(
            relation="downstream", ref=ref, depth=depth[0] if depth else None, pos=_pos(meta)
        )

    def relative_to(self, meta, children):
        direction, ref, *depth = children
        return ast.Lineage(
            relation=str(direction).lower(), ref=ref, depth=depth[0] if depth else None, pos=_pos(meta)
        )

    # ---- values
    def arith(self, meta, children):
        left, op, right = children
        return ast.Arith(op=str(op), left=left, right=right, pos=_pos(meta))

    def neg(self, meta, children):
        (operand,) = children
        if isinstance(operand, ast.Literal) and isinstance(operand.value, int | float) and not isinstance(operand.value, bool):
            return ast.Literal(value=-operand.value, pos=_pos(meta))
        return ast.Neg(operand=operand, pos=_pos(meta))

    def number(self, meta, children):
        t = str(children[0])
        if any(c in t for c in ".eE"):
            value = float(t)
            if not math.isfinite(value):
                raise QueryError(
                    f"{t[:30]} is too large: numbers in a query fit in 64 bits", text=self.text,
                    line=children[0].line, column=children[0].column, length=len(t),
                )
        else:
            value = self._int(children[0])
        return ast.Literal(value=value, pos=_pos(children[0]))

    def string(self, meta, children):
        return ast.Literal(value=_unquote_string(children[0]), pos=_pos(children[0]))

    def true(self, meta, children):
        return ast.Literal(value=True, pos=_pos(meta))

    def false(self, meta, children):
        return ast.Literal(value=False, pos=_pos(meta))

    def null(self, meta, children):
        return ast.Literal(value=None, pos=_pos(meta))

    def call(self, meta, children):
        name, *args = children
        star = any(isinstance(a, Token) and a.type == "STAR" for a in args)
        args = tuple(a for a in args if not (isinstance(a, Token) and a.type == "STAR") and a is not None)
        return ast.Call(name=str(name).lower(), args=args, star=star, pos=_pos(meta))

    def field(self, meta, children):
        names = [_name(c) for c in children]
        return ast.Field(
            parts=tuple(n for n, _ in names), quoted=tuple(q for _, q in names), pos=_pos(meta)
        )


def _syntax_error(text: str, e: UnexpectedInput) -> QueryError:
    line, column = getattr(e, "line", None), getattr(e, "column", None)
    if line is None or line < 1:
        line, column = _end_position(text)
    length = 1
    expected = sorted(_expected(e))
    suggestion = None
    if isinstance(e, UnexpectedEOF) or (
        isinstance(e, UnexpectedToken) and e.token.type == "$END"
    ):
        line, column = _end_position(text)
        message = "the query ends too early"
        if expected:
            message += f"; expected {_or(expected)}"
    elif isinstance(e, UnexpectedCharacters):
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        message = f"unexpected character {char!r}"
        if char == "`":
            suggestion = "a backtick opens a quoted name; close it with another backtick"
        elif char in "\"'":
            suggestion = f"this string is never closed; add a closing {char}"
        elif expected:
            message += f"; expected {_or(expected)}"
    else:
        token = e.token
        length = max(1, len(str(token)))
        message = f"unexpected {_describe(token)}"
        if expected:
            message += f"; expected {_or(expected)}"
        word = str(token).lower()
        if token.type == "NAME" and word in ("order", "group"):
            suggestion = f"write '{word} by'"
        elif token.type == "NAME" and "WHERE" in _expected(e):
            suggestion = f"a stage starts with one of: {', '.join(STAGE_WORDS)}"
    return QueryError(
        message, text=text, line=line, column=column, length=length, suggestion=suggestion
    )


def _expected(e: UnexpectedInput) -> set[str]:
    raw = set(getattr(e, "expected", None) or getattr(e, "allowed", None) or ())
    names = set()
    for t in raw:
        if t.startswith("__") or t == "$END":
            continue
        names.add(t)
    return names


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of query"
    if token.type in ("NAME", "NUMBER", "INT", "STRING", "BACKTICKED"):
        return f"{_TOKEN_NAMES.get(token.type, token.type).split(' ', 1)[-1]} {str(token)!r}"
    return repr(str(token))


def _or(expected: list[str]) -> str:
    words = []
    for t in expected:
        if t in _TOKEN_NAMES:
            words.append(_TOKEN_NAMES[t])
        else:
            # anonymous keyword terminals are named like "WHERE" or "__ANON_3"
            words.append(t.lower())
    words = sorted(dict.fromkeys(words))
    if len(words) > 6:
        return "a value, a name or an expression"
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1
