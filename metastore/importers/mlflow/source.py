"""What the two MLflow readers (the `mlruns/` file store, `files.FileReader`; a
tracking database, `sql.SQLReader`) hand over: `SourceRun`s, read alike from either
layout, and the `Reader` Protocol both implement. Mapping a `SourceRun` to a
`RunRecord` (`mapping.map_run`) does not know which layout it came from."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from metastore.importers import ImportReport


@dataclass
class Dataset:
    name: str
    digest: str
    source: str | None = None
    source_type: str | None = None
    schema: str | None = None
    profile: str | None = None


@dataclass
class SourceRun:
    """One MLflow run as read from either layout, before mapping."""

    run_id: str
    where: str  # file or table, for messages
    experiment: str
    experiment_id: str
    name: str | None = None
    status: str = "FINISHED"
    start_ms: int | None = None
    end_ms: int | None = None
    user: str | None = None
    deleted: bool = False
    experiment_deleted: bool = False
    artifact_uri: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, int, float, int]] = field(default_factory=list)  # key, ts, value, step
    datasets: list[tuple[Dataset, str | None]] = field(default_factory=list)  # (dataset, context)
    models: list[tuple[str, str, str | None]] = field(default_factory=list)  # (id, name, location)

    @property
    def parent(self) -> str | None:
        return self.tags.get("mlflow.parentRunId")


@dataclass
class RegisteredVersion:
    """A version of a model in MLflow's model registry."""

    version: int
    source: str | None = None  # where MLflow took it from: models:/m-…, runs:/<run>/<path>, a path
    storage_location: str | None = None  # where its files are (MLflow 2.x+)
    run_id: str | None = None  # the MLflow run that produced it
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


@dataclass
class RegisteredModel:
    """A registered model of MLflow's model registry, its versions and aliases."""

    name: str
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    versions: list[RegisteredVersion] = field(default_factory=list)  # by version number
    aliases: dict[str, int] = field(default_factory=dict)  # alias → version number


class Reader(Protocol):
    """What a reader of one MLflow layout offers the import."""

    def runs(self, report: ImportReport) -> Iterator[SourceRun]:
        """Every run of the store (counting each in `report.found`; an unreadable one is
        skipped there with the reason)."""

    def experiment_tags(self, exp_id: str) -> dict[str, str]:
        """The tags of an experiment (read while reading the runs)."""

    def registry(self, report: ImportReport) -> list[RegisteredModel]:
        """The model registry: registered models with their versions and aliases (empty
        without one; an unreadable entry is a warning)."""

    def logged_model(self, model_id: str) -> str | None:
        """Where an MLflow 3 logged model's files are (read while reading the runs)."""

    def local_path(self, uri: str) -> Path | None:
        """The local file or folder of an artifact URI, re-rooted when the store moved."""

    def artifact_dir(self, src: SourceRun) -> Path | None:
        """The run's artifact folder, when it is on this machine."""


def listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def safe_url(url: str) -> str:
    """A URL fit for messages: its password masked."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def is_local(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri and not uri.startswith("mlflow-artifacts:")


def _uri_path(uri: str) -> Path:
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    return Path(uri)


def reroot(uri: str | None, roots: list[Path]) -> Path | None:
    """The local folder of an artifact URI; when the recorded absolute path is gone
    (the store was copied or rsynced), the longest tail of it found under a root."""
    if not uri or not is_local(uri):
        return None
    p = _uri_path(uri)
    if p.exists():
        return p
    parts = p.parts[1:] if p.is_absolute() else p.parts
    for i in range(len(parts)):
        for root in roots:
            candidate = root.joinpath(*parts[i:])
            if candidate.exists():
                return candidate
    return None
