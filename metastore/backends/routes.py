"""The REST API's one route table: each `Backend` primitive's HTTP method, path, request
model and response model.

Both doors are generated from this table, so a route cannot exist on one side only:
the server (`metastore.server.api`) registers one FastAPI route per entry that calls the
primitive on its SQL backend, and the client (`metastore.backends.http.HTTPBackend`)
builds each primitive as one generic call of the entry's route. This is the way
MLflow's REST store maps each store method to its endpoint.

A request model is derived from the primitive's signature (its parameters minus those
in the path, with the types of `metastore.records` and the bounds that keep values
inside every database's columns). The response model is the primitive's return type,
with tuples of rows given a small model of their own (`VersionOut`, `RunAssetOut`).
Rows of the meta-model (Run, Experiment, …) travel as their own JSON.

Only what cannot cross the wire as it stands has a hook here: content is hashed and
uploaded by the client before `put_asset` names it by digest (and the server checks it
arrived), a running run carries the recording process, and params are sent in the JSON
form the store would keep. Blob bytes, /api/health and /api/session are transport
routes, hand-written in `metastore.server.api` and `metastore.backends.http`.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import json
import math
import os
import socket
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache, cached_property
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from sqlmodel import SQLModel

from metastore.backends.base import Backend
from metastore.blobs import DIR_MEDIA_TYPE
from metastore.errors import InvalidValue
from metastore.models import ASSET_KINDS, Asset, AssetVersion, Note, Run
from metastore.records import MetricSeries, RunStatus


def _hints(name: str) -> dict[str, Any]:
    """A primitive's type hints. `backends/base.py` names the tables and records only
    for type checkers (so opening a store loads them only when it needs them): resolve
    the names against those modules."""
    from metastore import models, records

    return typing.get_type_hints(getattr(Backend, name), localns={**vars(models), **vars(records)})

#: Where the table's paths live on a server.
PREFIX = "/api"
#: The header naming a write once, however often it is sent (see `Backend.apply_once`).
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: Bounds that keep numbers inside every database's BIGINT.
MAX_STEP = 2**62
MAX_ID = 2**63 - 1
#: Seconds a client keeps the store's settings (`get_config`) before asking again.
CONFIG_FRESH = 60.0
ENTITY_TYPES = Literal["project", "experiment", "run", "asset", "asset_version"]
NODE_TYPES = Literal["run", "asset_version"]
RELATIONS = Literal["used", "produced", "derived_from", "reproduces"]


# -- wire models for what is not one row or record --------------------------------------


class VersionOut(BaseModel):
    """An asset version with its asset: `(Asset, AssetVersion)` on the wire."""

    asset: Asset
    version: AssetVersion


class RunAssetOut(VersionOut):
    """A version a run used or produced, and the role it played."""

    role: str | None = None


class Done(BaseModel):
    """The answer of a primitive that returns nothing."""

    ok: bool = True


@dataclass(frozen=True)
class Wire:
    """How a primitive's return value travels: the model on the wire, and the
    conversions between it and what the primitive returns."""

    model: Any
    to_wire: Callable[[Any], Any] = lambda v: v
    from_wire: Callable[[Any], Any] = lambda v: v


PAIR = Wire(VersionOut, lambda p: VersionOut(asset=p[0], version=p[1]),
            lambda v: (v.asset, v.version))
PAIRS = Wire(list[VersionOut], lambda ps: [PAIR.to_wire(p) for p in ps],
             lambda vs: [PAIR.from_wire(v) for v in vs])
RUN_ASSETS = Wire(
    list[RunAssetOut],
    lambda ts: [RunAssetOut(asset=a, version=v, role=r) for a, v, r in ts],
    lambda vs: [(v.asset, v.version, v.role) for v in vs],
)
NOTHING = Wire(Done, lambda _: Done(), lambda _: None)
# The SQL backend answers numpy columns; JSON takes lists.
SERIES = Wire(MetricSeries, lambda s: MetricSeries.model_construct(
    key=s.key, steps=_listed(s.steps), values=_listed(s.values), count=s.count))


def _listed(column: Any) -> list:
    return column.tolist() if hasattr(column, "tolist") else list(column)


# -- client-side preparation and server-side checks ---------------------------------------


def _jsonable(value: Any) -> Any:
    """The JSON form of what json does not know (json.dumps `default`)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    return str(value)


