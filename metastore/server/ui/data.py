"""What the pages show, gathered through the Store API object.

Pages never touch SQL and never ask which backend they have: the runs table reads every
run with its params and last metric values in one call (`Store.run_views`, the backend's
`read_runs`), which is one request when the store is behind a metastore server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from metastore.server.ui.format import lower_is_better

# Run attributes that can be table columns, in display order.
ATTRIBUTES = ("number", "name", "status", "started", "duration", "user")
# Metrics a person usually ranks runs by, most telling first.
PREFERRED_METRICS = (
    "val_loss", "loss", "rmse", "mse", "mae", "error", "accuracy", "acc", "f1", "auc", "r2",
)
MAX_DEFAULT_PARAMS = 8
MAX_DEFAULT_METRICS = 8


@dataclass
class RunRow:
    id: str
    number: int
    name: str | None
    status: str
    started: datetime
    ended: datetime | None
    user: str | None
    experiment: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return (self.ended - self.started).total_seconds() if self.ended else None

    def get(self, column: str) -> Any:
        group, _, key = column.partition(".")
        if group == "params" and key:
            return self.params.get(key)
        if group == "metrics" and key:
            return self.metrics.get(key)
        return getattr(self, column, None)


@dataclass
class Column:
    key: str  # "number", "params.alpha", "metrics.rmse"
    label: str
    group: str  # "run", "metrics", "params" or "info"
    numeric: bool = False

    @property
    def lower_better(self) -> bool | None:
        return lower_is_better(self.label) if self.group == "metrics" else None


def _row(view) -> RunRow:
    return RunRow(
        id=view.id, number=view.number, name=view.name, status=view.status,
        started=view.started, ended=view.ended, user=view.user, experiment=view.experiment,
        params=dict(view.params), metrics=dict(view.metrics),
    )


def load_runs(store, experiment: str) -> list[RunRow]:
    """An experiment's runs with their params and last metric values, read in one call
    (`Store.run_views`, one request through a server)."""
    return [_row(v) for v in store.run_views(experiment)]


def runs_by_experiment(store) -> dict[str, list[RunRow]]:
    """Every live run, grouped by experiment, in one call."""
    out: dict[str, list[RunRow]] = {}
    for view in store.run_views():
        out.setdefault(view.experiment, []).append(_row(view))
    return out


def all_keys(rows: Iterable[RunRow], group: str) -> list[str]:
    keys: set[str] = set()
    for r in rows:
        keys.update(r.params if group == "params" else r.metrics)
    return sorted(keys, key=lambda k: (k.startswith("system."), k))


def varying_params(rows: Sequence[RunRow]) -> list[str]:
    """Params with more than one value across the runs (a missing value counts as one):
    the knobs that were actually turned."""
    out = []
    for key in all_keys(rows, "params"):
        seen = {json.dumps(r.params.get(key), sort_keys=True, default=str) for r in rows}
        if len(seen) > 1:
            out.append(key)
    return out


def primary_metric(rows: Sequence[RunRow]) -> str | None:
    """The metric to rank by when the user has not said: one every run has, preferring
    the usual suspects, never a system metric."""
    keys = [k for k in all_keys(rows, "metrics") if not k.startswith("system.")]
    if not keys:
        return None
    counts = {k: sum(1 for r in rows if k in r.metrics) for k in keys}
    most = max(counts.values())
    common = [k for k in keys if counts[k] == most]
    for name in PREFERRED_METRICS:
        if name in common:
            return name
    return common[0]


def default_columns(rows: Sequence[RunRow]) -> list[str]:
    params = varying_params(rows) or all_keys(rows, "params")
    metrics = [k for k in all_keys(rows, "metrics") if not k.startswith("system.")]
    return [f"params.{k}" for k in params[:MAX_DEFAULT_PARAMS]] + [
        f"metrics.{k}" for k in metrics[:MAX_DEFAULT_METRICS]
    ]


def make_columns(chosen: Sequence[str], rows: Sequence[RunRow] = ()) -> list[Column]:
    """The runs table's columns: who the run is, then what it scored (metrics, the thing
    people rank by), then how it was configured (params), then its bookkeeping."""
    metrics, params = [], []
    for key in chosen:
        group, _, name = key.partition(".")
        if group == "metrics" and name:
            metrics.append(Column(key, name, group, numeric=True))
        elif group == "params" and name:
            numeric = is_numeric(r.params.get(name) for r in rows)
            params.append(Column(key, name, group, numeric=numeric))
    return [
        Column("number", "#", "run", numeric=True),
        Column("name", "name", "run"),
        *metrics,
        *params,
        Column("status", "status", "info"),
        Column("started", "started", "info"),
        Column("duration", "duration", "info", numeric=True),
    ]


def column_groups(columns: Sequence[Column]) -> list[tuple[str, int]]:
    """Consecutive runs of one group, for the header row above the column names."""
    out: list[tuple[str, int]] = []
    for c in columns:
        if out and out[-1][0] == c.group:
            out[-1] = (c.group, out[-1][1] + 1)
        else:
            out.append((c.group, 1))
    return out


def sort_rows(rows: list[RunRow], column: str | None, descending: bool) -> list[RunRow]:
    """Stable sort; runs without the value always go last, whatever the direction."""
    if not column:
        return rows
    have = [r for r in rows if r.get(column) is not None]
    missing = [r for r in rows if r.get(column) is None]

    def key(r):
        v = r.get(column)
        return (0, v, "") if isinstance(v, int | float) else (1, 0, json.dumps(v, default=str))

    return sorted(have, key=key, reverse=descending) + missing


def best_run(rows: Sequence[RunRow], metric: str | None) -> RunRow | None:
    scored = [r for r in rows if metric and r.metrics.get(metric) is not None]
    if not scored:
        return None
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda r: r.metrics[metric])


def best_values(rows: Sequence[RunRow], columns: Sequence[Column]) -> dict[str, float]:
    """The best value of each metric column, to highlight it."""
    out = {}
    for c in columns:
        if c.group != "metrics":
            continue
        vals = [r.get(c.key) for r in rows if isinstance(r.get(c.key), int | float)]
        if vals:
            out[c.key] = min(vals) if c.lower_better else max(vals)
    return out


# -- compare ----------------------------------------------------------------------------


@dataclass
class CompareRow:
    key: str
    values: list[Any]
    differs: bool
    best: int | None = None  # index of the best run, for metrics
    deltas: list[tuple[float, float | None] | None] = field(default_factory=list)
    lower_better: bool | None = None


def _same(values: Sequence[Any]) -> bool:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values}) <= 1


def compare_params(runs: Sequence[RunRow]) -> list[CompareRow]:
    keys = all_keys(runs, "params")
    rows = [CompareRow(k, [r.params.get(k) for r in runs], False) for k in keys]
    for row in rows:
        row.differs = not _same(row.values)
    return rows


def compare_metrics(runs: Sequence[RunRow]) -> list[CompareRow]:
    """Each metric's value per run and its change against the first run (the baseline):
    (absolute delta, relative delta or None when the baseline is zero)."""
    out = []
    for k in all_keys(runs, "metrics"):
        values = [r.metrics.get(k) for r in runs]
        lower = lower_is_better(k)
        row = CompareRow(k, values, not _same(values), lower_better=lower)
        present = [(v, i) for i, v in enumerate(values) if v is not None]
        if len(present) > 1 and row.differs:
            row.best = (min if lower else max)(present)[1]
        base = values[0]
        for v in values:
            if v is None or base is None:
                row.deltas.append(None)
            else:
                row.deltas.append((v - base, (v - base) / abs(base) if base else None))
        out.append(row)
    return out


def is_numeric(values: Iterable[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )
