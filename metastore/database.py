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

from metastore.errors import InvalidURL, StoreUnavailable

SQLITE_BUSY_TIMEOUT_MS = 60_000
MIGRATIONS = Path(__file__).parent / "migrations"
#: The Alembic revision this code expects; a test checks it is the migrations' head.
SCHEMA_REVISION = "0002"


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


def create_engines(url: URL) -> tuple[Engine, Engine]:
    """(reader, writer) engines. They differ only on SQLite, where the writer begins
    every transaction IMMEDIATE (see the module docstring)."""
    try:
        if url.get_backend_name() != "sqlite":
            engine = sa.create_engine(url, pool_pre_ping=True, pool_recycle=3600)
            return engine, engine
        database = url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
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
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn, _migration_lock(conn):
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
