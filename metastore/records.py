"""The shapes that cross a boundary, defined once.

A run written in one call, a metric point, a note, a run read back with its values:
the Python API, the store backends, the server's request and response bodies, the HTTP
client and the JSON outputs all use these pydantic models, so a field added here reaches
every door. The meta-model's tables (`metastore.models`) are the other half of the
bottom layer; these records are what travels, those rows are what is stored.

Validation that must give the same answer locally and through a server lives here too
(`validate_key`, `validate_asset_name`, `validate_filename`,
`validate_metric_value`): the server checks with the very same code.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator

from metastore.errors import InvalidValue
from metastore.vocabulary import RUN_STATUSES

#: Steps beyond this do not fit every database's BIGINT once summed or offset.
MAX_STEP = 2**62
MAX_TEXT = 250
KEY_FORBIDDEN = set("\n\r\t\x00")

RunStatus = Literal["running", "finished", "failed", "killed", "crashed"]
assert RunStatus.__args__ == RUN_STATUSES  # type: ignore[attr-defined]


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


def validate_asset_name(name: str) -> str:
    """An asset name may look like a path or URL ("data/train.csv", "/data/x.csv",
    "s3://bucket/x": importers name datasets so), never one that climbs out of a
    folder ('..' parts). `VersionHandle.path()` flattens names anyway; this refuses the
    hostile ones where they are written."""
    validate_key(name, "asset name")
    if ".." in name.replace("\\", "/").split("/"):
        raise InvalidValue(
            f"asset name {name!r} could be read as a file path climbing out of its folder",
            hint="use a name such as 'regressor' or 'data/train.csv', without '..' parts",
        )
    return name


def validate_filename(filename: Any) -> str:
    """A version's `filename` (meta) is one file name: no folder, no climbing out."""
    if (not isinstance(filename, str) or not filename.strip() or len(filename) > 255
            or filename in (".", "..") or set(filename) & (KEY_FORBIDDEN | {"/", "\\"})):
        raise InvalidValue(
            f"a version's filename must be one file name, not {str(filename)[:80]!r}",
            hint="e.g. meta={'filename': 'model.pkl'}: no '/', '\\', '..' or control characters",
        )
    return filename


def validate_step(step: Any) -> int | None:
    """A step is a whole number within ±2**62 (it is summed and offset inside a BIGINT)."""
    if step is None:
        return None
    if hasattr(step, "item") and callable(step.item) and not isinstance(step, bool):
        try:
            step = step.item()  # numpy integers
        except (TypeError, ValueError):
            pass
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, int) or not -MAX_STEP <= step <= MAX_STEP:
        raise InvalidValue(
            f"a step is a whole number between -2**62 and 2**62, not {str(step)[:40]!r}",
            hint="count steps (0, 1, 2 …) or epochs; a time goes in timestamp=",
        )
    return step


def validate_metric_value(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"metric {key!r} must be a number, got {value!r}") from e
    is_bool = isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
    if is_bool or not math.isfinite(number):
        raise InvalidValue(f"metric {key!r} must be a finite number, got {value!r}")
    return number


ALIAS_LENGTH = 64
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def validate_alias(alias: str) -> str:
    """An alias names a version after `@` in a reference, so it cannot look like a version
    (`3`, `v3`, `latest`) and keeps to letters, digits, `_`, `.` and `-`."""
    if not isinstance(alias, str) or not alias:
        raise InvalidValue(f"an alias must be a non-empty name, got {alias!r}")
    if (len(alias) > ALIAS_LENGTH or not _ALIAS.fullmatch(alias)
            or alias.lower() == "latest" or re.fullmatch(r"[vV]?[0-9]+", alias)):
        raise InvalidValue(
            f"{alias!r} cannot be an alias",
            hint="an alias starts with a letter and has letters, digits, '_', '.' or '-'"
            f" (at most {ALIAS_LENGTH}); 'latest' and version numbers are taken",
        )
    return alias


