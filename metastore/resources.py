"""Files shipped beside the code: the query grammar and the generated schema.

In a source checkout they live at the top of the repository (`grammar/`, `schema/`); in
an installed wheel they are packaged as `metastore/_grammar` and `metastore/_schema`.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / f"_{name}", _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"metastore is installed without its {name}/ folder")


def grammar_dir() -> Path:
    return _find("grammar")


def schema_dir() -> Path:
    return _find("schema")


def user_cache_dir() -> Path | None:
    """A folder only this user writes, for what is costly to rebuild in every process
    (the query parser's tables): METASTORE_CACHE_DIR, else $XDG_CACHE_HOME/metastore or
    ~/.cache/metastore. None when it cannot be made (a read-only home)."""
    where = os.environ.get("METASTORE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "metastore"
    )
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return Path(where) if os.access(where, os.W_OK) else None


def check_installed() -> None:
    """Fail loudly if an installed metastore lacks its grammar or schema (CI uses it)."""
    grammar = sorted(p.name for p in grammar_dir().glob("*.lark"))
    schema = sorted(p.name for p in schema_dir().iterdir() if not p.name.startswith("."))
    if not grammar or not schema:
        raise SystemExit(f"incomplete install: grammar={grammar} schema={schema}")
    print(f"metastore installed with grammar {grammar} and schema {schema}")
