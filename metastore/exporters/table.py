"""Runs as a table, one row per run, for pandas and spreadsheets (CSV or Parquet).

Columns: `run` (experiment#number), `id`, `experiment`, `number`, `name`, `status`,
`started`, `ended`, `duration`, `user`, `host`, `git_commit`, `parent_id`, `source`,
`source_id`, then `params.<key>` (typed: numbers, bools and text; lists and dicts as
JSON text), `metrics.<key>` (the last value: the value at the highest step) and
`tags.<key>`, each group sorted by key. The same prefixes are what `metastore import csv`
reads, so a table export re-imports (without metric histories or lineage: use the
bundle for a faithful copy).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from metastore.errors import InvalidValue, MetastoreError

BASE = [
    "run", "id", "experiment", "number", "name", "status", "started", "ended", "duration",
    "user", "host", "git_commit", "parent_id", "source", "source_id",
]


def runs_frame(store, experiment: str | None = None):
    """The runs as a pandas DataFrame, one row per run (columns in the module docstring)."""
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the install
        raise MetastoreError("table exports need pandas", hint="pip install 'metastore[importers]'") from e
    rows = list(_rows(store, experiment))
    params = sorted({k for r in rows for k in r if k.startswith("params.")})
    metrics = sorted({k for r in rows for k in r if k.startswith("metrics.")})
    tags = sorted({k for r in rows for k in r if k.startswith("tags.")})
    frame = pd.DataFrame(rows, columns=BASE + params + metrics + tags)
    for c in params:
        # a column of one Python type stays that type; a mix becomes text
        kinds = {type(v) for v in frame[c] if v is not None and v == v}
        if len(kinds) > 1 and kinds != {int, float}:
            frame[c] = [None if v is None else json.dumps(v) if not isinstance(v, str) else v for v in frame[c]]
    return frame


def _rows(store, experiment: str | None):
    for r in store.read_runs(experiment=experiment):
        row = {
            "run": r.ref, "id": r.id, "experiment": r.experiment, "number": r.number,
            "name": r.name, "status": r.status, "started": r.started, "ended": r.ended,
            "duration": r.duration, "user": r.user, "host": r.host, "git_commit": r.git_commit,
            "parent_id": r.parent_id, "source": r.source, "source_id": r.source_id,
        }
        for k, v in r.params.items():
            row[f"params.{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, list | dict) else v
        row.update({f"metrics.{k}": v for k, v in r.metrics.items()})
        row.update({f"tags.{k}": v for k, v in r.tags.items()})
        yield row


def export_table(
    store, out: str | os.PathLike, format: str | None = None, experiment: str | None = None
) -> dict:
    """Write the runs to `out` as CSV or Parquet (by `format`, else by the file name)."""
    out = Path(out)
    format = format or ("parquet" if out.suffix.lower() in (".parquet", ".pq") else "csv")
    frame = runs_frame(store, experiment)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "csv":
        frame.to_csv(out, index=False)
    elif format == "parquet":
        try:
            frame.to_parquet(out, index=False)
        except ImportError as e:
            raise MetastoreError("Parquet export needs pyarrow", hint="pip install pyarrow") from e
    else:
        raise InvalidValue(f"a table is written as csv or parquet, not {format!r}")
    return {"runs": len(frame), "columns": len(frame.columns)}