def dumps(value: Any) -> bytes:
    """JSON text of a wire value; NaN and ±Infinity are kept (a param may be inf)."""
    return json.dumps(value, allow_nan=True, default=_jsonable, separators=(",", ":")).encode()


def _plain_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Param values as JSON the server decodes to what `params.encode` sees here:
    numbers, bools and text stay typed; anything else becomes its JSON form."""
    from metastore import params as codec

    if not isinstance(values, Mapping):
        raise TypeError("params must be a mapping of name to value")
    out = {}
    for key, value in values.items():
        ptype, num, text = codec.encode(value)
        if ptype == "json":
            out[key] = json.loads(text)
        elif ptype == "number" and isinstance(value, float) and not math.isfinite(value):
            out[key] = value
        else:
            out[key] = codec.decode(ptype, num, text)
    return out


def _prepare_log_params(backend, args: dict) -> dict:
    return {**args, "values": _plain_params(args["values"])}


def _prepare_log_batch(backend, args: dict) -> dict:
    return {**args, "params": _plain_params(args["params"] or {})}


def _prepare_create_runs(backend, args: dict) -> dict:
    records = []
    for record in args["records"]:
        changes: dict[str, Any] = {"params": _plain_params(record.params)}
        if record.status == "running":
            # The run's process is this one, not the server's: crash detection checks
            # the pid on the host that recorded it.
            changes["host"] = record.host or socket.gethostname()
            changes["pid"] = record.pid or os.getpid()
        records.append(record.model_copy(update=changes))
    return {**args, "records": records}


def _prepare_create_run(backend, args: dict) -> dict:
    """`start_run` through a server: the client names the run (id) and its start, so a
    run started while the server is away can wait in the spool and be created as it
    was when its request arrives."""
    from metastore.models import new_id, utcnow

    [record] = _prepare_create_runs(backend, {"records": [args["record"]]})["records"]
    record = record.model_copy(update={"id": record.id or new_id(),
                                       "started": record.started or utcnow()})
    return {**args, "record": record}


def _kept_run(args: dict) -> Run:
    """The run `create_run` answers while it waits in the spool: its own id and start;
    its number and experiment id (0 meanwhile) are the server's to give."""
    record = args["record"]
    fields = {k: getattr(record, k) for k in ("name", "parent_id", "status", "started", "user",
                                             "host", "pid", "git_commit", "git_branch",
                                             "git_dirty", "command")}
    return Run(id=record.id, experiment_id=0, number=0, **fields)


def _prepare_put_asset(backend, args: dict) -> dict:
    """Hash the content here and upload its bytes unless the server has them; the
    version is then recorded by digest."""
    from metastore.backends.content import prepare_content

    args = dict(args)
    content, copy = args.pop("content"), args.pop("copy")
    digest, size, uri, media_type, meta = prepare_content(
        backend.blobs, args["kind"], args["name"], content, uri=args["uri"],
        digest=args["digest"], size=args["size"], media_type=args["media_type"],
        meta=args["meta"], relation=args["relation"], copy=copy,
    )
    return {**args, "digest": digest, "size": size, "uri": uri, "media_type": media_type,
            "meta": json.loads(dumps(meta)) if meta else None,
            "derived_from": list(args["derived_from"])}


def _check_uploaded(backend: Backend, args: dict) -> None:
    """A version naming stored content ("blob:") needs its bytes uploaded first."""
    if args.get("uri") != "blob:":
        return
    blobs, digest = backend.blobs, args["digest"]
    missing = [d for d in [digest] if not blobs.exists(d)]
    if not missing and args.get("media_type") == DIR_MEDIA_TYPE:
        missing = [d for d in blobs.manifest_digests(digest) if not blobs.exists(d)]
    if missing:
        raise InvalidValue(
            f"blob {missing[0]} has not been uploaded",
            hint=f"PUT its bytes to {PREFIX}/blobs/{missing[0]} first",
        )


