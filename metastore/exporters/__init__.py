"""Exporters: give runs back in open formats.

- `bundle`: the portable bundle (JSON records + blobs, a directory or .tar.gz) that
  `metastore import bundle` reads into any other store;
- `table`: runs as a CSV or Parquet table, one row per run, params and metrics as columns;
- `openlineage`: runs as OpenLineage run events.

`export(store, out, format=…, experiment=…)` picks one by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from metastore.errors import InvalidValue

FORMATS = ("bundle", "csv", "parquet", "openlineage")


def guess_format(out: str | os.PathLike) -> str:
    """The format an output name implies: .csv, .parquet, .jsonl/.ndjson (OpenLineage
    events), anything else (a directory, .tar.gz) a bundle."""
    name = Path(out).name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".ndjson")):
        return "openlineage"
    return "bundle"


def export(
    store,
    out: str | os.PathLike,
    format: str | None = None,
    experiment: str | None = None,
    run: str | None = None,
) -> dict:
    """Export the store (or one experiment; one run for OpenLineage) to `out`; returns
    counts of what was written."""
    format = format or guess_format(out)
    if run is not None and format != "openlineage":
        raise InvalidValue(
            "only OpenLineage exports a single run",
            hint="export the run's experiment, or use --format openlineage",
        )
    if format == "bundle":
        from metastore.exporters.bundle import export_bundle

        return export_bundle(store, out, experiment=experiment)
    if format in ("csv", "parquet"):
        from metastore.exporters.table import export_table

        return export_table(store, out, format=format, experiment=experiment)
    if format == "openlineage":
        from metastore.exporters import openlineage

        return {"events": openlineage.export_openlineage(store, out, run=run, experiment=experiment)}
    raise InvalidValue(f"unknown export format {format!r}", hint=f"one of: {', '.join(FORMATS)}")
