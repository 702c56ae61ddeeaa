"""The REST API under /api/: one thin route per Store call, JSON in and out.

Rows travel as the SQLModel tables' own JSON (`model_dump`), so `metastore.remote`
rebuilds the very objects a local store returns. Errors a user can cause come back as
`{"error": {"type", "message", "hint", …}}` with a 4xx status; `type` names the
`MetastoreError` subclass so the client raises the same exception the store raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastAPIPath
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from metastore.blobs import CHUNK, DIR_MEDIA_TYPE
from metastore.errors import IntegrityFailure, InvalidValue, NotFound
from metastore.handles import RunHandle
from metastore.models import (
    RUN_STATUSES,
    Asset,
    AssetVersion,
    Experiment,
    LineageEdge,
    Metric,
    MetricSummary,
    Note,
    Run,
)
from metastore.store import MetricPoint, RunRecord, Store

# Declares the bearer scheme in the OpenAPI document; the AuthGate middleware enforces it.
bearer = HTTPBearer(auto_error=False, description="an API token from `metastore token create`")
router = APIRouter(prefix="/api", dependencies=[Depends(bearer)])
public = APIRouter(prefix="/api")

# Bounds that keep values inside every database's column types.
MAX_STEP = 2**62
MAX_TEXT = 250


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Depends(get_store)


# -- wire models ------------------------------------------------------------------------


class MetricIn(BaseModel):
    key: str
    # Any, not float: the store's own check gives the same error locally and remotely.
    value: Any
    step: int | None = Field(default=None, ge=-MAX_STEP, le=MAX_STEP)
    timestamp: datetime | None = None


class NoteIn(BaseModel):
    text: str
    kind: str = Field(default="note", max_length=16)
    author: str | None = Field(default=None, max_length=MAX_TEXT)
    time: datetime | None = None


class LinkIn(BaseModel):
    version_id: str = Field(max_length=26)
    role: str | None = Field(default=None, max_length=64)


class RunIn(BaseModel):
    """A whole run, created in one transaction (RunRecord)."""

    experiment: str
    name: str | None = Field(default=None, max_length=MAX_TEXT)
    status: Literal[RUN_STATUSES] = "finished"  # type: ignore[valid-type]
    started: datetime | None = None
    ended: datetime | None = None
    user: str | None = Field(default=None, max_length=MAX_TEXT)
    host: str | None = Field(default=None, max_length=MAX_TEXT)
    git_commit: str | None = Field(default=None, max_length=64)
    git_branch: str | None = Field(default=None, max_length=MAX_TEXT)
    git_dirty: bool | None = None
    command: str | None = None
    context: dict[str, Any] | None = None
    params: dict[str, Any] = {}
    metrics: list[MetricIn] = []
    tags: dict[str, Any] = {}
    notes: list[NoteIn] = []
    inputs: list[LinkIn] = []
    outputs: list[LinkIn] = []
    source: str | None = Field(default=None, max_length=32)
    source_id: str | None = Field(default=None, max_length=MAX_TEXT)
    parent_id: str | None = Field(default=None, max_length=26)
    id: str | None = Field(default=None, min_length=26, max_length=26)
    pid: int | None = Field(default=None, ge=1, le=2**31 - 1, description="the recording process")


class ExperimentIn(BaseModel):
    name: str
    description: str | None = None


class NoteBody(BaseModel):
    text: str
    kind: str = Field(default="note", max_length=16)
    author: str | None = Field(default=None, max_length=MAX_TEXT)


class StatusIn(BaseModel):
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    ended: datetime | None = None


class RunLinkIn(BaseModel):
    version_id: str = Field(max_length=26)
    relation: Literal["used", "produced"]
    role: str | None = Field(default=None, max_length=64)


class AssetIn(BaseModel):
    """A version to record. Content is uploaded first (`PUT /api/blobs/{digest}`) and
    named here with uri "blob:", or referenced by an external URI without its bytes."""

    kind: str
    name: str
    uri: str
    digest: str = Field(max_length=80)
    size: int | None = Field(default=None, ge=0, le=MAX_STEP)
    media_type: str | None = Field(default=None, max_length=128)
    meta: dict[str, Any] | None = None
    run_id: str | None = Field(default=None, max_length=26)
    relation: Literal["used", "produced"] | None = None
    role: str | None = Field(default=None, max_length=64)
    derived_from: list[str] = []


class EdgeIn(BaseModel):
    src_type: Literal["run", "asset_version"]
    src_id: str = Field(max_length=26)
    dst_type: Literal["run", "asset_version"]
    dst_id: str = Field(max_length=26)
    relation: Literal["used", "produced", "derived_from"]
    role: str | None = Field(default=None, max_length=64)


class QueryIn(BaseModel):
    text: str
    experiment: str | None = None


class VersionOut(BaseModel):
    asset: Asset
    version: AssetVersion


class RunAssetOut(VersionOut):
    role: str | None = None


class QueryOut(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    sql: str | None = None


class SessionOut(BaseModel):
    name: str
    read_only: bool
    auth: bool
    version: str


class Done(BaseModel):
    ok: bool = True


# -- service ------------------------------------------------------------------------------


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


# -- experiments --------------------------------------------------------------------------


@router.get("/experiments", response_model=list[Experiment], tags=["experiments"])
def list_experiments(include_deleted: bool = False, store: Store = StoreDep):
    return store.experiments(include_deleted=include_deleted)


@router.post("/experiments", response_model=Experiment, tags=["experiments"])
def create_experiment(body: ExperimentIn, store: Store = StoreDep):
    return store.create_experiment(body.name, body.description)


@router.get("/experiments/by-id/{experiment_id}", tags=["experiments"])
def experiment_name(
    # bounded: a larger integer would reach the database driver and fail there
    experiment_id: int = FastAPIPath(ge=1, le=2**63 - 1),
    store: Store = StoreDep,
) -> dict[str, str]:
    return {"name": store.experiment_name(experiment_id)}


@router.get("/experiments/{name:path}", response_model=Experiment, tags=["experiments"])
def get_experiment(name: str, store: Store = StoreDep):
    return store.get_experiment(name)


@router.delete("/experiments/{name:path}", response_model=Done, tags=["experiments"])
def delete_experiment(name: str, store: Store = StoreDep):
    store.delete_experiment(name)
    return Done()


# -- runs -------------------------------------------------------------------------------


@router.get("/runs", response_model=list[Run], tags=["runs"])
def list_runs(
    experiment: str | None = None,
    status: str | None = None,
    include_deleted: bool = False,
    store: Store = StoreDep,
):
    return store.list_runs(experiment, status, include_deleted)


@router.post("/runs", response_model=Run, tags=["runs"])
def create_run(body: RunIn, store: Store = StoreDep):
    data = body.model_dump()
    data["metrics"] = [MetricPoint(**m) for m in data["metrics"]]
    data["notes"] = [Note(run_id="", **n) for n in data["notes"]]
    data["inputs"] = [(i["version_id"], i["role"]) for i in data["inputs"]]
    data["outputs"] = [(o["version_id"], o["role"]) for o in data["outputs"]]
    return store.create_run(RunRecord(**data))


@router.post("/runs/reconcile", tags=["runs"])
def reconcile_crashed(store: Store = StoreDep) -> dict[str, int]:
    """Mark running runs whose process is gone as crashed."""
    return {"crashed": store.reconcile_crashed()}


@router.get("/runs/by-source", response_model=Run | None, tags=["runs"])
def find_run_by_source(source: str, source_id: str, store: Store = StoreDep):
    """The run imported from `source_id` of tool `source`, or null."""
    return store.find_run_by_source(source, source_id)


@router.get(
    "/runs/{run_id}/params",
    tags=["runs"],
    response_model=None,  # not pydantic's: it would turn a param of inf into null
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def get_params(run_id: str, store: Store = StoreDep) -> dict[str, Any]:
    """Values keep their types; non-finite numbers are sent as Infinity/NaN tokens."""
    return store.get_params(run_id)


@router.post("/runs/{run_id}/params", response_model=Done, tags=["runs"])
def log_params(run_id: str, values: dict[str, Any], store: Store = StoreDep):
    store.log_params(run_id, values)
    return Done()


@router.get("/runs/{run_id}/metrics", response_model=dict[str, MetricSummary], tags=["runs"])
def get_metric_summaries(run_id: str, store: Store = StoreDep):
    """Per metric key: last, first, min, max and count of its history."""
    return store.get_metric_summaries(run_id)


@router.post("/runs/{run_id}/metrics", response_model=Done, tags=["runs"])
def log_metrics(run_id: str, points: list[MetricIn], store: Store = StoreDep):
    store.log_metrics(run_id, [MetricPoint(**p.model_dump()) for p in points])
    return Done()


@router.get("/runs/{run_id}/metric-history", response_model=list[Metric], tags=["runs"])
def get_metric_history(run_id: str, key: str, store: Store = StoreDep):
    """Every point of one metric, by step (the key goes in the query: it may hold '/')."""
    return store.get_metric_history(run_id, key)


@router.get("/runs/{run_id}/notes", response_model=list[Note], tags=["runs"])
def get_notes(run_id: str, store: Store = StoreDep):
    return store.get_notes(run_id)


@router.post("/runs/{run_id}/notes", response_model=Note, tags=["runs"])
def add_note(run_id: str, body: NoteBody, store: Store = StoreDep):
    return store.add_note(run_id, body.text, kind=body.kind, author=body.author)


@router.put("/runs/{run_id}/status", response_model=Done, tags=["runs"])
def set_run_status(run_id: str, body: StatusIn, store: Store = StoreDep):
    store.set_run_status(run_id, body.status, body.ended)
    return Done()


@router.post("/runs/{run_id}/heartbeat", response_model=Done, tags=["runs"])
def heartbeat(run_id: str, store: Store = StoreDep):
    store.heartbeat(run_id)
    return Done()


@router.post("/runs/{run_id}/restore", response_model=Done, tags=["runs"])
def restore_run(run_id: str, store: Store = StoreDep):
    store.restore_run(run_id)
    return Done()


@router.get("/runs/{run_id}/assets", response_model=list[RunAssetOut], tags=["runs"])
def run_assets(
    run_id: str, direction: Literal["inputs", "outputs"] = "inputs", store: Store = StoreDep
):
    """The asset versions a run used (inputs) or produced (outputs)."""
    return [
        RunAssetOut(asset=a, version=v, role=role)
        for a, v, role in store.run_assets(run_id, direction)
    ]


@router.post("/runs/{run_id}/assets", response_model=Done, tags=["runs"])
def link_run_asset(run_id: str, body: RunLinkIn, store: Store = StoreDep):
    """Record that a run used or produced an existing asset version."""
    store.link_run_asset(run_id, body.version_id, body.relation, body.role)
    return Done()


@router.get(
    "/runs/{run_id}/details",
    tags=["runs"],
    response_model=None,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
)
def run_details(run_id: str, store: Store = StoreDep) -> dict[str, Any]:
    """Everything about a run in one document: params, metrics, tags, notes, inputs,
    outputs, context (what `metastore show --format json` prints)."""
    return RunHandle(store, store.resolve_run(run_id)).to_dict()


@router.get("/runs/{ref:path}", response_model=Run, tags=["runs"])
def resolve_run(ref: str, experiment: str | None = None, store: Store = StoreDep):
    """A run by id, by number (`4` with `experiment`, or `diabetes%234`), or by name."""
    return store.resolve_run(ref, experiment)


@router.delete("/runs/{ref:path}", response_model=Done, tags=["runs"])
def delete_run(ref: str, experiment: str | None = None, store: Store = StoreDep):
    """Soft-delete a run (restorable until purge)."""
    store.delete_run(ref, experiment)
    return Done()


# -- tags ---------------------------------------------------------------------------------

EntityType = Literal["project", "experiment", "run", "asset", "asset_version"]


@router.get("/tags/{entity_type}/{entity_id}", tags=["tags"])
def get_tags(entity_type: EntityType, entity_id: str, store: Store = StoreDep) -> dict[str, str | None]:
    return store.get_tags(entity_type, entity_id)


@router.put("/tags/{entity_type}/{entity_id}", response_model=Done, tags=["tags"])
def set_tags(
    entity_type: EntityType, entity_id: str, tags: dict[str, Any], store: Store = StoreDep
):
    """Set (add or overwrite) the given tags; others stay."""
    if len(entity_id) > 26:
        raise InvalidValue("entity ids are at most 26 characters")
    store.set_tags(entity_type, entity_id, tags)
    return Done()


# -- assets and blobs ---------------------------------------------------------------------


@router.get("/assets", response_model=list[Asset], tags=["assets"])
def list_assets(kind: str | None = None, store: Store = StoreDep):
    return store.list_assets(kind)


@router.post("/assets", response_model=VersionOut, tags=["assets"])
def put_asset(body: AssetIn, store: Store = StoreDep):
    """Record a version whose content was uploaded (uri "blob:") or lives elsewhere."""
    if body.uri == "blob:":
        _check_uploaded(store, body.digest, body.media_type)
    asset, version = store.put_asset(
        body.kind,
        body.name,
        None,
        uri=body.uri,
        digest=body.digest,
        size=body.size,
        media_type=body.media_type,
        meta=body.meta,
        run_id=body.run_id,
        relation=body.relation,
        role=body.role,
        derived_from=body.derived_from,
    )
    return VersionOut(asset=asset, version=version)


def _check_uploaded(store: Store, digest: str, media_type: str | None) -> None:
    missing = [d for d in [digest] if not store.blobs.exists(d)]
    if not missing and media_type == DIR_MEDIA_TYPE:
        missing = [d for d in store.blobs.manifest_digests(digest) if not store.blobs.exists(d)]
    if missing:
        raise InvalidValue(
            f"blob {missing[0]} has not been uploaded",
            hint=f"PUT its bytes to /api/blobs/{missing[0]} first",
        )


@router.get("/assets/versions", response_model=list[VersionOut], tags=["assets"])
def list_versions(kind: str, name: str, store: Store = StoreDep):
    return [VersionOut(asset=a, version=v) for a, v in store.list_versions(kind, name)]


@router.get("/assets/version", response_model=VersionOut, tags=["assets"])
def get_asset_version(
    kind: str, name: str, version: int | None = Query(default=None, ge=1, le=MAX_STEP),
    store: Store = StoreDep,
):
    """One version of an asset; the latest without `version`."""
    asset, av = store.get_asset_version(kind, name, version)
    return VersionOut(asset=asset, version=av)


@router.get("/versions/{version_id}", response_model=VersionOut, tags=["assets"])
def get_version_by_id(version_id: str, store: Store = StoreDep):
    asset, av = store.get_version_by_id(version_id)
    return VersionOut(asset=asset, version=av)


@router.get(
    "/versions/{version_id}/content",
    tags=["assets"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_version(version_id: str, store: Store = StoreDep):
    """The version's bytes, verified against its digest. A directory version gives its
    manifest (relative path → digest and size); fetch each file from /api/blobs/."""
    asset, av = store.get_version_by_id(version_id)
    if av.uri != "blob:":
        raise NotFound(f"{asset.kind}:{asset.name}@{av.version} is referenced at {av.uri}, not stored")
    filename = json.loads(av.meta).get("filename") if av.meta else None
    filename = filename or f"{asset.name}-v{av.version}"
    if av.media_type == DIR_MEDIA_TYPE:
        media, filename = "application/json", filename + ".manifest.json"
    else:
        media = av.media_type or "application/octet-stream"
    return _stream(store, av.digest, media, filename)


def _digest(digest: str) -> str:
    """Only a sha256 in hex addresses a blob, so no path can be smuggled in."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidValue(f"not a sha256 digest: {digest[:80]!r}")
    return digest


