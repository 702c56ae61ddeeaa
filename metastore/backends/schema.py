"""A store's schema revision, read and upgraded by URL without opening the store
(`metastore db status`, `metastore db upgrade`): opening a newer store is refused, and
an older PostgreSQL/MariaDB one must be upgraded on purpose first (see
`metastore.database.check_schema`, docs/security.md)."""

from __future__ import annotations

from metastore import database


def _engine(url: str):
    _, writer = database.create_engines(database.normalize_url(url))
    database.check_reachable(writer)
    return writer


def schema_status(url: str) -> dict:
    """{"store": revision or None, "package": this metastore's, "state": new, current,
    older or newer}."""
    engine = _engine(url)
    try:
        return database.schema_status(engine)
    finally:
        engine.dispose()


def upgrade_schema(url: str, *, backup: bool = True) -> dict:
    """Upgrade the store's schema to this metastore's revision (a SQLite file is first
    copied beside itself). {"from", "to", "backup"}."""
    engine = _engine(url)
    try:
        return database.upgrade(engine, backup=backup)
    finally:
        engine.dispose()
