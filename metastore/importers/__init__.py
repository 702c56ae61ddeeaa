"""Importers: bring runs in from the tools people already use.

One module (or package) per source tool, each an `Importer` (the Protocol below):

    NAME: str                                    # "mlflow", "tensorboard", …
    def detect(path: Path) -> bool               # cheap: does this look like my format?
    def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None

An importer that also reads a source given by URL (MLflow's tracking database) is a
`UrlImporter`: `accepts_url(url)`, `import_url_source(store, url, options, report)` and
the `URL_OPTIONS` it takes. Modules are registered here, and third-party packages can
add their own through the `metastore.importers` entry-point group (the entry point names
a module with the same attributes).

Every importer hands its runs to the one writer (`writer.Writer`), which makes imports
idempotent (a run whose `source`/`source_id` is already in the store is not written
again, but completed with the metric points, params and lineage the store lacks),
writes runs in batches (`create_runs`, one transaction) and keeps the counts. The
importer counts what the source holds (`found`), with the file and the reason for every
run it skips (`ImportReport.skip`), its warnings (`ImportReport.warn`) and what it
leaves out by kind (`ImportReport.leave_out`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Protocol

from metastore.errors import InvalidValue, MetastoreError


class Importer(Protocol):
    """What an importer module offers (a module, or any object, with these attributes).

    An importer reads its source into `RunRecord`s and hands them to the one writer
    (`writer.Writer`); it never opens a database itself."""

    NAME: str

    def detect(self, path: Path) -> bool:
        """Cheap: does `path` look like this importer's format?"""

    def import_source(self, store, path: Path, options: ImportOptions, report: ImportReport) -> None:
        """Import everything at `path`, counting it in `report`."""


class UrlImporter(Importer, Protocol):
    """An importer that also reads a source given by URL (MLflow's tracking database)."""

    URL_OPTIONS: frozenset[str]

    def accepts_url(self, url: str) -> bool: ...

    def import_url_source(self, store, url: str, options: ImportOptions, report: ImportReport) -> None: ...


#: Built-in importers, in detection order (the most specific formats first).
BUILTIN = {
    "bundle": "metastore.importers.bundle",
    "mlflow": "metastore.importers.mlflow",
    "wandb": "metastore.importers.wandb",
    "dvc": "metastore.importers.dvc",
    "tensorboard": "metastore.importers.tensorboard",
    "neptune": "metastore.importers.neptune",
    "openlineage": "metastore.importers.openlineage",
    "csv": "metastore.importers.table",
}


class ImportFailed(MetastoreError):
    """A source that cannot be imported at all (unreadable, not the format named)."""


@dataclass
class ImportOptions:
    experiment: str | None = None  # put every run in this experiment
    dry_run: bool = False  # read and count, write nothing
    copy: bool = True  # copy artifacts into the blob store (False: reference by URI)
    extra: dict = field(default_factory=dict)  # source-specific (e.g. csv column mapping)
    #: called as progress(done, total) while importing; the CLI draws a bar with it
    progress: Callable[[int, int], None] = lambda done, total: None


