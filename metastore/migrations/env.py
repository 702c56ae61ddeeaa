"""Alembic environment: runs on the connection metastore hands it (see database.migrate)."""

from alembic import context
from sqlmodel import SQLModel

import metastore.models  # noqa: F401  (registers the tables)
from metastore.fulltext import is_note_index

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` CLI use, for writing new revisions
    import sqlalchemy as sa

    url = context.config.get_main_option("sqlalchemy.url")
    connection = sa.create_engine(url).connect()


def include_name(name, type_, parent_names):
    # the note index (migration 0006) is not in the models: autogenerate leaves it alone
    return not is_note_index(name, type_)


context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                  include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
