"""note words: the full-text index of notes (SQLite FTS5, PostgreSQL GIN)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:00:00

What the index holds and how queries use it: metastore/fulltext.py. A SQLite built
without FTS5 gets no index (queries then read the notes with a regular expression),
and MySQL/MariaDB never do.
"""

from alembic import op

from metastore import fulltext

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _sqlite_has_fts5(conn) -> bool:
    options = {row[0] for row in conn.exec_driver_sql("PRAGMA compile_options")}
    if "ENABLE_FTS5" in options:
        return True
    try:  # a loadable or built-in module not named in the options
        conn.exec_driver_sql("SELECT fts5(NULL)")
    except Exception:
        return False
    return True


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite" and _sqlite_has_fts5(conn):
        statements = fulltext.SQLITE_CREATE
    elif conn.dialect.name == "postgresql":
        statements = fulltext.PG_CREATE
    else:
        return
    for sql in statements:
        conn.exec_driver_sql(sql)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        statements = fulltext.SQLITE_DROP
    elif conn.dialect.name == "postgresql":
        statements = fulltext.PG_DROP
    else:
        return
    for sql in statements:
        conn.exec_driver_sql(sql)
