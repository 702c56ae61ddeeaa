"""The REST API under /api/: one route per Backend primitive, generated from the route
table (`metastore.backends.routes`), plus the transport routes written here.

Each generated route validates its request with the table's request model, calls the
primitive on the server's backend (`app.state.store.backend`) and answers with the
table's response model; the HTTP client (`metastore.backends.http`) is built from the
same table. Rows travel as the SQLModel tables' own JSON. Errors a user can cause come
back as `{"error": {"type", "message", "hint", …}}` with a 4xx status; `type` names the
`MetastoreError` subclass so the client raises the same exception the store raised.
A write sent with an `Idempotency-Key` header is applied once per key
(`Backend.apply_once`); a repeat gets the first answer.

Written by hand, because they move bytes or describe the connection rather than call a
primitive: /api/health, /api/session, /api/blobs/{digest} (HEAD, GET, PUT) and
/api/versions/{id}/content.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from metastore.backends.base import Backend
from metastore.backends.routes import (
    IDEMPOTENCY_HEADER,
    NOTHING,
    PREFIX,
    REQUESTS,
    ROUTES,
    Route,
    dumps,
    json_pieces,
    to_json,
)
from metastore.blobs import CHUNK, DIR_MEDIA_TYPE
from metastore.errors import IntegrityFailure, InvalidValue, MetastoreError, NotFound
from metastore.server.middleware import error_body, error_payload

log = logging.getLogger("metastore.server")

# Declares the bearer scheme in the OpenAPI document; the AuthGate middleware enforces it.
bearer = HTTPBearer(auto_error=False, description="an API token from `metastore token create`")
router = APIRouter(prefix=PREFIX, dependencies=[Depends(bearer)])
public = APIRouter(prefix=PREFIX)


def backend_of(request: Request) -> Backend:
    return request.app.state.store.backend


# -- the primitives, from the route table ------------------------------------------------


class _TooLong(Exception):
    def __init__(self, payload: dict):
        self.payload = payload


def _check_length(request: Request, text: str) -> None:
    limit = request.app.state.limits.max_query_chars
    if len(text) > limit:
        raise _TooLong(error_payload("TooLarge", f"query text is longer than {limit} characters"))


def _endpoint(route: Route):
    """The server side of one route: validate, call the primitive, answer its JSON."""
    model = REQUESTS[route.name]
    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    for name in route.path_params:
        tp = route.param_type(name)
        tp = int if tp is int else str
        parameters.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[tp, FastAPIPath(**route.bounds.get(name, {}))],
        ))
    if model is not None:
        where = Query() if route.in_query else Body()
        parameters.append(inspect.Parameter(
            "body", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[model, where]
        ))

    def endpoint(request: Request, body: BaseModel | None = None, **path: Any) -> Response:
        args = dict(path)
        if body is not None:
            args.update({name: getattr(body, name) for name in type(body).model_fields})
        if route.text_limit:
            _check_length(request, args[route.text_limit])
        if route.deadline:
            limits = request.app.state.limits
            asked = args.get(route.deadline)
            args[route.deadline] = (limits.query_timeout if asked is None
                                    else min(asked, limits.max_query_timeout))
        backend = backend_of(request)
        if route.check is not None:
            route.check(backend, args)
        if route.stream == "rows":
            return _rows_response(request, backend, args)
        if route.stream == "items":
            result = getattr(backend, route.name)(**args)
            return StreamingResponse(json_pieces(route, result), media_type="application/json")
        key = request.headers.get(IDEMPOTENCY_HEADER) if route.writes else None
        if key is None:
            result = getattr(backend, route.name)(**args)
            return Response(to_json(route, result), media_type="application/json")
        # applied once per key, in the write's own transaction: a client repeating a
        # request whose answer it lost (this server killed mid-request) gets the answer
        answers = route.response is not NOTHING
        data = backend.apply_once(
            key, route.name, lambda: getattr(backend, route.name)(**args),
            (lambda result: to_json(route, result)) if answers else None,
        )
        return Response(data if data is not None else to_json(route, None),
                        media_type="application/json")

    endpoint.__name__ = route.name
    endpoint.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return endpoint


#: The media type of a query's answer a line at a time (`HTTPBackend.query_stream`).
LINES = "application/x-ndjson"
#: Rows gathered before a piece of a streamed answer is sent.
PIECE_ROWS = 500


def _rows_response(request: Request, backend: Backend, args: dict) -> Response:
    """A query's answer written while the cursor gives its rows (`query_stream`).

    The query is compiled and run, and its first row read, before the answer starts:
    an error up to there is the usual `{"error": …}` with its status. One met later
    (the deadline, the database gone) can no longer change the status: the answer ends
    with it instead, `"error": {…}` after the rows (JSON) or as the last line (lines),
    and a client raises it. As JSON (the default) the answer is `QueryAnswer`'s shape;
    with `Accept: application/x-ndjson` it is one line with the columns, SQL and
    dialect, a line per row (its values in column order), and `{"end": rows}`."""
    manager = backend.query_stream(args["text"], args.get("experiment"), args.get("timeout"))
    answer = manager.__enter__()
    try:
        first = list(islice(answer.rows, 1))
    except BaseException:
        if not manager.__exit__(*sys.exc_info()):
            raise
        first = []
    lines = LINES in request.headers.get("accept", "")
    return StreamingResponse(_answer_pieces(manager, answer, first, lines),
                             media_type=LINES if lines else "application/json")


def _answer_pieces(manager, answer, first: list, lines: bool) -> Iterator[bytes]:
    columns = answer.columns
    head = {"columns": columns, "sql": answer.sql, "dialect": answer.dialect}
    out = [dumps(head) + b"\n" if lines else dumps(head)[:-1] + b',"rows":[']
    count, failed = 0, None
    try:
        for row in chain(first, answer.rows):
            if lines:
                out.append(dumps([row.get(c) for c in columns]) + b"\n")
            else:
                out.append(b"," + dumps(row) if count else dumps(row))
            count += 1
            if count == 1 or len(out) >= PIECE_ROWS:  # the first row goes at once
                yield b"".join(out)
                out = []
    except MetastoreError as e:
        failed = error_body(e)
    except Exception:  # noqa: BLE001 - the client is told; the details stay here
        log.exception("a query failed while its answer was being sent")
        failed = error_payload("MetastoreError", "the server failed while sending the answer")
    finally:
        manager.__exit__(None, None, None)
    if lines:
        out.append(dumps(failed if failed else {"end": count}) + b"\n")
    else:
        out.append(b"]" + (b',"error":' + dumps(failed["error"]) if failed else b"") + b"}")
    yield b"".join(out)


def _register(routes: list[Route]) -> None:
    # A `{name:path}` parameter swallows slashes: such routes go after the others so
    # /runs/{run_id}/params is not read as a run named "…/params".
    for route in sorted(routes, key=lambda r: ":path}" in r.path):
        doc = route.doc
        router.add_api_route(
            route.path,
            _endpoint(route),
            methods=[route.method],
            response_model=route.response.model,
            name=route.name,
            operation_id=route.name,
            summary=doc.split("\n", 1)[0].rstrip("."),
            description=f"`Backend.{route.name}`: {doc}",
            tags=[route.tag],
        )


_register(ROUTES)


# -- transport: health, session, blobs -------------------------------------------------------


class SessionOut(BaseModel):
    name: str
    read_only: bool
    auth: bool
    version: str


@public.get("/health", tags=["server"])
def health() -> dict[str, str]:
    """Liveness probe; needs no token."""
    return {"status": "ok"}


@router.get("/session", response_model=SessionOut, tags=["server"])
def session(request: Request):
    """Who the token stands for and whether it may write."""
    from metastore.version import __version__

    principal = request.scope.get("state", {}).get("principal")
    return SessionOut(
        name=principal.name if principal else "anonymous",
        read_only=bool(principal and principal.read_only),
        auth=request.app.state.auth,
        version=__version__,
    )


def _digest(digest: str) -> str:
    """Only a sha256 in hex addresses a blob, so no path can be smuggled in."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValue(f"not a sha256 digest: {digest[:80]!r}")
    return digest