def _nothing(args: dict) -> None:
    return None


def _kept_note(args: dict) -> Note:
    """The note `add_note` answers while it waits in the spool (no id yet)."""
    return Note(run_id=args["run_id"], text=args["text"], kind=args["kind"],
                author=args["author"])


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One primitive on the wire. Its request model is derived from the primitive's
    signature (with `types` and `bounds` narrowing it), its response from the return
    type unless `wire` says how a value that is not one model travels."""

    name: str
    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str
    tag: str
    #: Parameter types narrower than the signature's (Literal choices, …).
    types: Mapping[str, Any] = field(default_factory=dict)
    #: Bounds per parameter, as pydantic Field arguments (max_length, ge, le …).
    bounds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Parameters that never travel: the client's `prepare` turns them into others.
    local: tuple[str, ...] = ()
    #: A POST that only reads (long or structured input): read-only tokens may send it,
    #: and the client may retry it like a GET.
    reads: bool = False
    #: The client keeps answers: True for the session (the value can never change), a
    #: number for that many seconds (a value that changes rarely and may be late).
    memo: bool | float = False
    #: A write that makes the client forget the answers it keeps of this route.
    forgets: str | None = None
    #: A parameter whose text the server bounds (`Limits.max_query_chars`).
    text_limit: str | None = None
    #: A parameter in seconds the server defaults and caps (`Limits.query_timeout`,
    #: `Limits.max_query_timeout`); the client waits that long for the answer.
    deadline: str | None = None
    wire: Wire | None = None
    prepare: Callable[[Any, dict], dict] | None = None
    check: Callable[[Backend, dict], None] | None = None
    #: A write a recording process makes that the client may keep in its spool while
    #: the server is away: what the call returns meanwhile, from its arguments.
    offline: Callable[[dict], Any] | None = None
    #: A write worth nothing late (the heartbeat): sent once, without an idempotency
    #: key, skipped while the server is away.
    lossy: bool = False
    #: The server writes the answer while it is produced: "rows", a query's rows as
    #: the cursor gives them (`query_stream`); "items", a list an item at a time.
    stream: Literal["rows", "items"] | None = None

    # -- derived ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return PREFIX + self.path

    @property
    def in_query(self) -> bool:
        """GET and DELETE send their arguments in the query string, others a JSON body."""
        return self.method in ("GET", "DELETE")

    @property
    def writes(self) -> bool:
        return self.method != "GET" and not self.reads

    @cached_property
    def doc(self) -> str:
        return inspect.getdoc(getattr(Backend, self.name)) or self.name.replace("_", " ")

    @cached_property
    def path_params(self) -> list[str]:
        return [p.strip("{}").split(":")[0] for p in self.path.split("/") if p.startswith("{")]

    @cached_property
    def signature(self) -> inspect.Signature:
        return inspect.signature(getattr(Backend, self.name))

    def param_type(self, name: str) -> Any:
        if name in self.types:
            return self.types[name]
        hints = _hints(self.name)
        return _concrete(hints.get(name, Any))

    def field_info(self, name: str, default: Any = ...) -> Any:
        return Field(default, **self.bounds.get(name, {}))

    @cached_property
    def body_params(self) -> list[inspect.Parameter]:
        skip = {"self", *self.path_params, *self.local}
        return [p for n, p in self.signature.parameters.items() if n not in skip]

    @cached_property
    def response(self) -> Wire:
        if self.wire is not None:
            return self.wire
        hint = _hints(self.name).get("return")
        return NOTHING if hint is type(None) or hint is None else Wire(_concrete(hint))


def _concrete(tp: Any) -> Any:
    """The type a pydantic model validates, for an abstract collection annotation:
    Sequence/Iterable → list, Mapping → dict (recursively)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (cabc.Sequence, cabc.Iterable, list):
        return list[_concrete(args[0])] if args else list
    if origin in (cabc.Mapping, dict):
        return dict[_concrete(args[0]), _concrete(args[1])] if args else dict
    if origin in (Union, UnionType):
        return Union[tuple(_concrete(a) for a in args)]  # noqa: UP007 - built from a tuple
    return tp


