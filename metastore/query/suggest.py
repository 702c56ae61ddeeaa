"""What may come next in a query being typed: sources, field names, history suffixes,
keywords and references. The shell's completion (`metastore.completion`) and the web
UI's query box (`/experiments/{name}/suggest`) both ask here.

The text before the cursor is incomplete by nature, so it is read with a small
tokenizer, not the grammar: the last few tokens say whether a source, a field, an
operator, a stage or a reference comes next. The language's own words come from the
compiler's tables (attributes, history suffixes, functions); the store's names (params,
metrics, tags) from a vocabulary the caller passes (`Store.fields`), and references
from a function the caller passes, so this module asks no store itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from metastore.query.expressions import AGGREGATES, FUNCTIONS
from metastore.query.resolve import ATTRS, HISTORY, PLURALS, QUALIFIERS

#: At most this many suggestions.
LIMIT = 60

SOURCES = {"runs": "every live run", "experiments": "experiments", "notes": "notes and events of runs",
           "assets": "versions of every asset", **{p: f"versions of {k} assets" for p, k in PLURALS.items()},
           "upstream of": "what a run or version came from", "downstream of": "what came from it"}

#: After a field in a condition.
OPERATORS = {"=": "equals", "!=": "differs", "<": "", "<=": "", ">": "", ">=": "",
             "contains": "substring, any case", "matches": "every word, any case (a note index)",
             "like": "glob: * and ?", "~": "regular expression (RE2)", "in": "one of a list",
             "between": "inclusive range", "is null": "missing", "is not null": "present",
             "not": "negates contains, matches, like, in, between"}
#: After a whole condition or value.
CONNECTORS = {"and": "", "or": "", "order by": "sort", "group by": "group rows", "show": "columns",
              "limit": "first N rows", "where": "filter"}
LINEAGE = {"uses": "the run used REF", "used by": "the version fed REF", "produced": "the run made REF",
           "produced by": "the version was made by REF", "derived from": "the version came from REF",
           "upstream of": "REF came from it", "downstream of": "it came from REF"}

_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)
  | (?P<name>(?:`(?:[^`]|``)*`?|[^\s,()\[\]"'`=<>!~+*/]+)+)
  | (?P<op>!=|<>|<=|>=|==|!~|[=<>~(),\[\]+*/-])
""", re.VERBOSE)

_EXPECTS_VALUE = {"where", "and", "or", "not", "show", "select", "by", "per", "between", ",", "(", "[",
                  "=", "==", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "in"}
_EXPECTS_REF = {("uses",), ("produced",), ("used", "by"), ("produced", "by"), ("derived", "from"),
                ("upstream", "of"), ("downstream", "of")}
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Suggestion:
    text: str
    kind: str  # source, keyword, operator, attribute, param, metric, tag, history suffix, function, ref
    about: str = ""


@dataclass(frozen=True)
class Suggestions:
    #: The word being typed runs from `start` to the cursor: a suggestion replaces it.
    start: int
    items: list[Suggestion]

    def to_dict(self) -> dict:
        return {"start": self.start, "items": [s.__dict__ for s in self.items]}


def quote_name(name: str) -> str:
    """A name as a query writes it: backticked unless it is plain (`train/loss`)."""
    return name if _PLAIN.fullmatch(name) else "`" + name.replace("`", "``") + "`"


