"""Read handles: a run or an asset version bound to the store it came from.

Handles fetch lazily through the `Store` interface, so they work the same on a local
database and through a metastore server.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from metastore.blobs import DIR_MEDIA_TYPE
from metastore.errors import InvalidValue
from metastore.models import Asset, AssetVersion, Metric, Note, Run
from metastore.records import MetricSeries, NoteRecord, RunDetail, RunFields, VersionLink

if TYPE_CHECKING:
    from metastore.backends.base import Backend


class RunHandle:
    """A run. Its recorded fields (id, number, name, status, started, ended, user, host,
    git_commit, git_branch, git_dirty, command, source, source_id, parent_id) are
    attributes; params, metrics, tags, notes, inputs and outputs are fetched on access."""

    def __init__(self, store: Backend, row: Run):
        self.store = store
        self.row = row

    def __getattr__(self, name: str) -> Any:
        row = self.__dict__.get("row")
        if row is not None and name in type(row).model_fields:
            return getattr(row, name)
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"<Run {self.experiment}#{self.row.number} {self.row.name or ''} {self.row.status}>"

    def refresh(self) -> RunHandle:
        self.row = self.store.resolve_run(self.row.id)
        return self

    @property
    def experiment(self) -> str:
        return self.store.experiment_name(self.row.experiment_id)

    @property
    def ref(self) -> str:
        """The human reference, e.g. "diabetes#4"."""
        return f"{self.experiment}#{self.row.number}"

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (None while running)."""
        if self.row.ended is None:
            return None
        return (self.row.ended - self.row.started).total_seconds()

    @property
    def context(self) -> dict:
        return json.loads(self.row.context) if self.row.context else {}

    @property
    def params(self) -> dict[str, Any]:
        return self.store.get_params(self.row.id)

    @property
    def metrics(self) -> dict[str, float]:
        """Last value of each metric."""
        return {k: m.last for k, m in self.store.get_metric_summaries(self.row.id).items()}

    def metric_summary(self, key: str | None = None):
        summaries = self.store.get_metric_summaries(self.row.id)
        return summaries if key is None else summaries[key]

    def metric_history(self, key: str) -> list[Metric]:
        """Every recorded point of a metric, by step, one object each (with its
        timestamp); for long histories `metric_series` is columnar and can downsample."""
        return self.store.get_metric_history(self.row.id, key)

    def metric_series(self, key: str, max_points: int | None = None) -> History:
        """A metric's history as numpy arrays (`steps`, `values`), in step order. With
        `max_points`, at most that many points: the first and last, and the lowest and
        highest of each stretch between (spikes survive). `count` is the recorded total."""
        series = self.store.metric_series(self.row.id, key, max_points)
        return History.of(series)

    @property
    def tags(self) -> dict[str, str | None]:
        return self.store.get_tags("run", self.row.id)

    @property
    def notes(self) -> list[Note]:
        return self.store.get_notes(self.row.id)

    @property
    def inputs(self) -> list[VersionHandle]:
        return [
            VersionHandle(self.store, a, v, role)
            for a, v, role in self.store.run_assets(self.row.id, "inputs")
        ]

    @property
    def outputs(self) -> list[VersionHandle]:
        return [
            VersionHandle(self.store, a, v, role)
            for a, v, role in self.store.run_assets(self.row.id, "outputs")
        ]

    def detail(self) -> RunDetail:
        """Everything recorded about the run, as one record."""
        r = self.row
        notes = self.notes
        # read_runs carries each link's path (where the run read or wrote the version)
        [view] = self.store.read_runs(run_ids=[r.id], include_deleted=True)
        return RunDetail(
            **r.model_dump(include=set(RunFields.model_fields) | {"id", "number"}),
            experiment=self.experiment, params=self.params,
            metrics=self.metrics, tags=self.tags, context=self.context,
            notes=[NoteRecord.model_validate(n) for n in notes],
            has_note=any(n.kind == "note" for n in notes),
            inputs=view.inputs, outputs=view.outputs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Everything about the run as plain JSON-ready data (times as UTC ISO text)."""
        return _plain(self.detail().model_dump())


@dataclass(frozen=True)
class History:
    """A metric's history in columns: `steps` (int64) and `values` (float64) arrays."""

    key: str
    steps: Any
    values: Any
    count: int

    @classmethod
    def of(cls, series: MetricSeries) -> History:
        import numpy as np

        return cls(series.key, np.asarray(series.steps, dtype=np.int64),
                   np.asarray(series.values, dtype=np.float64), series.count)

    def __len__(self) -> int:
        return len(self.values)


class VersionHandle:
    """One version of an asset: kind, name, version, digest, size, uri, media_type, meta,
    created_by; `open()` and `path()` give the content back, verified against the digest."""

    def __init__(self, store: Backend, asset: Asset, version: AssetVersion, role: str | None = None):
        self.store = store
        self.asset = asset
        self.row = version
        self.role = role

    kind = property(lambda self: self.asset.kind)
    name = property(lambda self: self.asset.name)
    id = property(lambda self: self.row.id)
    version = property(lambda self: self.row.version)
    digest = property(lambda self: self.row.digest)
    size = property(lambda self: self.row.size)
    uri = property(lambda self: self.row.uri)
    media_type = property(lambda self: self.row.media_type)
    created = property(lambda self: self.row.created)
    created_by = property(lambda self: self.row.created_by)

    @property
    def ref(self) -> str:
        """The text form used by lineage and the CLI, e.g. "model:regressor@3"."""
        return f"{self.kind}:{self.name}@{self.version}"

    @property
    def aliases(self) -> list[str]:
        """The aliases that point at this version now (`production`, …)."""
        return [a.alias for a in self.store.list_aliases(version_id=self.row.id)]

    @property
    def meta(self) -> dict:
        return json.loads(self.row.meta) if self.row.meta else {}

    @property
    def is_directory(self) -> bool:
        return self.row.media_type == DIR_MEDIA_TYPE

    def __repr__(self) -> str:
        return f"<{self.ref} {self.digest[:12]}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, VersionHandle) and other.row.id == self.row.id

    def __hash__(self) -> int:
        return hash(self.row.id)

    def open(self) -> BinaryIO:
        """The content as a binary file object, verified against the digest."""
        if self.is_directory:
            raise InvalidValue(f"{self.ref} is a directory; use .path() to get its files")
        if self.row.uri != "blob:":
            return _open_external(self.row.uri)
        return self.store.open_blob(self.row.digest)

    def read_bytes(self) -> bytes:
        with self.open() as f:
            return f.read()

    def path(self, target: str | Path | None = None) -> Path:
        """The content as a local file or directory (copied out of the blob store,
        verified). Without `target` it goes to a cache folder kept beside the blobs."""
        if self.row.uri.startswith("file://") and target is None:
            from urllib.parse import unquote, urlparse

            return Path(unquote(urlparse(self.row.uri).path))
        if target is None:
            target = self._cache_path()
        target = Path(target)
        if target.exists() and _complete(target):
            return target
        tmp = target.with_name(target.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        tmp.parent.mkdir(parents=True, exist_ok=True)
        if self.is_directory:
            tmp.mkdir()
            manifest = json.loads(self.store.open_blob(self.row.digest).read())
            for rel, entry in manifest["files"].items():
                dest = (tmp / rel).resolve()
                if not dest.is_relative_to(tmp.resolve()):
                    raise InvalidValue(f"{self.ref}: manifest path escapes its folder: {rel}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with self.store.open_blob(entry["digest"]) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        else:
            with self.open() as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        tmp.rename(target)
        return target

    def _cache_path(self) -> Path:
        """Where `path()` puts the content: cache/DIGEST/FILENAME, never anywhere else,
        whatever the stored names say (a store written before names were checked, or a
        hostile server, could hold "../../x" or "/abs")."""
        from metastore.records import validate_filename

        filename = self.meta.get("filename")
        try:
            validate_filename(filename)
        except InvalidValue:
            filename = f"{self.name}-v{self.version}".replace("/", "_").replace("\\", "_")
            filename = filename.lstrip(".") or f"version-{self.version}"
        folder = Path(self.store.cache_dir()).resolve() / _one_part(self.row.digest)
        target = folder / filename
        if target.resolve().parent != folder:
            raise InvalidValue(f"{self.ref}: its cache path leaves the cache folder: {target}")
        return target

    def record(self) -> VersionLink:
        return VersionLink(
            id=self.row.id, kind=self.kind, name=self.name, version=self.version,
            digest=self.digest, size=self.size, uri=self.uri, media_type=self.media_type,
            meta=self.meta, created=self.created, created_by=self.created_by, role=self.role,
        )

    def to_dict(self) -> dict[str, Any]:
        return _plain(self.record().model_dump())


def _complete(target: Path) -> bool:
    return not target.with_name(target.name + ".partial").exists()


def _open_external(uri: str) -> BinaryIO:
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return open(unquote(urlparse(uri).path), "rb")
    raise InvalidValue(
        f"content at {uri} is referenced, not stored; fetch it with the tool that owns it"
    )


def _plain(value: Any) -> Any:
    """JSON-ready data; stored times are naive UTC, written with their zone."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _one_part(digest: str) -> str:
    """A digest as one folder name ("sha256 hex", "md5:…"; nothing that climbs)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", digest or ""):
        raise InvalidValue(f"not a content digest: {digest[:80]!r}")
    return digest
