"""The HTTP backend: a metastore server's store, `metastore.open("http://host:5000", token=...)`.

Its primitives are not written here one by one: each is built from the route table
(`metastore.backends.routes`) as one generic call: bind the arguments to the
primitive's signature, check them against the route's request model, send them (path,
query string or JSON body), and rebuild the answer from the route's response model.
The server registers its routes from the same table, so both sides always agree.

What is written here is the transport: retries, the mapping of the server's error
envelope back to the exception its store raised (`AccessDenied` for 401/403), and the
blob routes: content is hashed on the client and uploaded once per digest
(`PUT /api/blobs/{digest}`); downloads are checked against their digest on arrival.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from metastore import errors
from metastore.backends.base import Backend
from metastore.backends.routes import PREFIX, ROUTES, Route, dumps, from_json, request_of
from metastore.blobs import CHUNK, Blobs, sha256_file
from metastore.errors import IntegrityFailure, InvalidValue, MetastoreError, StoreUnavailable


class AccessDenied(MetastoreError):
    """The server refused the token (missing, unknown, revoked, or read-only for a write)."""


def _primitive(route: Route):
    """The client side of one route: a method with the primitive's own signature."""
    signature = route.signature

    def primitive(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        return self._invoke(route, values)

    primitive.__name__ = primitive.__qualname__ = route.name
    primitive.__signature__ = signature
    primitive.__doc__ = f"{route.method} {route.url}: {route.doc}"
    return primitive


#: Backend with every routed primitive filled in from the table.
_Routed = type("_Routed", (Backend,), {r.name: _primitive(r) for r in ROUTES})


class HTTPBackend(_Routed):
    """The Backend interface over a metastore server's REST API."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 60.0, retries: int = 5
    ):
        self.url = url.rstrip("/")
        self.retries = retries
        self.token = token
        self.dialect = "remote"
        headers = {"user-agent": "metastore-client"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._memo: dict[tuple, Any] = {}
        self.blobs = HTTPBlobs(self)
        self.blob_root = f"{self.url}{PREFIX}/blobs"
        session = json.loads(self._send("GET", f"{PREFIX}/session").content)
        self.principal = session["name"]
        self.read_only = session["read_only"]

    def __repr__(self) -> str:
        return f"HTTPBackend({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's bytes, downloaded and checked against the digest before use."""
        return self.blobs.open(digest)

    def cache_dir(self) -> Path:
        return Path(tempfile.gettempdir()) / "metastore-cache"

    # -- the one call path of every routed primitive ----------------------------------------
    def _invoke(self, route: Route, values: dict[str, Any]) -> Any:
        key = (route.name, *values.items()) if route.memo else None
        if key is not None and key in self._memo:
            return self._memo[key]
        if route.prepare is not None:
            values = route.prepare(self, values)
        path = route.url
        for name in route.path_params:
            text = str(values[name])
            if not text.strip():
                raise errors.NotFound(f"no {name.replace('_', ' ')} {text!r}",
                                      hint=f"{route.name} needs a non-empty {name}")
            path = path.replace(f"{{{name}:path}}", _seg(text)).replace(f"{{{name}}}", _seg(text))
        request = request_of(route, values)
        params = content = None
        if request is not None and route.in_query:
            params = request.model_dump(mode="json", exclude_none=True)
        elif request is not None:
            content = dumps(request.model_dump(mode="python"))
        wait = None
        if route.deadline and values.get(route.deadline) is not None:
            # the server cancels the query at its deadline: wait for that answer
            wait = max(self._http.timeout.read or 0, values[route.deadline] + 30)
        response = self._send(
            route.method, path, params=params, content=content, idempotent=not route.writes,
            headers={"content-type": "application/json"} if content is not None else None,
            timeout=wait,
        )
        result = from_json(route, json.loads(response.content))
        if key is not None:
            self._memo[key] = result
        return result

    # -- transport --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params=None, content=None, headers=None,
              stream: bool = False, idempotent: bool | None = None,
              timeout: float | None = None) -> httpx.Response:
        if idempotent is None:
            idempotent = method in ("GET", "HEAD")
        for attempt in range(self.retries + 1):
            try:
                extra = {} if timeout is None else {"timeout": timeout}
                request = self._http.build_request(
                    method, path, params=params, content=content, headers=headers, **extra
                )
                response = self._http.send(request, stream=stream)
                break
            except httpx.TransportError as e:
                # A server restarting must not kill a training job: retry, with backoff,
                # what cannot have reached it (no connection) and anything that only reads.
                # A write that may have arrived is not repeated: it could apply twice.
                if not (isinstance(e, httpx.ConnectError) or idempotent) or attempt == self.retries:
                    raise StoreUnavailable(
                        f"cannot reach the metastore server at {self.url}: {e}",
                        hint="is `metastore server` running there, and the URL right?",
                    ) from e
                time.sleep(min(0.25 * 2**attempt, 5.0))
        if response.status_code >= 400:
            if stream:
                response.read()
            _raise_for(response, self.url)
        return response


