"""ASGI middleware: request size limits and the authentication gate.

Both are plain ASGI (not BaseHTTPMiddleware) so request bodies keep streaming: a blob
upload is counted as it arrives and cut off at the limit, never buffered whole first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import anyio

from metastore.backends import routes
from metastore.server.auth import (
    COOKIE_NAME,
    SAFE_METHODS,
    Principal,
    bearer_token,
    verify_token,
)
from metastore.server.mlflow_api import READING_POSTS as MLFLOW_READING_POSTS

MiB = 1 << 20
#: Uploads of content: blobs, and artifacts through MLflow's artifact proxy.
BLOB_PATHS = ("/api/blobs/", "/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/")


@dataclass(frozen=True)
class Limits:
    """Request size limits. JSON bodies carry params, metrics and notes, so a few MiB
    is plenty; blob uploads carry datasets and models, so they get their own limit."""

    max_body_bytes: int = 16 * MiB
    max_blob_bytes: int = 8 * 1024 * MiB
    max_query_chars: int = 10_000
    #: Seconds a query may run when the client names no deadline, and the most a
    #: client may ask for (`store.query(text, timeout=…)`).
    query_timeout: float = 30.0
    max_query_timeout: float = 300.0


async def _send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_payload(kind: str, message: str, hint: str | None = None) -> dict:
    return {"error": {"type": kind, "message": message, "hint": hint}}


#: Extra fields of a QueryError (or any error) that travel to the client.
ERROR_FIELDS = ("line", "column", "length", "caret", "suggestion", "text")


def error_body(error) -> dict:
    """The envelope of a MetastoreError: its class name, message, hint and fields."""
    payload = error_payload(type(error).__name__, error.message, error.hint)
    for name in ERROR_FIELDS:
        value = getattr(error, name, None)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            payload["error"][name] = value
    return payload


class BodyLimit:
    """413 for a request body over its limit, judged by Content-Length when sent and by
    counting the bytes as they arrive otherwise (chunked uploads)."""

    def __init__(self, app, limits: Limits):
        self.app = app
        self.limits = limits

    def _limit(self, scope) -> int:
        if scope["method"] == "PUT" and scope["path"].startswith(BLOB_PATHS):
            return self.limits.max_blob_bytes
        return self.limits.max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        too_large = error_payload(
            "TooLarge", f"request body is larger than the server's limit of {limit} bytes"
        )
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await _send_json(send, 400, error_payload("InvalidValue", "bad Content-Length"))
                if declared > limit:
                    return await _send_json(send, 413, too_large)
        seen = 0
        started = refused = False

        async def counted_receive():
            # Past the limit, answer 413 at once and tell the app the client is gone, so
            # whatever it was reading stops; frameworks turn a raised error into a 400.
            nonlocal seen, refused, started
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        started = True
                        await _send_json(send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if refused:
                return  # the 413 has been sent; the app's own answer goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise


#: Reachable without a token: the login form, a liveness probe and the API description.
PUBLIC_PATHS = frozenset(
    {"/login", "/logout", "/api/health", "/api/openapi.json", "/api/docs", "/favicon.ico"}
)


#: POST routes that only read (a query text or a list of ids can be too long for a
#: URL): the route table marks them.
READING_POSTS = routes.READING_POSTS | MLFLOW_READING_POSTS


class AuthGate:
    """Every request but the public paths needs a valid token, from the Authorization
    header or the login cookie; read-only tokens may only use safe methods.

    API requests without a token get 401 (JSON); page requests are sent to the login form.
    A write authenticated by cookie must come from this server's own pages (same Origin),
    so another site cannot make a logged-in browser write (CSRF)."""

    def __init__(self, app, store, enabled: bool):
        self.app = app
        self.store = store
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.enabled:
            scope.setdefault("state", {})["principal"] = Principal("anonymous", read_only=False)
            return await self.app(scope, receive, send)
        path = scope["path"]
        method = scope["method"]
        if path in PUBLIC_PATHS or path.startswith("/api/docs"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        token = bearer_token(headers.get("authorization"))
        via_cookie = False
        if token is None:
            token = _cookie(headers.get("cookie", ""), COOKIE_NAME)
            via_cookie = token is not None
        principal = None
        if token is not None:
            principal = await anyio.to_thread.run_sync(verify_token, self.store, token)
        is_api = path == "/api" or path.startswith("/api/")
        if principal is None:
            if not is_api and method in SAFE_METHODS:
                target = path + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
                location = "/login?next=" + quote(target, safe="")
                await send(
                    {
                        "type": "http.response.start",
                        "status": 303,
                        "headers": [(b"location", location.encode()), (b"content-length", b"0")],
                    }
                )
                return await send({"type": "http.response.body", "body": b""})
            message = "invalid or revoked token" if token else "this server needs a token"
            return await _send_json(
                send,
                401,
                error_payload(
                    "Unauthorized",
                    message,
                    "send 'Authorization: Bearer TOKEN'; an admin creates one with "
                    "`metastore token create --name NAME`",
                ),
                [(b"www-authenticate", b"Bearer")],
            )
        if method not in SAFE_METHODS and path not in READING_POSTS:
            if principal.read_only:
                return await _send_json(
                    send,
                    403,
                    error_payload(
                        "Forbidden",
                        f"token {principal.name!r} is read-only and cannot write",
                        "create a token without --read-only for clients that record runs",
                    ),
                )
            if via_cookie and not _same_origin(headers, scope):
                return await _send_json(
                    send,
                    403,
                    error_payload("Forbidden", "cross-site write refused (Origin does not match)"),
                )
        scope.setdefault("state", {})["principal"] = Principal(
            principal.name, principal.read_only, via_cookie
        )
        await self.app(scope, receive, send)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value.strip('"')
    return None


def _same_origin(headers: dict[str, str], scope) -> bool:
    """A cookie-authenticated write must name this host in Origin (or, for browsers that
    omit Origin, in Referer); a request with neither is refused."""
    source = headers.get("origin") or headers.get("referer")
    if not source:
        return False
    return urlsplit(source).netloc == headers.get("host", "")