def suggest(text: str, cursor: int | None = None, vocabulary: Iterable[tuple[str, str]] = (),
            refs: Callable[[str], list[tuple[str, str]]] | None = None) -> Suggestions:
    """What may replace the word at `cursor` (default: the end) of `text`.

    `vocabulary` is (name, kind) pairs of the store's params, metrics and tags; `refs(word)`
    gives (reference, about) pairs of runs and versions starting with `word`."""
    before = text[: len(text) if cursor is None else max(0, min(cursor, len(text)))]
    tokens = [(m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(before)]
    word, start = "", len(before)
    if tokens and tokens[-1][0] in ("name", "string"):
        kind, word, start = tokens[-1]
        tokens = tokens[:-1]
        if kind == "string":  # inside a quoted value: nothing to suggest
            return Suggestions(start, [])
    elif tokens and tokens[-1][0] == "op" and tokens[-1][1] in ("<", ">", "!", "="):
        # an operator being typed (`<` before `<=`) completes as an operator
        _, word, start = tokens[-1]
        tokens = tokens[:-1]
    words = [t[1].lower() for t in tokens if t[0] != "space"]
    items = _candidates(words, word, _vocabulary(vocabulary), refs)
    folded = word.lower()
    found = [s for s in items if s.text.lower().startswith(folded) and s.text.lower() != folded]
    return Suggestions(start, list(dict.fromkeys(found))[:LIMIT])


def _vocabulary(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"param": [], "metric": [], "tag": []}
    for name, kind in pairs:
        if kind in out:
            out[kind].append(name)
    return out


def _rows(words: list[str]) -> str:
    """The rows the query's source gives (what its attributes are)."""
    if not words:
        return "run"
    first = words[0]
    if first in ("upstream", "downstream"):
        return "node"
    if first in ("notes", "note", "events"):
        return "note"
    if first in ("experiments", "experiment"):
        return "experiment"
    if first in ("assets", "asset", "versions") or first in PLURALS or first in PLURALS.values():
        return "version"
    return "run"


def _candidates(words: list[str], word: str, vocab: dict[str, list[str]], refs) -> list[Suggestion]:
    if not words:
        return [Suggestion(s, "source", about) for s, about in SOURCES.items()]
    last, tail = words[-1], tuple(words[-2:])
    if (last,) in _EXPECTS_REF or tail in _EXPECTS_REF:
        found = [Suggestion(r, "ref", about) for r, about in (refs(word) if refs else [])]
        return [Suggestion("by", "keyword"), *found] if tail[-1:] == ("produced",) else found
    if last in ("order", "group"):
        return [Suggestion("by", "keyword")]
    if last == "is":
        return [Suggestion("null", "keyword"), Suggestion("not null", "keyword")]
    if last in ("used", "derived"):
        return [Suggestion({"used": "by", "derived": "from"}[last], "keyword")]
    if last == "limit" or last in ("upstream", "downstream"):
        return [Suggestion("of", "keyword")] if last != "limit" else []
    if last in _EXPECTS_VALUE:
        grouped = tail == ("group", "by")
        stage = next((w for w in reversed(words) if w in ("where", "show", "select", "by")), "where")
        return _fields(_rows(words), word, vocab, grouped=grouped,
                       functions=stage in ("show", "select", "by") or last == "(",
                       lineage=last in ("where", "and", "or", "not", "("))
    # after a value: an operator when it follows a field in a condition, else what joins
    # conditions and the next stages
    out = []
    if len(words) >= 2 and words[-2] in ("where", "and", "or", "not", "(") and not _is_value(last):
        out += [Suggestion(op, "operator", about) for op, about in OPERATORS.items()]
    out += [Suggestion(k, "keyword", about) for k, about in CONNECTORS.items()
            if k not in ("and", "or") or "where" in words]
    if words[-1] == "desc" or words[-1] == "asc" or "order" in words[-3:]:
        out += [Suggestion("desc", "keyword", "largest first"), Suggestion("asc", "keyword")]
    return out


def _is_value(token: str) -> bool:
    return token[:1] in "\"'0123456789)" or token in ("true", "false", "null")


def _fields(rows: str, word: str, vocab: dict[str, list[str]], *, grouped: bool, functions: bool,
            lineage: bool) -> list[Suggestion]:
    out: list[Suggestion] = []
    qualifier, _, rest = word.partition(".")
    if rest or word.endswith("."):
        if qualifier.lower() in QUALIFIERS:  # metrics.x, params.x, tags.x
            kind = QUALIFIERS[qualifier.lower()]
            return [Suggestion(f"{qualifier}.{quote_name(n)}", kind) for n in vocab.get(kind, [])]
        base = word.rsplit(".", 1)[0]
        metrics = {quote_name(m): m for m in vocab["metric"]}
        if base in metrics:  # a metric's history
            return [Suggestion(f"{base}.{h}", "history suffix") for h in HISTORY]
    has_run = rows != "experiment"
    if has_run:
        out += [Suggestion(quote_name(n), "metric", "last value; .min .max … its history")
                for n in vocab["metric"]]
        out += [Suggestion(quote_name(n), "param") for n in vocab["param"]]
    out += [Suggestion(quote_name(n), "tag") for n in vocab["tag"]]
    out += [Suggestion(a, "attribute", t) for a, t in ATTRS[rows].items()]
    if grouped and rows == "run":
        out.append(Suggestion("config", "keyword", "params and inputs; config except seed"))
    if functions:
        out += [Suggestion(f"{f}(", "function", "aggregate" if f in AGGREGATES else "")
                for f in sorted(AGGREGATES | FUNCTIONS)]
    if lineage and rows in ("run", "version", "node"):
        out += [Suggestion(k, "keyword", about) for k, about in LINEAGE.items()]
    if word.lower() == "n" or word.lower().startswith("no"):
        out.append(Suggestion("not", "keyword"))
    return out