class HTTPBlobs(Blobs):
    """The blob store interface over the server's /api/blobs routes."""

    def __init__(self, backend: HTTPBackend):
        self._backend = backend
        self.url = backend.url + f"{PREFIX}/blobs"

    def _path(self, digest: str) -> str:
        return f"{PREFIX}/blobs/{_seg(digest)}"

    def exists(self, digest: str) -> bool:
        try:
            self._backend._send("HEAD", self._path(digest))
        except errors.NotFound:
            return False
        return True

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._backend._send("PUT", self._path(digest), content=data,
                                headers={"content-type": "application/octet-stream"})
        return digest, len(data)

    def put_file(self, path: Path) -> tuple[str, int]:
        digest, size = sha256_file(path)
        if not self.exists(digest):
            with open(path, "rb") as f:
                self._backend._send("PUT", self._path(digest), content=_chunks(f),
                                    headers={"content-type": "application/octet-stream",
                                             "content-length": str(size)})
        return digest, size

    def open(self, digest: str, verify: bool = True) -> BinaryIO:
        response = self._backend._send("GET", self._path(digest), stream=True)
        out = tempfile.SpooledTemporaryFile(max_size=16 << 20)
        h = hashlib.sha256()
        try:
            for chunk in response.iter_bytes(CHUNK):
                h.update(chunk)
                out.write(chunk)
        finally:
            response.close()
        if verify and h.hexdigest() != digest:
            out.close()
            raise IntegrityFailure(
                f"blob {digest} arrived corrupt from {self._backend.url}: it hashes to {h.hexdigest()}"
            )
        out.seek(0)
        return out

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def verify(self, digest: str) -> None:
        self.open(digest).close()

    def local_path(self, digest: str) -> Path | None:
        return None

    def materialize(self, digest: str, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(digest) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)
        return target

    def manifest_digests(self, manifest_digest: str) -> list[str]:
        manifest = json.loads(self.read_bytes(manifest_digest))
        return [entry["digest"] for entry in manifest["files"].values()]


# -- helpers ------------------------------------------------------------------------------


def _seg(text: str) -> str:
    """One URL path segment: '#', '/', '?' and the rest percent-encoded."""
    return quote(str(text), safe="")


def _chunks(f) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


def _raise_for(response: httpx.Response, url: str) -> None:
    try:
        payload = json.loads(response.content)
    except ValueError:
        payload = {}
    error = payload.get("error") if isinstance(payload, dict) else None
    status = response.status_code
    if error is None:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if status == 422 and isinstance(detail, list):
            parts = [
                f"{'.'.join(str(x) for x in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
            ]
            raise InvalidValue("the server refused the request: " + "; ".join(parts))
        if status == 404:
            raise errors.NotFound(f"{response.request.url.path} is not on the server at {url}")
        raise MetastoreError(f"the server at {url} answered {status}: {response.text[:300]}")
    kind, message, hint = error.get("type"), error.get("message", ""), error.get("hint")
    if status in (401, 403) or kind in ("Unauthorized", "Forbidden"):
        raise AccessDenied(message, hint=hint)
    raise _rebuild(_error_class(kind), message, hint, {
        k: v for k, v in error.items() if k not in ("type", "message", "hint")
    })


def _rebuild(cls: type[MetastoreError], message: str, hint: str | None, extra: dict):
    """The server's exception, rebuilt: through its own constructor when that takes the
    extra fields (QueryError's text, line, column …), else field by field."""
    try:
        accepted = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        accepted = {}
    kwargs = {k: v for k, v in extra.items() if k in accepted}
    try:
        exc = cls(message, **kwargs)
    except TypeError:
        exc = cls.__new__(cls)
        MetastoreError.__init__(exc, message)
    if hint is not None:
        exc.hint = hint
    for key, value in extra.items():
        if key not in kwargs:
            try:
                setattr(exc, key, value)
            except AttributeError:  # a computed property, e.g. QueryError.caret
                pass
    return exc


def _error_class(kind: str | None) -> type[MetastoreError]:
    """The MetastoreError subclass of that name: the package's own errors and the query
    language's QueryError."""
    if kind == "TooLarge":
        return InvalidValue
    if kind == "QueryError":  # defined with the query language, maybe not imported yet
        from metastore.query.errors import QueryError

        return QueryError
    todo = [MetastoreError]
    while todo:
        cls = todo.pop()
        if cls.__name__ == kind:
            return cls
        todo.extend(cls.__subclasses__())
    return MetastoreError
