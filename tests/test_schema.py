"""The schema: generated files match the models, migrations match the models."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import metastore
from metastore import database
from metastore.fulltext import is_note_index
from metastore.schemagen import render

SCHEMA = Path(__file__).resolve().parent.parent / "schema"


def test_schema_folder_matches_the_models():
    stale = [name for name, content in render().items()
             if not (SCHEMA / name).exists() or (SCHEMA / name).read_text() != content]
    assert not stale, f"schema/ is out of date for {stale}: run python scripts/generate_schema.py"


def test_code_expects_the_migrations_head():
    cfg = Config()
    cfg.set_main_option("script_location", str(database.MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == database.SCHEMA_REVISION


def test_migrations_produce_the_models_schema(db_store):
    with db_store.backend.writer.connect() as conn:
        # the note index's tables and index are the migrations' own, not models
        ctx = MigrationContext.configure(conn, opts={
            "include_name": lambda name, type_, _: not is_note_index(name, type_)})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == [], "models.py changed without a migration (alembic revision --autogenerate)"


def test_store_opens_after_a_later_schema_change(tmp_path, monkeypatch):
    """A store made by this release opens, data intact, after a release that adds a
    migration: the upgrade runs on open."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with metastore.open(url, blobs=tmp_path / "b") as store:
        with store.start_run(experiment="e", capture=False) as run:
            run.log_metric("rmse", 1.5)

    migrations = tmp_path / "migrations"
    shutil.copytree(database.MIGRATIONS, migrations)
    (migrations / "versions" / "9999_future.py").write_text(textwrap.dedent(f'''
        from alembic import op
        import sqlalchemy as sa
        revision = "9999"
        down_revision = "{database.SCHEMA_REVISION}"  # follows this release's head
        branch_labels = None
        depends_on = None
        def upgrade():
            with op.batch_alter_table("run") as batch:
                batch.add_column(sa.Column("future", sa.String(10), nullable=True))
        def downgrade():
            pass
    '''))
    monkeypatch.setattr(database, "MIGRATIONS", migrations)
    monkeypatch.setattr(database, "SCHEMA_REVISION", "9999")
    with metastore.open(url, blobs=tmp_path / "b") as store:
        assert store.get_run(run.id).metrics["rmse"] == 1.5
        with store.backend.reader.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("run")}
        assert "future" in columns
        assert database.current_revision(store.backend.reader) == "9999"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_ddl_is_generated_for_each_dialect(dialect):
    text = (SCHEMA / f"{dialect}.sql").read_text()
    for table in ("run", "param", "metric_summary", "lineage_edge", "asset_version"):
        assert f"CREATE TABLE {table} " in text