def _request_model(route: Route) -> type[BaseModel] | None:
    fields = {}
    for p in route.body_params:
        default = ... if p.default is inspect.Parameter.empty else p.default
        if isinstance(default, tuple):
            default = list(default)
        fields[p.name] = (route.param_type(p.name), route.field_info(p.name, default))
    if not fields:
        return None
    name = "".join(w.capitalize() for w in route.name.split("_")) + "In"
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


ID = {"max_length": 26}
ROLE = {"max_length": 64}
PATH = {"max_length": 4096}
ALIAS = {"max_length": 64}
NAME = {"max_length": 250}

ROUTES: list[Route] = [
    # -- experiments ------------------------------------------------------------------------
    Route("experiments", "GET", "/experiments", "experiments"),
    Route("create_experiment", "POST", "/experiments", "experiments"),
    Route("run_counts", "GET", "/run-counts", "experiments"),
    Route("experiment_name", "GET", "/experiments/by-id/{experiment_id}", "experiments",
          # bounded: a larger integer would reach the database driver and fail there
          bounds={"experiment_id": {"ge": 1, "le": MAX_ID}}, memo=True),
    Route("get_experiment", "GET", "/experiments/{name:path}", "experiments"),
    Route("delete_experiment", "DELETE", "/experiments/{name:path}", "experiments"),
    # -- runs -----------------------------------------------------------------------------
    Route("list_runs", "GET", "/runs", "runs", types={"status": RunStatus | None}),
    Route("create_runs", "POST", "/runs", "runs", prepare=_prepare_create_runs),
    # one run, answered with its row: `start_run` through a server in one request
    Route("create_run", "POST", "/runs/one", "runs", prepare=_prepare_create_run,
          offline=_kept_run),
    Route("read_runs", "POST", "/runs/read", "runs", reads=True, stream="items"),
    Route("dump_runs", "POST", "/runs/dump", "runs", reads=True, stream="items"),
    Route("run_keys", "POST", "/runs/keys", "runs", reads=True),
    Route("runs_by_source", "POST", "/runs/by-source", "runs", reads=True,
          bounds={"source": {"max_length": 32}}),
    Route("reconcile_crashed", "POST", "/runs/reconcile", "runs"),
    Route("get_params", "GET", "/runs/{run_id}/params", "runs"),
    Route("log_params", "POST", "/runs/{run_id}/params", "runs", prepare=_prepare_log_params,
          offline=_nothing),
    Route("get_metric_summaries", "GET", "/runs/{run_id}/metrics", "runs"),
    Route("log_metrics", "POST", "/runs/{run_id}/metrics", "runs", offline=_nothing),
    # a run's flush and its end in one request (one key, one transaction)
    Route("log_batch", "POST", "/runs/{run_id}/batch", "runs", prepare=_prepare_log_batch,
          types={"status": RunStatus | None}, offline=_nothing),
    Route("get_metric_history", "GET", "/runs/{run_id}/metric-history", "runs"),
    Route("metric_series", "GET", "/runs/{run_id}/metric-series", "runs",
          bounds={"max_points": {"ge": 4, "le": MAX_STEP}}, wire=SERIES),
    Route("get_notes", "GET", "/runs/{run_id}/notes", "runs"),
    Route("add_note", "POST", "/runs/{run_id}/notes", "runs",
          bounds={"kind": {"max_length": 16}, "author": {"max_length": 250}},
          offline=_kept_note),
    Route("set_run_status", "PUT", "/runs/{run_id}/status", "runs", types={"status": RunStatus},
          offline=_nothing),
    Route("heartbeat", "POST", "/runs/{run_id}/heartbeat", "runs", lossy=True),
    Route("restore_run", "POST", "/runs/{run_id}/restore", "runs"),
    Route("run_assets", "GET", "/runs/{run_id}/assets", "runs",
          types={"direction": Literal["inputs", "outputs"]}, wire=RUN_ASSETS),
    Route("link_run_asset", "POST", "/runs/{run_id}/assets", "runs",
          types={"relation": Literal["used", "produced"]},
          bounds={"version_id": ID, "role": ROLE, "path": PATH}, offline=_nothing),
    Route("resolve_run", "GET", "/runs/{ref:path}", "runs", types={"ref": str}),
    Route("delete_run", "DELETE", "/runs/{ref:path}", "runs", types={"ref": str}),
    # -- tags -------------------------------------------------------------------------------
    Route("get_tags", "GET", "/tags/{entity_type}/{entity_id}", "tags",
          types={"entity_type": ENTITY_TYPES}),
    Route("set_tags", "PUT", "/tags/{entity_type}/{entity_id}", "tags",
          types={"entity_type": ENTITY_TYPES}, bounds={"entity_id": ID}, offline=_nothing),
    # -- assets -----------------------------------------------------------------------------
    Route("list_assets", "GET", "/assets", "assets"),
    Route("create_asset", "POST", "/assets/named", "assets", bounds={"name": NAME},
          types={"kind": Literal[ASSET_KINDS]}),
    Route("put_asset", "POST", "/assets", "assets", wire=PAIR, local=("content", "copy"),
          prepare=_prepare_put_asset, check=_check_uploaded,
          types={"relation": Literal["used", "produced"] | None},
          bounds={"digest": {"max_length": 80}, "size": {"ge": 0, "le": MAX_STEP},
                  "media_type": {"max_length": 128}, "run_id": ID, "role": ROLE,
                  "path": PATH}),
    Route("list_versions", "GET", "/assets/versions", "assets", wire=PAIRS),
    Route("get_asset_version", "GET", "/assets/version", "assets", wire=PAIR,
          bounds={"version": {"ge": 1, "le": MAX_STEP}}),
    Route("get_version_by_id", "GET", "/versions/{version_id}", "assets", wire=PAIR),
    # -- lineage ----------------------------------------------------------------------------
    Route("add_edge", "POST", "/edges", "lineage",
          types={"src_type": NODE_TYPES, "dst_type": NODE_TYPES, "relation": RELATIONS},
          bounds={"src_id": ID, "dst_id": ID, "role": ROLE}),
    Route("list_edges", "POST", "/edges/list", "lineage", reads=True),
    Route("walk", "POST", "/lineage/walk", "lineage", reads=True,
          types={"starts": list[tuple[NODE_TYPES, str]],
                 "direction": Literal["upstream", "downstream"]},
          bounds={"depth": {"ge": 0, "le": 10_000}, "limit": {"ge": 1, "le": 1_000_000},
                  "cursor": {"max_length": 40}}),
    # -- aliases ----------------------------------------------------------------------------
    Route("list_aliases", "GET", "/aliases", "assets", bounds={"version_id": ID}),
    Route("set_alias", "POST", "/aliases", "assets",
          bounds={"version_id": ID, "alias": ALIAS, "author": NAME}),
    Route("unset_alias", "DELETE", "/aliases", "assets", bounds={"alias": ALIAS, "author": NAME}),
    Route("alias_history", "GET", "/aliases/history", "assets", bounds={"alias": ALIAS}),
    # -- the store's settings -------------------------------------------------------------
    # read as each run starts (its cost rate): a process starting many runs asks the
    # server once a minute, and sees its own changes at once
    Route("get_config", "GET", "/config", "config", bounds={"prefix": NAME}, memo=CONFIG_FRESH),
    Route("set_config", "PUT", "/config", "config", bounds={"key": NAME}, forgets="get_config"),
    # -- questions and maintenance --------------------------------------------------------
    Route("query", "POST", "/query", "query", reads=True, text_limit="text",
          deadline="timeout", bounds={"timeout": {"gt": 0, "le": 86_400}}, stream="rows"),
    Route("compile_query", "POST", "/query/sql", "query", reads=True, text_limit="text"),
    Route("known_keys", "GET", "/query/keys", "query"),
    Route("purge", "POST", "/purge", "server"),
]

