"""The store interface: the primitives every backend implements.

A backend is one database (or one server) plus one blob store. The services above
(tracking, handles, query, lineage, diff, audit, importers, exporters) and the API
object `metastore.Store` speak only this interface, so a feature written once works on
SQLite, PostgreSQL, MariaDB and through a metastore server alike. Nothing above this
layer opens a database session or asks which backend it has.

Primitives are small and many of them are bulk (`create_runs`, `log_metrics`,
`read_runs`, `walk`): a server answers one request per call, so the interface is cut
where a call is worth a round trip. Where a service needs SQL (a compiled query, a
lineage walk), the interface carries the request and the backend executes it: the SQL
backend compiles and runs it, the HTTP backend sends it to the server.

Every write is one transaction: it fully happens or not at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # the tables and records load with the backend that uses them
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
    from metastore.records import (
        AliasRecord,
        MetricPoint,
        MetricSeries,
        QueryAnswer,
        RunKeys,
        RunRecord,
        RunView,
        Walk,
    )

#: A lineage node: ("run", run id) or ("asset_version", version id).
NodeKey = tuple[str, str]


#: The default deadline of a query, in seconds: past it the database cancels the query.
QUERY_TIMEOUT = 300.0


@dataclass
class QueryStream:
    """A query's answer read as it comes (`Backend.query_stream`): the column names up
    front, then the rows (dicts of Python values, as in `QueryAnswer.rows`) one at a
    time while the database still produces them."""

    columns: list[str]
    rows: Iterator[dict[str, Any]]
    sql: str | None
    dialect: str


@dataclass
class RunTable:
    """The runs `metastore runs` lists, read as they come (`Backend.run_table`): the
    metric keys and the param keys (each with whether every value it holds in these runs
    is a number, so a table can align it) up front, then one summary per run
    (`run_summary`), in order of experiment and number."""

    metrics: list[str]
    params: dict[str, bool]
    rows: Iterator[dict[str, Any]]


def run_summary(view: RunView, system: bool) -> dict[str, Any]:
    """A run as `metastore runs` shows it: {ref, id, name, status, started, ended,
    params, metrics} (the last value of each metric; `system.…` ones only with `system`)."""
    metrics = view.metrics
    if not system:
        metrics = {k: x for k, x in metrics.items() if not k.startswith("system.")}
    return {"ref": view.ref, "id": view.id, "name": view.name, "status": view.status,
            "started": view.started, "ended": view.ended, "params": view.params,
            "metrics": metrics}


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, type(None))) and not isinstance(value, bool)


class Backend(ABC):
    """One store's primitives. Open one with `metastore.backends.open_backend(url)`."""

    #: The store's URL, without a password.
    url: str
    #: "sqlite", "postgresql", "mysql", or "remote" for a server.
    dialect: str
    #: Where content lives: put_bytes / put_file / put_directory / open / exists …
    blobs: Any
    #: A human description of where the blobs are (a folder, or a server's blob route).
    blob_root: str
    #: True when the backend refuses writes (a server with a read-only token).
    read_only: bool = False
    #: Seconds a query may run when the caller names no deadline (`query(timeout=)`).
    query_timeout: float = QUERY_TIMEOUT

    # -- experiments ----------------------------------------------------------------------
    @abstractmethod
    def experiments(self, include_deleted: bool = False) -> list[Experiment]: ...

    @abstractmethod
    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        """Create an experiment (or restore a deleted one of that name); idempotent."""

    @abstractmethod
    def get_experiment(self, name: str) -> Experiment: ...

    @abstractmethod
    def delete_experiment(self, name: str) -> None:
        """Soft-delete an experiment and its runs; `purge` removes them for good."""

    @abstractmethod
    def experiment_name(self, experiment_id: int) -> str: ...

    @abstractmethod
    def run_counts(self) -> dict[str, int]:
        """Live runs per experiment name."""

    # -- runs -----------------------------------------------------------------------------
    @abstractmethod
    def create_runs(self, records: Sequence[RunRecord]) -> list[str]:
        """Create many runs with all their values in one transaction; their ids. A record
        may name as parent a run earlier in the same list (give both an `id`)."""

    @abstractmethod
    def runs_by_source(self, source: str, source_ids: Iterable[str]) -> dict[str, str]:
        """source id → run id for the runs imported from `source` among `source_ids`."""

    @abstractmethod
    def list_runs(
        self, experiment: str | None = None, status: str | None = None,
        include_deleted: bool = False,
    ) -> list[Run]: ...

    @abstractmethod
    def read_runs(
        self, experiment: str | None = None, run_ids: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> list[RunView]:
        """Many runs with their params, last metric values, tags, inputs and outputs, in
        one call (not a call per run): listings, table exports and the audit use it."""

    @abstractmethod
    def run_keys(self, run_ids: Sequence[str]) -> list[RunKeys]:
        """Of many runs in one call, what they hold by key only: param keys, the steps of
        each metric, the asset versions they link (an import's check for what is new)."""

    @abstractmethod
    def dump_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Whole runs as they were written (every metric point, notes, context, number):
        what exports carry out and imports write back."""

    @abstractmethod
    def resolve_run(self, ref: str | int, experiment: str | None = None) -> Run:
        """A run by id, by number (`4` within `experiment` or the only experiment that
        has one, or `"diabetes#4"`), or by name."""

    @abstractmethod
    def set_run_status(self, run_id: str, status: str, ended: datetime | None = None) -> None: ...

    @abstractmethod
    def heartbeat(self, run_id: str) -> None: ...

    @abstractmethod
    def reconcile_crashed(self) -> int:
        """Mark running runs whose process is gone as crashed; how many were."""

    @abstractmethod
    def delete_run(self, ref: str | int, experiment: str | None = None) -> None: ...

    @abstractmethod
    def restore_run(self, run_id: str) -> None: ...

    # -- params, metrics, tags, notes -----------------------------------------------------
    @abstractmethod
    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Append many points (any keys, any steps) in one transaction."""

    def log_batch(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Sequence[MetricPoint] = (),
        status: str | None = None,
        ended: datetime | None = None,
    ) -> None:
        """A recording run's pending params and metric points and, with `status`, its
        end: what a run's flush and its end write, in one transaction (through a
        server, one request applied once). This default makes the separate calls; the
        SQL backend writes them in one transaction."""
        if params:
            self.log_params(run_id, params)
        if metrics:
            self.log_metrics(run_id, metrics)
        if status is not None:
            self.set_run_status(run_id, status, ended)

    @abstractmethod
    def set_tags(self, entity_type: str, entity_id: str, tags: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def add_note(
        self, run_id: str, text: str, kind: str = "note", author: str | None = None
    ) -> Note: ...

    @abstractmethod
    def get_params(self, run_id: str) -> dict[str, Any]: ...

    @abstractmethod
    def get_metric_summaries(self, run_id: str) -> dict[str, MetricSummary]: ...

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def metric_series(self, run_id: str, key: str, max_points: int | None = None) -> MetricSeries:
        """A metric's history in columns (steps, values), downsampled to at most
        `max_points` keeping each stretch's extremes (`records.downsample`). Backends
        override it to read columns without building a row object per point."""
        from metastore.records import MetricSeries, downsample

        rows = self.get_metric_history(run_id, key)
        steps, values = downsample([m.step for m in rows], [m.value for m in rows], max_points)
        return MetricSeries(key=key, steps=steps, values=values, count=len(rows))

    @abstractmethod
    def get_tags(self, entity_type: str, entity_id: str) -> dict[str, str | None]: ...

    @abstractmethod
    def get_notes(self, run_id: str) -> list[Note]: ...

    # -- assets and lineage edges ---------------------------------------------------------
    @abstractmethod
    def put_asset(
        self, kind: str, name: str, content=None, *, uri: str | None = None,
        digest: str | None = None, size: int | None = None, media_type: str | None = None,
        meta: Mapping[str, Any] | None = None, run_id: str | None = None,
        relation: str | None = None, role: str | None = None,
        derived_from: Sequence[str] = (), copy: bool = True, path: str | None = None,
    ) -> tuple[Asset, AssetVersion]:
        """Store content (a file or directory path, or bytes) as a version of the asset
        kind/name, or register external content by `uri` and `digest`. With `run_id` and
        `relation` ("used" or "produced") the run is linked to it; `path` is where the run
        read or wrote it, relative to its working folder (kept on the link)."""

    @abstractmethod
    def add_edge(
        self, src_type: str, src_id: str, dst_type: str, dst_id: str, relation: str,
        role: str | None = None,
    ) -> LineageEdge:
        """Record that data flowed src → dst; refuses an edge that closes a cycle through
        derived_from edges; adding an existing edge is a no-op."""

    @abstractmethod
    def link_run_asset(
        self, run_id: str, version_id: str, relation: str, role: str | None = None,
        path: str | None = None,
    ) -> None:
        """Record that a run used or produced an existing version, as it goes: unlike
        `add_edge`, no cycle check (cycles through runs are allowed, see lineage)."""

    @abstractmethod
    def create_asset(self, kind: str, name: str) -> Asset:
        """The asset kind/name, created without versions if it does not exist yet: a name
        registered before its content (MLflow's `create_registered_model`). Idempotent."""

    @abstractmethod
    def list_assets(self, kind: str | None = None) -> list[Asset]: ...

    @abstractmethod
    def get_asset_version(
        self, kind: str, name: str, version: int | None = None
    ) -> tuple[Asset, AssetVersion]: ...

    @abstractmethod
    def get_version_by_id(self, version_id: str) -> tuple[Asset, AssetVersion]: ...

    @abstractmethod
    def list_versions(self, kind: str, name: str) -> list[tuple[Asset, AssetVersion]]: ...

    @abstractmethod
    def run_assets(
        self, run_id: str, direction: str
    ) -> list[tuple[Asset, AssetVersion, str | None]]:
        """The versions a run used (direction "inputs") or produced ("outputs")."""

    @abstractmethod
    def list_edges(self, run_ids: Sequence[str] | None = None) -> list[LineageEdge]:
        """Every edge (None), or the edges touching the given runs and the
        derived_from edges among the versions those touch."""

    @abstractmethod
    def open_blob(self, digest: str) -> BinaryIO: ...

    @abstractmethod
    def cache_dir(self) -> Path:
        """Where content copied out of the blob store is put (`VersionHandle.path()`)."""

    # -- aliases: movable names of asset versions ---------------------------------------
    @abstractmethod
    def set_alias(
        self, version_id: str, alias: str, author: str | None = None, note: str | None = None,
        time: datetime | None = None,
    ) -> AliasRecord:
        """Point `alias` of the version's asset at this version, moving it if it named
        another; the move is kept in the alias's history (setting it where it already
        points changes nothing). `time`: when the move happened, if not now (a bundle
        replaying another store's history)."""

    @abstractmethod
    def unset_alias(
        self, kind: str, name: str, alias: str, author: str | None = None,
        note: str | None = None, time: datetime | None = None,
    ) -> AliasRecord:
        """Remove an alias (kept in its history); NotFound if it is not set. `time` as
        for `set_alias`."""

    @abstractmethod
    def list_aliases(
        self, kind: str | None = None, name: str | None = None, version_id: str | None = None
    ) -> list[AliasRecord]:
        """The aliases set now, of every asset, one asset, or one version."""

    @abstractmethod
    def alias_history(
        self, kind: str | None = None, name: str | None = None, alias: str | None = None
    ) -> list[AliasRecord]:
        """Every move of aliases (of one asset, of one alias), oldest first."""

    # -- the store's settings -----------------------------------------------------------
    @abstractmethod
    def get_config(self, prefix: str | None = None) -> dict[str, str]:
        """The store's settings (key → text), all or those whose key starts with
        `prefix`: what everyone recording into the store shares (`metastore.settings`)."""

    @abstractmethod
    def set_config(self, key: str, value: str | None) -> None:
        """Set a setting (None removes it)."""

    # -- questions ------------------------------------------------------------------------
    @abstractmethod
    def query(
        self, text: str, experiment: str | None = None, timeout: float | None = None
    ) -> QueryAnswer:
        """Answer a query in the query language (compiled and run by the database),
        cancelled by the database past `timeout` seconds (None: `query_timeout`)."""

    def query_stream(
        self, text: str, experiment: str | None = None, timeout: float | None = None
    ) -> AbstractContextManager[QueryStream]:
        """`query`, its rows handed out as the database produces them: a context manager
        giving a `QueryStream`, whose rows are read inside the `with` block (the deadline
        runs until it ends). This default asks `query` for the whole answer (a server
        answers in one response); the SQL backend reads the rows from the cursor."""
        answer = self.query(text, experiment, timeout)
        return nullcontext(QueryStream(answer.columns, iter(answer.rows), answer.sql, answer.dialect))

    def run_table(
        self, experiment: str | None = None, status: str | None = None, system: bool = False
    ) -> AbstractContextManager[RunTable]:
        """The runs in scope (not deleted; of `experiment`, with `status`) as `metastore
        runs` lists them: a context manager giving a `RunTable`, whose rows are read
        inside the `with` block. This default reads them all with `read_runs` (a server
        answers in one response); the SQL backend reads them a page at a time."""
        rows = [run_summary(v, system) for v in self.read_runs(experiment)
                if status is None or v.status == status]
        metrics = sorted({k for d in rows for k in d["metrics"]})
        params = {k: all(_numeric(d["params"].get(k)) for d in rows)
                  for k in sorted({k for d in rows for k in d["params"]})}
        return nullcontext(RunTable(metrics, params, iter(rows)))

    @abstractmethod
    def known_keys(self) -> dict[str, list[str]]:
        """The keys a query can name, in one cheap read (not the runs): "metric", "param",
        and per entity type ("run", "experiment", "asset_version" …) its tag keys."""

    @abstractmethod
    def compile_query(self, text: str, experiment: str | None = None) -> str:
        """The SQL `query` would run, names resolved against this store."""

    @abstractmethod
    def walk(
        self,
        starts: Sequence[NodeKey],
        direction: str,
        depth: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> Walk:
        """The lineage edges within `depth` hops of `starts` going "upstream" or
        "downstream", and the attributes of every node they touch (the walk does not
        pass through soft-deleted runs). Depth 0 reaches nothing. With `limit`, one page
        of at most that many edges, nearest first, starting at `cursor` (the previous
        page's `next_cursor`); `count` adds the whole walk's edge and node counts."""

    # -- maintenance ----------------------------------------------------------------------
    @abstractmethod
    def purge(self) -> dict[str, int]:
        """Remove soft-deleted runs and experiments for good, then the versions only they
        produced and nothing references, then unreferenced blobs."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    # -- delivery: a write applied once, writes kept through an outage --------------------
    def apply_once(
        self,
        key: str,
        route: str,
        call: Callable[[], Any],
        encode: Callable[[Any], bytes] | None = None,
    ) -> bytes | None:
        """Run the write `call` at most once per idempotency `key` (what a server does
        with a client's `Idempotency-Key`) and return its answer as `encode` makes it
        (None when the write answers nothing). A repeated key returns the answer kept
        the first time without writing again. A backend that cannot keep keys applies
        every call; the SQL backend records the key in the write's own transaction."""
        result = call()
        return None if encode is None else encode(result)

    def deliver_spooled(self, wait: bool = False) -> bool:
        """Send the writes kept while the store was unreachable, if it is back (the HTTP
        backend's spool); True when none are left. Other backends keep nothing. The
        run's flusher calls this; `wait` tries now rather than at the backend's pace."""
        return True

    # -- built on the primitives ----------------------------------------------------------
    def create_run(self, record: RunRecord) -> Run:
        [run_id] = self.create_runs([record])
        return self.resolve_run(run_id)

    def find_run_by_source(self, source: str, source_id: str) -> Run | None:
        run_id = self.runs_by_source(source, [source_id]).get(source_id)
        return None if run_id is None else self.resolve_run(run_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
