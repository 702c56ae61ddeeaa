"""Render the generated files in `schema/` from the SQLModel tables.

`scripts/generate_schema.py` writes them; tests/test_schema.py renders them again and
fails on any difference, so `schema/` never drifts from metastore/models.py.
"""

from __future__ import annotations

import inspect
import json

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from metastore.models import TABLES

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect(), "mysql": mysql.dialect()}
HEADER = "-- Generated from metastore/models.py by scripts/generate_schema.py; do not edit.\n"


def ddl(dialect_name: str) -> str:
    dialect = DIALECTS[dialect_name]
    parts = [HEADER + f"-- dialect: {dialect_name}\n"]
    for model in TABLES:
        table = model.__table__
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";\n")
        for index in sorted(table.indexes, key=lambda i: i.name):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";\n")
    return "\n".join(parts)


def _type_name(column: sa.Column) -> str:
    return type(column.type).__name__.lower().replace("autostring", "string")


def mermaid() -> str:
    lines = ["erDiagram"]
    for model in TABLES:
        table = model.__table__
        lines.append(f"    {table.name} {{")
        for column in table.columns:
            keys = []
            if column.primary_key:
                keys.append("PK")
            if column.foreign_keys:
                keys.append("FK")
            suffix = f" {','.join(keys)}" if keys else ""
            lines.append(f"        {_type_name(column)} {column.name}{suffix}")
        lines.append("    }")
    for model in TABLES:
        table = model.__table__
        for column in table.columns:
            for fk in column.foreign_keys:
                target = fk.column.table.name
                lines.append(f'    {target} ||--o{{ {table.name} : "{column.name}"')
    # Lineage edges point at runs or asset versions by (type, id), not by foreign key.
    lines.append('    run ||--o{ lineage_edge : "src/dst (type run)"')
    lines.append('    asset_version ||--o{ lineage_edge : "src/dst (type asset_version)"')
    return "\n".join(lines) + "\n"


def readme() -> str:
    out = [
        "# The schema",
        "",
        "Generated from `metastore/models.py` by `scripts/generate_schema.py`; do not edit.",
        "The files beside this one: `sqlite.sql`, `postgresql.sql`, `mysql.sql` (the DDL each",
        "dialect gets), `er.mmd` (a Mermaid ER diagram) and `bundle.schema.json` (the JSON",
        "Schema of the portable export bundle). Migrations live in `metastore/migrations/`.",
        "",
    ]
    for model in TABLES:
        table = model.__table__
        doc = " ".join(inspect.cleandoc(model.__doc__ or "").split())
        out += [f"## `{table.name}`", "", doc, ""]
        out.append("| column | type | notes |")
        out.append("|---|---|---|")
        for column in table.columns:
            notes = []
            if column.primary_key:
                notes.append("primary key")
            for fk in column.foreign_keys:
                notes.append(f"→ {fk.target_fullname}")
            if column.nullable and not column.primary_key:
                notes.append("nullable")
            if column.comment or column.doc:
                notes.append(column.comment or column.doc)
            out.append(f"| {column.name} | {_type_name(column)} | {'; '.join(notes)} |")
        indexes = sorted(
            [f"{i.name} ({', '.join(c.name for c in i.columns)})" for i in table.indexes]
        )
        if indexes:
            out += ["", "Indexes: " + "; ".join(indexes) + "."]
        out.append("")
    return "\n".join(out)


def bundle_schema() -> str | None:
    try:
        from metastore.exporters.bundle import bundle_json_schema
    except ImportError:
        return None
    return json.dumps(bundle_json_schema(), indent=2, sort_keys=True) + "\n"


def render() -> dict[str, str]:
    """File name → content for everything in schema/."""
    files = {f"{name}.sql": ddl(name) for name in DIALECTS}
    files["er.mmd"] = mermaid()
    files["README.md"] = readme()
    bundle = bundle_schema()
    if bundle is not None:
        files["bundle.schema.json"] = bundle
    return files
