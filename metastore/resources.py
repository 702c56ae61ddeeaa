"""Files shipped beside the code: the query grammar and the generated schema.

In a source checkout they live at the top of the repository (`grammar/`, `schema/`); in
an installed wheel they are packaged as `metastore/_grammar` and `metastore/_schema`.
"""

from __future__ import annotations

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


def check_installed() -> None:
    """Fail loudly if an installed metastore lacks its grammar or schema (CI uses it)."""
    grammar = sorted(p.name for p in grammar_dir().glob("*.lark"))
    schema = sorted(p.name for p in schema_dir().iterdir() if not p.name.startswith("."))
    if not grammar or not schema:
        raise SystemExit(f"incomplete install: grammar={grammar} schema={schema}")
    print(f"metastore installed with grammar {grammar} and schema {schema}")