class Record(BaseModel):
    """Base of every record: rows of the tables validate into records by attribute."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def build(cls, **fields):
        """Construct, turning pydantic's error into the InvalidValue users get elsewhere."""
        try:
            return cls(**fields)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidValue(f"{cls.__name__} {where}: {first['msg']}") from None


class MetricPoint(Record):
    """One value of a metric; without a step it follows the metric's last step."""

    key: str
    # Any, not float: validate_metric_value gives the same message locally and remotely.
    value: Any
    step: int | None = Field(default=None, ge=-MAX_STEP, le=MAX_STEP)
    timestamp: datetime | None = None

    @field_validator("step", mode="before")
    @classmethod
    def _whole_step(cls, step: Any) -> Any:
        return validate_step(step)


class MetricSeries(Record):
    """A metric's history in columns, by step: what `Backend.metric_series` returns.
    `count` is the number of recorded points; with `max_points` fewer may come back
    (`downsample`)."""

    key: str
    steps: list[int]
    values: list[float]
    count: int


def downsample(steps, values, max_points: int | None):
    """At most `max_points` of the (step, value) points, in step order: the first and
    the last, and in each of max_points/2 - 1 equal runs of points between them the
    lowest and the highest value, so spikes and dips survive. Returns (steps, values):
    numpy arrays for arrays, lists for lists."""
    n = len(values)
    if max_points is None or n <= max_points:
        return steps, values
    if max_points < 4:
        raise InvalidValue(f"max_points must be at least 4, got {max_points}")
    import numpy as np

    v = np.asarray(values, dtype=float)
    buckets = max_points // 2 - 1
    inner = n - 2
    bucket = (np.arange(inner) * buckets) // inner  # 0..buckets-1, points in order
    order = np.lexsort((v[1:-1], bucket))  # by bucket, then by value
    first = np.searchsorted(bucket[order], np.arange(buckets), side="left")
    last = np.searchsorted(bucket[order], np.arange(buckets), side="right") - 1
    keep = np.unique(np.concatenate(([0, n - 1], order[first] + 1, order[last] + 1)))
    st = np.asarray(steps)
    if isinstance(values, np.ndarray):
        return st[keep], v[keep]
    return st[keep].tolist(), v[keep].tolist()


class NoteRecord(Record):
    """A note or event on a run."""

    text: str
    kind: str = Field(default="note", max_length=16)
    author: str | None = Field(default=None, max_length=MAX_TEXT)
    time: datetime | None = None


class RunFields(Record):
    """What describes a run itself, shared by the shapes it travels in."""

    name: str | None = Field(default=None, max_length=MAX_TEXT)
    parent_id: str | None = Field(default=None, max_length=26)
    status: RunStatus = "finished"
    started: datetime | None = None
    ended: datetime | None = None
    user: str | None = Field(default=None, max_length=MAX_TEXT)
    host: str | None = Field(default=None, max_length=MAX_TEXT)
    git_commit: str | None = Field(default=None, max_length=64)
    git_branch: str | None = Field(default=None, max_length=MAX_TEXT)
    git_dirty: bool | None = None
    command: str | None = None
    source: str | None = Field(default=None, max_length=32)
    source_id: str | None = Field(default=None, max_length=MAX_TEXT)


class RunRecord(RunFields):
    """A whole run, written in one transaction: by importers, bundles, `start_run`,
    and the server's `POST /api/runs`; and read back whole by `Backend.dump_runs`.
    `inputs`/`outputs` are (asset version id, role)."""

    experiment: str
    context: dict[str, Any] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricPoint] = Field(default_factory=list)
    tags: dict[str, Any] = Field(default_factory=dict)
    notes: list[NoteRecord] = Field(default_factory=list)
    inputs: list[tuple[str, str | None]] = Field(default_factory=list)
    outputs: list[tuple[str, str | None]] = Field(default_factory=list)
    id: str | None = Field(default=None, min_length=26, max_length=26)
    #: The run's number in its experiment when read back (`dump_runs`). On writing, the
    #: store numbers a new run next in its experiment; a record whose number is above
    #: the experiment's last one keeps it (how a bundle's runs keep their numbers).
    number: int | None = None
    #: The recording process, when it is not the one writing (a run created through a
    #: server): how a killed process is told apart from a run still going.
    pid: int | None = Field(default=None, ge=1, le=2**31 - 1)


