"""The Store: one database plus one blob directory, behind one interface.

`Store` is the interface that tracking, query, lineage, importers and the CLI speak.
`SQLStore` implements it on SQLite, PostgreSQL or MySQL/MariaDB; a remote store (an
`http(s)://` URL) implements it against a metastore server.

Every write method is one transaction: it fully happens or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
import mimetypes
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, delete, select

from metastore import database, params
from metastore.blobs import (
    DIR_MEDIA_TYPE,
    BlobStore,
    directory_manifest,
    manifest_bytes,
    sha256_file,
)
from metastore.errors import Ambiguous, Conflict, InvalidValue, NotFound
from metastore.models import (
    ASSET_KINDS,
    RELATIONS,
    RUN_STATUSES,
    Asset,
    AssetVersion,
    Experiment,
    LineageEdge,
    Metric,
    MetricSummary,
    Note,
    Param,
    Project,
    Run,
    Tag,
    utcnow,
)

if TYPE_CHECKING:
    from metastore.handles import RunHandle, VersionHandle
    from metastore.tracking import ActiveRun

DEFAULT_PROJECT = "default"
DEFAULT_EXPERIMENT = "default"
STORE_DIR = ".metastore"
#: A running run whose heartbeat is older than this is reported as crashed.
HEARTBEAT_SECONDS = 15.0
STALE_AFTER = timedelta(minutes=5)
KEY_FORBIDDEN = set("\n\r\t\x00")


def validate_key(key: str, what: str, *, allow_slash: bool = True) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidValue(f"{what} key must be a non-empty string, got {key!r}")
    if key != key.strip() or KEY_FORBIDDEN & set(key):
        raise InvalidValue(f"{what} key {key!r} has leading/trailing spaces or control characters")
    if len(key) > 250:
        raise InvalidValue(f"{what} key is longer than 250 characters: {key[:40]!r}…")
    if not allow_slash and "/" in key:
        raise InvalidValue(
            f"{what} key {key!r} contains '/'",
            hint="use '.' or '_' to structure param names, e.g. 'optimizer.lr'",
        )
    return key


def validate_metric_value(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"metric {key!r} must be a number, got {value!r}") from e
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidValue(f"metric {key!r} must be a finite number, got {value!r}")
    return number


@dataclass
class MetricPoint:
    key: str
    value: float
    step: int | None = None
    timestamp: datetime | None = None


@dataclass
class RunRecord:
    """A whole run to write in one transaction (importers, bundles)."""

    experiment: str
    name: str | None = None
    status: str = "finished"
    started: datetime | None = None
    ended: datetime | None = None
    user: str | None = None
    host: str | None = None
    git_commit: str | None = None
    git_branch: str | None = None
    git_dirty: bool | None = None
    command: str | None = None
    context: dict | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Sequence[MetricPoint] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    notes: Sequence[Note] = ()
    inputs: Sequence[tuple[str, str | None]] = ()  # (asset version id, role)
    outputs: Sequence[tuple[str, str | None]] = ()
    source: str | None = None
    source_id: str | None = None
    parent_id: str | None = None
    id: str | None = None
    #: The recording process, when it is not this one (a run created through a server).
    pid: int | None = None


class Store:
    """The interface every store offers. Subclasses implement the primitives; the
    conveniences (handles, start_run) are written once here on top of them."""

    url: str

    # -- conveniences --------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        *,
        parent: str | RunHandle | None = None,
        tags: Mapping[str, str] | None = None,
        capture: bool | Iterable[str] = True,
    ) -> ActiveRun:
        """Begin a run; use it as a context manager. `capture` switches automatic context
        capture: True (all), False (none), or names among git, command, system, packages."""
        from metastore.tracking import ActiveRun

        return ActiveRun.start(
            self, experiment=experiment, name=name, parent=parent, tags=tags, capture=capture
        )

    def get_run(self, ref: str | int, experiment: str | None = None) -> RunHandle:
        """A run by id, by number (`4` within `experiment` or the only experiment,
        `"diabetes#4"`), or by name."""
        from metastore.handles import RunHandle

        return RunHandle(self, self.resolve_run(ref, experiment))

    def runs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        include_deleted: bool = False,
    ) -> list[RunHandle]:
        from metastore.handles import RunHandle

        return [RunHandle(self, r) for r in self.list_runs(experiment, status, include_deleted)]

    def run_counts(self) -> dict[str, int]:
        """Live runs per experiment name, every live experiment included (with 0)."""
        names = {e.id: e.name for e in self.experiments()}
        counts = dict.fromkeys(names.values(), 0)
        for r in self.list_runs():
            name = names.get(r.experiment_id)
            if name is not None:
                counts[name] += 1
        return counts

    def run_summaries(
        self, experiment: str | None = None, status: str | None = None, *, system: bool = False
    ) -> list[dict[str, Any]]:
        """Each run as {ref, id, name, status, started, ended, params, metrics} (the last
        value of each metric): what `metastore runs` lists. Metrics named `system.…` (wall
        and CPU time, recorded for every run) are left out unless `system` is true."""
        out = []
        for h in self.runs(experiment=experiment, status=status):
            metrics = h.metrics
            if not system:
                metrics = {k: v for k, v in metrics.items() if not k.startswith("system.")}
            out.append({"ref": h.ref, "id": h.row.id, "name": h.row.name, "status": h.row.status,
                        "started": h.row.started, "ended": h.row.ended, "params": h.params,
                        "metrics": metrics})
        return out

    def register(
        self,
        kind: str,
        name: str,
        path: str | os.PathLike | None = None,
        *,
        uri: str | None = None,
        digest: str | None = None,
        size: int | None = None,
        derived_from: Iterable[Any] = (),
        role: str | None = None,
    ) -> VersionHandle:
        """Register an asset version made outside a run: a file or folder (`path`, stored),
        or content that lives elsewhere (`uri` and `digest`, not stored). `derived_from`
        names upstream versions (references such as "model:base@2", or handles)."""
        from metastore.refs import VERSION, resolve

        if (path is None) == (uri is None):
            raise InvalidValue("give either a PATH to store, or a URI and its digest")
        upstream = []
        for ref in derived_from:
            node = resolve(self, ref)
            if node.type != VERSION:
                raise InvalidValue(f"derived from {ref}: a run cannot be derived from; name a version")
            upstream.append(node.id)
        if path is not None:
            asset, av = self.put_asset(kind, name, path, derived_from=upstream, role=role)
        else:
            asset, av = self.put_asset(kind, name, uri=uri, digest=digest, size=size,
                                       derived_from=upstream, role=role)
        from metastore.handles import VersionHandle

        return VersionHandle(self, asset, av)

    def assets(self, kind: str | None = None) -> list[Asset]:
        """Assets (kind, name), optionally of one kind."""
        return self.list_assets(kind)

    def get_asset(self, kind: str, name: str, version: int | None = None) -> VersionHandle:
        """A version of an asset (the latest when `version` is None)."""
        from metastore.handles import VersionHandle

        asset, av = self.get_asset_version(kind, name, version)
        return VersionHandle(self, asset, av)

    def versions(self, kind: str, name: str) -> list[VersionHandle]:
        from metastore.handles import VersionHandle

        return [VersionHandle(self, a, v) for a, v in self.list_versions(kind, name)]

    def query(self, text: str, experiment: str | None = None):
        """Answer a query in metastore's query language (docs/query-language.md)."""
        from metastore.query import execute

        return execute(self, text, experiment=experiment)

    def query_sql(self, text: str, experiment: str | None = None) -> str:
        """The SQL a query compiles to on this store, without running it (what
        `metastore query --sql` prints); names are resolved as `query` resolves them."""
        from metastore.query import compile_text

        return compile_text(text, self.dialect, store=self, experiment=experiment)

    def lineage(self, ref, direction: str = "upstream", depth: int | None = None):
        """The lineage graph around a run or asset version, as a networkx.DiGraph."""
        from metastore.lineage import lineage_graph

        return lineage_graph(self, ref, direction=direction, depth=depth)

    def link(self, upstream, downstream, relation: str = "derived_from", role: str | None = None):
        """Record after the fact that data flowed from `upstream` to `downstream` (e.g. a
        model fine-tuned from another team's model). Refuses an edge that makes a cycle."""
        from metastore.lineage import link

        return link(self, upstream, downstream, relation=relation, role=role)

    def path(self, a, b):
        """The shortest lineage path between two nodes as a networkx.DiGraph in data-flow
        order (`list(graph)`), or None when neither is upstream of the other."""
        from metastore.lineage import path

        return path(self, a, b)

    def diff(self, a, b, experiment: str | None = None):
        """What changed between two runs: params, metrics, inputs, outputs."""
        from metastore.diff import diff_runs

        return diff_runs(self, a, b, experiment=experiment)

    def audit(self, experiment: str | None = None):
        """The reproducibility self-check of every run (or one experiment's runs)."""
        from metastore.audit import audit

        return audit(self, experiment=experiment)

    # -- primitives (implemented per backend) ----------------------------------------------
    def close(self) -> None:  # pragma: no cover - trivial
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SQLStore(Store):
    """A store on a SQL database (SQLite, PostgreSQL, MySQL/MariaDB)."""

    def __init__(self, url: str, blobs: str | os.PathLike, *, create: bool = True):
        self.sa_url = database.normalize_url(url)
        self.url = database.safe_url(self.sa_url)
        self.dialect = self.sa_url.get_backend_name()
        self.reader, self.writer = database.create_engines(self.sa_url)
        database.check_reachable(self.reader)
        if create:
            database.migrate(self.writer)
        self.blobs = BlobStore(blobs)
        self.blob_root = str(blobs)
        self._host = socket.gethostname()

    def close(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r}, blobs={self.blob_root!r})"

    # -- sessions -----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.reader, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction, retried when the database reports a transient lock or
        a race on a unique key (e.g. two processes creating the same experiment)."""
        with Session(self.writer, expire_on_commit=False) as s:
            with s.begin():
                yield s

    def transact(self, fn, retries: int = 8):
        """Run fn(session) in a write transaction, retrying transient conflicts."""
        last: Exception | None = None
        for _attempt in range(retries):
            try:
                with self.write() as s:
                    return fn(s)
            except (IntegrityError, OperationalError) as e:
                if not _transient(e):
                    raise
                last = e
        assert last is not None
        raise last

    # -- projects and experiments --------------------------------------------------------
    def _project(self, s: Session, name: str = DEFAULT_PROJECT) -> Project:
        project = s.exec(select(Project).where(Project.name == name)).first()
        if project is None:
            project = Project(name=name)
            s.add(project)
            s.flush()
        return project

    def _experiment(self, s: Session, name: str, create: bool = False) -> Experiment:
        exp = s.exec(select(Experiment).where(Experiment.name == name)).first()
        if exp is None or exp.deleted_at is not None:
            if not create:
                raise NotFound(
                    f"no experiment named {name!r}",
                    hint=_suggest(name, self._experiment_names(s)),
                )
            if exp is not None:  # re-using the name of a deleted experiment restores it
                exp.deleted_at = None
            else:
                exp = Experiment(project_id=self._project(s).id, name=name)
                s.add(exp)
            s.flush()
        return exp

    def _experiment_names(self, s: Session) -> list[str]:
        rows = s.exec(select(Experiment.name).where(col(Experiment.deleted_at).is_(None)))
        return list(rows)

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        validate_key(name, "experiment")

        def go(s):
            exp = self._experiment(s, name, create=True)
            if description is not None:
                exp.description = description
            return exp

        return self.transact(go)

    def experiments(self, include_deleted: bool = False) -> list[Experiment]:
        with self.read() as s:
            q = select(Experiment).order_by(Experiment.id)
            if not include_deleted:
                q = q.where(col(Experiment.deleted_at).is_(None))
            return list(s.exec(q))

    def get_experiment(self, name: str) -> Experiment:
        with self.read() as s:
            return self._experiment(s, name)

    def delete_experiment(self, name: str) -> None:
        """Soft-delete an experiment and its runs; `purge` removes them for good."""

        def go(s):
            exp = self._experiment(s, name)
            now = utcnow()
            exp.deleted_at = now
            s.execute(
                sa.update(Run)
                .where(Run.experiment_id == exp.id, col(Run.deleted_at).is_(None))
                .values(deleted_at=now)
            )

        self.transact(go)

    # -- runs ----------------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> Run:
        """Create a run and everything in `record` in one transaction."""
        [run_id] = self.create_runs([record])
        with self.read() as s:
            return s.get(Run, run_id)

    def create_runs(self, records: Sequence[RunRecord]) -> list[str]:
        """Create many runs in one transaction: all of them or none; returns their ids.

        The bulk form of `create_run` for importers (one transaction and a few
        multi-row INSERTs instead of a round trip per value). A record may name as
        parent a run earlier in the same list (give both an `id`). On failure nothing
        is written; write the records one by one with `create_run` to find the bad one.
        """
        from metastore.models import new_id

        prepared = []
        for record in records:
            validate_key(record.experiment, "experiment")
            if record.status not in RUN_STATUSES:
                raise InvalidValue(f"run status must be one of {', '.join(RUN_STATUSES)}")
            prepared.append(
                (
                    record,
                    record.id or new_id(),
                    params.encode_all(record.params, validate_key),
                    [
                        (validate_key(p.key, "metric"), validate_metric_value(p.key, p.value), p)
                        for p in record.metrics
                    ],
                    {validate_key(k, "tag"): _tag_value(v) for k, v in record.tags.items()},
                )
            )
        if not prepared:
            return []

        def go(s: Session) -> list[str]:
            per_exp: dict[str, int] = {}
            for record, *_ in prepared:
                per_exp[record.experiment] = per_exp.get(record.experiment, 0) + 1
            next_number: dict[str, int] = {}
            exp_ids: dict[str, int] = {}
            for name, n in per_exp.items():
                exp = self._experiment(s, name, create=True)
                s.execute(
                    sa.update(Experiment)
                    .where(Experiment.id == exp.id)
                    .values(last_number=Experiment.last_number + n)
                )
                last = s.execute(
                    sa.select(Experiment.last_number).where(Experiment.id == exp.id)
                ).scalar_one()
                next_number[name] = last - n + 1
                exp_ids[name] = exp.id
            version_ids = {
                av_id for record, *_ in prepared for av_id, _ in (*record.inputs, *record.outputs)
            }
            found = set()
            for chunk in _chunks(sorted(version_ids), 500):
                found.update(s.exec(select(AssetVersion.id).where(col(AssetVersion.id).in_(chunk))))
            if version_ids - found:
                raise NotFound(f"no asset version with id {sorted(version_ids - found)[0]}")
            now = utcnow()
            runs, param_rows, metric_rows, summary_rows, tag_rows, note_rows, edges = (
                [], [], [], [], [], [], {}
            )
            created_by = []
            for record, run_id, encoded, points, tags in prepared:
                number = next_number[record.experiment]
                next_number[record.experiment] += 1
                running = record.status == "running"
                runs.append(
                    {
                        "id": run_id,
                        "experiment_id": exp_ids[record.experiment],
                        "number": number,
                        "name": record.name,
                        "parent_id": record.parent_id,
                        "status": record.status,
                        "started": record.started or now,
                        "ended": record.ended,
                        "user": record.user,
                        # Always recorded for a running run, capture or not: they are
                        # how a killed process is told apart from a run still going.
                        "host": record.host or (self._host if running else None),
                        "pid": (record.pid or os.getpid()) if running else None,
                        "heartbeat": now if running else None,
                        "git_commit": record.git_commit,
                        "git_branch": record.git_branch,
                        "git_dirty": record.git_dirty,
                        "command": record.command,
                        "context": json.dumps(record.context, sort_keys=True)
                        if record.context
                        else None,
                        "source": record.source,
                        "source_id": record.source_id,
                        "deleted_at": None,
                    }
                )
                for key, (ptype, num, text) in encoded.items():
                    param_rows.append(
                        {"run_id": run_id, "key": key, "type": ptype, "num": num, "text": text}
                    )
                summaries: dict[str, MetricSummary] = {}
                metric_rows.extend(_fold_metrics(run_id, points, summaries, now))
                summary_rows.extend(m.model_dump() for m in summaries.values())
                for k, v in tags.items():
                    tag_rows.append({"entity_type": "run", "entity_id": run_id, "key": k, "value": v})
                for note in record.notes:
                    note_rows.append(
                        {
                            "run_id": run_id,
                            "time": note.time or now,
                            "kind": note.kind or "note",
                            "author": note.author,
                            "text": note.text,
                        }
                    )
                for av_id, role in record.inputs:
                    edges.setdefault(
                        ("asset_version", av_id, "run", run_id, "used"), role
                    )
                for av_id, role in record.outputs:
                    edges.setdefault(("run", run_id, "asset_version", av_id, "produced"), role)
                    created_by.append({"av": av_id, "run": run_id})
            s.execute(sa.insert(Run), runs)
            for model, rows in (
                (Param, param_rows),
                (Metric, metric_rows),
                (MetricSummary, summary_rows),
                (Tag, tag_rows),
                (Note, note_rows),
            ):
                if rows:
                    s.execute(sa.insert(model), rows)
            if edges:
                s.execute(
                    sa.insert(LineageEdge),
                    [
                        {
                            "src_type": st, "src_id": si, "dst_type": dt, "dst_id": di,
                            "relation": rel, "role": role, "created": now,
                        }
                        for (st, si, dt, di, rel), role in edges.items()
                    ],
                )
            for row in created_by:
                s.execute(
                    sa.update(AssetVersion)
                    .where(AssetVersion.id == row["av"], col(AssetVersion.created_by).is_(None))
                    .values(created_by=row["run"])
                )
            return [run_id for _, run_id, *_ in prepared]

        return self.transact(go)

    def runs_by_source(self, source: str, source_ids: Iterable[str]) -> dict[str, str]:
        """source id → run id for the runs imported from `source` among `source_ids`
        (the bulk form of `find_run_by_source`, for importers)."""
        wanted = sorted(set(source_ids))
        found: dict[str, str] = {}
        with self.read() as s:
            for chunk in _chunks(wanted, 500):
                rows = s.execute(
                    sa.select(Run.source_id, Run.id).where(
                        Run.source == source, col(Run.source_id).in_(chunk)
                    )
                )
                found.update({sid: rid for sid, rid in rows})
        return found

    def find_run_by_source(self, source: str, source_id: str) -> Run | None:
        with self.read() as s:
            return s.exec(
                select(Run).where(Run.source == source, Run.source_id == source_id)
            ).first()

    def list_runs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        include_deleted: bool = False,
    ) -> list[Run]:
        self.reconcile_crashed()
        with self.read() as s:
            q = select(Run).order_by(Run.experiment_id, Run.number)
            if experiment is not None:
                q = q.where(Run.experiment_id == self._experiment(s, experiment).id)
            if status is not None:
                q = q.where(Run.status == status)
            if not include_deleted:
                q = q.where(col(Run.deleted_at).is_(None))
            return list(s.exec(q))

    def resolve_run(self, ref: str | int, experiment: str | None = None) -> Run:
        self.reconcile_crashed()
        with self.read() as s:
            return self._resolve_run(s, ref, experiment)

    def _resolve_run(self, s: Session, ref: str | int, experiment: str | None = None) -> Run:
        text = str(ref).strip()
        if "#" in text:
            experiment, _, text = text.rpartition("#")
        live = col(Run.deleted_at).is_(None)
        if text.isdigit():
            q = select(Run).where(Run.number == int(text), live)
            if experiment is not None:
                q = q.where(Run.experiment_id == self._experiment(s, experiment).id)
            found = list(s.exec(q))
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                names = sorted(self._experiment_name(s, r.experiment_id) for r in found)
                raise Ambiguous(
                    f"run {text} exists in several experiments: {', '.join(names)}",
                    hint=f"say which, e.g. {names[0]}#{text}",
                )
            where = f" in experiment {experiment!r}" if experiment else ""
            raise NotFound(f"no run number {text}{where}")
        run = s.get(Run, text.upper()) if len(text) == 26 else None
        if run is not None and run.deleted_at is None:
            return run
        q = select(Run).where(Run.name == text, live)
        if experiment is not None:
            q = q.where(Run.experiment_id == self._experiment(s, experiment).id)
        found = list(s.exec(q.order_by(Run.started)))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            refs = [f"{self._experiment_name(s, r.experiment_id)}#{r.number}" for r in found]
            raise Ambiguous(
                f"{len(found)} runs are named {text!r}: {', '.join(refs[:6])}",
                hint="refer to one by experiment#number or id",
            )
        names = list(s.exec(select(Run.name).where(live, col(Run.name).is_not(None))))
        raise NotFound(f"no run {text!r} (by id, number or name)", hint=_suggest(text, names))

    def _experiment_name(self, s: Session, experiment_id: int) -> str:
        exp = s.get(Experiment, experiment_id)
        if exp is None:
            raise NotFound(f"no experiment with id {experiment_id}")
        return exp.name

    def experiment_name(self, experiment_id: int) -> str:
        with self.read() as s:
            return self._experiment_name(s, experiment_id)

    def set_run_status(self, run_id: str, status: str, ended: datetime | None = None) -> None:
        if status not in RUN_STATUSES:
            raise InvalidValue(f"run status must be one of {', '.join(RUN_STATUSES)}")

        def go(s):
            run = self._run(s, run_id)
            run.status = status
            run.ended = None if status == "running" else (ended or utcnow())
            s.add(run)

        self.transact(go)

    def heartbeat(self, run_id: str) -> None:
        self.transact(
            lambda s: s.execute(
                sa.update(Run)
                .where(Run.id == run_id, Run.status == "running")
                .values(heartbeat=utcnow())
            )
        )

    def reconcile_crashed(self) -> int:
        """Mark running runs whose process is gone as crashed: on this host when the
        recorded pid no longer exists, anywhere when the heartbeat is stale."""
        with self.read() as s:
            running = list(
                s.exec(select(Run).where(Run.status == "running", col(Run.pid).is_not(None)))
            )
        stale_before = utcnow() - STALE_AFTER
        gone = [
            r
            for r in running
            if (r.host == self._host and not _pid_alive(r.pid))
            or (r.heartbeat is not None and r.heartbeat < stale_before)
        ]
        if not gone:
            return 0

        def go(s):
            for r in gone:
                s.execute(
                    sa.update(Run)
                    .where(Run.id == r.id, Run.status == "running")
                    .values(status="crashed", ended=r.heartbeat or r.started)
                )
                s.add(
                    Note(
                        run_id=r.id,
                        kind="event",
                        author="metastore",
                        text=f"process {r.pid} on {r.host} stopped without ending the run",
                    )
                )

        self.transact(go)
        return len(gone)

    def _run(self, s: Session, run_id: str) -> Run:
        run = s.get(Run, run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id}")
        return run

    def delete_run(self, ref: str | int, experiment: str | None = None) -> None:
        """Soft-delete a run: hidden everywhere until restored; `purge` removes it."""

        def go(s):
            run = self._resolve_run(s, ref, experiment)
            run.deleted_at = utcnow()
            s.add(run)

        self.transact(go)

    def restore_run(self, run_id: str) -> None:
        def go(s):
            run = self._run(s, run_id)
            run.deleted_at = None
            s.add(run)

        self.transact(go)

    # -- params, metrics, tags, notes ----------------------------------------------------
    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
        rows = params.encode_all(values, validate_key)

        def go(s):
            existing = {
                p.key: p
                for p in s.exec(
                    select(Param).where(Param.run_id == run_id, col(Param.key).in_(list(rows)))
                )
            }
            for key, (ptype, num, text) in rows.items():
                old = existing.get(key)
                if old is not None:
                    if (old.type, old.text) != (ptype, text):
                        raise Conflict(
                            f"param {key!r} is already {params.decode(old.type, old.num, old.text)!r}"
                            f" on this run; params do not change within a run",
                            hint="log the changed value as a new run, or as a metric",
                        )
                    continue
                s.add(Param(run_id=run_id, key=key, type=ptype, num=num, text=text))

        self.transact(go)

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        checked = [
            (validate_key(p.key, "metric"), validate_metric_value(p.key, p.value), p)
            for p in points
        ]
        self.transact(lambda s: self._add_metrics(s, run_id, checked))

    def _add_metrics(self, s: Session, run_id: str, points) -> None:
        if not points:
            return
        keys = sorted({k for k, _, _ in points})
        summaries = {
            m.key: m
            for m in s.exec(
                select(MetricSummary).where(
                    MetricSummary.run_id == run_id, col(MetricSummary.key).in_(keys)
                )
            )
        }
        rows = _fold_metrics(run_id, points, summaries, utcnow())
        s.add_all(summaries.values())
        s.execute(sa.insert(Metric), rows)

    def set_tags(self, entity_type: str, entity_id: str, tags: Mapping[str, Any]) -> None:
        for k in tags:
            validate_key(k, "tag")

        def go(s):
            for k, v in tags.items():
                tag = s.get(Tag, (entity_type, str(entity_id), k))
                if tag is None:
                    tag = Tag(entity_type=entity_type, entity_id=str(entity_id), key=k)
                tag.value = _tag_value(v)
                s.add(tag)

        self.transact(go)

    def add_note(
        self, run_id: str, text: str, kind: str = "note", author: str | None = None
    ) -> Note:
        if not isinstance(text, str) or not text.strip():
            raise InvalidValue("a note needs some text")

        def go(s):
            self._run(s, run_id)
            note = Note(run_id=run_id, text=text, kind=kind, author=author)
            s.add(note)
            return note

        return self.transact(go)

    def get_params(self, run_id: str) -> dict[str, Any]:
        with self.read() as s:
            rows = s.exec(select(Param).where(Param.run_id == run_id).order_by(Param.key))
            return {p.key: params.decode(p.type, p.num, p.text) for p in rows}

    def get_metric_summaries(self, run_id: str) -> dict[str, MetricSummary]:
        with self.read() as s:
            rows = s.exec(
                select(MetricSummary)
                .where(MetricSummary.run_id == run_id)
                .order_by(MetricSummary.key)
            )
            return {m.key: m for m in rows}

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self.read() as s:
            return list(
                s.exec(
                    select(Metric)
                    .where(Metric.run_id == run_id, Metric.key == key)
                    .order_by(Metric.step, Metric.timestamp, Metric.id)
                )
            )

    def get_tags(self, entity_type: str, entity_id: str) -> dict[str, str | None]:
        with self.read() as s:
            rows = s.exec(
                select(Tag)
                .where(Tag.entity_type == entity_type, Tag.entity_id == str(entity_id))
                .order_by(Tag.key)
            )
            return {t.key: t.value for t in rows}

    def get_notes(self, run_id: str) -> list[Note]:
        with self.read() as s:
            return list(
                s.exec(select(Note).where(Note.run_id == run_id).order_by(Note.time, Note.id))
            )

    # -- assets --------------------------------------------------------------------------
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
        """Store content (a file or directory path, or bytes) as a version of the asset
        kind/name, or register external content by `uri` and `digest` without its bytes.
        With `run_id` and `relation` ("used" or "produced") the run is linked to it."""
        digest, size, uri, media_type, meta = prepare_content(
            self.blobs, kind, name, content, uri=uri, digest=digest, size=size,
            media_type=media_type, meta=meta, relation=relation, copy=copy,
        )

        def go(s):
            asset = s.exec(
                select(Asset).where(Asset.kind == kind, Asset.name == name)
            ).first()
            if asset is None:
                asset = Asset(project_id=self._project(s).id, kind=kind, name=name)
                s.add(asset)
                s.flush()
            else:
                _lock(s, Asset, asset.id)
            av = s.exec(
                select(AssetVersion).where(
                    AssetVersion.asset_id == asset.id, AssetVersion.digest == digest
                )
            ).first()
            if av is None:
                latest = s.execute(
                    sa.select(sa.func.max(AssetVersion.version)).where(
                        AssetVersion.asset_id == asset.id
                    )
                ).scalar()
                av = AssetVersion(
                    asset_id=asset.id,
                    version=(latest or 0) + 1,
                    digest=digest,
                    size=size,
                    uri=uri,
                    media_type=media_type,
                    meta=json.dumps(meta, sort_keys=True, default=str) if meta else None,
                    created_by=run_id if relation == "produced" else None,
                )
                s.add(av)
                s.flush()
            if run_id is not None and relation == "used":
                self._add_edge(s, "asset_version", av.id, "run", run_id, "used", role)
            elif run_id is not None and relation == "produced":
                self._add_edge(s, "run", run_id, "asset_version", av.id, "produced", role)
            for up in derived_from:
                if up == av.id:  # unchanged content "derived from itself": nothing to record
                    continue
                self._add_edge(s, "asset_version", up, "asset_version", av.id, "derived_from", role)
            return asset, av

        return self.transact(go)

    def link_run_asset(self, run_id: str, version_id: str, relation: str, role=None) -> None:
        """Record that a run used or produced an existing asset version."""
        if relation == "used":
            ends = ("asset_version", version_id, "run", run_id)
        elif relation == "produced":
            ends = ("run", run_id, "asset_version", version_id)
        else:
            raise InvalidValue("relation of a run to an asset is 'used' or 'produced'")
        self.transact(lambda s: self._add_edge(s, *ends, relation, role))

    def add_edge(
        self, src_type: str, src_id: str, dst_type: str, dst_id: str, relation: str, role=None
    ) -> LineageEdge:
        return self.transact(
            lambda s: self._add_edge(s, src_type, src_id, dst_type, dst_id, relation, role)
        )

    def _add_edge(self, s, src_type, src_id, dst_type, dst_id, relation, role) -> LineageEdge:
        if relation not in RELATIONS:
            raise InvalidValue(f"relation must be one of {', '.join(RELATIONS)}")
        for t, i in ((src_type, src_id), (dst_type, dst_id)):
            model = Run if t == "run" else AssetVersion if t == "asset_version" else None
            if model is None:
                raise InvalidValue(f"lineage ends are runs or asset versions, not {t!r}")
            if s.get(model, i) is None:
                raise NotFound(f"no {t.replace('_', ' ')} with id {i}")
        edge = s.exec(
            select(LineageEdge).where(
                LineageEdge.src_type == src_type,
                LineageEdge.src_id == src_id,
                LineageEdge.dst_type == dst_type,
                LineageEdge.dst_id == dst_id,
                LineageEdge.relation == relation,
            )
        ).first()
        if edge is None:
            if relation == "derived_from":
                from metastore.lineage import check_no_cycle
                from metastore.refs import Node

                check_no_cycle(s, Node(src_type, src_id), Node(dst_type, dst_id))
            edge = LineageEdge(
                src_type=src_type,
                src_id=src_id,
                dst_type=dst_type,
                dst_id=dst_id,
                relation=relation,
                role=role,
            )
            s.add(edge)
            s.flush()
        return edge

    def list_assets(self, kind: str | None = None) -> list[Asset]:
        with self.read() as s:
            q = select(Asset).order_by(Asset.kind, Asset.name)
            if kind is not None:
                q = q.where(Asset.kind == kind)
            return list(s.exec(q))

    def get_asset_version(
        self, kind: str, name: str, version: int | None = None
    ) -> tuple[Asset, AssetVersion]:
        with self.read() as s:
            asset = s.exec(select(Asset).where(Asset.kind == kind, Asset.name == name)).first()
            if asset is None:
                known = [
                    f"{a.kind}:{a.name}"
                    for a in s.exec(select(Asset).where(Asset.kind == kind))
                ]
                raise NotFound(f"no {kind} named {name!r}", hint=_suggest(f"{kind}:{name}", known))
            q = select(AssetVersion).where(AssetVersion.asset_id == asset.id)
            if version is None:
                av = s.exec(q.order_by(col(AssetVersion.version).desc())).first()
            else:
                av = s.exec(q.where(AssetVersion.version == int(version))).first()
            if av is None:
                raise NotFound(f"{kind} {name!r} has no version {version}")
            return asset, av

    def get_version_by_id(self, version_id: str) -> tuple[Asset, AssetVersion]:
        with self.read() as s:
            av = s.get(AssetVersion, version_id)
            if av is None:
                raise NotFound(f"no asset version with id {version_id}")
            return s.get(Asset, av.asset_id), av

    def list_versions(self, kind: str, name: str) -> list[tuple[Asset, AssetVersion]]:
        asset, _ = self.get_asset_version(kind, name)
        with self.read() as s:
            rows = s.exec(
                select(AssetVersion)
                .where(AssetVersion.asset_id == asset.id)
                .order_by(AssetVersion.version)
            )
            return [(asset, v) for v in rows]

    def run_assets(self, run_id: str, direction: str) -> list[tuple[Asset, AssetVersion, str | None]]:
        """The asset versions a run used (direction "inputs") or produced ("outputs")."""
        with self.read() as s:
            if direction == "inputs":
                cond = (
                    (LineageEdge.dst_type == "run")
                    & (LineageEdge.dst_id == run_id)
                    & (LineageEdge.src_type == "asset_version")
                    & (LineageEdge.src_id == AssetVersion.id)
                )
            else:
                cond = (
                    (LineageEdge.src_type == "run")
                    & (LineageEdge.src_id == run_id)
                    & (LineageEdge.dst_type == "asset_version")
                    & (LineageEdge.dst_id == AssetVersion.id)
                )
            rows = s.execute(
                sa.select(Asset, AssetVersion, LineageEdge.role)
                .join(AssetVersion, AssetVersion.asset_id == Asset.id)
                .join(LineageEdge, cond)
                .order_by(Asset.kind, Asset.name, AssetVersion.version)
            )
            return [(a, v, role) for a, v, role in rows]

    def open_blob(self, digest: str) -> BinaryIO:
        return self.blobs.open(digest)

    def cache_dir(self) -> Path:
        """Where `VersionHandle.path()` puts content copied out of the blob store."""
        local = self.blobs.local_path("0" * 64)
        if local is not None:
            return Path(self.blob_root).resolve().parent / "cache"
        import tempfile

        return Path(tempfile.gettempdir()) / "metastore-cache"

    # -- purge and garbage collection ----------------------------------------------------
    def purge(self) -> dict[str, int]:
        """Remove soft-deleted runs and experiments for good, then the asset versions only
        they produced and nothing else references, then unreferenced blobs."""

        def go(s):
            run_ids = list(s.exec(select(Run.id).where(col(Run.deleted_at).is_not(None))))
            counts = {"runs": len(run_ids), "experiments": 0, "versions": 0}
            for chunk in _chunks(run_ids, 500):
                orphan_versions = list(
                    s.exec(
                        select(AssetVersion.id).where(col(AssetVersion.created_by).in_(chunk))
                    )
                )
                for model in (Param, Metric, MetricSummary, Note):
                    s.execute(delete(model).where(col(model.run_id).in_(chunk)))
                s.execute(
                    delete(Tag).where(Tag.entity_type == "run", col(Tag.entity_id).in_(chunk))
                )
                s.execute(
                    delete(LineageEdge).where(
                        ((LineageEdge.src_type == "run") & col(LineageEdge.src_id).in_(chunk))
                        | ((LineageEdge.dst_type == "run") & col(LineageEdge.dst_id).in_(chunk))
                    )
                )
                s.execute(
                    sa.update(Run).where(col(Run.parent_id).in_(chunk)).values(parent_id=None)
                )
                s.execute(sa.update(AssetVersion).where(col(AssetVersion.created_by).in_(chunk)).values(created_by=None))
                s.execute(delete(Run).where(col(Run.id).in_(chunk)))
                for av_id in orphan_versions:
                    referenced = s.exec(
                        select(LineageEdge.id).where(
                            (LineageEdge.src_id == av_id) | (LineageEdge.dst_id == av_id)
                        )
                    ).first()
                    if referenced is None:
                        s.execute(delete(AssetVersion).where(AssetVersion.id == av_id))
                        counts["versions"] += 1
            exps = list(s.exec(select(Experiment).where(col(Experiment.deleted_at).is_not(None))))
            for exp in exps:
                if s.exec(select(Run.id).where(Run.experiment_id == exp.id)).first() is None:
                    s.delete(exp)
                    counts["experiments"] += 1
            return counts

        counts = self.transact(go)
        counts["blobs"] = self.gc_blobs()
        return counts

    def gc_blobs(self) -> int:
        """Delete blobs no asset version references (directly or through a manifest)."""
        with self.read() as s:
            versions = list(s.exec(select(AssetVersion).where(AssetVersion.uri == "blob:")))
        keep = set()
        for v in versions:
            keep.add(v.digest)
            if v.media_type == DIR_MEDIA_TYPE and self.blobs.exists(v.digest):
                keep.update(self.blobs.manifest_digests(v.digest))
        removed = 0
        for digest in list(self.blobs.digests()):
            if digest not in keep:
                self.blobs.delete(digest)
                removed += 1
        return removed


def _fold_metrics(run_id: str, points, summaries: dict[str, MetricSummary], now) -> list[dict]:
    """Metric rows for checked (key, value, point) triples, each folded into its key's
    summary in `summaries` (created when absent). A point without a step follows its
    metric's last step; `last` is the value at the highest step."""
    rows = []
    for key, value, p in points:
        summary = summaries.get(key)
        step = p.step if p.step is not None else (summary.last_step + 1 if summary else 0)
        rows.append(
            {"run_id": run_id, "key": key, "step": int(step), "timestamp": p.timestamp or now,
             "value": value}
        )
        if summary is None:
            summary = summaries[key] = MetricSummary(
                run_id=run_id, key=key, last=value, last_step=step, first=value, min=value,
                max=value, count=0,
            )
        if step >= summary.last_step:
            summary.last, summary.last_step = value, step
        summary.min = min(summary.min, value)
        summary.max = max(summary.max, value)
        summary.count += 1
    return rows


