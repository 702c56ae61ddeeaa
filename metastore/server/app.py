"""The metastore server: the REST API (and the web UI) over one store.

    from metastore.server import create_app, run_server
    run_server(metastore.open("postgresql://…"), host="0.0.0.0", port=5000)

`create_app` builds the FastAPI application; `run_server` serves it with uvicorn;
`background_server` serves it on a free loopback port in a thread (tests, notebooks).
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from metastore.errors import (
    Ambiguous,
    Conflict,
    IntegrityFailure,
    InvalidValue,
    MetastoreError,
    NotFound,
    StoreUnavailable,
)
from metastore.server import api
from metastore.server.auth import COOKIE_NAME, check_no_auth_allowed, verify_token
from metastore.server.middleware import AuthGate, BodyLimit, Limits, error_body, error_payload
from metastore.server.mlflow_api import mlflow_router

if TYPE_CHECKING:
    from metastore.store import Store

log = logging.getLogger("metastore.server")



class JSON(JSONResponse):
    """JSON that allows NaN and ±Infinity: a param may legitimately be float('inf')."""

    def render(self, content) -> bytes:
        return json.dumps(content, allow_nan=True, default=str, separators=(",", ":")).encode()


def status_of(error: MetastoreError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Ambiguous | Conflict):
        return 409
    if isinstance(error, StoreUnavailable):
        return 503
    if isinstance(error, IntegrityFailure):
        return 422
    return 400


def _scrub(app: FastAPI, payload: dict) -> dict:
    """No server-side path in an error the client sees (a missing blob names the blob
    folder on the server's disk)."""
    backend = app.state.store.backend
    roots = {str(getattr(backend, "blob_root", "") or ""), str(getattr(backend.blobs, "url", ""))}
    error = payload["error"]
    for field in ("message", "hint"):
        text = error.get(field)
        if isinstance(text, str):
            for root in sorted((r for r in roots if len(r) > 1), key=len, reverse=True):
                text = text.replace(root, "the server's blob store")
            error[field] = text
    return payload


def create_app(
    store: Store,
    *,
    auth: bool = True,
    ui: bool = True,
    limits: Limits | None = None,
) -> FastAPI:
    """The application serving `store`: REST API under /api/, the login form, and the
    web UI when `ui` (and the UI package is installed). With `auth` every request needs a
    token; the caller decides whether running without is safe (see `run_server`)."""
    from metastore.version import __version__

    app = FastAPI(
        title="metastore",
        version=__version__,
        description="REST API of a metastore server: experiments, runs, params, metrics, "
        "tags, notes, assets and blobs, lineage and queries. Send "
        "`Authorization: Bearer TOKEN`.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        default_response_class=JSON,
    )
    app.state.store = store
    app.state.auth = auth
    app.state.limits = limits or Limits()
    # the web UI's queries (pages over the Store) run under the server's deadline too
    store.backend.query_timeout = app.state.limits.query_timeout

    @app.exception_handler(MetastoreError)
    async def _metastore_error(request: Request, e: MetastoreError):
        return JSON(_scrub(app, error_body(e)), status_code=status_of(e))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        # unknown routes, wrong methods …: the same envelope as every other error
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(e.status_code, "HTTPError")
        message = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) \
            else str(e.detail)
        hint = "the routes are listed at /api/docs" if e.status_code in (404, 405) else None
        return JSON(error_payload(kind, message, hint), status_code=e.status_code,
                    headers=getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, e: RequestValidationError):
        # malformed JSON and request bodies the route's model refuses
        errors = e.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "body"
        message = ("the request body is not valid JSON" if first.get("type") == "json_invalid"
                   else f"{where}: {first.get('msg', 'invalid')}")
        return JSON(error_payload("InvalidValue", message), status_code=422)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, e: IntegrityError):
        # A write naming something that is not there (a run id, a version id) or racing
        # another writer: the transaction was rolled back as a whole.
        return JSON(
            error_payload(
                "Conflict",
                "the write conflicts with what is stored (does every id it names exist?)",
            ),
            status_code=409,
        )

    @app.exception_handler(DataError)
    async def _data(request: Request, e: DataError):
        return JSON(
            error_payload("InvalidValue", "a value does not fit its column (too long or out of range)"),
            status_code=400,
        )

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, e: OverflowError):
        # A number past what the database driver converts (a run "number" of 30 digits):
        # found by schemathesis; the value was the client's, so the error is too.
        return JSON(
            error_payload("InvalidValue", "a number is out of range for the database"),
            status_code=400,
        )

    @app.exception_handler(api._TooLong)
    async def _too_long(request: Request, e: api._TooLong):
        return JSON(e.payload, status_code=413)

    app.include_router(api.public)
    app.include_router(api.router)
    app.include_router(mlflow_router(store))
    _add_login(app, store)
    if ui:
        _mount_ui(app, store)
    if not any(getattr(r, "path", None) == "/" for r in app.routes):

        @app.get("/", include_in_schema=False)
        def _root():
            return RedirectResponse("/api/docs")

    app.add_middleware(AuthGate, store=store, enabled=auth)
    app.add_middleware(BodyLimit, limits=app.state.limits)
    return app


