"""Alembic environment: runs on the connection metastore hands it (see database.migrate)."""

from alembic import context
from sqlmodel import SQLModel

import metastore.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")

if connection is None:  # `alembic` CLI use, for writing new revisions
    import sqlalchemy as sa

    url = context.config.get_main_option("sqlalchemy.url")
    connection = sa.create_engine(url).connect()

context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
