"""The SQL backend: SQLite, PostgreSQL and MySQL/MariaDB through SQLAlchemy.

Implements `metastore.backends.base.Backend`. It is the only module (with its
`sql_*` companions) that opens database sessions: the services above reach the
database through the interface, and the query compiler and lineage walk hand it
statements to run.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, delete, select

from metastore import database, params
from metastore.backends import sql_lineage, sql_query
from metastore.backends.base import Backend, NodeKey, RunTable, run_summary
from metastore.backends.content import prepare_content
from metastore.backends.sql_aliases import AliasSQL
from metastore.backends.sql_requests import AppliedRequestsSQL
from metastore.blobs import DIR_MEDIA_TYPE, BlobStore
from metastore.errors import Ambiguous, Conflict, InvalidValue, NotFound
from metastore.models import (
    ASSET_KINDS,
    RELATIONS,
    RUN_STATUSES,
    Asset,
    AssetAlias,
    AssetVersion,
    Experiment,
    LineageEdge,
    Metric,
    MetricSummary,
    Note,
    Param,
    Project,
    Run,
    StoreConfig,
    Tag,
    utcnow,
)
from metastore.records import (
    MAX_STEP,
    MetricPoint,
    MetricSeries,
    NoteRecord,
    QueryAnswer,
    RunKeys,
    RunRecord,
    RunView,
    VersionLink,
    Walk,
    downsample,
    validate_asset_name,
    validate_key,
    validate_metric_value,
    validate_step,
)

DEFAULT_PROJECT = "default"
STALE_AFTER = timedelta(minutes=5)
MAX_RUN_NUMBER = 2**31 - 1  # the run.number column is a 32-bit INTEGER on every database


class SQLBackend(AliasSQL, AppliedRequestsSQL, Backend):
    """A store on a SQL database (SQLite, PostgreSQL, MySQL/MariaDB)."""

    def __init__(self, url: str, blobs: str | os.PathLike, *, create: bool = True):
        self.sa_url = database.normalize_url(url)
        self.url = database.safe_url(self.sa_url)
        self.dialect = self.sa_url.get_backend_name()
        self.reader, self.writer = database.create_engines(self.sa_url, create=create)
        database.check_reachable(self.reader)
        # new: created; current: nothing; newer: refused; older: see check_schema
        database.check_schema(self.writer, create=create)
        self.blobs = BlobStore(blobs)
        self.blob_root = str(blobs)
        self._host = socket.gethostname()

    def close(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()

    def __repr__(self) -> str:
        return f"SQLBackend({self.url!r}, blobs={self.blob_root!r})"

    # -- sessions -----------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.reader, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def query_connection(self) -> Iterator[sql_query.Connection]:
        """A read session as the connection a query runs on (`sql_query`)."""
        with self.read() as s:
            yield sql_query.SAConnection(s)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction, retried when the database reports a transient lock or
        a race on a unique key (e.g. two processes creating the same experiment)."""
        with Session(self.writer, expire_on_commit=False) as s:
            with s.begin():
                yield s

    def transact(self, fn, retries: int = 8):
        """Run fn(session) in a write transaction, retrying transient conflicts. The
        first transaction of a write a server applies by idempotency key also records
        the key (`sql_requests`)."""
        last: Exception | None = None
        for _attempt in range(retries):
            try:
                with self.write() as s:
                    pending = self._claim_key(s)
                    result = fn(s)
                    if pending is not None:
                        self._keep_answer(s, pending, result)
                if pending is not None:
                    pending.recorded = True  # committed
                return result
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
        """One run, created and read back in one transaction (through a server: one
        request, whose idempotent answer is the row)."""
        return self.create_runs([record], _row=True)

    def create_runs(self, records: Sequence[RunRecord], _row: bool = False) -> list[str]:
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
                    _checked_points(record.metrics),
                    {validate_key(k, "tag"): _tag_value(v) for k, v in record.tags.items()},
                )
            )
        if not prepared:
            return []

        def go(s: Session) -> list[str]:
            per_exp: dict[str, int] = {}
            for record, *_ in prepared:
                per_exp[record.experiment] = per_exp.get(record.experiment, 0) + 1
            assigned: dict[str, list[int]] = {}
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
                exp_ids[name] = exp.id
                # the numbers handed out in this transaction: the next ones in order, but
                # a record that carries a number above them keeps it (a bundle's runs
                # keep their numbers, gaps of deleted runs included)
                cur, mine = last - n, []
                for record, *_ in prepared:
                    if record.experiment == name:
                        cur = record.number if (record.number or 0) > cur else cur + 1
                        mine.append(cur)
                if cur != last:
                    s.execute(
                        sa.update(Experiment).where(Experiment.id == exp.id)
                        .values(last_number=cur)
                    )
                assigned[name] = mine
            taken = {name: iter(mine) for name, mine in assigned.items()}
            numbers = [next(taken[record.experiment]) for record, *_ in prepared]
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
            for (record, run_id, encoded, points, tags), number in zip(prepared, numbers, strict=True):
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
                (MetricSummary, summary_rows),
                (Tag, tag_rows),
                (Note, note_rows),
            ):
                if rows:
                    s.execute(sa.insert(model), rows)
            self._insert_metric_rows(s, metric_rows)
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
            ids = [run_id for _, run_id, *_ in prepared]
            if _row:
                s.flush()
                return s.exec(select(Run).where(Run.id == ids[0])).one()
            return ids

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

    def run_counts(self) -> dict[str, int]:
        with self.read() as s:
            rows = s.execute(
                sa.select(Experiment.name, sa.func.count(Run.id))
                .join(Run, Run.experiment_id == Experiment.id)
                .where(col(Run.deleted_at).is_(None), col(Experiment.deleted_at).is_(None))
                .group_by(Experiment.name)
            )
            return {name: n for name, n in rows}

    def _run_view_select(self, s: Session, experiment: str | None, include_deleted: bool = False):
        """The runs in scope as a RunView's columns (with the experiment's name): plain
        rows, not ORM objects; at 10,000 runs building a mapped object per row was most
        of `metastore runs`."""
        r, e = Run.__table__.c, Experiment.__table__.c
        fields = [c for c in Run.__table__.c
                  if c.name not in ("experiment_id", "context", "heartbeat", "deleted_at", "pid")]
        q = sa.select(*fields, e.name.label("experiment")).join_from(
            Run.__table__, Experiment.__table__, e.id == r.experiment_id)
        if experiment is not None:
            q = q.where(r.experiment_id == self._experiment(s, experiment).id)
        if not include_deleted:
            q = q.where(r.deleted_at.is_(None), e.deleted_at.is_(None))
        return q

    def read_runs(
        self, experiment: str | None = None, run_ids: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> list[RunView]:
        self.reconcile_crashed()
        with self.read() as s:
            r = Run.__table__.c
            q = self._run_view_select(s, experiment, include_deleted)
            if run_ids is not None:
                wanted = list(dict.fromkeys(run_ids))
                rows = []
                for chunk in _chunks(wanted, 500):
                    rows.extend(s.execute(q.where(r.id.in_(chunk))))
                order = {x: i for i, x in enumerate(wanted)}
                rows.sort(key=lambda row: order[row.id])
                scopes = [chunk for chunk in _chunks([row.id for row in rows], 500)]
            else:
                rows = list(s.execute(q.order_by(r.experiment_id, r.number)))
                # every run in scope: their values in one statement per kind, whatever
                # their number, by the same conditions as a subquery
                scopes = [q.with_only_columns(r.id).scalar_subquery()] if rows else []
            keys = list(q.selected_columns.keys())
            views = {row.id: RunView.model_validate(dict(zip(keys, row, strict=True))) for row in rows}
            for scope in scopes:
                for run_id, key, value in _params_of(s, scope):
                    views[run_id].params[key] = value
                for run_id, key, value in _tags_of(s, scope):
                    views[run_id].tags[key] = value
                m = MetricSummary.__table__.c
                for run_id, key, last in s.execute(
                    sa.select(m.run_id, m.key, m.last).where(m.run_id.in_(scope)).order_by(m.key)
                ):
                    views[run_id].metrics[key] = last
                n = Note.__table__.c
                noted = sa.select(n.run_id).where(n.run_id.in_(scope), n.kind == "note")
                for (run_id,) in s.execute(noted.distinct()):
                    views[run_id].has_note = True
                for direction in ("inputs", "outputs"):
                    run_end, version_end = ("dst", "src") if direction == "inputs" else ("src", "dst")
                    le = LineageEdge.__table__.c
                    links = (
                        sa.select(le[f"{run_end}_id"], le.role, le.path, Asset.kind, Asset.name,
                                  AssetVersion)
                        .join(AssetVersion, AssetVersion.id == le[f"{version_end}_id"])
                        .join(Asset, Asset.id == AssetVersion.asset_id)
                        .where(le[f"{run_end}_type"] == "run", le[f"{run_end}_id"].in_(scope),
                               le[f"{version_end}_type"] == "asset_version")
                        .order_by(Asset.kind, Asset.name, AssetVersion.version)
                    )
                    for run_id, role, path, kind, name, av in s.execute(links):
                        getattr(views[run_id], direction).append(
                            _version_link(kind, name, av, role, path)
                        )
            return list(views.values())

    @contextmanager
    def run_table(
        self, experiment: str | None = None, status: str | None = None, system: bool = False
    ) -> Iterator[RunTable]:
        # The keys first (a table's columns), then the runs a page at a time with their
        # params and last metric values, all in one read transaction: the first rows
        # print while later ones are still being read, and memory stays one page.
        self.reconcile_crashed()
        with self.read() as s:
            r = Run.__table__.c
            q = self._run_view_select(s, experiment)
            if status is not None:
                q = q.where(r.status == status)
            scope = q.with_only_columns(r.id).scalar_subquery()
            m, p = MetricSummary.__table__.c, Param.__table__.c
            metrics = sorted(k for (k,) in s.execute(
                sa.select(m.key).where(m.run_id.in_(scope)).distinct())
                if system or not k.startswith("system."))
            # a param is numeric when all it holds here are numbers (JSON null reads
            # back as None, which a number column shows as empty)
            numeric: dict[str, bool] = {}
            for key, kind, low, high in s.execute(
                sa.select(p.key, p.type, sa.func.min(p.text), sa.func.max(p.text))
                .where(p.run_id.in_(scope)).group_by(p.key, p.type)
            ):
                plain = kind == "number" or (kind == "json" and low == high == "null")
                numeric[key] = numeric.get(key, True) and plain
            yield RunTable(metrics, dict(sorted(numeric.items())),
                           self._run_pages(s, q, system))

    #: Runs read per statement by `run_table`.
    RUN_PAGE = 500

    def _run_pages(self, s: Session, q, system: bool) -> Iterator[dict]:
        """`run_summary` of each run `q` selects, by experiment and number, read `page`
        runs at a time (after the last one read, not by offset)."""
        page = self.RUN_PAGE
        r = Run.__table__.c
        keys = list(q.selected_columns.keys())
        q = q.add_columns(r.experiment_id).order_by(r.experiment_id, r.number).limit(page)
        after = None
        m = MetricSummary.__table__.c
        while True:
            this = q if after is None else q.where(sa.or_(
                r.experiment_id > after[0],
                sa.and_(r.experiment_id == after[0], r.number > after[1])))
            rows = s.execute(this).all()
            if not rows:
                return
            views = {row.id: RunView.model_validate(dict(zip(keys, row, strict=False)))
                     for row in rows}
            ids = list(views)
            for run_id, key, value in _params_of(s, ids):
                views[run_id].params[key] = value
            for run_id, key, last in s.execute(
                sa.select(m.run_id, m.key, m.last).where(m.run_id.in_(ids)).order_by(m.key)
            ):
                views[run_id].metrics[key] = last
            for view in views.values():
                yield run_summary(view, system)
            if len(rows) < page:
                return
            after = (rows[-1].experiment_id, rows[-1].number)

    def run_keys(self, run_ids: Sequence[str]) -> list[RunKeys]:
        out: dict[str, RunKeys] = {}
        with self.read() as s:
            for chunk in _chunks(list(dict.fromkeys(run_ids)), 500):
                for (run_id,) in s.execute(sa.select(Run.id).where(col(Run.id).in_(chunk))):
                    out[run_id] = RunKeys(id=run_id)
                p, m = Param.__table__.c, Metric.__table__.c
                for run_id, key in s.execute(sa.select(p.run_id, p.key).where(p.run_id.in_(chunk))):
                    out[run_id].params.append(key)
                steps = sa.select(m.run_id, m.key, m.step).where(m.run_id.in_(chunk)).distinct()
                for run_id, key, step in s.execute(steps):
                    out[run_id].steps.setdefault(key, []).append(step)
                le = LineageEdge.__table__.c
                for relation, run_end, version_end in (("used", "dst", "src"), ("produced", "src", "dst")):
                    links = (
                        sa.select(le[f"{run_end}_id"], Asset.kind, Asset.name, AssetVersion.id)
                        .join(AssetVersion, AssetVersion.id == le[f"{version_end}_id"])
                        .join(Asset, Asset.id == AssetVersion.asset_id)
                        .where(le.relation == relation, le[f"{run_end}_type"] == "run",
                               le[f"{run_end}_id"].in_(chunk))
                    )
                    for run_id, kind, name, version_id in s.execute(links):
                        out[run_id].links.append((kind, name, relation, version_id))
        return [out[i] for i in run_ids if i in out]

    def dump_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Whole runs as written (every metric point, notes, context), for exports."""
        out: dict[str, RunRecord] = {}
        with self.read() as s:
            for chunk in _chunks(list(dict.fromkeys(run_ids)), 500):
                rows = s.execute(
                    sa.select(Run, Experiment.name)
                    .join(Experiment, Experiment.id == Run.experiment_id)
                    .where(col(Run.id).in_(chunk))
                )
                for r, exp in rows:
                    fields = r.model_dump(exclude={"context", "experiment_id", "heartbeat",
                                                   "deleted_at", "pid", "number"})
                    out[r.id] = RunRecord(
                        **fields, experiment=exp, number=r.number,
                        context=json.loads(r.context) if r.context else None,
                    )
                for run_id, key, value in _params_of(s, chunk):
                    out[run_id].params[key] = value
                for run_id, key, value in _tags_of(s, chunk):
                    out[run_id].tags[key] = value
                for m in s.exec(
                    select(Metric).where(col(Metric.run_id).in_(chunk))
                    .order_by(Metric.run_id, Metric.key, Metric.step, Metric.timestamp, Metric.id)
                ):
                    out[m.run_id].metrics.append(
                        MetricPoint(key=m.key, value=m.value, step=m.step, timestamp=m.timestamp)
                    )
                for n in s.exec(
                    select(Note).where(col(Note.run_id).in_(chunk)).order_by(Note.time, Note.id)
                ):
                    out[n.run_id].notes.append(
                        NoteRecord(text=n.text, kind=n.kind, author=n.author, time=n.time)
                    )
        return [out[i] for i in run_ids if i in out]

    def resolve_run(self, ref: str | int, experiment: str | None = None) -> Run:
        self.reconcile_crashed()
        with self.read() as s:
            return self._resolve_run(s, ref, experiment)

    def _resolve_run(self, s: Session, ref: str | int, experiment: str | None = None) -> Run:
        text = str(ref).strip()
        if "#" in text:
            experiment, _, text = text.rpartition("#")
        live = col(Run.deleted_at).is_(None)
        # ASCII digits only ("²".isdigit() is true, int() refuses it), and a number no
        # run can have is simply not found rather than sent to the driver to overflow.
        if text.isascii() and text.isdigit():
            if int(text) > MAX_RUN_NUMBER:
                raise NotFound(f"no run number {text}")
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
        _check_status(status)
        self.transact(lambda s: self._set_status(s, run_id, status, ended))

    def _set_status(self, s: Session, run_id: str, status: str, ended: datetime | None) -> None:
        run = self._run(s, run_id)
        if run.status == "crashed" and status not in ("running", "crashed"):
            _resolve_crash(s, run, status)
        run.status = status
        run.ended = None if status == "running" else (ended or utcnow())
        s.add(run)

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
                # queryable like other events: runs where event = "crashed"
                s.merge(Tag(entity_type="run", entity_id=r.id, key="event", value="crashed"))

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
        self.transact(lambda s: self._add_params(s, run_id, rows))

    def _add_params(self, s: Session, run_id: str, rows: dict[str, params.Encoded]) -> None:
        if not rows:
            return
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

    def log_metrics(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        checked = _checked_points(points)
        self.transact(lambda s: self._add_metrics(s, run_id, checked))

    def log_batch(self, run_id, params=None, metrics=(), status=None, ended=None) -> None:
        """Params, metrics and the run's end in one transaction: one commit per flush."""
        from metastore import params as codec

        rows = codec.encode_all(params or {}, validate_key)
        checked = _checked_points(metrics)
        if status is not None:
            _check_status(status)

        def go(s):
            self._add_params(s, run_id, rows)
            self._add_metrics(s, run_id, checked)
            if status is not None:
                self._set_status(s, run_id, status, ended)

        self.transact(go)

    def _add_metrics(self, s: Session, run_id: str, points) -> None:
        if not points:
            return
        keys = sorted({p[0] for p in points})
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
        s.flush()
        self._insert_metric_rows(s, rows)

    def _insert_metric_rows(self, s: Session, rows: list[tuple]) -> None:
        """Insert (run_id, key, step, timestamp, value) tuples with the driver's own
        executemany: SQLAlchemy's per-row parameter processing cost 3/4 of a
        million-point write. Timestamps go through the column type's bind processor
        once per distinct time (a series shares one)."""
        if not rows:
            return
        sql, stamp = self._metric_insert
        if stamp is not None:
            rows = list(_stamped(rows, stamp))
        s.connection().exec_driver_sql(sql, rows)

    @cached_property
    def _metric_insert(self):
        dialect = self.writer.dialect
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        names = ("run_id", "key", "step", "timestamp", "value")
        sql = (f"INSERT INTO {quote('metric')} ({', '.join(quote(n) for n in names)})"
               f" VALUES ({', '.join([mark] * len(names))})")
        column = Metric.__table__.c.timestamp
        return sql, column.type.dialect_impl(dialect).bind_processor(dialect)

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

    def metric_series(self, run_id: str, key: str, max_points: int | None = None) -> MetricSeries:
        """Steps and values as numpy arrays filled straight from the driver's cursor: a
        million points without a row object each (the index on (run_id, key, step)
        gives the order; points at one step come in the order they were recorded)."""
        import numpy as np

        sql = self._series_select
        with self.reader.connect() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                cursor.execute(sql, (run_id, key))
                rows = np.fromiter(cursor, dtype=[("step", np.int64), ("value", np.float64)])
            finally:
                cursor.close()
        steps, values = downsample(rows["step"], rows["value"], max_points)
        return MetricSeries.model_construct(key=key, steps=steps, values=values, count=len(rows))

    @cached_property
    def _series_select(self) -> str:
        dialect = self.reader.dialect
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        return (f"SELECT {quote('step')}, {quote('value')} FROM {quote('metric')}"
                f" WHERE {quote('run_id')} = {mark} AND {quote('key')} = {mark}"
                f" ORDER BY {quote('step')}, {quote('id')}")

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
        path: str | None = None,
    ) -> tuple[Asset, AssetVersion]:
        """Store content (a file or directory path, or bytes) as a version of the asset
        kind/name, or register external content by `uri` and `digest` without its bytes.
        With `run_id` and `relation` ("used" or "produced") the run is linked to it; `path`
        is where the run read or wrote it (kept on the link)."""
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
                self._add_edge(s, "asset_version", av.id, "run", run_id, "used", role, path=path)
            elif run_id is not None and relation == "produced":
                self._add_edge(s, "run", run_id, "asset_version", av.id, "produced", role,
                               path=path)
            for up in derived_from:
                if up == av.id:  # unchanged content "derived from itself": nothing to record
                    continue
                self._add_edge(s, "asset_version", up, "asset_version", av.id, "derived_from", role)
            return asset, av

        return self.transact(go)

    def link_run_asset(
        self, run_id: str, version_id: str, relation: str, role=None, path: str | None = None
    ) -> None:
        if relation == "used":
            ends = ("asset_version", version_id, "run", run_id)
        elif relation == "produced":
            ends = ("run", run_id, "asset_version", version_id)
        else:
            raise InvalidValue("relation of a run to an asset is 'used' or 'produced'")
        self.transact(lambda s: self._add_edge(s, *ends, relation, role, path=path))

    def add_edge(
        self, src_type: str, src_id: str, dst_type: str, dst_id: str, relation: str, role=None
    ) -> LineageEdge:
        return self.transact(
            lambda s: self._add_edge(
                s, src_type, src_id, dst_type, dst_id, relation, role, check_cycle=True
            )
        )

    def _add_edge(
        self, s, src_type, src_id, dst_type, dst_id, relation, role, check_cycle=False,
        path=None,
    ) -> LineageEdge:
        """Edges a run records as it goes (used, produced) cannot close a cycle through
        versions alone, so only derived_from edges and edges added after the fact are
        checked: a recursive walk per edge is not paid inside a training loop."""
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
            if check_cycle or relation == "derived_from":
                sql_lineage.check_no_cycle(s, (src_type, src_id), (dst_type, dst_id))
            edge = LineageEdge(
                src_type=src_type,
                src_id=src_id,
                dst_type=dst_type,
                dst_id=dst_id,
                relation=relation,
                role=role,
                path=path,
            )
            s.add(edge)
            s.flush()
        elif path is not None and edge.path is None:  # a link recorded before its path
            edge.path = path
            s.add(edge)
        return edge

    def list_edges(self, run_ids: Sequence[str] | None = None) -> list[LineageEdge]:
        with self.read() as s:
            edges = list(s.exec(select(LineageEdge).order_by(LineageEdge.id)))
        if run_ids is None:
            return edges
        return _edges_of_runs(edges, set(run_ids))

    def query(
        self, text: str, experiment: str | None = None, timeout: float | None = None
    ) -> QueryAnswer:
        return sql_query.run_query(self, text, experiment, timeout)

    def query_stream(self, text: str, experiment: str | None = None, timeout: float | None = None):
        return sql_query.stream_query(self, text, experiment, timeout)

    def known_keys(self) -> dict[str, list[str]]:
        with self.read() as s:
            catalog = sql_query.read_catalog(s.connection())
        return {"metric": sorted(catalog.metrics), "param": sorted(catalog.params),
                **{entity: sorted(keys) for entity, keys in catalog.tags.items()}}

    def compile_query(self, text: str, experiment: str | None = None) -> str:
        return sql_query.compile_query_text(self, text, experiment)

    def walk(
        self,
        starts: Sequence[NodeKey],
        direction: str,
        depth: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> Walk:
        with self.read() as s:
            return sql_lineage.walk(
                s, [tuple(n) for n in starts], direction, depth, limit, cursor, count
            )

    def create_asset(self, kind: str, name: str) -> Asset:
        if kind not in ASSET_KINDS:
            raise InvalidValue(f"unknown asset kind {kind!r}", hint=f"one of: {', '.join(ASSET_KINDS)}")
        validate_asset_name(name)

        def go(s):
            asset = s.exec(select(Asset).where(Asset.kind == kind, Asset.name == name)).first()
            if asset is None:
                asset = Asset(project_id=self._project(s).id, kind=kind, name=name)
                s.add(asset)
                s.flush()
            return asset

        return self.transact(go)

    def get_config(self, prefix: str | None = None) -> dict[str, str]:
        with self.read() as s:
            q = select(StoreConfig).order_by(StoreConfig.key)
            if prefix:
                q = q.where(col(StoreConfig.key).startswith(prefix, autoescape=True))
            return {row.key: row.value for row in s.exec(q)}

    def set_config(self, key: str, value: str | None) -> None:
        validate_key(key, "setting")
        if value is not None and not isinstance(value, str):
            raise InvalidValue(f"setting {key!r} is text, got {value!r}")

        def go(s):
            row = s.get(StoreConfig, key)
            if value is None:
                if row is not None:
                    s.delete(row)
                return
            if row is None:
                row = StoreConfig(key=key, value=value)
            row.value, row.updated = value, utcnow()
            s.add(row)

        self.transact(go)

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
                    if referenced is None:  # an alias keeps its version too
                        referenced = s.exec(
                            select(AssetAlias.alias).where(AssetAlias.version_id == av_id)
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


def _check_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise InvalidValue(f"run status must be one of {', '.join(RUN_STATUSES)}")


def _checked_points(points: Iterable[MetricPoint]) -> list[tuple]:
    """(key, value, step, timestamp) of each point, checked (points built without
    validation reach here too). What the recording API buffers (a float and an int
    step or none) passes with a few type tests: a million points feel every call."""
    keys: set[str] = set()
    out = []
    append = out.append
    for p in points:
        key, value, step = p.key, p.value, p.step
        if not (isinstance(key, str) and key in keys):  # each key checked once
            keys.add(validate_key(key, "metric"))
        if type(value) is not float or value - value != 0.0:  # not finite: inf - inf is nan
            value = validate_metric_value(key, value)
        if step is not None and (type(step) is not int or not -MAX_STEP <= step <= MAX_STEP):
            step = validate_step(step)
        append((key, value, step, p.timestamp))
    return out


def _fold_metrics(run_id: str, points, summaries: dict[str, MetricSummary], now) -> list[tuple]:
    """Metric rows (run_id, key, step, timestamp, value) for checked (key, value, step,
    timestamp) points, each folded into its key's summary in `summaries` (created when
    absent). A point without a step follows its metric's last step; `last` is the value
    at the highest step. The fold runs on plain values and touches each summary (an ORM
    object, slow to set) once per key."""
    rows = []
    append = rows.append
    folds: dict[str, list] = {}  # key -> [last, last_step, first, min, max, count]
    for key, value, step, timestamp in points:
        fold = folds.get(key)
        if fold is None:
            summary = summaries.get(key)
            fold = folds[key] = (
                [summary.last, summary.last_step, summary.first, summary.min, summary.max,
                 summary.count] if summary is not None else None
            )
        if step is None:
            step = fold[1] + 1 if fold else 0
        append((run_id, key, step, timestamp or now, value))
        if fold is None:
            fold = folds[key] = [value, step, value, value, value, 0]
        if step >= fold[1]:
            fold[0], fold[1] = value, step
        if value < fold[3]:
            fold[3] = value
        elif value > fold[4]:
            fold[4] = value
        fold[5] += 1
    for key, (last, last_step, first, low, high, count) in folds.items():
        summary = summaries.get(key)
        if summary is None:
            summary = summaries[key] = MetricSummary(run_id=run_id, key=key, first=first)
        summary.last, summary.last_step, summary.min, summary.max, summary.count = (
            last, last_step, low, high, count
        )
    return rows


# -- helpers ----------------------------------------------------------------------------


def _stamped(rows: list[tuple], stamp) -> Iterator[tuple]:
    """Rows with their timestamp in the driver's form, converted once per run of
    points sharing one time (a logged series, a `log_metrics` call)."""
    last = done = None
    for run_id, key, step, t, value in rows:
        if t is not last:
            last, done = t, stamp(t)
        yield run_id, key, step, done, value


def _params_of(s: Session, run_ids):
    """(run id, key, typed value) of the given runs' params (a list of ids, or a
    subquery of them), by key; plain rows, no ORM objects."""
    p = Param.__table__.c
    rows = s.execute(sa.select(p.run_id, p.key, p.type, p.num, p.text)
                     .where(p.run_id.in_(run_ids)).order_by(p.key))
    decode = params.decode
    return ((run_id, key, decode(kind, num, text)) for run_id, key, kind, num, text in rows)


def _tags_of(s: Session, run_ids):
    """(run id, key, value) of the given runs' tags (a list of ids, or a subquery of
    them), by key."""
    t = Tag.__table__.c
    return s.execute(sa.select(t.entity_id, t.key, t.value)
                     .where(t.entity_type == "run", t.entity_id.in_(run_ids)).order_by(t.key))


def _version_link(kind: str, name: str, av: AssetVersion, role: str | None,
                  path: str | None = None) -> VersionLink:
    return VersionLink(
        **av.model_dump(exclude={"asset_id", "meta"}), kind=kind, name=name, role=role, path=path,
        meta=json.loads(av.meta) if av.meta else None,
    )


def _edges_of_runs(edges: list[LineageEdge], run_ids: set[str]) -> list[LineageEdge]:
    """The edges touching `run_ids`, plus every derived_from edge upstream of the
    versions those touch (so a dataset's ancestry travels with the runs)."""
    keep: list[LineageEdge] = []
    versions: set[str] = set()
    for e in edges:
        if e.relation == "derived_from":
            continue
        if (e.src_type == "run" and e.src_id not in run_ids) or (
            e.dst_type == "run" and e.dst_id not in run_ids
        ):
            continue
        keep.append(e)
        versions.update(
            i for t, i in ((e.src_type, e.src_id), (e.dst_type, e.dst_id)) if t == "asset_version"
        )
    derived = [e for e in edges if e.relation == "derived_from"]
    frontier, taken = set(versions), set()
    while frontier:
        nxt = set()
        for e in derived:
            if e.dst_id in frontier and e.id not in taken:
                taken.add(e.id)
                keep.append(e)
                if e.src_id not in versions:
                    versions.add(e.src_id)
                    nxt.add(e.src_id)
        frontier = nxt
    return sorted(keep, key=lambda e: e.id)


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


def _resolve_crash(s: Session, run: Run, status: str) -> None:
    """A run marked crashed (`reconcile_crashed`) whose real end arrives later: its
    client kept the end in its spool while the server was away, or its heartbeats
    stopped reaching the server. The crash note stays (it is what the store saw then),
    a note says it is resolved, and the tag `event` = `crashed` goes, so `runs where
    event = "crashed"` finds only runs that did crash."""
    tag = s.get(Tag, ("run", run.id, "event"))
    if tag is None or tag.value != "crashed":
        return  # not a crash reconcile_crashed found
    s.delete(tag)
    s.add(Note(run_id=run.id, kind="event", author="metastore",
               text=f"the run's end ({status}) arrived after it was marked crashed; "
               "the crash above is resolved"))


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
