"""metastore: an experiment metadata store for machine learning.

    import metastore
    store = metastore.open()
    with store.start_run(experiment="diabetes") as run:
        run.log_params({"algorithm": "linear"})
        run.log_metric("rmse", 53.1)
    store.query('runs where algorithm = "linear" order by rmse show number, rmse')
"""


from typing import TYPE_CHECKING

from metastore.errors import InvalidValue, MetastoreError, NotFound  # noqa: F401
from metastore.version import __version__  # noqa: F401

if TYPE_CHECKING:
    from metastore.store import Store, open  # noqa: A004, F401


def __getattr__(name: str):
    """`open` and `Store` are imported on first use: `import metastore` stays cheap
    (no SQLAlchemy, pydantic models or database drivers until a store is opened)."""
    if name in ("open", "Store"):
        from metastore import store

        return getattr(store, name)
    raise AttributeError(f"module 'metastore' has no attribute {name!r}")


def compile(text: str, dialect: str = "sqlite") -> str:  # noqa: A001
    """Compile a query to SQL text for a dialect, without a store."""
    from metastore.query import compile_text

    return compile_text(text, dialect=dialect)


def sync(spool=None, token: str | None = None):
    """Send the writes clients kept in the spool (METASTORE_SPOOL, else the user's cache
    folder) while their metastore server was away, to the server each was meant for,
    with `token` (else METASTORE_TOKEN). Returns what was sent, refused and is still
    pending (`metastore sync` prints it); see docs/security.md."""
    from metastore.backends.http import sync as _sync

    return _sync(spool, token=token)


def current_run():
    """The run `metastore run` opened for this process, or None outside one."""
    from metastore.runner import current_run as _current_run

    return _current_run()


__all__ = ["open", "compile", "sync", "current_run", "Store", "MetastoreError", "NotFound", "InvalidValue"]
