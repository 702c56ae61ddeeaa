"""The metastore server: a REST API (and the web UI) over one store, with API tokens.

`create_app(store)` builds the FastAPI application, `run_server(store, host, port)` serves
it with uvicorn, and `background_server(store)` serves it on a free loopback port in a
thread. `metastore.open("http://host:port", token=...)` is the client
(`metastore.backends.http`); both sides are generated from `metastore.backends.routes`.
"""

from metastore.server.app import background_server, create_app, run_server
from metastore.server.auth import create_token, list_tokens, revoke_token
from metastore.server.middleware import Limits

__all__ = [
    "create_app",
    "run_server",
    "background_server",
    "create_token",
    "list_tokens",
    "revoke_token",
    "Limits",
]