def _mount_ui(app: FastAPI, store) -> None:
    try:
        from metastore.server.ui import mount_ui
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("metastore.server.ui"):
            log.warning("the web UI is not installed; serving the API only")
            return
        raise
    mount_ui(app, store)


# -- login form for browsers ----------------------------------------------------------------

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>metastore · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:15px system-ui,sans-serif;background:#f5f6f8;display:grid;place-items:center;min-height:90vh;margin:0}}
form{{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:22rem}}
h1{{font-size:1.2rem;margin:0 0 1rem}} label{{display:block;margin-bottom:.3rem}}
input[type=password]{{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}}
button{{margin-top:1rem;padding:.5rem 1.2rem;font:inherit}} .error{{color:#b00020}}
p.help{{color:#555;font-size:.85rem}}
</style></head><body>
<form method="post" action="/login">
<h1>metastore</h1>
{error}
<label for="token">API token</label>
<input type="password" id="token" name="token" autocomplete="current-password" autofocus required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
<p class="help">Ask the server's admin for a token (<code>metastore token create --name YOU</code>).</p>
</form></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never an absolute URL (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _add_login(app: FastAPI, store) -> None:
    def page(next_: str, error: str = "", status: int = 200) -> HTMLResponse:
        block = f'<p class="error">{html.escape(error)}</p>' if error else ""
        return HTMLResponse(
            LOGIN_PAGE.format(error=block, next=html.escape(_safe_next(next_))), status_code=status
        )

    @app.get("/login", include_in_schema=False)
    def login_form(next: str = "/"):
        if not app.state.auth:
            return RedirectResponse(_safe_next(next), status_code=303)
        return page(next)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        next_ = _safe_next((form.get("next") or ["/"])[0])
        if not app.state.auth:
            return RedirectResponse(next_, status_code=303)
        principal = verify_token(store, token)
        if principal is None:
            return page(next_, "That token is not valid (or was revoked).", status=401)
        response = RedirectResponse(next_, status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            token,
            max_age=30 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.api_route("/logout", methods=["GET", "POST"], include_in_schema=False)
    def logout():
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)


# -- serving ------------------------------------------------------------------------------


#: The environment variable through which `run_server` hands the store to its workers.
WORKER_CONFIG = "METASTORE_SERVER_CONFIG"


def run_server(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    auth: bool = True,
    ui: bool = True,
    limits: Limits | None = None,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Serve `store` until interrupted. Without `auth` only a loopback host is allowed:
    anyone who can reach the port could otherwise read and write everything.

    With `workers` > 1, that many server processes share the port (uvicorn's
    workers); each opens the store again from its URL and blob root
    (`app_from_environment`), so the database must take writers from several
    processes: PostgreSQL or MySQL for a team, SQLite (WAL) on one machine."""
    import uvicorn

    if not auth:
        check_no_auth_allowed(host)
    elif not _any_token(store):
        log.warning("no API tokens exist yet: create one with `metastore token create --name NAME`")
    if workers < 1:
        raise InvalidValue(f"workers must be 1 or more, not {workers}")
    try:
        if workers == 1:
            app = create_app(store, auth=auth, ui=ui, limits=limits)
            uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
            return
        backend = store.backend
        if not hasattr(backend, "sa_url"):
            raise InvalidValue("several workers serve a database store, not a metastore server")
        os.environ[WORKER_CONFIG] = json.dumps({
            "url": backend.sa_url.render_as_string(hide_password=False),
            "blobs": backend.blob_root, "auth": auth, "ui": ui,
            "limits": dataclasses.asdict(limits or Limits()),
        })
        uvicorn.run("metastore.server.app:app_from_environment", factory=True, host=host,
                    port=port, workers=workers, log_level=log_level, server_header=False)
    except OSError as e:  # pragma: no cover - depends on the machine
        raise StoreUnavailable(f"cannot listen on {host}:{port}: {e.strerror}") from e


def app_from_environment() -> FastAPI:
    """The application of one worker process of `run_server(workers=N)`: the store and
    the options it put in the environment (uvicorn imports this factory in each)."""
    import metastore

    config = json.loads(os.environ[WORKER_CONFIG])
    store = metastore.open(config["url"], blobs=config["blobs"], create=False)
    return create_app(store, auth=config["auth"], ui=config["ui"],
                      limits=Limits(**config["limits"]))


def _any_token(store: Store) -> bool:
    from metastore.server.auth import list_tokens

    try:
        return bool(list_tokens(store))
    except MetastoreError:
        return False


@contextmanager
def background_server(
    store: Store,
    *,
    auth: bool = True,
    ui: bool = False,
    limits: Limits | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve `store` on a free port (or `port`) of a loopback address in a background
    thread; yields the base URL and stops the server on exit."""
    import uvicorn

    if not auth:
        check_no_auth_allowed(host)
    app = create_app(store, auth=auth, ui=ui, limits=limits)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"metastore-server-{port}", daemon=True
    )
    thread.start()
    try:
        for _ in range(2000):  # bounded: 20 s at most
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise StoreUnavailable(f"the server on {host}:{port} did not start")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
