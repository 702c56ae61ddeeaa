"""The one writer every importer hands its runs to.

An importer reads its source into `RunRecord`s, each with the `PendingAsset`s the run
used or produced, and calls `Writer.add` for each (reading a run whole before handing it
over is what keeps a malformed source from leaving half a run behind). The writer, per
batch of runs (`batch`, default 250):

1. finds which runs were imported before, in one call (`runs_by_source`; a bundle's
   runs, which keep their ids, by id through `read_runs`), counting them as already
   present and completing them with what this source adds and the store lacks (metric
   points by key and step, params, lineage: a repository imported after its `dvc exp
   show --json`), found by comparing keys with what the store holds of them, read in
   one `run_keys` call (param keys, metric steps, linked versions; no values), so a
   re-import of runs that are all present reads no run back whole;
2. checks each new run's keys, stores its assets (content from a path or bytes, copied
   or referenced per `--no-copy`, or a `uri` + `digest` registered without bytes) with
   their `derived_from` edges, and resolves its parent (a source id of the same source:
   a run earlier in the import or imported before);
3. writes the batch with `create_runs` (one transaction); when that fails, run by run
   (`create_run`) so only the bad run is skipped, with the reason, and nothing of it is
   left half-written; a child of a skipped run is imported without its parent, said once.

The report's counts then mean what docs/importing.md says: runs imported, already
present (and completed), skipped (each once, with its reason); params, metric points,
asset versions (each version once, however many runs link it), edges (used, produced,
derived_from). A dry run goes through the same steps but stores nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from metastore.blobs import directory_manifest, manifest_bytes, sha256_file
from metastore.errors import Conflict, MetastoreError
from metastore.importers import ImportOptions, ImportReport
from metastore.models import new_id
from metastore.records import RunRecord, validate_key

#: What a failed write can raise: the store's own errors, files, values, the database.
WRITE_ERRORS = (MetastoreError, OSError, ValueError, SQLAlchemyError)


@dataclass
class PendingAsset:
    """An asset version a run used or produced, stored before the run is written.

    Either `content` (a file or directory path, or bytes: stored in the blob store, or
    referenced by URI under `--no-copy`) or `uri` + `digest` (registered without its
    bytes: a DVC cache entry, an MLflow dataset, an OpenLineage dataset)."""

    kind: str
    name: str
    relation: str  # "used" or "produced"
    content: Path | bytes | None = None
    uri: str | None = None
    digest: str | None = None
    size: int | None = None
    media_type: str | None = None
    meta: dict = field(default_factory=dict)
    role: str | None = None
    #: (kind, name) of assets of the same run this one derives from; they come earlier
    #: in the run's list
    derived_from: Sequence[tuple[str, str]] = ()


def check_record(record: RunRecord) -> None:
    """Fail before writing anything if the store would refuse part of the record."""
    for k in record.params:
        validate_key(k, "param", allow_slash=False)
    for p in record.metrics:
        validate_key(p.key, "metric")
    for k, v in record.tags.items():
        validate_key(k, "tag")
        if v is not None and len(str(v)) > 500:
            raise MetastoreError(f"tag {k!r} holds {len(str(v))} characters; a tag holds at most 500 characters")


@dataclass
class _Pending:
    record: RunRecord
    assets: list[PendingAsset]
    where: str
    deleted: bool
    parent: str | None  # the parent's source id (same source), resolved when written
    derived: int = 0  # derived_from edges written with its assets


class Writer:
    """Buffers runs and writes them in batches (see the module docstring). Use it as a
    context manager, or call `flush()` at the end.

    `match="source"` (every importer of another tool's data) tells runs apart by
    `source` + `source_id`; `match="id"` (bundles, whose runs keep their ids) by id."""

    def __init__(self, store, options: ImportOptions, report: ImportReport, *,
                 batch: int = 250, match: str = "source"):
        assert match in ("source", "id")
        self.store = store
        self.options = options
        self.report = report
        self.batch = batch
        self.match = match
        self.pending: list[_Pending] = []
        #: identity (source id, or run id) → run id in the store: found or written
        self.known: dict[str, str] = {}
        #: identities of runs skipped in this import
        self.failed: set[str] = set()
        self._failed_ids: set[str] = set()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.flush()

    # -- queueing -----------------------------------------------------------------------

    def add(self, record: RunRecord, assets: Iterable[PendingAsset] = (), where: str = "",
            *, deleted: bool = False, parent: str | None = None) -> None:
        """Queue one run read from `where` (a file, folder or table named in messages).
        `parent`: the source id of its parent run in the same source; `deleted`: import
        it soft-deleted."""
        if self.match == "source":
            assert record.source and record.source_id, "every imported run names its source"
        if self.options.experiment:
            record.experiment = self.options.experiment
        self.pending.append(_Pending(record, list(assets), str(where or record.source_id), deleted, parent))
        if len(self.pending) >= self.batch:
            self.flush()

    def run_id(self, source_id: str) -> str | None:
        """The store's id of a run of this import (written, or found imported before)."""
        return self.known.get(source_id)

    def _key(self, record: RunRecord) -> str:
        return record.source_id if self.match == "source" else record.id  # type: ignore[return-value]

    # -- writing ------------------------------------------------------------------------

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        found = self._lookup(batch)
        new: list[_Pending] = []
        present: list[tuple[str, _Pending]] = []
        queued: set[str] = set()
        for p in batch:
            key = self._key(p.record)
            run_id = found.get(key) or self.known.get(key)
            if run_id is not None:  # imported before, or twice in this source
                self.report.already_present += 1
                self.known[key] = run_id
                present.append((run_id, p))
                continue
            if key in queued:  # twice in this batch: the first one is written
                self.report.already_present += 1
                self.report.warn(p.where, f"the source holds run {key} twice; the first is imported")
                continue
            queued.add(key)
            try:
                check_record(p.record)
            except MetastoreError as e:
                self._skip(p, str(e))
                continue
            new.append(p)
        if present and self.match == "source":
            self._enrich(present)
        if self.options.dry_run:
            for p in new:
                self.known[self._key(p.record)] = "(dry run)"
                self._count_dry(p)
            return
        ready = []
        for p in new:
            try:
                self._put_assets(p)
            except WRITE_ERRORS as e:
                self._skip(p, f"an artifact cannot be stored: {e}")
                continue
            p.record.id = p.record.id or new_id()
            self.known[self._key(p.record)] = p.record.id
            ready.append(p)
        self._write(ready)

    def _lookup(self, batch: list[_Pending]) -> dict[str, str]:
        """Identity → run id of the batch's runs (and parents) imported before, in bulk."""
        if self.match == "id":
            ids = {p.record.id for p in batch if p.record.id}
            ids |= {p.parent for p in batch if p.parent is not None and p.parent not in self.known}
            found = {r.id: r.id for r in self.store.read_runs(run_ids=sorted(ids), include_deleted=True)} if ids else {}
            for p in batch:
                if p.parent is not None and p.parent in found:
                    self.known.setdefault(p.parent, found[p.parent])
            return found
        by_source: dict[str, set[str]] = {}
        for p in batch:
            wanted = by_source.setdefault(p.record.source, set())  # type: ignore[arg-type]
            wanted.add(p.record.source_id)  # type: ignore[arg-type]
            if p.parent is not None and p.parent not in self.known:
                wanted.add(p.parent)
        found: dict[str, str] = {}
        for source, ids in by_source.items():
            found.update(self.store.runs_by_source(source, sorted(ids)))
        for p in batch:  # parents imported before: known from now on
            if p.parent is not None and p.parent in found:
                self.known.setdefault(p.parent, found[p.parent])
        return found

    def _parent(self, p: _Pending) -> None:
        if p.parent is None:
            if p.record.parent_id in self._failed_ids:
                self.report.warn(p.where, "its parent run was skipped; imported without a parent")
                p.record.parent_id = None
            return
        parent_id = self.known.get(p.parent)
        if parent_id is None or parent_id in self._failed_ids:
            why = "was skipped" if p.parent in self.failed or parent_id else "is not in the source or the store"
            self.report.warn(p.where, f"its parent run {p.parent} {why}; imported without a parent")
        p.record.parent_id = parent_id if parent_id not in self._failed_ids else None

    def _write(self, ready: list[_Pending]) -> None:
        if not ready:
            return
        for p in ready:
            self._parent(p)
        try:
            self.store.create_runs([p.record for p in ready])
        except WRITE_ERRORS:
            pass  # find the bad run(s) one by one below
        else:
            for p in ready:
                self._done(p)
            return
        for p in ready:
            if p.record.parent_id in self._failed_ids:
                self.report.warn(p.where, "its parent run was skipped; imported without a parent")
                p.record.parent_id = None
            try:
                self.store.create_run(p.record)
            except WRITE_ERRORS as e:
                self._failed_ids.add(p.record.id)  # type: ignore[arg-type]
                self._skip(p, f"cannot be written: {e}")
                continue
            self._done(p)

    def _done(self, p: _Pending) -> None:
        links = _links(p)
        self._count(p, links, len(links) + p.derived)
        self.report.run_ids.append(p.record.id)  # type: ignore[arg-type]
        if p.deleted:
            self.store.delete_run(p.record.id)

    def _skip(self, p: _Pending, reason: str) -> None:
        key = self._key(p.record)
        self.failed.add(key)
        self.known.pop(key, None)
        self.report.skip(p.where, reason)

    def _count_dry(self, p: _Pending) -> None:
        linked = _links(p)
        edges = len(linked) + len({(a.kind, a.name, a.relation) for a in p.assets})
        edges += sum(len(a.derived_from) for a in p.assets)
        self._count(p, [*linked, *(_dry_key(a) for a in p.assets)], edges)

    def _count(self, p: _Pending, versions: list, edges: int) -> None:
        """A run in the report: the one tally of a real import and of a dry run."""
        r = self.report
        r.imported += 1
        r.params += len(p.record.params)
        r.metrics += len(p.record.metrics)
        r.count_versions(versions)
        r.edges += edges

    # -- assets -------------------------------------------------------------------------

    def _put_assets(self, p: _Pending) -> None:
        ids: dict[tuple[str, str], str] = {}
        inputs, outputs = list(p.record.inputs), list(p.record.outputs)
        for a in p.assets:
            av_id, derived = self._put(a, ids, p.where)
            p.derived += derived
            (inputs if a.relation == "used" else outputs).append((av_id, a.role))
        p.record.inputs, p.record.outputs = _unique(inputs), _unique(outputs)

    def _put(self, a: PendingAsset, ids: dict, where: str) -> tuple[str, int]:
        """Store one asset version (with its derived_from edges to assets of the same
        run stored before it); its id and the number of derived_from edges written."""
        ups = [ids[up] for up in a.derived_from if up in ids and up != (a.kind, a.name)]
        kwargs: dict[str, Any] = dict(media_type=a.media_type, meta=a.meta or None,
                                      size=a.size, role=a.role, derived_from=ups)
        try:
            av = self._store(a, kwargs)
        except Conflict as e:  # derived_from would close a lineage cycle: keep the rest
            self.report.warn(where, f"{a.kind} {a.name!r}: {e.message}; not linked")
            kwargs["derived_from"], ups = [], []
            av = self._store(a, kwargs)
        ids[(a.kind, a.name)] = av.id
        return av.id, len(ups)

    def _store(self, a: PendingAsset, kwargs: dict):
        if a.content is not None:
            return self.store.put_asset(a.kind, a.name, a.content, copy=self.options.copy, **kwargs)[1]
        return self.store.put_asset(a.kind, a.name, uri=a.uri, digest=a.digest, **kwargs)[1]

    # -- completing runs imported before ------------------------------------------------

    def _enrich(self, present: list[tuple[str, _Pending]]) -> None:
        """Add to runs imported before what this source has and the store lacks: metric
        points (by key and step), params and lineage. Nothing the store holds changes.
        What the store holds is read by key only (`run_keys`: no values, one call per
        batch), so a re-import of runs that are all present stays cheap."""
        ids = list(dict.fromkeys(run_id for run_id, _ in present if run_id != "(dry run)"))
        if not ids:
            return
        try:
            held = {k.id: k for k in self.store.run_keys(ids)}
        except WRITE_ERRORS as e:
            self.report.warnings.append(f"runs already present could not be read back: {e}")
            return
        for run_id, p in present:
            if run_id in held:
                try:
                    self._enrich_one(run_id, held[run_id], p)
                except WRITE_ERRORS as e:
                    self.report.warn(p.where, f"already present; what this source adds cannot be written: {e}")

    def _enrich_one(self, run_id: str, held, p: _Pending) -> None:
        have = {(key, step) for key, steps in held.steps.items() for step in steps}
        # a point without a step cannot be told apart from one stored before: not added
        new_points = [m for m in p.record.metrics if m.step is not None and (m.key, m.step) not in have]
        held_params = set(held.params)
        new_params = {k: v for k, v in p.record.params.items() if k not in held_params}
        if new_points or new_params:
            try:
                check_record(RunRecord(experiment=p.record.experiment, params=new_params,
                                       metrics=new_points))
            except MetastoreError as e:
                self.report.warn(p.where, f"already present; new values not added: {e}")
                new_points, new_params = [], {}
        linked = {(kind, name, relation): av_id for kind, name, relation, av_id in held.links}
        # an asset the run already links by kind, name and relation is not stored again
        # (that would hash its content once more for nothing), unless it brings
        # derived_from edges (their upstream ends: the versions the run links)
        new_assets = [a for a in p.assets
                      if (a.kind, a.name, a.relation) not in linked or a.derived_from]
        if self.options.dry_run:
            added = bool(new_points or new_params or new_assets)
            if new_assets:
                self.report.count_versions(_dry_key(a) for a in new_assets)
                self.report.edges += len(new_assets) + sum(len(a.derived_from) for a in new_assets)
        else:
            if new_params:
                self.store.log_params(run_id, new_params)
            if new_points:
                self.store.log_metrics(run_id, new_points)
            seen = {(kind, name): av_id for (kind, name, _), av_id in linked.items()}
            added = bool(new_points or new_params) | self._link(run_id, p, new_assets, seen)
        if added:
            self.report.enriched += 1
            self.report.params += len(new_params)
            self.report.metrics += len(new_points)

    def _link(self, run_id: str, p: _Pending, assets: list[PendingAsset], ids: dict) -> bool:
        """Link `assets` to a run written before; True when an edge was new."""
        if not assets:
            return False
        before = {(e.src_id, e.dst_id, e.relation) for e in self.store.list_edges([run_id])}
        for a in assets:
            av_id, _ = self._put(a, ids, p.where)
            self.store.link_run_asset(run_id, av_id, a.relation, a.role)
        after = {(e.src_id, e.dst_id, e.relation) for e in self.store.list_edges([run_id])}
        new = after - before
        self.report.count_versions(dst if rel == "produced" else src
                                   for src, dst, rel in new if rel != "derived_from")
        self.report.edges += len(new)
        return bool(new)


def content_digest(content: Path | bytes) -> str:
    """The digest the store gives this content (a file's sha256, a directory's manifest's),
    computed without storing it: how a dry run tells asset versions apart."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).hexdigest()
    path = Path(content)
    if path.is_dir():
        return hashlib.sha256(manifest_bytes(directory_manifest(path))).hexdigest()
    return sha256_file(path)[0]


def _dry_key(a: PendingAsset):
    """What tells asset versions apart before they are stored (a dry run's count)."""
    if a.content is not None:
        try:
            return (a.kind, a.name, content_digest(a.content))
        except OSError:  # unreadable: the import would skip it; count it once
            return (a.kind, a.name, str(a.content))
    return (a.kind, a.name, a.digest or a.uri)


def _unique(pairs: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    seen, out = set(), []
    for av_id, role in pairs:
        if av_id not in seen:
            seen.add(av_id)
            out.append((av_id, role))
    return out


def _links(p: _Pending) -> list:
    """The asset versions a run's record links to already (inputs and outputs)."""
    return [av_id for av_id, _ in (*p.record.inputs, *p.record.outputs)]