def _stream(backend: Backend, digest: str, media_type: str, filename: str | None = None):
    blobs = backend.blobs
    local = blobs.local_path(_digest(digest))
    if local is not None:
        # Defence in depth: whatever the digest, the file must lie inside the blob root.
        root = os.path.realpath(blobs._root)
        if os.path.commonpath([root, os.path.realpath(local)]) != root:
            raise NotFound(f"no blob {digest}")
    f = blobs.open(digest)  # verifies the digest first: corrupt content is never served

    def chunks():
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    headers = {"x-content-sha256": digest}
    if filename:
        safe = "".join(c for c in filename if c.isprintable() and c not in '"\\/')
        headers["content-disposition"] = f'attachment; filename="{safe}"'
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


@router.get(
    "/versions/{version_id}/content",
    tags=["assets"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_version(version_id: str, request: Request):
    """The version's bytes, verified against its digest. A directory version gives its
    manifest (relative path → digest and size); fetch each file from /api/blobs/."""
    backend = backend_of(request)
    asset, av = backend.get_version_by_id(version_id)
    if av.uri != "blob:":
        raise NotFound(f"{asset.kind}:{asset.name}@{av.version} is referenced at {av.uri}, not stored")
    filename = json.loads(av.meta).get("filename") if av.meta else None
    filename = filename or f"{asset.name}-v{av.version}"
    if av.media_type == DIR_MEDIA_TYPE:
        media, filename = "application/json", filename + ".manifest.json"
    else:
        media = av.media_type or "application/octet-stream"
    return _stream(backend, av.digest, media, filename)


@router.head("/blobs/{digest}", tags=["blobs"])
def blob_exists(digest: str, request: Request):
    """200 when the blob is stored, 404 otherwise (clients skip re-uploading content)."""
    return Response(status_code=200 if backend_of(request).blobs.exists(_digest(digest)) else 404)


@router.get(
    "/blobs/{digest}",
    tags=["blobs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_blob(digest: str, request: Request):
    """A blob's bytes, verified against its digest before they are sent."""
    return _stream(backend_of(request), digest, "application/octet-stream")


@router.put(
    "/blobs/{digest}",
    tags=["blobs"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_blob(digest: str, request: Request) -> dict[str, Any]:
    """Store bytes under their sha256. The bytes must hash to `digest`; the same content
    is stored once however often it is sent."""
    backend = backend_of(request)
    _digest(digest)
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix="metastore-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                h.update(chunk)
                size += len(chunk)
                await anyio.to_thread.run_sync(f.write, chunk)
        if h.hexdigest() != digest:
            raise IntegrityFailure(
                f"uploaded bytes hash to {h.hexdigest()}, not {digest}",
                hint="the upload was damaged or the digest is wrong; send it again",
            )
        await anyio.to_thread.run_sync(backend.blobs.put_file, Path(tmp))
    finally:
        os.unlink(tmp)
    return {"digest": digest, "size": size}