def _stream(store: Store, digest: str, media_type: str, filename: str | None = None):
    blobs = store.blobs
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


@router.head("/blobs/{digest}", tags=["blobs"])
def blob_exists(digest: str, store: Store = StoreDep):
    """200 when the blob is stored, 404 otherwise (clients skip re-uploading content)."""
    return Response(status_code=200 if store.blobs.exists(_digest(digest)) else 404)


@router.get(
    "/blobs/{digest}",
    tags=["blobs"],
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_blob(digest: str, store: Store = StoreDep):
    """A blob's bytes, verified against its digest before they are sent."""
    return _stream(store, digest, "application/octet-stream")


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
    store = request.app.state.store
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
        from pathlib import Path

        await anyio.to_thread.run_sync(store.blobs.put_file, Path(tmp))
    finally:
        os.unlink(tmp)
    return {"digest": digest, "size": size}


# -- lineage and query ------------------------------------------------------------------


@router.post("/edges", response_model=LineageEdge, tags=["lineage"])
def add_edge(body: EdgeIn, store: Store = StoreDep):
    return store.add_edge(
        body.src_type, body.src_id, body.dst_type, body.dst_id, body.relation, body.role
    )


@router.get("/lineage", tags=["lineage"])
def lineage(
    ref: str,
    direction: Literal["upstream", "downstream", "both"] = "upstream",
    depth: int | None = Query(default=None, ge=0, le=10_000),
    store: Store = StoreDep,
) -> dict[str, Any]:
    """The lineage graph around a run (`run:ID`, number, experiment#number, name) or an
    asset version (`model:regressor@3`, `dataset:diabetes` for the latest, or its id), as
    networkx node-link JSON (`nodes`, `edges`, `graph`)."""
    return _node_link(store.lineage(ref, direction=direction, depth=depth))


@router.get("/lineage/path", tags=["lineage"])
def lineage_path(a: str, b: str, store: Store = StoreDep) -> dict[str, Any] | None:
    """The shortest lineage path between two nodes, in data-flow order, as node-link
    JSON; null when neither is upstream of the other."""
    graph = store.path(a, b)
    return None if graph is None else _node_link(graph)


class LinkBody(BaseModel):
    upstream: str
    downstream: str
    relation: Literal["used", "produced", "derived_from"] = "derived_from"
    role: str | None = Field(default=None, max_length=64)


@router.post("/lineage/link", response_model=LineageEdge, tags=["lineage"])
def lineage_link(body: LinkBody, store: Store = StoreDep):
    """Record after the fact that data flowed from `upstream` to `downstream`; an edge
    that would close a cycle is refused (409)."""
    return store.link(body.upstream, body.downstream, relation=body.relation, role=body.role)


def _node_link(graph) -> dict[str, Any]:
    import networkx as nx

    return nx.node_link_data(graph, edges="edges", name="node")


def _check_length(request: Request, text: str) -> None:
    from metastore.server.middleware import error_payload

    limit = request.app.state.limits.max_query_chars
    if len(text) > limit:
        raise _TooLong(error_payload("TooLarge", f"query text is longer than {limit} characters"))


def _run_query(request: Request, store: Store, text: str, experiment: str | None) -> QueryOut:
    _check_length(request, text)
    result = store.query(text, experiment=experiment)
    # to_records: the query package's JSON-safe rows (times as ISO text)
    rows = result.to_records() if hasattr(result, "to_records") else list(result)
    return QueryOut(columns=list(result.columns), rows=rows, sql=getattr(result, "sql", None))


class _TooLong(Exception):
    def __init__(self, payload: dict):
        self.payload = payload


@router.get("/query/sql", tags=["query"])
def query_sql(
    request: Request, q: str, experiment: str | None = None, store: Store = StoreDep
) -> dict[str, str]:
    """The SQL a query compiles to on the server's database, without running it."""
    _check_length(request, q)
    return {"sql": store.query_sql(q, experiment=experiment)}


@router.post("/query", response_model=QueryOut, tags=["query"])
def query(body: QueryIn, request: Request, store: Store = StoreDep):
    """Answer a query in metastore's query language. A bad query gives 400 with the
    QueryError's message, line, column and caret line."""
    return _run_query(request, store, body.text, body.experiment)


@router.get("/query", response_model=QueryOut, tags=["query"])
def query_get(request: Request, q: str, experiment: str | None = None, store: Store = StoreDep):
    """The same as POST /api/query, for links that reproduce a view."""
    return _run_query(request, store, q, experiment)


# -- maintenance --------------------------------------------------------------------------


@router.post("/purge", tags=["server"])
def purge(store: Store = StoreDep) -> dict[str, int]:
    """Remove soft-deleted runs and experiments for good, and unreferenced blobs."""
    return store.purge()
