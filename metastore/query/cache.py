"""Compiled queries, kept: in memory for the life of a process, and on disk (the user's
cache folder) across processes, so `metastore query` asking a question it asked before
loads neither the parser (lark) nor the compiler (sqlglot): they are most of its cold
start.

What a compiled query depends on is its key: the text, the dialect, the experiment
scope, the store's catalog (`Catalog.key()`: the keys that exist, since a new key can
change what a name means, and whether the store has its note index), the schema
revision, and the compiler itself (the package version, and the size and modification
time of every module of the query package and beside it, and of the grammar, so an
upgrade or an edit of a checkout never serves SQL an older compiler wrote). What is stored is what
running needs (the SQL, its bound values, how to shape the rows, the faster statement
to try first) and the checks that depend on the data (references, param types): those
run against the store on every query, as after a fresh compile.

The disk copy is JSON (never pickle), one file per key, written atomically; a file
that cannot be read is a miss. Only callers that ask for it (`disk=True`: the SQLite
reader behind `metastore query`) write there.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from metastore.query.errors import QueryError

if TYPE_CHECKING:
    from metastore.query.catalog import Catalog
    from metastore.query.compile import Compiled

#: The layout of a stored entry; a new layout is a new key, never a misread.
FORMAT = 1
#: Entries kept on disk; past this, the least recently used quarter is dropped.
MAX_FILES = 512

_MEMORY: OrderedDict[tuple, Any] = OrderedDict()
_MEMORY_SIZE = 256
_LOCK = threading.Lock()


class CompiledText:
    """A compiled query read back from the disk cache: what `Compiled` offers running
    (`sql()`, `params`, `columns`, `shortcut`, `ref_checks`, `type_checks`, `dialect`)
    as plain text and values, without sqlglot's tree."""

    def __init__(self, entry: dict):
        self.dialect: str = entry["dialect"]
        self._sql: str = entry["sql"]
        self.inline: str = entry["inline"]
        self.params: dict[str, Any] = entry["params"]
        self.columns = [SimpleNamespace(name=n, type=t, width=w) for n, t, w in entry["columns"]]
        self.shortcut = tuple(entry["shortcut"]) if entry["shortcut"] is not None else None
        self.ref_checks = [(SimpleNamespace(**ref, pos=_pos(ref_pos)), sql)
                           for ref, ref_pos, sql in entry["ref_checks"]]
        self.type_checks = [(key, kind, _pos(pos), name)
                            for key, kind, pos, name in entry["type_checks"]]

    def sql(self, pretty: bool = False) -> str:
        return self._sql


def compile_cached(text: str, dialect: str, catalog: Catalog, experiment: str | None,
                   *, disk: bool = False):
    """The compiled query for `text` against `catalog`: from memory, else (with `disk`)
    from the user's cache folder, else compiled now (and kept in both)."""
    key = (text, dialect, experiment, catalog.key())
    with _LOCK:  # the web server answers queries from several threads
        compiled = _MEMORY.get(key)
        if compiled is not None:
            _MEMORY.move_to_end(key)
            return compiled
    path = _entry_path(text, dialect, experiment, catalog) if disk else None
    compiled = _read(path) if path is not None else None
    if compiled is None:
        compiled = _compile(text, dialect, catalog, experiment)
        if path is not None:
            _write(path, compiled)
    with _LOCK:
        _MEMORY[key] = compiled
        if len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
    return compiled


def inline_sql(compiled) -> str:
    """The SQL with its bound values written in (quoted by sqlglot), for reading."""
    if isinstance(compiled, CompiledText):
        return compiled.inline
    sql = compiled.sql()
    if not compiled.params:
        return sql
    import re

    from sqlglot import exp

    def literal(v):
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, int | float):
            return exp.Literal.number(v).sql(dialect=compiled.dialect)
        return exp.Literal.string(str(v)).sql(dialect=compiled.dialect)

    return re.sub(r":(p\d+)\b", lambda m: literal(compiled.params[m.group(1)]), sql)


