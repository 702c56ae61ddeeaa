"""The metastore query language: text → AST → bound names → sqlglot SELECT → rows.

    store.query('runs where algorithm = "linear" and rmse < 55 show number, r2')
    metastore.compile('runs order by rmse limit 1 show number, rmse', dialect="postgres")

Stages, one module each: parse (Lark grammar → ast dataclasses), resolve (names →
fields against the store's catalog), compile (AST → sqlglot), run (execute, shape a
Result). Compiling is itself split by stage, the way sqlglot is: values, expressions,
frames, lineage_sql and dialects (see compile.py). Every failure is a QueryError.
docs/query-language.md is the reference.
"""

from metastore.query.errors import QueryError
from metastore.query.run import Result, compile_text, execute, stream

__all__ = ["QueryError", "Result", "compile_text", "execute", "stream"]
