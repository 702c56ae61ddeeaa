"""What the MLflow, CSV and bundle importers do with a run once they have read it.

An importer reads a source into `RunRecord`s (plus the artifacts each run produced and
the datasets it used) and hands them to a `Writer`, which

- in a dry run only counts,
- stores the artifacts and datasets as asset versions, then writes runs in batches with
  `store.create_runs` (one transaction per batch: fast); when a batch fails, it writes
  that batch's runs one by one (`store.create_run`, one transaction each) so only the
  bad run is skipped, with the reason, and nothing of it is left half-written,
- keeps the report's counts.

`existing(store, source, ids)` answers "which of these were imported before" in bulk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from metastore.errors import MetastoreError
from metastore.models import new_id
from metastore.records import RunRecord

WRITE_ERRORS = (MetastoreError, OSError, ValueError, SQLAlchemyError)


@dataclass
class AssetSpec:
    """An asset version a run used or produced: local content to store (or reference
    with --no-copy), or an external reference by `uri` and `digest`."""

    kind: str
    name: str
    relation: str  # "used" or "produced"
    path: Path | None = None
    uri: str | None = None
    digest: str | None = None
    size: int | None = None
    media_type: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    role: str | None = None


def existing(store, source: str, source_ids: Iterable[str]) -> dict[str, str]:
    """source id → store run id, for the runs of `source` imported before."""
    return store.runs_by_source(source, list(source_ids))


def count_skip(report, where: str | os.PathLike, reason: str) -> None:
    report.skip(str(where), reason)


@dataclass
class _Pending:
    record: RunRecord
    where: str
    deleted: bool
    n_assets: int


class Writer:
    """Buffers runs and writes them in batches (see the module docstring). Use as a
    context manager, or call flush() at the end."""

    def __init__(self, store, options, report, batch: int = 250):
        self.store = store
        self.options = options
        self.report = report
        self.batch = batch
        self.pending: list[_Pending] = []
        self.written: set[str] = set()
        self.failed: set[str] = set()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.flush()

    def add(self, record: RunRecord, assets: list[AssetSpec], where: str, deleted: bool = False) -> str | None:
        """Queue a run; returns the id it will have (None in a dry run or when its
        assets cannot be stored, which skips it)."""
        if self.options.dry_run:
            self._count(record, len(assets))
            return None
        try:
            inputs, outputs = list(record.inputs), list(record.outputs)
            for spec in assets:
                av_id = self._put(spec)
                (inputs if spec.relation == "used" else outputs).append((av_id, spec.role))
        except WRITE_ERRORS as e:
            count_skip(self.report, where, f"an artifact cannot be stored: {e}")
            return None
        record.inputs, record.outputs = inputs, outputs
        record.id = record.id or new_id()
        self.pending.append(_Pending(record, str(where), deleted, len(assets)))
        if len(self.pending) >= self.batch:
            self.flush()
        return record.id

    def _put(self, spec: AssetSpec) -> str:
        if spec.path is not None:
            _, av = self.store.put_asset(
                spec.kind, spec.name, spec.path, media_type=spec.media_type, meta=spec.meta,
                copy=self.options.copy,
            )
        else:
            _, av = self.store.put_asset(
                spec.kind, spec.name, uri=spec.uri, digest=spec.digest, size=spec.size,
                media_type=spec.media_type, meta=spec.meta,
            )
        return av.id

    def _count(self, record: RunRecord, n_assets: int) -> None:
        self.report.imported += 1
        self.report.params += len(record.params)
        self.report.metrics += len(record.metrics)
        links = [av_id for av_id, _ in (*record.inputs, *record.outputs)]
        self.report.count_versions(links)
        self.report.edges += len(set(links))
        if self.options.dry_run:  # the specs were not stored: count them as they would be
            self.report.assets += n_assets
            self.report.edges += n_assets

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        for p in batch:
            # a parent that failed to write: import the child without it
            parent = p.record.parent_id
            if parent in self.failed:
                self.report.warnings.append(
                    f"{p.where}: its parent run was skipped; imported without a parent"
                )
                p.record.parent_id = None
        try:
            self.store.create_runs([p.record for p in batch])
        except WRITE_ERRORS:
            pass  # find the bad run(s) one by one below
        else:
            for p in batch:
                self._done(p)
            return
        for p in batch:
            if p.record.parent_id in self.failed:
                self.report.warnings.append(
                    f"{p.where}: its parent run was skipped; imported without a parent"
                )
                p.record.parent_id = None
            try:
                self.store.create_run(p.record)
            except WRITE_ERRORS as e:
                self.failed.add(p.record.id)
                count_skip(self.report, p.where, f"cannot be written: {e}")
                continue
            self._done(p)

    def _done(self, p: _Pending) -> None:
        self.written.add(p.record.id)
        self._count(p.record, p.n_assets)
        self.report.run_ids.append(p.record.id)
        if p.deleted:
            self.store.delete_run(p.record.id)
