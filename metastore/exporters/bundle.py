"""The portable bundle: a store (or one experiment of it) as JSON records plus blobs.

    out/                              (or the same tree inside out.tar.gz)
      bundle.json                     header: format, version, counts, experiments
      runs.jsonl                      one Run record per line, whole metric histories
      assets.jsonl                    one AssetVersion record per line
      edges.jsonl                     one lineage Edge per line (used, produced, derived_from,
                                      reproduces)
      aliases.jsonl                   one alias set now per line
      alias_moves.jsonl               every move of those assets' aliases: who, when, why
      blobs/sha256/ab/cdef…           the content of every version kept in the blob store

Every record validates against `schema/bundle.schema.json`, which is generated from the
pydantic models below (`bundle_json_schema()`). `metastore import bundle OUT` reads it
back into any store (metastore.importers.bundle). Run ids are kept, so lineage and
idempotency survive the trip; asset versions get new ids in the target store (their
digests identify them) and the edges are re-pointed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from metastore import params as param_codec
from metastore.blobs import DIR_MEDIA_TYPE
from metastore.errors import InvalidValue
from metastore.records import (
    MetricPoint,
    NoteRecord,
    RunFields,
    RunRecord,
    RunStatus,
    VersionRecord,
)

FORMAT = "metastore-bundle"
VERSION = 1
HEADER = "bundle.json"
RUNS = "runs.jsonl"
ASSETS = "assets.jsonl"
EDGES = "edges.jsonl"
ALIASES = "aliases.jsonl"
ALIAS_MOVES = "alias_moves.jsonl"
BLOBS = "blobs"
SCHEMA_ID = "https://github.com/metastore/metastore/schema/bundle.schema.json"


# -- the records -------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamEntry(_Record):
    """A typed param: `text` is the exact stored form (read back with `type`);
    `value` the same as JSON for other readers (null when not representable, e.g. NaN)."""

    key: str
    type: Literal["number", "text", "bool", "json"]
    text: str
    value: Any = None


class MetricEntry(MetricPoint):
    """One point of a metric's history."""

    model_config = _Record.model_config
    step: int
    timestamp: datetime
    value: float


class NoteEntry(NoteRecord):
    model_config = _Record.model_config
    time: datetime


class ExperimentEntry(_Record):
    name: str
    description: str | None = None
    created: datetime | None = None
    tags: dict[str, str | None] = Field(default_factory=dict)


class RunEntry(RunFields):
    """A run with everything that hangs off it, except lineage (in edges.jsonl): the
    run's own fields as every record has them (`metastore.records.RunFields`), with
    params typed exactly and whole metric histories."""

    model_config = _Record.model_config
    id: str
    experiment: str
    number: int
    status: RunStatus
    started: datetime
    context: dict[str, Any] | None = None
    params: list[ParamEntry] = Field(default_factory=list)
    metrics: list[MetricEntry] = Field(default_factory=list)
    tags: dict[str, str | None] = Field(default_factory=dict)
    notes: list[NoteEntry] = Field(default_factory=list)


class AssetVersionEntry(VersionRecord):
    """One asset version. `uri` "blob:" means the content is in the bundle's blobs/
    under its digest (a directory: its manifest blob and every file's blob). `tags`
    are the version's, `asset_tags` its asset's (the same on every version of it)."""

    model_config = _Record.model_config
    tags: dict[str, str | None] = Field(default_factory=dict)
    asset_tags: dict[str, str | None] = Field(default_factory=dict)


class EdgeEntry(_Record):
    """Data flows from src to dst (run ids and asset version ids of this bundle)."""

    src_type: Literal["run", "asset_version"]
    src_id: str
    dst_type: Literal["run", "asset_version"]
    dst_id: str
    relation: Literal["used", "produced", "derived_from", "reproduces"]
    role: str | None = None
    path: str | None = Field(None, description="where the run read or wrote the version")


class AliasEntry(_Record):
    """An alias set now (`model:regressor@production`) on an asset version of this bundle
    (its history stays in the exporting store). Optional file: older bundles have none."""

    kind: str
    name: str
    alias: str
    version_id: str
    author: str | None = None
    note: str | None = None


class AliasMoveEntry(_Record):
    """One move of an alias of an asset of this bundle, oldest first: set to
    `version_id` (a version of this bundle), or removed (`version_id` null); who, when,
    why. Moves to versions the bundle does not hold are left out. Optional file: older
    bundles have none (their aliases arrive with one move each, at import time)."""

    kind: str
    name: str
    alias: str
    version_id: str | None = None
    time: datetime
    author: str | None = None
    note: str | None = None


