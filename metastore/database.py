"""Opening a database: URL normalisation, per-dialect connection settings, migrations.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`: a deferred transaction that reads and then writes can fail at once
with SQLITE_BUSY when another process committed in between (the busy timeout does not
apply to that lock upgrade), which is what breaks naive multi-process logging.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from metastore.errors import InvalidURL, NotFound, SchemaMismatch, StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 60_000
MIGRATIONS = Path(__file__).parent / "migrations"
# The Alembic revision this code expects lives in metastore.vocabulary (the quick SQLite
# reader checks it without importing this module); a test checks it is the migrations' head.
from metastore.vocabulary import SCHEMA_REVISION  # noqa: E402


def normalize_url(url: str) -> URL:
    """Accept the URLs people type and pick the driver metastore ships with."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise InvalidURL(
            f"not a database URL: {url!r}",
            hint="use sqlite:///path.db, postgresql://user@host/db or mysql://user@host/db",
        ) from e
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="mysql+pymysql")
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    elif backend not in ("sqlite", "postgresql", "mysql", "mariadb", "duckdb"):
        raise InvalidURL(f"unsupported database {backend!r} in {url!r}")
    return parsed


def safe_url(url: URL | str) -> str:
    """The URL with any password hidden, for messages."""
    if isinstance(url, str):
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
    return url.render_as_string(hide_password=True)


def create_engines(url: URL, *, create: bool = True) -> tuple[Engine, Engine]:
    """(reader, writer) engines. They differ only on SQLite, where the writer begins
    every transaction IMMEDIATE (see the module docstring)."""
    try:
        if url.get_backend_name() != "sqlite":
            engine = sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)
            return engine, engine
        database = url.database
        if database and database != ":memory:":
            if create:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            elif not Path(database).exists():
                # sqlite3 would create an empty file (and the folder above it must exist)
                raise NotFound(f"there is no metastore at {database}",
                               hint="check the path, or create one with `metastore init`")
        reader = _sqlite_engine(url, immediate=False)
        writer = _sqlite_engine(url, immediate=True)
        return reader, writer
    except NoSuchModuleError as e:
        raise InvalidURL(f"no driver for {safe_url(url)}: {e}") from e
    except ModuleNotFoundError as e:
        raise InvalidURL(
            f"the driver for {safe_url(url)} is not installed ({e.name})",
            hint="pip install 'metastore[postgres]' or 'metastore[mysql]'",
        ) from e


def _sqlite_engine(url: URL, immediate: bool) -> Engine:
    engine = sa.create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event issue BEGIN, not the sqlite3 module.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def check_reachable(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
        raise StoreUnavailable(
            f"cannot open the database at {safe_url(engine.url)}: {reason}",
            hint="is the server running, and the URL right?",
        ) from e


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


@contextmanager
def _migration_lock(conn: sa.Connection) -> Iterator[None]:
    """Serialise schema creation between processes opening a new store at once."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(734501)")
        yield
    elif dialect in ("mysql", "mariadb"):
        conn.exec_driver_sql("SELECT GET_LOCK('metastore_migrate', 120)")
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT RELEASE_LOCK('metastore_migrate')")
    else:
        yield  # SQLite: the writer's BEGIN IMMEDIATE already serialises


def migrate(engine: Engine) -> None:
    """Bring the schema to SCHEMA_REVISION, creating it in an empty database."""
    if current_revision(engine) == SCHEMA_REVISION:
        return
    # a newer store than this package's head: never hand it to alembic (its error is a
    # traceback naming a revision it cannot find)
    revision = current_revision(engine)
    if revision is not None and revision not in known_revisions():
        check_schema(engine, create=False)
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn, _migration_lock(conn):
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# -- schema revisions: checking a store on open, status and upgrade ----------------------


def _script():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def known_revisions() -> list[str]:
    """The revisions this package's migrations know, oldest first."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def schema_state(revision: str | None) -> str:
    """"new" (no schema yet), "current", "older" (this package can upgrade it) or
    "newer" (written by a later metastore)."""
    if revision is None:
        return "new"
    if revision == SCHEMA_REVISION:
        return "current"
    return "older" if revision in known_revisions() else "newer"


def check_schema(engine: Engine, *, create: bool) -> None:
    """What opening a store does about its schema revision (docs/security.md):

    - none yet: create it (with `create`);
    - current: nothing (one small read, the common case);
    - newer: SchemaMismatch naming both revisions: this metastore cannot read it;
    - older: a SQLite file is backed up beside itself and upgraded (it has one owner);
      a PostgreSQL/MariaDB store, shared by clients of several versions, is upgraded
      only on purpose, by `metastore db upgrade`."""
    revision = current_revision(engine)
    if revision == SCHEMA_REVISION:
        return
    state = schema_state(revision)
    if state == "new":
        if not create:
            # opening to read (the CLI's read commands, completion): a mistyped store
            # must not be answered as an empty one
            raise NotFound(f"{safe_url(engine.url)} holds no metastore",
                           hint="check the store's URL, or create one with `metastore init`")
        migrate(engine)
        return
    if state == "newer":
        raise SchemaMismatch(
            f"the store's schema is at revision {revision!r}, newer than this metastore's "
            f"{SCHEMA_REVISION!r}: it was written by a later version of metastore",
            hint="upgrade metastore (pip install -U metastore) to open it",
        )
    if engine.url.get_backend_name() == "sqlite":
        upgrade(engine)
        return
    raise SchemaMismatch(
        f"the store's schema is at revision {revision!r}, older than this metastore's "
        f"{SCHEMA_REVISION!r}",
        hint=f"upgrade it once for every client: metastore db upgrade --store "
        f"{safe_url(engine.url)} (clients of the older metastore must then be upgraded too)",
    )


def upgrade(engine: Engine, *, backup: bool = True) -> dict:
    """Bring an older (or new) store to this package's revision; a SQLite file is first
    copied beside itself (`metastore.db.backup-REVISION`) with SQLite's backup API.
    Returns {"from", "to", "backup"}."""
    revision = current_revision(engine)
    state = schema_state(revision)
    if state == "newer":
        check_schema(engine, create=False)  # raises, naming both revisions
    copy = None
    if backup and state == "older" and engine.url.get_backend_name() == "sqlite":
        copy = backup_sqlite(engine, revision)
    migrate(engine)
    return {"from": revision, "to": SCHEMA_REVISION, "backup": str(copy) if copy else None}


def backup_sqlite(engine: Engine, revision: str | None) -> Path:
    """A consistent copy of a SQLite store beside it (WAL included), before an upgrade."""
    import sqlite3

    source = Path(engine.url.database)
    target = source.with_name(f"{source.name}.backup-{revision}")
    n = 1
    while target.exists():
        n += 1
        target = source.with_name(f"{source.name}.backup-{revision}-{n}")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()
    return target


def schema_status(engine: Engine) -> dict:
    """The store's revision, this package's, and what opening it would do."""
    revision = current_revision(engine)
    return {"store": revision, "package": SCHEMA_REVISION, "state": schema_state(revision)}