#: Primitives that are not routes: they act on this side of the wire.
LOCAL_PRIMITIVES = frozenset({"open_blob", "cache_dir", "close"})

BY_NAME: dict[str, Route] = {r.name: r for r in ROUTES}
REQUESTS: dict[str, type[BaseModel] | None] = {r.name: _request_model(r) for r in ROUTES}
#: POST paths that only read: what a read-only token may send besides GET/HEAD.
READING_POSTS = frozenset(r.url for r in ROUTES if r.method == "POST" and r.reads)


def check_complete() -> None:
    """Every abstract primitive of Backend is a route or deliberately local."""
    missing = Backend.__abstractmethods__ - set(BY_NAME) - LOCAL_PRIMITIVES
    extra = set(BY_NAME) - set(dir(Backend))
    if missing or extra:
        raise AssertionError(f"route table out of step with Backend: missing {sorted(missing)},"
                             f" unknown {sorted(extra)}")
    assert all("{" not in p for p in READING_POSTS), "reading POSTs need static paths"


check_complete()


# -- encoding and decoding values -------------------------------------------------------------


def to_json(route: Route, value: Any) -> bytes:
    """A primitive's return value as the JSON the route answers with."""
    wire = route.response
    data = _adapter(wire.model).dump_python(wire.to_wire(value), mode="python")
    return dumps(data)