@dataclass
class ImportReport:
    """What a source held and what became of it. Nothing is lost silently: every run
    in the source is imported, already present, or skipped with a reason."""

    source: str
    path: str
    found: int = 0  # runs the source holds
    imported: int = 0
    already_present: int = 0
    #: runs already present that this source completed (new metric points, params or
    #: lineage: a repository imported after its `dvc exp show --json`); part of
    #: already_present
    enriched: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or run, reason)
    metrics: int = 0  # metric points written
    params: int = 0
    assets: int = 0  # distinct asset versions the imported runs used or produced
    edges: int = 0  # lineage edges written (used, produced, derived_from)
    aliases: int = 0  # aliases set or moved (MLflow registry aliases)
    warnings: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    #: what the source holds that metastore does not import, by kind: {"histograms": 12}
    left_out: dict[str, int] = field(default_factory=dict)
    #: asset version ids counted in `assets` (each version once, however many runs link it)
    _versions: set = field(default_factory=set, repr=False)

    def skip(self, where: str, reason: str) -> None:
        """A run of the source not imported, and why: the one way every importer reports
        it (listed in `skipped`, and once among the warnings as "skipped WHERE: REASON")."""
        self.skipped.append((str(where), reason))
        self.warnings.append(f"skipped {where}: {reason}")

    def warn(self, where: str, message: str) -> None:
        """Something of the source not carried over whole ("WHERE: MESSAGE"), the one
        format of every importer's warnings."""
        self.warnings.append(f"{where}: {message}")

    def leave_out(self, kind: str, n: int = 1) -> None:
        """Count `n` items of `kind` (plural: "histograms", "images") not imported."""
        if n:
            self.left_out[kind] = self.left_out.get(kind, 0) + n

    def count_versions(self, ids) -> None:
        """Count asset versions once each, however many runs use or produce them."""
        for av_id in ids:
            if av_id not in self._versions:
                self._versions.add(av_id)
                self.assets += 1

    @property
    def complete(self) -> bool:
        return self.found == self.imported + self.already_present + len(self.skipped)

    def summary(self) -> str:
        text = (
            f"{self.source}: {self.found} runs found, {self.imported} imported, "
            f"{self.already_present} already present"
            + (f" ({self.enriched} completed with what this source adds)" if self.enriched else "")
            + f", {len(self.skipped)} skipped; "
            f"{self.params} params, {self.metrics} metric points, "
            f"{self.assets} asset versions, {self.edges} edges"
            + (f", {self.aliases} aliases" if self.aliases else "")
        )
        if self.left_out:
            text += "; not imported: " + ", ".join(
                f"{n} {kind}" for kind, n in sorted(self.left_out.items())
            )
        return text

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "path": self.path,
            "found": self.found,
            "imported": self.imported,
            "already_present": self.already_present,
            "enriched": self.enriched,
            "skipped": [{"where": w, "reason": r} for w, r in self.skipped],
            "metrics": self.metrics,
            "params": self.params,
            "assets": self.assets,
            "edges": self.edges,
            "aliases": self.aliases,
            "left_out": dict(self.left_out),
            "warnings": self.warnings,
            "run_ids": self.run_ids,
        }


def registry() -> dict[str, str]:
    """Source name → module path, built-ins first, then entry points."""
    names = dict(BUILTIN)
    for ep in entry_points(group="metastore.importers"):
        names.setdefault(ep.name, ep.value)
    return names


def load(source: str) -> ModuleType:
    modules = registry()
    if source not in modules:
        raise InvalidValue(
            f"unknown import source {source!r}", hint=f"one of: {', '.join(modules)}"
        )
    return importlib.import_module(modules[source])


def detect(path: str | Path) -> str:
    """The source format of `path`, or an error listing what was tried."""
    path = Path(path)
    if not path.exists():
        raise InvalidValue(f"no such file or directory: {path}")
    for name in registry():
        try:
            module = load(name)
        except ImportError:
            continue
        if module.detect(path):
            return name
    raise ImportFailed(
        f"cannot tell what tool wrote {path}",
        hint=f"name the source: metastore import SOURCE PATH (one of: {', '.join(registry())})",
    )


def import_path(
    store,
    path: str | Path,
    source: str | None = None,
    *,
    experiment: str | None = None,
    dry_run: bool = False,
    copy: bool = True,
    progress: Callable[[int, int], None] | None = None,
    **extra,
) -> ImportReport:
    """Import everything at `path` (detecting the source tool unless named). `path`
    may also be the SQLAlchemy URL of an MLflow tracking database."""
    options = ImportOptions(experiment=experiment, dry_run=dry_run, copy=copy, extra=extra)
    if progress is not None:
        options.progress = progress
    if "://" in str(path):
        url = str(path)
        name, module = _for_url(url, source)
        unknown = set(extra) - set(getattr(module, "URL_OPTIONS", ()))
        if unknown:
            raise InvalidValue(f"{', '.join(sorted(unknown))}: not options of the {name} importer")
        report = ImportReport(source=name, path=url)
        module.import_url_source(store, url, options, report)
        return report
    path = Path(path)
    if not path.exists():
        raise InvalidValue(f"no such file or directory: {path}")
    source = source or detect(path)
    module = load(source)
    report = ImportReport(source=source, path=str(path))
    module.import_source(store, path, options, report)
    return report


def _for_url(url: str, source: str | None) -> tuple[str, ModuleType]:
    """The importer that reads the source at `url` (named, or the first that accepts it)."""
    names = [source] if source else list(registry())
    for name in names:
        try:
            module = load(name)
        except ImportError:
            continue
        if hasattr(module, "import_url_source") and (source or module.accepts_url(url)):
            return name, module
    if source:
        raise InvalidValue(f"the {source} importer reads files and folders, not URLs")
    raise ImportFailed(f"no importer reads {url.split('://', 1)[0]}:// URLs",
                       hint="MLflow tracking databases: sqlite:///mlflow.db, postgresql://…")