def prepare_content(
    blobs, kind: str, name: str, content, *, uri, digest, size, media_type, meta, relation, copy
) -> tuple[str, int | None, str, str | None, dict]:
    """Check an asset write and turn its content into (digest, size, uri, media type,
    meta): bytes and paths are hashed and, with `copy`, put into `blobs` (a local
    BlobStore, or a server's through the remote store); external content passes through
    by `uri` and `digest`. Every Store's put_asset starts here."""
    if kind not in ASSET_KINDS:
        raise InvalidValue(f"unknown asset kind {kind!r}", hint=f"one of: {', '.join(ASSET_KINDS)}")
    validate_key(name, "asset name")
    if relation is not None and relation not in ("used", "produced"):
        raise InvalidValue("relation of a run to an asset is 'used' or 'produced'")
    meta = dict(meta or {})
    if content is None:
        if not uri or not digest:
            raise InvalidValue("an external asset needs both uri= and digest=")
        return digest, size, uri, media_type, meta
    if isinstance(content, bytes | bytearray):
        digest, size = blobs.put_bytes(bytes(content))
        return digest, size, "blob:", media_type, meta
    path = Path(content)
    if not path.exists():
        raise InvalidValue(f"no such file or directory: {path}")
    meta.setdefault("filename", path.name)
    if path.is_dir():
        if copy:
            digest, size, files = blobs.put_directory(path)
            uri = "blob:"
        else:
            files = directory_manifest(path)
            digest = hashlib.sha256(manifest_bytes(files)).hexdigest()
            size = sum(f["size"] for f in files.values())
            uri = path.resolve().as_uri()
        meta.setdefault("files", len(files))
        return digest, size, uri, DIR_MEDIA_TYPE, meta
    if copy:
        digest, size = blobs.put_file(path)
        uri = "blob:"
    else:
        digest, size = sha256_file(path)
        uri = path.resolve().as_uri()
    return digest, size, uri, media_type or mimetypes.guess_type(path.name)[0], meta