class BundleHeader(_Record):
    format: Literal["metastore-bundle"] = FORMAT
    version: int = VERSION
    created: datetime
    metastore_version: str
    source_store: str | None = None
    experiment: str | None = Field(None, description="the experiment exported, or null for all")
    counts: dict[str, int]
    experiments: list[ExperimentEntry]


RECORDS = {
    "BundleHeader": BundleHeader,
    "RunEntry": RunEntry,
    "AssetVersionEntry": AssetVersionEntry,
    "EdgeEntry": EdgeEntry,
    "AliasEntry": AliasEntry,
    "AliasMoveEntry": AliasMoveEntry,
}
#: file → the record type of its lines
FILES = {RUNS: "RunEntry", ASSETS: "AssetVersionEntry", EDGES: "EdgeEntry",
         ALIASES: "AliasEntry", ALIAS_MOVES: "AliasMoveEntry"}


def bundle_json_schema() -> dict:
    """The JSON Schema of the bundle's records: `bundle.json` validates against the
    schema itself, each line of runs.jsonl / assets.jsonl / edges.jsonl against
    `#/$defs/RunEntry`, `#/$defs/AssetVersionEntry`, `#/$defs/EdgeEntry`."""
    from pydantic.json_schema import models_json_schema

    _, schema = models_json_schema(
        [(m, "validation") for m in RECORDS.values()], ref_template="#/$defs/{model}"
    )
    defs = schema["$defs"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "metastore portable bundle",
        "description": (
            "bundle.json is a BundleHeader (this schema). Each line of runs.jsonl is a "
            "RunEntry, of assets.jsonl an AssetVersionEntry, of edges.jsonl an EdgeEntry, "
            "of aliases.jsonl (optional) an AliasEntry, of alias_moves.jsonl (optional) an "
            "AliasMoveEntry "
            "(validate a line against {'$ref': '<this schema>#/$defs/<name>'}). Blobs are "
            "files under blobs/sha256/<first 2 hex>/<other 62 hex>."
        ),
        "$ref": "#/$defs/BundleHeader",
        "$defs": defs,
        "x-files": dict(FILES, **{HEADER: "BundleHeader"}),
    }


# -- export ------------------------------------------------------------------------------


def _utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _param(key: str, value: Any) -> ParamEntry:
    ptype, _, text = param_codec.encode(value)
    if isinstance(value, float) and not math.isfinite(value):
        value = None
    return ParamEntry(key=key, type=ptype, text=text or "", value=value)


def export_bundle(store, out: str | os.PathLike, experiment: str | None = None) -> dict:
    """Write the store's live runs (or one experiment's), the asset versions they touch
    and everything upstream of those, the lineage edges among them, and the blobs, to
    `out`: a directory, or a .tar.gz / .tgz archive. Returns the counts."""
    out = Path(out)
    archive = out.name.endswith((".tar.gz", ".tgz"))
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not archive:
        raise InvalidValue(f"{out} exists and is not an empty directory")
    if archive and out.exists():
        raise InvalidValue(f"{out} exists; choose a new file name")
    target = Path(tempfile.mkdtemp(prefix="metastore-bundle-")) if archive else out
    try:
        counts = _write(store, target, experiment)
        if archive:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".partial")
            with tarfile.open(tmp, "w:gz") as tar:
                for entry in sorted(target.iterdir()):
                    tar.add(entry, arcname=entry.name)
            tmp.replace(out)
    finally:
        if archive:
            shutil.rmtree(target, ignore_errors=True)
    return counts


