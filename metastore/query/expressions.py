"""The expression compiler: AST expressions → typed values (values.Val) in sqlglot.

Types are checked here, with errors a person can act on: `rmse < "55"` is refused with
"did you mean 55?" rather than left to the database's own idea of comparing a number
with text. Everything it writes is dialect-neutral (see dialects.py).

`scope` is the frame an expression is read in (frames.py). It answers names (`field`) and
says what it is (`stage`): "rows" before a group by, "groups" after one, "columns" once
grouped rows have been limited, which decides where aggregates and lineage may appear.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

from sqlglot import exp

from metastore import fulltext
from metastore.query import ast
from metastore.query.dialects import ExactText, TimeValue, Words, words_search
from metastore.query.errors import did_you_mean
from metastore.query.nodes import and_, not_, or_
from metastore.query.regex import regex_problem
from metastore.query.values import Val, a_type, column_name, literal_type

AGGREGATES = {"count", "min", "max", "mean", "avg", "sum", "std", "stddev"}
FUNCTIONS = {"abs", "round", "lower", "upper", "coalesce"}

_OPS = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


class Expressions:
    """How each kind of expression compiles. A mixin of the compiler (compile.py), whose
    `lit`, `err` and `lineage_predicate` it uses."""

    def expr(self, node: ast.Expr, scope) -> Val:
        if isinstance(node, _NOTE_TESTS) and getattr(scope, "rows", None) == "run" and _names_note(node, scope):
            return self.note_condition(node, scope)
        match node:
            case ast.Literal(value=value):
                return Val(literal_type(value), sql=self.lit(value), literal=value, is_literal=True, node=node)
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
                return Val("bool", sql=and_(*[self.condition(v, i) for v, i in zip(vals, items, strict=True)]),
                           agg=any(v.agg for v in vals), node=node)
            case ast.Or(items=items):
                vals = [self.expr(i, scope) for i in items]
                return Val("bool", sql=exp.paren(or_(*[self.condition(v, i) for v, i in zip(vals, items, strict=True)])),
                           agg=any(v.agg for v in vals), node=node)
            case ast.Not(operand=o):
                v = self.expr(o, scope)
                return Val("bool", sql=not_(exp.paren(self.condition(v, o))), agg=v.agg, node=node)
            case ast.Compare():
                return self.compare(node, scope)
            case ast.In(operand=o, items=items, negated=neg) if self.alias_membership(o, items, scope) is not None:
                match = self.alias_membership(o, items, scope)
                return Val("bool", sql=not_(match) if neg else match, node=node)
            case ast.In(operand=o, items=items, negated=neg):
                v = self.expr(o, scope)
                if not items:
                    return Val("bool", sql=exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1 if neg else 0)), node=node)
                vals = [self.value(i, scope) for i in items]
                cond = self.in_list(v, vals)
                if cond is None:
                    ors = [self.compare_vals(v, "=", iv, node) for iv in vals]
                    cond = exp.paren(or_(*ors)) if len(ors) > 1 else ors[0]
                if neg:
                    cond = and_(self.not_null(v), not_(exp.paren(cond)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Between(operand=o, low=lo, high=hi, negated=neg):
                v = self.expr(o, scope)
                cond = and_(self.compare_vals(v, ">=", self.value(lo, scope), node),
                                self.compare_vals(v, "<=", self.value(hi, scope), node))
                if neg:
                    cond = and_(self.not_null(v), not_(exp.paren(cond)))
                return Val("bool", sql=exp.paren(cond), agg=v.agg, node=node)
            case ast.IsNull(operand=o, negated=neg):
                v = self.expr(o, scope)
                cond = self.not_null(v) if neg else not_(exp.paren(self.not_null(v)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Like(operand=o, pattern=p, negated=neg):
                v = self.expr(o, scope)
                pattern = self.expr(p, scope)
                if not pattern.is_literal or not isinstance(pattern.literal, str):
                    raise self.err("like needs a quoted pattern, e.g. like \"*bmi*\"", p)
                if v.type in ("number", "int", "bool"):
                    raise self.err(f"{column_name(o)} is a number; like matches text", o)
                return self.text_match(v, glob_to_like(pattern.literal.lower()), neg, node)
            case ast.Contains(operand=o, pattern=p, negated=neg):
                v = self.expr(o, scope)
                pattern = self.expr(p, scope)
                if not pattern.is_literal or not isinstance(pattern.literal, str):
                    raise self.err('contains needs quoted text, e.g. contains "diverged"', p)
                if v.type in ("number", "int", "bool"):
                    raise self.err(f"{column_name(o)} is a number; contains looks in text", o)
                word = pattern.literal.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
                return self.text_match(v, f"%{word}%", neg, node)
            case ast.Matches(operand=o, pattern=p, negated=neg):
                return self.words_match(self.expr(o, scope), self.expr(p, scope), neg, node)
            case ast.Regex(operand=o, pattern=p, negated=neg):
                v = self.expr(o, scope)
                pattern = self.expr(p, scope)
                if not pattern.is_literal or not isinstance(pattern.literal, str):
                    raise self.err('~ needs a quoted regular expression, e.g. ~ "^bmi"', p)
                try:
                    re.compile(pattern.literal)
                except re.error as e:
                    raise self.err(f"not a regular expression: {e}", p) from None
                problem = regex_problem(pattern.literal)
                if problem:
                    raise self.err(
                        f"~ takes RE2 syntax (no lookaround or backreferences): {problem}", p
                    )
                cond = exp.RegexpLike(this=v.textual(), expression=self.lit(pattern.literal))
                if neg:
                    cond = and_(self.not_null(v), not_(exp.paren(cond)))
                return Val("bool", sql=cond, agg=v.agg, node=node)
            case ast.Config():
                if not hasattr(scope, "config_value"):
                    raise self.err("config is a group key: group by config", node)
                return scope.config_value(node)
            case ast.Lineage():
                if scope.stage != "rows":
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

    def meets(self, v: Val, kind: str, node) -> None:
        """Note that param `v` meets a value of `kind` (number, text, bool): the store
        says, from its data, whether the param ever holds one (`Compiled.type_checks`)."""
        if v.type == "param" and v.key is not None:
            self.type_checks.append((v.key, kind, getattr(node, "pos", None), column_name(v.node or node)))

    def number_of(self, v: Val, node) -> Val:
        self.meets(v, "number", node)
        if v.type in ("text", "time", "null") and not v.is_literal:
            raise self.err(f"{column_name(node)} is {a_type(v.type)}; arithmetic needs numbers", node)
        if v.is_literal and not isinstance(v.literal, int | float):
            raise self.err("arithmetic needs numbers", node)
        return v

    def text_match(self, v: Val, like_pattern: str, negated: bool, node) -> Val:
        """A case-insensitive LIKE of a value's text form (`like`, `contains`), with "!"
        as the escape character; negated, a missing value does not match either."""
        cond = exp.Escape(
            this=exp.Like(this=exp.Lower(this=v.textual()), expression=self.lit(like_pattern)),
            expression=exp.Literal.string("!"),
        )
        if negated:
            cond = and_(self.not_null(v), not_(exp.paren(cond)))
        return Val("bool", sql=cond, agg=v.agg, node=node)

    def words_match(self, v: Val, pattern: Val, negated: bool, node: ast.Matches) -> Val:
        """`matches`: every word of the pattern is a word of the text, in any case. The
        database's own word search where it has one (a note's text through the note
        index), else a regular expression per word: the same rows."""
        if not pattern.is_literal or not isinstance(pattern.literal, str):
            raise self.err('matches needs quoted words, e.g. matches "diverged epoch"', node.pattern)
        if v.type in ("number", "int", "bool"):
            raise self.err(f"{column_name(node.operand)} is a number; matches looks for words in text",
                           node.operand)
        words = fulltext.pattern_words(pattern.literal)
        if not words:
            raise self.err("matches needs at least one word (letters or digits)", node.pattern,
                           'e.g. matches "diverged epoch", or matches "diverg*" for words that start so')
        search = words_search(self.dialect, self.catalog.fulltext, v.note_id is not None)
        if search is not None:
            cond = Words(this=v.textual(), expression=self.lit(search(words)), note=v.note_id)
        else:
            cond = and_(*[exp.RegexpLike(this=v.textual(), expression=self.lit(fulltext.word_regex(w, prefix)))
                          for w, prefix in words])
        if negated:
            cond = and_(self.not_null(v), not_(exp.paren(cond)))
        return Val("bool", sql=cond, agg=v.agg, node=node)

    def not_null(self, v: Val) -> exp.Expression:
        if v.type == "param":
            return exp.Is(this=v.ptype, expression=exp.null()).not_()
        if v.type == "any":
            return or_(exp.Is(this=v.metric, expression=exp.null()).not_(), exp.Is(this=v.ptype, expression=exp.null()).not_(), exp.Is(this=v.tag, expression=exp.null()).not_())
        return not_(exp.Is(this=v.sql, expression=exp.null()))

    def condition(self, v: Val, node) -> exp.Expression:
        """A value used as a condition: booleans as they are, a bool param or attribute as
        true/false; anything else is an error a person can fix."""
        if v.type == "bool":
            if v.is_literal:
                return exp.EQ(this=exp.Literal.number(1), expression=exp.Literal.number(1 if v.literal else 0))
            if isinstance(v.sql, exp.Column | exp.Subquery):
                return exp.EQ(this=v.sql, expression=exp.true())
            return v.sql
        if v.type == "param":
            return exp.NEQ(this=v.num, expression=exp.Literal.number(0))
        if v.type == "any":
            return exp.NEQ(this=v.numeric(), expression=exp.Literal.number(0))
        name = column_name(node)
        if v.type == "null":
            raise self.err("null is neither true nor false", node, "write `x is null` to test for it")
        raise self.err(f"{name} is {a_type(v.type)}, not true/false", node, f"compare it, e.g. {name} = …")

    def note_condition(self, node, scope) -> Val:
        """A condition on a run's `note`: true when one of its notes (or events) meets it;
        the negated form when none does."""
        if scope.stage != "rows":
            raise self.err("a condition on notes filters runs before group by", node)
        negated = getattr(node, "negated", False) or (isinstance(node, ast.Compare) and node.op in ("!=", "<>"))
        positive = node
        if isinstance(node, ast.Compare) and negated:
            positive = dataclasses.replace(node, op="=")
        elif negated:
            positive = dataclasses.replace(node, negated=False)
        match = scope.note_match(lambda text: self.condition(self.expr(positive, _NoteScope(scope, text)), positive))
        return Val("bool", sql=not_(match) if negated else match, node=node)

    def alias_membership(self, operand: ast.Expr, items, scope) -> exp.Expression | None:
        """`alias = "production"` / `alias in (…)` on versions: one of the version's
        aliases (it may have several), not their joined text."""
        if not (isinstance(operand, ast.Field) and len(operand.parts) == 1
                and operand.parts[0].lower() == "alias" and not any(operand.quoted)
                and getattr(scope, "rows", None) in ("version", "node")
                and hasattr(scope, "alias_match") and "alias" not in scope.aliases):
            return None
        vals = [self.value(i, scope) for i in items]
        if not vals or not all(v.is_literal and isinstance(v.literal, str) for v in vals):
            return None
        return scope.alias_match([self.lit(v.literal) for v in vals])

    def compare(self, node: ast.Compare, scope) -> Val:
        if node.op in ("=", "==", "!=", "<>"):
            match = self.alias_membership(node.left, [node.right], scope)
            if match is not None:
                return Val("bool", sql=match if node.op in ("=", "==") else not_(match), node=node)
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
            return not_(exp.paren(self.not_null(left))) if op == "=" else self.not_null(left)
        lt, rt = left.type, right.type
        if right.is_literal:
            value = right.literal
            if lt == "param" and not (isinstance(value, str) and (
                    _is_number(value) or value.lower() in ("true", "false"))):
                # a string that reads as a number or bool matches a param's text form
                # ("0.1", as MLflow filters write every param), so only others are checked
                kind = ("bool" if isinstance(value, bool) else
                        "number" if isinstance(value, int | float) else "text")
                self.meets(left, kind, right.node or node)
            if lt in ("param", "any"):
                if isinstance(value, bool):
                    return cls(this=left.num, expression=exp.Literal.number(int(value)))
                if isinstance(value, int | float):
                    return cls(this=left.numeric(), expression=self.lit(value))
                return cls(this=self.exact(left.textual()), expression=self.lit(value))
            if lt in ("number", "int"):
                if isinstance(value, bool):
                    raise self.err(f"{column_name(left.node)} is a number; compare it with a number",
                                   right.node or node, "true/false compare with params and flags")
                if isinstance(value, str):
                    hint = f"did you mean {value}?" if _is_number(value) else None
                    raise self.err(f"{column_name(left.node)} is a number; compare it with a number", right.node or node, hint)
                return cls(this=left.sql, expression=self.lit(value))
            if lt == "bool":
                if not isinstance(value, bool | int) or op not in ("=", "!="):
                    raise self.err(f"{column_name(left.node)} is true/false; compare it with = true or = false",
                                   right.node or node)
                cond = self.condition(left, node)
                return cond if bool(value) == (op == "=") else not_(exp.paren(cond))
            if lt == "time":
                if not isinstance(value, str):
                    raise self.err(f"{column_name(left.node)} is a time; compare it with a date in quotes", right.node or node,
                                   'e.g. started > "2026-11-23"')
                return cls(this=left.sql, expression=self.time_literal(value, right.node or node))
            if lt == "text":
                if not isinstance(value, str):
                    raise self.err(f"{column_name(left.node)} is text; compare it with a string", right.node or node,
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
            if scope.stage != "groups":
                if scope.stage == "columns":
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
            return Val("number", sql=exp.func("STDDEV_SAMP", x), agg=True, node=node)
        if name in FUNCTIONS:
            args = [self.expr(a, scope) for a in node.args]
            if name == "abs" and len(args) == 1:
                return Val("number", sql=exp.func("ABS", self.number_of(args[0], node.args[0]).numeric()), agg=args[0].agg, node=node)
            if name == "round" and 1 <= len(args) <= 2:
                digits = [exp.Literal.number(int(args[1].literal))] if len(args) == 2 and args[1].is_literal and isinstance(args[1].literal, int) else []
                if len(args) == 2 and not digits:
                    raise self.err("round(x, n) needs a whole number n", node)
                x = self.number_of(args[0], node.args[0]).numeric()
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
        raise self.err(f"unknown function {name}()", node, did_you_mean(name, known) or f"known: {', '.join(known)}")

    def exact(self, e: exp.Expression) -> exp.Expression:
        return ExactText(this=e)

    def time_literal(self, value: str, node) -> exp.Expression:
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise self.err(
                f"{value!r} is not a date or time", node,
                'write it like "2026-11-23" or "2026-11-23 09:30"',
            ) from None
        if t.tzinfo is not None:
            t = t.astimezone(UTC).replace(tzinfo=None)
        return TimeValue(this=self.lit(t.strftime("%Y-%m-%d %H:%M:%S.%f")))


def has_aggregate(e) -> bool:
    if isinstance(e, ast.Call) and e.name in AGGREGATES:
        return True
    for v in getattr(e, "__dict__", {}).values():
        if isinstance(v, ast.Expr) and has_aggregate(v):
            return True
        if isinstance(v, tuple) and any(isinstance(x, ast.Expr) and has_aggregate(x) for x in v):
            return True
    return False


def glob_to_like(pattern: str) -> str:
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



_NOTE_TESTS = (ast.Compare, ast.Like, ast.Regex, ast.Contains, ast.Matches, ast.In)


def _names_note(node, scope) -> bool:
    """The condition tests the run attribute `note` (not a show alias or a param)."""
    operand = node.left if isinstance(node, ast.Compare) else node.operand
    return (isinstance(operand, ast.Field) and len(operand.parts) == 1 and not any(operand.quoted)
            and operand.parts[0].lower() == "note" and "note" not in scope.aliases
            and hasattr(scope, "note_match"))


class _NoteScope:
    """The run's scope, but `note` is the text of the note being tested."""

    rows = "note text"

    def __init__(self, scope, text: Val):
        self.scope, self.text = scope, text
        self.stage = scope.stage
        self.aliases: dict = {}

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        if len(f.parts) == 1 and f.parts[0].lower() == "note" and not any(f.quoted):
            return self.text
        return self.scope.field(f, as_value)

    def __getattr__(self, name):
        return getattr(self.scope, name)
