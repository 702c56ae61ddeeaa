"""The regular expressions of the `~` operator: RE2 syntax, matched in linear time.

Python's `re` backtracks: `(a+)+$` against `"a"*30 + "!"` runs for minutes and holds
the interpreter lock meanwhile, so one query could freeze a whole server. SQLite has no
REGEXP of its own, so metastore gives it RE2 (`google-re2`), which never backtracks;
PostgreSQL and MariaDB use their own engines under the query's deadline. Patterns are
checked against RE2 on every dialect, so a query means the same on every store.
"""

from __future__ import annotations

from functools import lru_cache

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the user's error, reported as such


@lru_cache(maxsize=256)
def compiled(pattern: str):
    return re2.compile(pattern, _OPTIONS)


def regex_problem(pattern: str) -> str | None:
    """Why RE2 refuses `pattern`, or None when it accepts it."""
    try:
        compiled(pattern)
    except re2.error as e:
        reason = e.args[0] if e.args else e
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


def regexp(pattern: str | None, value) -> bool | None:
    """SQLite's REGEXP(pattern, value): NULL in, NULL out."""
    if pattern is None or value is None:
        return None
    return compiled(pattern).search(str(value)) is not None
