"""What every importer does with a run once it has read it: the shared write path.

An importer reads a source into `RunRecord`s (plus the artifacts each run produced and
the datasets it used) and hands them here, which

- skips a run whose (source, source_id) is already in the store (idempotency),
- in a dry run only counts,
- stores the artifacts and datasets as asset versions, then writes the whole run in one
  transaction (`store.create_run`), so a run that fails is not half-written,
- keeps the report's counts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metastore.errors import MetastoreError
from metastore.store import RunRecord


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


def already_present(store, source: str, source_id: str) -> str | None:
    """The store's id for a run imported before, or None."""
    run = store.find_run_by_source(source, source_id)
    return run.id if run is not None else None


def write_run(
    store,
    record: RunRecord,
    assets: list[AssetSpec],
    options,
    report,
    *,
    deleted: bool = False,
) -> str | None:
    """Store the assets, then the run in one transaction; returns the new run id (None
    in a dry run). Raises MetastoreError/OSError for the caller to turn into a skip."""
    report.params += len(record.params)
    report.metrics += len(record.metrics)
    report.assets += len(assets)
    if options.dry_run:
        report.imported += 1
        return None
    inputs, outputs = list(record.inputs), list(record.outputs)
    for spec in assets:
        if spec.path is not None:
            _, av = store.put_asset(
                spec.kind,
                spec.name,
                spec.path,
                media_type=spec.media_type,
                meta=spec.meta,
                copy=options.copy,
            )
        else:
            _, av = store.put_asset(
                spec.kind,
                spec.name,
                uri=spec.uri,
                digest=spec.digest,
                size=spec.size,
                media_type=spec.media_type,
                meta=spec.meta,
            )
        (inputs if spec.relation == "used" else outputs).append((av.id, spec.role))
    record.inputs, record.outputs = inputs, outputs
    run = store.create_run(record)
    if deleted:
        store.delete_run(run.id)
    report.imported += 1
    report.run_ids.append(run.id)
    return run.id


def count_skip(report, where: str | os.PathLike, reason: str) -> None:
    report.skip(str(where), reason)
    report.warnings.append(f"skipped {where}: {reason}")


def undo_counts(report, record: RunRecord, assets: list) -> None:
    """Take back what write_run counted for a run whose write failed."""
    report.params -= len(record.params)
    report.metrics -= len(record.metrics)
    report.assets -= len(assets)


def safe_write(store, record, assets, options, report, where, *, deleted=False) -> str | None:
    """write_run, turning a failure of this one run into a skip with the reason."""
    try:
        return write_run(store, record, assets, options, report, deleted=deleted)
    except (MetastoreError, OSError, ValueError) as e:
        undo_counts(report, record, assets)
        count_skip(report, where, f"cannot be written: {e}")
        return None