def _write(store, target: Path, experiment: str | None) -> dict:
    from metastore.version import __version__

    target.mkdir(parents=True, exist_ok=True)
    if experiment is not None:
        exps = [store.get_experiment(experiment)]  # NotFound with a suggestion
    else:
        exps = store.experiments()
    experiments = [
        ExperimentEntry(
            name=e.name, description=e.description, created=_utc(e.created),
            tags=store.get_tags("experiment", str(e.id)),
        )
        for e in exps
    ]
    runs = store.read_runs(experiment=experiment)
    run_ids = [r.id for r in runs]
    whole_store = experiment is None
    edges = store.list_edges(None if whole_store else run_ids)
    version_ids = {
        i for e in edges for t, i in ((e.src_type, e.src_id), (e.dst_type, e.dst_id))
        if t == "asset_version"
    }
    versions = [
        (asset, av)
        for asset in store.list_assets()
        for _, av in store.list_versions(asset.kind, asset.name)
        if whole_store or av.id in version_ids
    ]
    counts = {"experiments": len(exps), "runs": 0, "metric_points": 0, "asset_versions": 0,
              "edges": 0, "aliases": 0, "alias_moves": 0, "blobs": 0}
    with open(target / RUNS, "w") as f:
        for chunk in _chunks(run_ids, 500):
            for record in store.dump_runs(chunk):
                entry = _run_entry(record)
                counts["runs"] += 1
                counts["metric_points"] += len(entry.metrics)
                f.write(entry.model_dump_json(exclude_none=False) + "\n")
    run_ids = set(run_ids)
    blobs: set[str] = set()
    asset_tags: dict[int, dict] = {}
    with open(target / ASSETS, "w") as f:
        for asset, av in versions:
            if asset.id not in asset_tags:
                asset_tags[asset.id] = store.get_tags("asset", str(asset.id))
            # an external reference whose creator is not exported keeps no dangling id
            created_by = av.created_by if av.created_by in run_ids else None
            entry = AssetVersionEntry(
                id=av.id, kind=asset.kind, name=asset.name, version=av.version,
                digest=av.digest, size=av.size, uri=av.uri, media_type=av.media_type,
                meta=json.loads(av.meta) if av.meta else None, created=_utc(av.created),
                created_by=created_by, tags=store.get_tags("asset_version", av.id),
                asset_tags=asset_tags[asset.id],
            )
            f.write(entry.model_dump_json() + "\n")
            counts["asset_versions"] += 1
            if av.uri == "blob:":
                blobs.add(av.digest)
                if av.media_type == DIR_MEDIA_TYPE:
                    with store.open_blob(av.digest) as m:
                        manifest = json.load(m)
                    blobs.update(e["digest"] for e in manifest["files"].values())
    with open(target / EDGES, "w") as f:
        for e in edges:
            f.write(
                EdgeEntry(
                    src_type=e.src_type, src_id=e.src_id, dst_type=e.dst_type,
                    dst_id=e.dst_id, relation=e.relation, role=e.role, path=e.path,
                ).model_dump_json()
                + "\n"
            )
            counts["edges"] += 1
    exported = {av.id for _, av in versions}
    with open(target / ALIASES, "w") as f:
        for a in store.list_aliases():
            if a.version_id in exported:
                f.write(AliasEntry(kind=a.kind, name=a.name, alias=a.alias, version_id=a.version_id,
                                   author=a.author, note=a.note).model_dump_json() + "\n")
                counts["aliases"] += 1
    exported_assets = {(asset.kind, asset.name) for asset, _ in versions}
    with open(target / ALIAS_MOVES, "w") as f:
        for m in store.alias_history():
            if (m.kind, m.name) in exported_assets and (m.version_id is None or m.version_id in exported):
                f.write(AliasMoveEntry(kind=m.kind, name=m.name, alias=m.alias,
                                       version_id=m.version_id, time=_utc(m.time), author=m.author,
                                       note=m.note).model_dump_json() + "\n")
                counts["alias_moves"] += 1
    for digest in sorted(blobs):
        dest = target / BLOBS / "sha256" / digest[:2] / digest[2:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with store.open_blob(digest) as src, open(dest, "wb") as dst:  # verified on read
            shutil.copyfileobj(src, dst, 1 << 20)
        counts["blobs"] += 1
    header = BundleHeader(
        created=datetime.now(UTC),
        metastore_version=__version__,
        source_store=getattr(store, "url", None),
        experiment=experiment,
        counts=counts,
        experiments=experiments,
    )
    (target / HEADER).write_text(header.model_dump_json(indent=2) + "\n")
    return counts


def _chunks(items: list, n: int) -> Iterable[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _run_entry(r: RunRecord) -> RunEntry:
    """Times leave as UTC with their zone, as every record of the bundle has them."""
    fields = r.model_dump(include=set(RunFields.model_fields) | {"id", "experiment", "number",
                                                                 "context", "tags"})
    fields["started"], fields["ended"] = _utc(r.started), _utc(r.ended)
    return RunEntry(
        **fields,
        params=[_param(k, v) for k, v in sorted(r.params.items())],
        metrics=[{**m.model_dump(), "timestamp": _utc(m.timestamp)} for m in r.metrics],
        notes=[{**n.model_dump(), "time": _utc(n.time)} for n in r.notes],
    )


def run_record(entry: RunEntry) -> RunRecord:
    """The RunRecord a bundle's run entry describes (lineage aside)."""
    return RunRecord(
        **entry.model_dump(exclude={"params", "number"}),
        params={p.key: param_codec.decode(p.type, None, p.text) for p in entry.params},
    )


# -- reading a bundle back (used by metastore.importers.bundle) --------------------------


def is_bundle_dir(path: Path) -> bool:
    header = path / HEADER
    if not header.is_file():
        return False
    try:
        return json.loads(header.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False
