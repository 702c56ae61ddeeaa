"""The HTTP backend: a metastore server's store, `metastore.open("http://host:5000", token=...)`.

Its primitives are not written here one by one: each is built from the route table
(`metastore.backends.routes`) as one generic call: bind the arguments to the
primitive's signature, check them against the route's request model, send them (path,
query string or JSON body), and rebuild the answer from the route's response model.
The server registers its routes from the same table, so both sides always agree.

What is written here is the transport, the mapping of the server's error envelope back
to the exception its store raised (`AccessDenied` for 401/403), and the blob routes:
content is hashed on the client and uploaded once per digest (`PUT /api/blobs/{digest}`);
downloads are checked against their digest on arrival.

A training job must not die because the server did (docs/security.md). Every write
carries an `Idempotency-Key` (a UUID per call, the same on each retry), so any request
can be repeated: each is retried with jittered exponential backoff through connection
errors and 502/503/504 for `retry_for` seconds (METASTORE_RETRY_FOR, default 60). A
write a recording process makes (a route with `offline`: the run's creation, under the
id the client gave it, params, metrics, tags, notes, the run's status, links to assets)
that still cannot be sent is kept in the spool
(`metastore.backends.spool`) and answered as the server would; later writes queue
behind it, and the next write, the run's flusher, closing the store, the process's exit
or `metastore sync` (`sync`) deliver it; a spool left by a process that is gone is
delivered by the next client of its server (`_pick_up_orphans`). Reads are retried,
never spooled.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from metastore import errors
from metastore.backends import spool as spooling
from metastore.backends.base import Backend, QueryStream
from metastore.backends.routes import (
    BY_NAME,
    IDEMPOTENCY_HEADER,
    PREFIX,
    ROUTES,
    Route,
    dumps,
    from_json,
    request_of,
)
from metastore.backends.spool import Delivery, Entry, SpoolFile, spool_dir
from metastore.backends.spool import files as spool_files
from metastore.blobs import CHUNK, Blobs, sha256_file
from metastore.errors import IntegrityFailure, InvalidValue, MetastoreError, StoreUnavailable

log = logging.getLogger("metastore.client")

#: Seconds a request is retried while the server is away (METASTORE_RETRY_FOR).
RETRY_FOR = 60.0
RETRY_ENV = "METASTORE_RETRY_FOR"
#: Backoff between attempts: the first wait and the longest, each jittered to 50-100 %.
FIRST_WAIT, MAX_WAIT = 0.1, 2.0
#: Answers that mean "the server (or its database) is restarting": retried.
RETRY_STATUSES = frozenset({502, 503, 504})
#: The media type of a query answered a line at a time (the server's `api.LINES`).
LINES = "application/x-ndjson"
CONNECT_TIMEOUT = 10.0
#: While writes wait in the spool, a write tries to deliver them at most this often.
PROBE_EVERY = 1.0

_open: weakref.WeakSet[HTTPBackend] = weakref.WeakSet()


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
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        retry_for: float | None = None,
        spool: str | os.PathLike | None = None,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.dialect = "remote"
        #: Seconds a request is retried while the server is away; then a write a
        #: recording process makes is kept in the spool, anything else raises.
        self.retry_for = retry_setting(retry_for)
        self.spool = SpoolFile(spool_dir(spool))
        self._spooling = False  # entries of this backend wait in the spool
        self._next_probe = 0.0
        self._outage: float | None = None  # when requests started failing (warned once)
        self._pickup: threading.Thread | None = None  # delivering gone processes' spools
        headers = {"user-agent": "metastore-client"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
        self._memo: dict[tuple, tuple[float | None, Any]] = {}  # route memo: (until, answer)
        self.blobs = HTTPBlobs(self)
        self.blob_root = f"{self.url}{PREFIX}/blobs"
        session = json.loads(self._send("GET", f"{PREFIX}/session").content)
        self.principal = session["name"]
        self.read_only = session["read_only"]
        _open.add(self)
        self._pick_up_orphans()

    def __repr__(self) -> str:
        return f"HTTPBackend({self.url!r})"

    def close(self) -> None:
        if self._spooling:
            self.deliver_spooled(wait=False)
        if self._pickup is not None:
            self._pickup.join()  # bounded: one attempt per entry, stopping at a failure
        _open.discard(self)
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
            until, kept = self._memo[key]
            if until is None or time.monotonic() < until:
                return kept
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
        headers = {"content-type": "application/json"} if content is not None else {}
        if route.writes and not route.lossy:
            try:
                return self._write(route, values, path, params, content, headers)
            finally:
                if route.forgets is not None:
                    self._memo = {k: v for k, v in self._memo.items() if k[0] != route.forgets}
        if route.lossy and self._outage is not None:
            return None  # a heartbeat is no use late; the server is away
        response = self._send(route.method, path, params=params, content=content,
                              headers=headers, timeout=wait,
                              patience=0 if route.lossy else None)
        data = json.loads(response.content)
        if route.stream == "rows" and isinstance(data, dict) and "error" in data:
            _raise_error(data["error"], response.status_code)  # met after the first row
        result = from_json(route, data)
        if key is not None:
            until = None if route.memo is True else time.monotonic() + route.memo
            self._memo[key] = (until, result)
        return result

    def _write(self, route: Route, values: dict, path: str, params, content, headers) -> Any:
        """A write, named by a new idempotency key that every retry and the spool reuse,
        so the server applies it once however often it is sent."""
        key = uuid.uuid4().hex
        headers = {**headers, IDEMPOTENCY_HEADER: key}
        if route.offline is not None and self._spooling:
            # spooled writes go first: nothing may overtake them (a metric's steps
            # follow the order points arrive in, the run's end comes last)
            with self.spool.lock:
                if self._spooling and not self.deliver_spooled(wait=False):
                    return self._keep(route, values, key, path, content)
        try:
            response = self._send(route.method, path, params=params, content=content,
                                  headers=headers)
        except Unreachable:
            if route.offline is None:
                raise
            with self.spool.lock:
                return self._keep(route, values, key, path, content)
        return from_json(route, json.loads(response.content))

    def _keep(self, route: Route, values: dict, key: str, path: str, content) -> Any:
        """Keep the write in the spool (fsynced) and answer as the server would have."""
        self.spool.append(Entry(key=key, url=self.url, route=route.name, method=route.method,
                                path=path, body=None if content is None else content.decode(),
                                time=spooling.utc_now_text()))
        if not self._spooling:
            self._spooling = True
            log.info("metastore: keeping writes for %s in %s until it is back "
                        "(sent by the next write, the run's end, or `metastore sync`)",
                        self.url, self.spool.path)
        return route.offline(values)

    @contextmanager
    def query_stream(self, text: str, experiment: str | None = None,
                     timeout: float | None = None) -> Iterator[QueryStream]:
        """`query` with its rows read from the server's answer as they arrive (a line
        per row, `Accept: application/x-ndjson`), not after the whole answer."""
        route = BY_NAME["query"]
        values = {"text": text, "experiment": experiment, "timeout": timeout}
        body = dumps(request_of(route, values).model_dump(mode="python"))
        wait = None if timeout is None else max(self._http.timeout.read or 0, timeout + 30)
        response = self._send("POST", route.url, content=body, stream=True, timeout=wait,
                              headers={"content-type": "application/json", "accept": LINES})
        try:
            lines = response.iter_lines()
            head = json.loads(next(lines))
            yield QueryStream(head["columns"], _lines_rows(head["columns"], lines, self.url),
                              head["sql"], head["dialect"])
        finally:
            response.close()

    # -- the spool --------------------------------------------------------------------------
    def deliver_spooled(self, wait: bool = False) -> bool:
        """Send this backend's spooled writes if the server is back; True when nothing
        is left. Without `wait` it tries at most every PROBE_EVERY seconds (each write
        made while writes are spooled asks), one attempt per entry."""
        if not self._spooling:
            return True
        with self.spool.lock:
            if not self._spooling:
                return True
            now = time.monotonic()
            if not wait and now < self._next_probe:
                return False
            self._next_probe = now + PROBE_EVERY
            done = spooling.deliver(self.spool.path, self._send_entry)
            for entry, error in done.refused:
                log.warning("metastore: the server refused a write kept in the spool, %s: %s",
                            entry.describe(), error)
            for problem in done.problems:
                log.warning("metastore: %s", problem)
            if done.pending or self.spool.path.exists():
                return False
            self._spooling = False
            self._outage = None
            log.info("metastore: %s is back; %d kept writes sent", self.url, len(done.sent))
            return True

    def _send_entry(self, entry: Entry) -> spooling.Outcome:
        return send_entry(self._http, entry)

    def _pick_up_orphans(self) -> None:
        """Deliver the spool files of processes that are gone (`spool.orphaned`) with
        writes for this server, in a thread: a script that died during an outage has
        its writes sent by the next client of the server (when it opens the store, or
        when its server answers again after an outage), not only by `metastore sync`.
        `close()` waits for it."""
        if self.read_only or (self._pickup is not None and self._pickup.is_alive()):
            return
        try:
            orphans = [p for p in spool_files(self.spool.directory)
                       if p != self.spool.path and spooling.orphaned(p)]
        except OSError:  # a spool folder that cannot be read: `metastore sync` says why
            return
        if orphans:
            self._pickup = threading.Thread(target=self._deliver_orphans, args=(orphans,),
                                            name="metastore-spool-pickup", daemon=True)
            self._pickup.start()

    def _deliver_orphans(self, paths: list[Path]) -> None:
        def send(entry: Entry) -> spooling.Outcome:
            if entry.url != self.url:  # another server's: left to its clients or sync
                return "stop", None
            return send_entry(self._http, entry)

        for path in paths:
            try:
                done = spooling.deliver(path, send)
            except OSError as e:
                log.warning("metastore: could not send the writes kept in %s: %s", path, e)
                continue
            for entry, error in done.refused:
                log.warning("metastore: the server refused a write kept in the spool, %s: %s",
                            entry.describe(), error)
            for problem in done.problems:
                log.warning("metastore: %s", problem)
            if done.sent:
                log.info("metastore: sent %d writes a process that is gone kept in %s",
                         len(done.sent), path)
            if done.stopped:
                return  # the server is away again, or refuses the token

    # -- transport --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params=None, content=None, headers=None,
              stream: bool = False, timeout: float | None = None,
              patience: float | None = None) -> httpx.Response:
        """Send a request, retrying with jittered exponential backoff through connection
        errors and 502/503/504 for `patience` seconds (default `retry_for`): every
        request may be repeated, since reads change nothing, writes carry an
        idempotency key and blobs are named by digest. `content` may be a callable
        giving the body afresh for each attempt (a file's chunks)."""
        give_up = time.monotonic() + (self.retry_for if patience is None else patience)
        attempt = 0
        while True:
            try:
                extra = {} if timeout is None else {"timeout": timeout}
                body = content() if callable(content) else content
                request = self._http.build_request(
                    method, path, params=params, content=body, headers=headers, **extra
                )
                response = self._http.send(request, stream=stream)
                if response.status_code not in RETRY_STATUSES:
                    break
                response.read()
                failure = f"it answered {response.status_code}"
                response.close()
            except httpx.TransportError as e:
                failure = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            now = time.monotonic()
            if now >= give_up:
                raise Unreachable(
                    f"cannot reach the metastore server at {self.url} ({failure})",
                    hint="is `metastore server` running there, and the URL right? "
                    f"(requests are retried for {self.retry_for:g} s: retry_for= or "
                    f"{RETRY_ENV})",
                )
            if self._outage is None:
                self._outage = now
                log.warning("metastore: the server at %s is unreachable (%s); retrying for "
                            "up to %g s, then keeping the run's writes in %s",
                            self.url, failure, self.retry_for, self.spool.directory)
            time.sleep(min(MAX_WAIT, FIRST_WAIT * 2**attempt, give_up - now)
                       * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not a secret
            attempt += 1
        if self._outage is not None:
            self._outage = None
            if not self._spooling:
                log.info("metastore: the server at %s answers again", self.url)
            self._pick_up_orphans()
        if response.status_code >= 400:
            if stream:
                response.read()
            _raise_for(response, self.url)
        return response


def _lines_rows(columns: list[str], lines: Iterator[str], url: str) -> Iterator[dict]:
    """The rows of a query answered a line at a time; the last line says it ended or
    carries the error the server met after the first row."""
    try:
        for line in lines:
            if not line:
                continue
            item = json.loads(line)
            if isinstance(item, list):
                yield dict(zip(columns, item, strict=False))
            elif "error" in item:
                _raise_error(item["error"], 200)
            else:
                return  # {"end": rows}
    except httpx.TransportError as e:
        raise StoreUnavailable(f"the answer from {url} was cut off ({type(e).__name__})") from None
    raise StoreUnavailable(f"the answer from {url} was cut off before its end")


class Unreachable(StoreUnavailable):
    """The server did not answer for the whole retry time."""


def retry_setting(value: float | None) -> float:
    """Seconds to retry: `value`, else METASTORE_RETRY_FOR, else RETRY_FOR."""
    if value is None:
        text = os.environ.get(RETRY_ENV)
        try:
            value = RETRY_FOR if text is None or not text.strip() else float(text)
        except ValueError:
            raise InvalidValue(f"{RETRY_ENV} must be a number of seconds, got {text!r}") from None
    if not (isinstance(value, int | float) and 0 <= value < float("inf")):
        raise InvalidValue(f"retry_for must be 0 or more seconds, got {value!r}")
    return float(value)


def send_entry(client: httpx.Client, entry: Entry) -> spooling.Outcome:
    """Send one spooled write, once, with its idempotency key: delivered, refused for
    good (a 4xx other than the token's), or stop (the server away, or the token
    refused: the entry stays pending)."""
    headers = {IDEMPOTENCY_HEADER: entry.key}
    if entry.body is not None:
        headers["content-type"] = "application/json"
    try:
        response = client.request(entry.method, entry.url + entry.path, headers=headers,
                                  content=None if entry.body is None else entry.body.encode())
    except httpx.TransportError as e:
        return "stop", f"{entry.url} is unreachable ({type(e).__name__})"
    status = response.status_code
    if status < 400:
        return "sent", None
    if status in (401, 403):
        return "stop", f"{entry.url} refused the token ({status}): pass a token that may write"
    if status in RETRY_STATUSES or status >= 500 or status in (408, 429):
        return "stop", f"{entry.url} answered {status}"
    try:
        _raise_for(response, entry.url)
    except MetastoreError as e:
        return "refused", e.message
    return "refused", f"answered {status}"


def sync(spool: str | os.PathLike | None = None, token: str | None = None) -> Delivery:
    """Send every spooled write in the spool folder (METASTORE_SPOOL, else the user's
    cache folder) to the server it was meant for, in the order it was kept: what
    `metastore sync` runs. The token is `token`, else METASTORE_TOKEN."""
    token = token or os.environ.get("METASTORE_TOKEN")
    headers = {"user-agent": "metastore-client"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    total = Delivery()
    stopped: set[str] = set()  # servers found away: their other files wait too
    with httpx.Client(headers=headers,
                      timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT)) as client:
        for path in spool_files(spool_dir(spool)):

            def send(entry: Entry) -> spooling.Outcome:
                if entry.url in stopped:
                    return "stop", None
                outcome = send_entry(client, entry)
                if outcome[0] == "stop":
                    stopped.add(entry.url)
                return outcome

            total.add(spooling.deliver(path, send))
    return total


@atexit.register
def _deliver_at_exit() -> None:
    """A process ending during an outage tries once more; what stays waits for
    `metastore sync`."""
    for backend in list(_open):
        try:
            if backend._pickup is not None:
                backend._pickup.join(timeout=CONNECT_TIMEOUT)
            if backend._spooling and not backend.deliver_spooled(wait=True):
                log.warning("metastore: writes for %s stay in %s: run `metastore sync` "
                            "when the server is back", backend.url, backend.spool.path)
        except Exception:  # noqa: BLE001, S110 - nothing is left to tell at interpreter exit
            pass


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
            # a callable body: each retry reads the file again from its start
            self._backend._send("PUT", self._path(digest), content=lambda: _file_chunks(path),
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


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
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
    _raise_error(error, status)


def _raise_error(error: dict, status: int) -> None:
    """Raise the exception the server's `{"error": …}` envelope names."""
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