#: Bytes the server gathers before it sends a piece of a streamed answer.
PIECE = 64 * 1024


def json_pieces(route: Route, value: Any) -> Iterator[bytes]:
    """`to_json` of a list answer in pieces of about PIECE bytes, encoded an item at a
    time: the JSON text of the whole answer is never held at once."""
    wire = route.response
    item = _adapter(get_args(wire.model)[0])
    out, size = [b"["], 1
    for i, one in enumerate(wire.to_wire(value)):
        text = dumps(item.dump_python(one, mode="python"))
        out.append(b"," + text if i else text)
        size += len(text) + 1
        if size >= PIECE:
            yield b"".join(out)
            out, size = [], 0
    out.append(b"]")
    yield b"".join(out)


def from_json(route: Route, data: Any) -> Any:
    """What the primitive returns, rebuilt from the route's JSON answer."""
    wire = route.response
    return wire.from_wire(decode(wire.model, data))


def decode(tp: Any, data: Any) -> Any:
    """Validate JSON data as `tp`. Rows of the meta-model (SQLModel tables) are rebuilt
    with their own `model_validate`, which pydantic's generic validation skips."""
    origin, args = get_origin(tp), get_args(tp)
    if data is None:
        return None
    if origin is list:
        return [decode(args[0], d) for d in data]
    if origin is dict:
        return {k: decode(args[1], v) for k, v in data.items()}
    if origin in (Union, UnionType):
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:
            return decode(real[0], data)
    if isinstance(tp, type) and issubclass(tp, SQLModel) and _is_table(tp):
        return tp.model_validate(data)
    if isinstance(tp, type) and issubclass(tp, BaseModel) and _holds_tables(tp):
        return tp.model_construct(
            **{n: decode(f.annotation, data.get(n)) for n, f in tp.model_fields.items() if n in data}
        )
    return _adapter(tp).validate_python(data)


@cache
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def _is_table(tp: type) -> bool:
    return bool(getattr(tp, "model_config", {}).get("table"))


def _holds_tables(tp: type[BaseModel]) -> bool:
    return any(
        isinstance(f.annotation, type) and issubclass(f.annotation, SQLModel) and _is_table(f.annotation)
        for f in tp.model_fields.values()
    )


def request_of(route: Route, args: Mapping[str, Any]) -> BaseModel | None:
    """The route's request model for the primitive's arguments (checked here, so a
    value the server would refuse is refused before it travels)."""
    model = REQUESTS[route.name]
    if model is None:
        return None
    try:
        return model.model_validate({p.name: args[p.name] for p in route.body_params})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise InvalidValue(f"{route.name} {where}: {first['msg']}") from None


__all__ = ["ROUTES", "BY_NAME", "IDEMPOTENCY_HEADER", "NOTHING", "REQUESTS", "READING_POSTS", "Route", "VersionOut",
           "RunAssetOut", "Done", "PREFIX", "to_json", "from_json", "dumps"]
