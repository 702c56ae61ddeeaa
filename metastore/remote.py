"""A store backed by a metastore server: `metastore.open("http://host:5000", token=...)`.

`RemoteStore` speaks the same `Store` interface as `SQLStore`, one REST call per store
call, and returns the same model objects (rebuilt from their JSON), so tracking, handles,
query and lineage work unchanged against a team server. Content is hashed on the client
and uploaded once per digest (`PUT /api/blobs/{digest}`); downloads are verified against
their digest on arrival. Errors come back as the exception the server's store raised.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from metastore import errors
from metastore.blobs import (
    CHUNK,
    directory_manifest,
    manifest_bytes,
    sha256_file,
)
from metastore.errors import IntegrityFailure, InvalidValue, MetastoreError, StoreUnavailable
from metastore.models import (
    Asset,
    AssetVersion,
    Experiment,
    LineageEdge,
    Metric,
    MetricSummary,
    Note,
    Run,
)
from metastore.store import (
    MetricPoint,
    RunRecord,
    Store,
    prepare_content,
    validate_key,
    validate_metric_value,
)


class AccessDenied(MetastoreError):
    """The server refused the token (missing, unknown, revoked, or read-only for a write)."""


class RemoteStore(Store):
    """The Store interface over a metastore server's REST API."""

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
        self._experiment_names: dict[int, str] = {}
        self.blobs = RemoteBlobs(self)
        self.blob_root = f"{self.url}/api/blobs"
        session = self._call("GET", "/api/session")
        self.principal = session["name"]
        self.read_only = session["read_only"]

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"

    def close(self) -> None:
        self._http.close()

    # -- transport ----------------------------------------------------------------------
    def _send(self, method: str, path: str, *, body: Any = None, params=None, content=None,
              headers=None, stream: bool = False) -> httpx.Response:
        if body is not None:
            content = json.dumps(body, allow_nan=True, default=_jsonable)
            headers = {**(headers or {}), "content-type": "application/json"}
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        for attempt in range(self.retries + 1):
            try:
                request = self._http.build_request(
                    method, path, params=params, content=content, headers=headers
                )
                response = self._http.send(request, stream=stream)
                break
            except httpx.TransportError as e:
                # A server restarting must not kill a training job: retry, with backoff,
                # what cannot have reached it (no connection) and anything that only reads.
                # A write that may have arrived is not repeated: it could apply twice.
                safe = isinstance(e, httpx.ConnectError) or method in ("GET", "HEAD")
                if not safe or attempt == self.retries:
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

    def _call(self, method: str, path: str, **kw) -> Any:
        response = self._send(method, path, **kw)
        return json.loads(response.content) if response.content else None

    # -- unsupported on a server ----------------------------------------------------------
    def _direct_only(self, what: str):
        raise MetastoreError(
            f"{what} needs direct access to the database, which a server does not give",
            hint="run it where the database is, with --store set to its URL",
        )

    @contextmanager
    def read(self):
        self._direct_only("a database session")
        yield  # pragma: no cover

    @contextmanager
    def write(self):
        self._direct_only("a database session")
        yield  # pragma: no cover

    def transact(self, fn, retries: int = 8):
        self._direct_only("a database transaction")

    # -- experiments --------------------------------------------------------------------
    def experiments(self, include_deleted: bool = False) -> list[Experiment]:
        rows = self._call("GET", "/api/experiments", params={"include_deleted": include_deleted})
        return [self._remember(Experiment.model_validate(r)) for r in rows]

    def get_experiment(self, name: str) -> Experiment:
        return self._remember(
            Experiment.model_validate(self._call("GET", f"/api/experiments/{_seg(name)}"))
        )

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        validate_key(name, "experiment")
        data = self._call("POST", "/api/experiments", body={"name": name, "description": description})
        return self._remember(Experiment.model_validate(data))

    def delete_experiment(self, name: str) -> None:
        self._call("DELETE", f"/api/experiments/{_seg(name)}")

    def experiment_name(self, experiment_id: int) -> str:
        # Experiments are never renamed, so an id's name can be kept for the session.
        if experiment_id not in self._experiment_names:
            data = self._call("GET", f"/api/experiments/by-id/{int(experiment_id)}")
            self._experiment_names[experiment_id] = data["name"]
        return self._experiment_names[experiment_id]

    def _remember(self, exp: Experiment) -> Experiment:
        self._experiment_names[exp.id] = exp.name
        return exp

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> Run:
        validate_key(record.experiment, "experiment")
        host, pid = record.host, record.pid
        if record.status == "running":
            # The run's process is this one, not the server's: crash detection checks
            # the pid on the host that recorded it.
            host, pid = host or socket.gethostname(), pid or os.getpid()
        body = {
            "experiment": record.experiment,
            "name": record.name,
            "status": record.status,
            "started": record.started,
            "ended": record.ended,
            "user": record.user,
            "host": host,
            "git_commit": record.git_commit,
            "git_branch": record.git_branch,
            "git_dirty": record.git_dirty,
            "command": record.command,
            "context": _plain(record.context) if record.context else None,
            "params": _params(record.params),
            "metrics": _points(record.metrics),
            "tags": _plain(dict(record.tags)),
            "notes": [
                {"text": n.text, "kind": n.kind or "note", "author": n.author, "time": n.time}
                for n in record.notes
            ],
            "inputs": [{"version_id": v, "role": r} for v, r in record.inputs],
            "outputs": [{"version_id": v, "role": r} for v, r in record.outputs],
            "source": record.source,
            "source_id": record.source_id,
            "parent_id": record.parent_id,
            "id": record.id,
            "pid": pid,
        }
        return Run.model_validate(self._call("POST", "/api/runs", body=body))

    def find_run_by_source(self, source: str, source_id: str) -> Run | None:
        data = self._call(
            "GET", "/api/runs/by-source", params={"source": source, "source_id": source_id}
        )
        return None if data is None else Run.model_validate(data)

    def list_runs(
        self, experiment: str | None = None, status: str | None = None, include_deleted: bool = False
    ) -> list[Run]:
        rows = self._call(
            "GET",
            "/api/runs",
            params={"experiment": experiment, "status": status, "include_deleted": include_deleted},
        )
        return [Run.model_validate(r) for r in rows]

    def resolve_run(self, ref: str | int, experiment: str | None = None) -> Run:
        text = str(ref).strip()
        if not text:
            raise errors.NotFound("no run ''", hint="name a run by id, number or name")
        data = self._call("GET", f"/api/runs/{_seg(text)}", params={"experiment": experiment})
        return Run.model_validate(data)

    def set_run_status(self, run_id: str, status: str, ended: datetime | None = None) -> None:
        self._call("PUT", f"/api/runs/{_seg(run_id)}/status", body={"status": status, "ended": ended})

    def heartbeat(self, run_id: str) -> None:
        self._call("POST", f"/api/runs/{_seg(run_id)}/heartbeat")

    def reconcile_crashed(self) -> int:
        return self._call("POST", "/api/runs/reconcile")["crashed"]

    def delete_run(self, ref: str | int, experiment: str | None = None) -> None:
        self._call("DELETE", f"/api/runs/{_seg(str(ref))}", params={"experiment": experiment})

    def restore_run(self, run_id: str) -> None:
        self._call("POST", f"/api/runs/{_seg(run_id)}/restore")

    # -- params, metrics, tags, notes -----------------------------------------------------
    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
        if not isinstance(values, Mapping):
            raise TypeError("params must be a mapping of name to value")
        self._call("POST", f"/api/runs/{_seg(run_id)}/params", body=_params(values))

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        self._call("POST", f"/api/runs/{_seg(run_id)}/metrics", body=_points(points))

    def set_tags(self, entity_type: str, entity_id: str, tags: Mapping[str, Any]) -> None:
        for k in tags:
            validate_key(k, "tag")
        self._call(
            "PUT", f"/api/tags/{_seg(entity_type)}/{_seg(str(entity_id))}", body=_plain(dict(tags))
        )

    def add_note(self, run_id: str, text: str, kind: str = "note", author: str | None = None) -> Note:
        if not isinstance(text, str) or not text.strip():
            raise InvalidValue("a note needs some text")
        data = self._call(
            "POST", f"/api/runs/{_seg(run_id)}/notes", body={"text": text, "kind": kind, "author": author}
        )
        return Note.model_validate(data)

    def get_params(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/runs/{_seg(run_id)}/params")

    def get_metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        data = self._call("GET", f"/api/runs/{_seg(run_id)}/metrics")
        return {k: MetricSummary.model_validate(v) for k, v in data.items()}

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        rows = self._call("GET", f"/api/runs/{_seg(run_id)}/metric-history", params={"key": key})
        return [Metric.model_validate(r) for r in rows]

    def get_tags(self, entity_type: str, entity_id: str) -> dict[str, str | None]:
        return self._call("GET", f"/api/tags/{_seg(entity_type)}/{_seg(str(entity_id))}")

    def get_notes(self, run_id: str) -> list[Note]:
        return [Note.model_validate(r) for r in self._call("GET", f"/api/runs/{_seg(run_id)}/notes")]

    # -- assets -----------------------------------------------------------------------------
    def put_asset(
        self,
        kind: str,
        name: str,
        content: str | os.PathLike | bytes | None = None,
        *,
        uri: str | None = None,
        digest: str | None = None,
        size: int | None = None,
        media_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        relation: str | None = None,
        role: str | None = None,
        derived_from: Sequence[str] = (),
        copy: bool = True,
    ) -> tuple[Asset, AssetVersion]:
        """As `SQLStore.put_asset`: the content is hashed here, its bytes uploaded unless
        the server has them already, then the version is recorded by digest."""
        digest, size, uri, media_type, meta = prepare_content(
            self.blobs, kind, name, content, uri=uri, digest=digest, size=size,
            media_type=media_type, meta=meta, relation=relation, copy=copy,
        )
        body = {
            "kind": kind,
            "name": name,
            "uri": uri,
            "digest": digest,
            "size": size,
            "media_type": media_type,
            "meta": _plain(meta) if meta else None,
            "run_id": run_id,
            "relation": relation,
            "role": role,
            "derived_from": list(derived_from),
        }
        return _version(self._call("POST", "/api/assets", body=body))

    def link_run_asset(self, run_id: str, version_id: str, relation: str, role=None) -> None:
        if relation not in ("used", "produced"):
            raise InvalidValue("relation of a run to an asset is 'used' or 'produced'")
        self._call(
            "POST",
            f"/api/runs/{_seg(run_id)}/assets",
            body={"version_id": version_id, "relation": relation, "role": role},
        )

    def add_edge(
        self, src_type: str, src_id: str, dst_type: str, dst_id: str, relation: str, role=None
    ) -> LineageEdge:
        body = {"src_type": src_type, "src_id": src_id, "dst_type": dst_type, "dst_id": dst_id,
                "relation": relation, "role": role}
        return LineageEdge.model_validate(self._call("POST", "/api/edges", body=body))

    def list_assets(self, kind: str | None = None) -> list[Asset]:
        return [Asset.model_validate(r) for r in self._call("GET", "/api/assets", params={"kind": kind})]

    def get_asset_version(
        self, kind: str, name: str, version: int | None = None
    ) -> tuple[Asset, AssetVersion]:
        params = {"kind": kind, "name": name, "version": None if version is None else int(version)}
        return _version(self._call("GET", "/api/assets/version", params=params))

    def get_version_by_id(self, version_id: str) -> tuple[Asset, AssetVersion]:
        return _version(self._call("GET", f"/api/versions/{_seg(version_id)}"))

    def list_versions(self, kind: str, name: str) -> list[tuple[Asset, AssetVersion]]:
        rows = self._call("GET", "/api/assets/versions", params={"kind": kind, "name": name})
        return [_version(r) for r in rows]

    def run_assets(self, run_id: str, direction: str) -> list[tuple[Asset, AssetVersion, str | None]]:
        rows = self._call("GET", f"/api/runs/{_seg(run_id)}/assets", params={"direction": direction})
        return [(*_version(r), r.get("role")) for r in rows]

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's bytes, downloaded and checked against the digest before use."""
        return self.blobs.open(digest)

    def cache_dir(self) -> Path:
        return Path(tempfile.gettempdir()) / "metastore-cache"

    # -- maintenance, query, lineage ----------------------------------------------------------
    def purge(self) -> dict[str, int]:
        return self._call("POST", "/api/purge")

    def query(self, text: str, experiment: str | None = None):
        """Answer a query on the server; the result has columns, rows (dicts) and sql."""
        data = self._call("POST", "/api/query", body={"text": text, "experiment": experiment})
        return RemoteResult(data["columns"], data["rows"], data.get("sql"))

    def query_sql(self, text: str, experiment: str | None = None) -> str:
        """The SQL a query compiles to on the server's database, without running it."""
        return self._call(
            "GET", "/api/query/sql", params={"q": text, "experiment": experiment}
        )["sql"]

    def lineage(self, ref, direction: str = "upstream", depth: int | None = None):
        """The lineage graph around a run or asset version, as a networkx.DiGraph."""
        params = {"ref": self._node_ref(ref), "direction": direction, "depth": depth}
        return _graph(self._call("GET", "/api/lineage", params=params))

    def path(self, a, b):
        """The shortest lineage path between two nodes (networkx.DiGraph), or None."""
        data = self._call(
            "GET", "/api/lineage/path", params={"a": self._node_ref(a), "b": self._node_ref(b)}
        )
        return None if data is None else _graph(data)

    def link(self, upstream, downstream, relation: str = "derived_from", role: str | None = None):
        """Record a lineage edge after the fact; the server refuses one closing a cycle."""
        body = {
            "upstream": self._node_ref(upstream),
            "downstream": self._node_ref(downstream),
            "relation": relation,
            "role": role,
        }
        return LineageEdge.model_validate(self._call("POST", "/api/lineage/link", body=body))

    def _node_ref(self, ref, experiment: str | None = None) -> str:
        """A reference resolved here, sent as an id, so it means the same on both sides."""
        from metastore.refs import RUN, resolve

        node = resolve(self, ref, experiment)
        return f"run:{node.id}" if node.type == RUN else node.id


class RemoteBlobs:
    """The BlobStore interface over the server's /api/blobs routes."""

    def __init__(self, store: RemoteStore):
        self._store = store
        self.url = store.url + "/api/blobs"

    def exists(self, digest: str) -> bool:
        try:
            self._store._send("HEAD", f"/api/blobs/{_seg(digest)}")
        except errors.NotFound:
            return False
        return True

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._store._send("PUT", f"/api/blobs/{digest}", content=data,
                              headers={"content-type": "application/octet-stream"})
        return digest, len(data)

    def put_file(self, path: Path) -> tuple[str, int]:
        digest, size = sha256_file(path)
        if not self.exists(digest):
            with open(path, "rb") as f:
                self._store._send("PUT", f"/api/blobs/{digest}", content=_chunks(f),
                                  headers={"content-type": "application/octet-stream",
                                           "content-length": str(size)})
        return digest, size

    def put_directory(self, path: Path) -> tuple[str, int, dict[str, dict]]:
        files = directory_manifest(path)
        for rel in files:
            self.put_file(path / rel)
        digest, _ = self.put_bytes(manifest_bytes(files))
        return digest, sum(f["size"] for f in files.values()), files

    def open(self, digest: str, verify: bool = True) -> BinaryIO:
        response = self._store._send("GET", f"/api/blobs/{_seg(digest)}", stream=True)
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
                f"blob {digest} arrived corrupt from {self._store.url}: it hashes to {h.hexdigest()}"
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


def _result_base():
    try:
        from metastore.query import Result
    except ImportError:  # pragma: no cover - the query package ships with metastore
        return object
    return Result


class RemoteResult(_result_base()):
    """A query's answer from a server: the same `Result` interface (columns, one dict
    per row, sql, to_pandas …), with values as the server sent them (times as ISO text)."""

    def __init__(self, columns: list[str], rows: list[dict[str, Any]], sql: str | None):
        self.columns = list(columns)
        self.rows = rows
        self._sql = sql

    @property
    def sql(self) -> str | None:
        return self._sql

    @property
    def dialect(self) -> str:
        return "remote"

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def __repr__(self) -> str:
        return f"<RemoteResult {len(self.rows)} rows: {', '.join(self.columns)}>"


# -- helpers ------------------------------------------------------------------------------


def _seg(text: str) -> str:
    """One URL path segment: '#', '/', '?' and the rest percent-encoded."""
    return quote(str(text), safe="")


def _chunks(f) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


def _version(data: dict) -> tuple[Asset, AssetVersion]:
    return Asset.model_validate(data["asset"]), AssetVersion.model_validate(data["version"])


def _graph(data: dict):
    import networkx as nx

    return nx.node_link_graph(data, edges="edges", name="node")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-ready copy (what the store would write as JSON text, read back)."""
    return json.loads(json.dumps(value, allow_nan=True, default=_jsonable, sort_keys=True))


def _params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Param values as JSON that the server decodes to what `params.encode` would see:
    numbers, bools and text stay typed; anything else becomes its JSON form."""
    from metastore import params as codec

    out = {}
    for key, value in values.items():
        ptype, _num, text = codec.encode(value)
        if ptype == "json":
            out[key] = json.loads(text)
        elif ptype == "number" and isinstance(value, float) and not math.isfinite(value):
            out[key] = value
        else:
            out[key] = codec.decode(ptype, _num, text)
    return out


def _points(points: Sequence[MetricPoint]) -> list[dict]:
    # Checked here too, so NaN or a string never has to travel as JSON.
    return [
        {
            "key": validate_key(p.key, "metric"),
            "value": validate_metric_value(p.key, p.value),
            "step": p.step,
            "timestamp": p.timestamp,
        }
        for p in points
    ]


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
    import inspect

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
    cls = getattr(errors, kind or "", None)
    if isinstance(cls, type) and issubclass(cls, MetastoreError):
        return cls
    if kind == "QueryError":
        try:
            from metastore.query import QueryError

            return QueryError
        except ImportError:
            pass
    if kind == "TooLarge":
        return InvalidValue
    return MetastoreError