def _compile(text: str, dialect: str, catalog: Catalog, experiment: str | None) -> Compiled:
    from metastore.query.compile import compile_query
    from metastore.query.parse import parse

    try:
        compiled = compile_query(parse(text), dialect, catalog=catalog, experiment=experiment)
        compiled.sql()
    except RecursionError:  # a backstop: parse limits nesting well below this
        raise QueryError("the query nests too deeply to compile", text=text) from None
    return compiled


# -- on disk ------------------------------------------------------------------------------


def folder() -> Path | None:
    """Where compiled queries are kept: `queries/` in the user's cache folder."""
    from metastore.resources import user_cache_dir

    base = user_cache_dir()
    if base is None:
        return None
    where = base / "queries"
    try:
        where.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None
    return where


@functools.cache
def compiler_identity() -> str:
    """The package version and every compiler file's size and modification time: a new
    version or an edited checkout compiles afresh."""
    from metastore.resources import grammar_dir
    from metastore.version import __version__
    from metastore.vocabulary import SCHEMA_REVISION

    here = Path(__file__).resolve().parent
    # the query package, the modules beside it it uses (vocabulary, fulltext, params …:
    # all of them, so a new dependency cannot be forgotten here), and the grammar
    files = [*here.glob("*.py"), *here.parent.glob("*.py"), *grammar_dir().glob("*.lark")]
    stamps = []
    for f in sorted(files):
        st = f.stat()
        stamps.append(f"{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}")
    return json.dumps([FORMAT, __version__, SCHEMA_REVISION, stamps])


def _entry_path(text: str, dialect: str, experiment: str | None, catalog: Catalog) -> Path | None:
    where = folder()
    if where is None:
        return None
    key = json.dumps([compiler_identity(), text, dialect, experiment, _plain(catalog.key())])
    return where / (hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json")


def _plain(value):
    """`Catalog.key()` as JSON data, the same for equal keys (sets sorted)."""
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=json.dumps)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _read(path: Path) -> CompiledText | None:
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        compiled = CompiledText(entry)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, or damaged: compile afresh (and write it again)
    try:
        os.utime(path)  # recently used: kept when the folder is pruned
    except OSError:
        pass
    return compiled


def _write(path: Path, compiled: Compiled) -> None:
    entry = _entry(compiled)
    if entry is None:
        return
    import tempfile  # only on a miss: with shutil, bz2 and lzma it costs a cold start

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.replace(tmp, path)
    except OSError:
        return  # a cache that cannot be written is only slower
    _prune(path.parent)


def _entry(compiled: Compiled) -> dict | None:
    """A compiled query as JSON data; None when part of it would not read back the same
    (then it is not kept on disk)."""
    if not all(v is None or type(v) in (str, int, float, bool) for v in compiled.params.values()):
        return None
    try:
        refs = [[{"kind": r.kind, "value": r.value, "version": r.version}, _pos_data(r.pos), sql]
                for r, sql in compiled.ref_checks]
        checks = [[key, kind, _pos_data(pos), name] for key, kind, pos, name in compiled.type_checks]
    except _NotPlain:
        return None
    return {
        "format": FORMAT,
        "dialect": compiled.dialect,
        "sql": compiled.sql(),
        "inline": inline_sql(compiled),
        "params": compiled.params,
        "columns": [[c.name, c.type, c.width] for c in compiled.columns],
        "shortcut": list(compiled.shortcut) if compiled.shortcut is not None else None,
        "ref_checks": refs,
        "type_checks": checks,
    }


class _NotPlain(Exception):
    pass


def _pos_data(pos) -> list[int] | None:
    if pos is None:
        return None
    try:
        return [int(pos.line), int(pos.column), int(pos.start), int(pos.end)]
    except (AttributeError, TypeError, ValueError):
        raise _NotPlain from None


def _pos(data) -> SimpleNamespace | None:
    if data is None:
        return None
    line, column, start, end = data
    return SimpleNamespace(line=line, column=column, start=start, end=end)


def _prune(where: Path) -> None:
    try:
        entries = [e for e in os.scandir(where) if e.name.endswith(".json")]
        if len(entries) <= MAX_FILES:
            return
        entries.sort(key=lambda e: e.stat().st_mtime_ns)
        for e in entries[: len(entries) - MAX_FILES * 3 // 4]:
            os.unlink(e.path)
    except OSError:
        pass