class VersionRecord(Record):
    """An asset version with all it records: the JSON form of a version."""

    id: str
    kind: str
    name: str
    version: int
    digest: str
    size: int | None = None
    uri: str
    media_type: str | None = None
    meta: dict[str, Any] | None = None
    created: datetime | None = None
    created_by: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@{self.version}"


class VersionLink(VersionRecord):
    """An asset version as a run sees it: the version, the role it played, and the path
    the run read or wrote it at (relative to the run's working folder, when recorded)."""

    role: str | None = None
    path: str | None = None


class RunView(RunFields):
    """A run read back with what hangs off it, in one call for many runs
    (`Backend.read_runs`): the rows of `metastore runs`, table exports, the audit."""

    id: str
    experiment: str
    number: int
    status: RunStatus
    started: datetime
    params: dict[str, Any] = Field(default_factory=dict)
    #: The last value of each metric.
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str | None] = Field(default_factory=dict)
    has_note: bool = False
    inputs: list[VersionLink] = Field(default_factory=list)
    outputs: list[VersionLink] = Field(default_factory=list)

    @computed_field
    @property
    def ref(self) -> str:
        return f"{self.experiment}#{self.number}"

    @computed_field
    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        return (self.ended - self.started).total_seconds() if self.ended else None


class RunKeys(Record):
    """What a run holds, by key only (no values): what an import reads of the runs it
    imported before to tell, cheaply and in bulk, whether its source adds anything to
    them (`Backend.run_keys`)."""

    id: str
    params: list[str] = Field(default_factory=list)
    #: metric key → the steps it has a point at
    steps: dict[str, list[int]] = Field(default_factory=dict)
    #: (kind, name, relation, version id) of each asset version the run used or produced
    links: list[tuple[str, str, str, str]] = Field(default_factory=list)


class RunDetail(RunView):
    """One run with everything recorded about it: what `metastore show` prints."""

    context: dict[str, Any] | None = None
    notes: list[NoteRecord] = Field(default_factory=list)


class QueryAnswer(Record):
    """A compiled query's answer as it crosses a boundary: the column names, the rows,
    and the SQL that produced them on the store's dialect."""

    columns: list[str]
    rows: list[dict[str, Any]]
    sql: str | None = None
    dialect: str


class WalkEdge(Record):
    """One lineage edge reached by a walk; node ends are (type, id)."""

    src_type: str
    src_id: str
    dst_type: str
    dst_id: str
    relation: str
    role: str | None = None


class WalkNode(Record):
    """A node reached by a walk with the fields a graph shows (`kind`, `label`, …)."""

    type: str
    id: str
    attributes: dict[str, Any]


class Walk(Record):
    """What a lineage walk reached: nodes with their attributes, and the edges. A page
    of a walk (`limit`) carries the cursor of the next page, None on the last; with
    `count`, how many edges and nodes (besides the starts) the whole walk reaches."""

    nodes: list[WalkNode]
    edges: list[WalkEdge]
    next_cursor: str | None = None
    edge_count: int | None = None
    node_count: int | None = None


class AliasRecord(Record):
    """An alias of an asset version (`model:regressor@production`), or one move of it in
    its history: set to `version` (moved from `previous`), or removed (`version` None)."""

    kind: str
    name: str
    alias: str
    version: int | None = None
    version_id: str | None = None
    previous: int | None = None
    time: datetime
    author: str | None = None
    note: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@{self.alias}"