# -- helpers ----------------------------------------------------------------------------


def _transient(e: Exception) -> bool:
    text = str(getattr(e, "orig", e)).lower()
    return any(
        word in text
        for word in ("locked", "deadlock", "busy", "unique", "duplicate", "serialization")
    )


def _lock(s: Session, model, pk) -> None:
    """Row lock on PostgreSQL/MySQL so concurrent version numbering serialises."""
    if s.get_bind().dialect.name != "sqlite":
        s.execute(sa.select(model.id).where(model.id == pk).with_for_update())


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tag_value(v: Any) -> str | None:
    if v is None:
        return None
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    if len(text) > 500:
        raise InvalidValue("tag values are at most 500 characters; use a note for longer text")
    return text


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _suggest(word: str, candidates: Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


# -- opening a store ----------------------------------------------------------------------


def find_store_dir(start: Path | None = None) -> Path | None:
    """The nearest `.metastore/` at or above `start`, the way git finds `.git`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_DIR).is_dir():
            return folder / STORE_DIR
    return None


def open_store(
    url: str | os.PathLike | None = None,
    blobs: str | os.PathLike | None = None,
    *,
    token: str | None = None,
    create: bool = True,
) -> Store:
    """Open a store.

    - no URL: `METASTORE_URL`, else the nearest `.metastore/` above the current folder,
      else a new `.metastore/` here;
    - a database URL (sqlite:///…, postgresql://…, mysql://…) or a path to a directory;
    - an http(s):// URL: a metastore server.

    Blobs default to `METASTORE_BLOBS`, else `blobs/` beside a SQLite file, else
    `.metastore/blobs` in the current project folder.
    """
    url = url if url is not None else os.environ.get("METASTORE_URL") or None
    blobs = blobs if blobs is not None else os.environ.get("METASTORE_BLOBS") or None
    if url is not None:
        url = str(url)
        if url.startswith(("http://", "https://")):
            from metastore.remote import RemoteStore

            return RemoteStore(url, token=token or os.environ.get("METASTORE_TOKEN"))
        if "://" not in url and not url.startswith("sqlite:"):
            url = _directory_url(Path(url), create)
        if blobs is None:
            parsed = database.normalize_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                blobs = Path(parsed.database).resolve().parent / "blobs"
            else:
                local = find_store_dir() or Path.cwd() / STORE_DIR
                blobs = local / "blobs"
        return SQLStore(url, blobs, create=create)
    folder = find_store_dir()
    if folder is None:
        if not create:
            raise NotFound(
                "no metastore here or in any parent folder", hint="run `metastore init`"
            )
        folder = Path.cwd() / STORE_DIR
    return open_store(_directory_url(folder, create), blobs, create=create)


def _directory_url(folder: Path, create: bool) -> str:
    folder = folder.resolve()
    if folder.name != STORE_DIR and (folder / STORE_DIR).is_dir():
        folder = folder / STORE_DIR
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if folder.name == STORE_DIR and not ignore.exists():
            # The store is data, not source: keep it out of the project's git status
            # (or every run would be recorded as made from a dirty tree).
            ignore.write_text("# created by metastore\n*\n")
    return f"sqlite:///{folder / 'metastore.db'}"
