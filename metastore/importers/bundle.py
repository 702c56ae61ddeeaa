"""Import a portable bundle written by `metastore export` (a directory or .tar.gz).

The format is described in metastore/exporters/bundle.py and schema/bundle.schema.json.

- Asset versions come first, in (kind, name, version) order, so a fresh store numbers
  them as the exporting store did; content is taken from the bundle's blobs and checked
  against its digest. A version whose (kind, name, digest) is already in the store is
  reused. Versions get new ids; the edges are re-pointed to them.
- Runs keep their ids (so lineage, parents and idempotency survive), their source and
  source id (a run imported from MLflow stays an MLflow run), their full metric
  histories, typed params, tags and notes, and their numbers (exp#8 stays exp#8 even
  when exp#7 was deleted and not exported), unless the target experiment has gone past
  a number already: then the run gets the next one.
  A run whose id is already in the store is "already present".
- derived_from edges between versions are added last.
- Tags of assets and of versions are set on the versions found or written.
- Aliases: every move of the bundle's history (alias_moves.jsonl) is replayed at its
  own time, with its author and note, unless the store's history holds that move
  already (an earlier import of the bundle); then each alias set now (aliases.jsonl)
  is checked and set where the replay did not leave it (older bundles have no moves).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from metastore.blobs import DIR_MEDIA_TYPE, sha256_file
from metastore.errors import MetastoreError, NotFound
from metastore.exporters.bundle import (
    ALIAS_MOVES,
    ALIASES,
    ASSETS,
    BLOBS,
    EDGES,
    HEADER,
    RUNS,
    AliasEntry,
    AliasMoveEntry,
    AssetVersionEntry,
    BundleHeader,
    EdgeEntry,
    RunEntry,
    is_bundle_dir,
    run_record,
)
from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers.writer import Writer
from metastore.records import RunRecord

NAME = "bundle"


def detect(path: Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return is_bundle_dir(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        try:
            with tarfile.open(path, "r:gz") as tar:
                for member in tar:
                    if member.name.lstrip("./") == HEADER:
                        return True
        except (OSError, tarfile.TarError, EOFError, zlib.error, ValueError, OverflowError):
            return False
    return False


@contextmanager
def opened(path: Path):
    """The bundle as a directory (a .tar.gz is unpacked to a temporary one)."""
    if path.is_dir():
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="metastore-bundle-"))
    try:
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(tmp, filter="data")  # refuses absolute paths and ../
        except (OSError, tarfile.TarError, EOFError, zlib.error, ValueError, OverflowError) as e:
            # a damaged deflate stream (zlib), a header whose time is out of range
            # (OverflowError at extraction): found by tests/importers/test_fuzz_importers.py
            raise ImportFailed(f"{path} is not a readable .tar.gz bundle ({e})") from e
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _lines(folder: Path, name: str, model, report: ImportReport, counted: bool,
           optional: bool = False):
    """(where, record) per valid line; an invalid line is skipped (and, for runs,
    counted) with its reason."""
    path = folder / name
    if not path.is_file():
        if optional:
            return
        raise ImportFailed(f"the bundle has no {name}")
    with open(path, "rb") as f:  # bytes: a line that is not UTF-8 is one invalid line
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{name} line {n}"
            if counted:
                report.found += 1
            try:
                yield where, model.model_validate_json(line)
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(x) for x in first["loc"]) or "record"
                reason = f"is not a valid {model.__name__} ({loc}: {first['msg']})"
                if counted:
                    report.skip(where, reason)
                else:
                    report.warn(where, f"not imported: {reason}")


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    path = Path(path)
    with opened(path) as folder:
        try:
            header = BundleHeader.model_validate_json((folder / HEADER).read_bytes())
        except (OSError, ValidationError) as e:
            raise ImportFailed(f"{path} has no valid {HEADER}: {str(e).splitlines()[0]}") from e
        assets = list(_lines(folder, ASSETS, AssetVersionEntry, report, counted=False))
        edges = [e for _, e in _lines(folder, EDGES, EdgeEntry, report, counted=False)]
        runs = list(_lines(folder, RUNS, RunEntry, report, counted=True))
        aliases = list(_lines(folder, ALIASES, AliasEntry, report, counted=False,
                              optional=True))
        moves = list(_lines(folder, ALIAS_MOVES, AliasMoveEntry, report, counted=False,
                            optional=True))
        total = report.found
        if not options.dry_run and options.experiment is None:
            for exp in header.experiments:
                created = store.create_experiment(exp.name, description=exp.description)
                if exp.tags:
                    store.set_tags("experiment", str(created.id), exp.tags)
        version_ids = _import_versions(store, folder, assets, options, report)
        report.count_versions(version_ids.values())
        by_run: dict[str, list[EdgeEntry]] = {}
        for e in edges:
            for t, i in ((e.src_type, e.src_id), (e.dst_type, e.dst_id)):
                if t == "run":
                    by_run.setdefault(i, []).append(e)
        done = total - len(runs)
        options.progress(done, total)
        with Writer(store, options, report, match="id") as writer:
            for where, entry in runs:
                done += 1
                record = _record(entry, where, by_run.get(entry.id, []), version_ids, options, report)
                writer.add(record, [], where, parent=entry.parent_id)
                options.progress(done, total)
        if not options.dry_run:
            # derived_from edges the store holds already (an earlier import of this
            # bundle) are not counted again: those among the versions its runs touch
            known_runs = sorted(set(writer.known))
            had = {(x.src_id, x.dst_id) for x in store.list_edges(known_runs)
                   if x.relation == "derived_from"} if known_runs else set()
            for e in edges:
                _link_after(store, e, version_ids, set(report.run_ids), set(writer.known))
                if e.relation != "derived_from":
                    continue
                src, dst = version_ids.get(e.src_id), version_ids.get(e.dst_id)
                if src and dst:
                    store.add_edge("asset_version", src, "asset_version", dst, "derived_from", e.role)
                    report.edges += (src, dst) not in had
        else:
            report.edges += sum(
                e.relation == "derived_from" and e.src_id in version_ids and e.dst_id in version_ids
                for e in edges
            )
        _import_alias_moves(store, moves, version_ids, options, report)
        _import_aliases(store, aliases, version_ids, options, report)


def _import_alias_moves(store, moves, version_ids: dict[str, str], options, report) -> None:
    """Replay the aliases' history: each move at its own time, by its own author."""
    had: dict[tuple[str, str], set] = {}
    for where, m in sorted(moves, key=lambda wm: wm[1].time):
        vid = version_ids.get(m.version_id) if m.version_id is not None else None
        if m.version_id is not None and vid is None:
            report.warn(where, f"alias {m.kind}:{m.name}@{m.alias}: a move to a version not imported")
            continue
        if options.dry_run:
            report.aliases += 1
            continue
        if (m.kind, m.name) not in had:
            had[(m.kind, m.name)] = {(h.alias, _naive(h.time)) for h in store.alias_history(m.kind, m.name)}
        if (m.alias, _naive(m.time)) in had[(m.kind, m.name)]:
            continue  # replayed by an earlier import of this bundle
        try:
            if vid is not None:
                now = {x.alias: x.version_id for x in store.list_aliases(m.kind, m.name)}
                if now.get(m.alias) == vid:
                    continue
                store.set_alias(vid, m.alias, author=m.author, note=m.note, time=m.time)
            else:
                if m.alias not in {x.alias for x in store.list_aliases(m.kind, m.name)}:
                    continue
                store.unset_alias(m.kind, m.name, m.alias, author=m.author, note=m.note, time=m.time)
        except MetastoreError as e:
            report.warn(where, f"alias {m.kind}:{m.name}@{m.alias} not moved: {e}")
            continue
        report.aliases += 1


def _import_aliases(store, aliases, version_ids: dict[str, str], options, report) -> None:
    """Point the bundle's aliases at the versions they named (set or moved here, kept in
    the alias's history with the original author and note)."""
    for where, a in aliases:
        vid = version_ids.get(a.version_id)
        if vid is None:
            report.warn(where, f"alias {a.kind}:{a.name}@{a.alias} names a version not imported")
            continue
        if options.dry_run:
            report.aliases += 1
            continue
        try:
            now = {x.alias: x.version_id for x in store.list_aliases(a.kind, a.name)}
            if now.get(a.alias) != vid:
                store.set_alias(vid, a.alias, author=a.author, note=a.note)
                report.aliases += 1
        except MetastoreError as e:
            report.warn(where, f"alias {a.kind}:{a.name}@{a.alias} not set: {e}")


def _import_versions(store, folder: Path, assets, options, report) -> dict[str, str]:
    """Bundle version id → version id in the store."""
    ids: dict[str, str] = {}
    tagged: set[str] = set()  # assets whose tags were set by this import
    for where, a in assets:
        if options.dry_run:
            ids[a.id] = a.id
            continue
        try:
            ids[a.id] = _put_version(store, folder, a)
            _add_tags(store, "asset_version", ids[a.id], a.tags)
            if a.asset_tags and f"{a.kind}:{a.name}" not in tagged:
                tagged.add(f"{a.kind}:{a.name}")
                asset, _ = store.get_version_by_id(ids[a.id])
                _add_tags(store, "asset", str(asset.id), a.asset_tags)
        except (MetastoreError, OSError, ValueError) as e:
            report.warn(where, f"{a.kind}:{a.name} v{a.version} not imported: {e}")
    return ids


def _add_tags(store, entity_type: str, entity_id: str, tags: dict) -> None:
    """The bundle's tags the store lacks (a tag the store holds keeps its value)."""
    if tags:
        have = store.get_tags(entity_type, entity_id)
        new = {k: v for k, v in tags.items() if k not in have}
        if new:
            store.set_tags(entity_type, entity_id, new)


def _blob(folder: Path, digest: str) -> Path:
    path = folder / BLOBS / "sha256" / digest[:2] / digest[2:]
    if not path.is_file():
        raise ImportFailed(f"blob {digest} is missing from the bundle")
    got, _ = sha256_file(path)
    if got != digest:
        raise ImportFailed(f"blob {digest} in the bundle is corrupt (its content hashes to {got})")
    return path


def _put_version(store, folder: Path, a: AssetVersionEntry) -> str:
    meta = dict(a.meta or {})
    if a.uri != "blob:":
        _, av = store.put_asset(
            a.kind, a.name, uri=a.uri, digest=a.digest, size=a.size,
            media_type=a.media_type, meta=meta,
        )
        return av.id
    if a.media_type == DIR_MEDIA_TYPE:
        manifest = json.loads(_blob(folder, a.digest).read_bytes())
        with tempfile.TemporaryDirectory(prefix="metastore-dir-") as tmp:
            root = Path(tmp) / (meta.get("filename") or a.name.replace("/", "_"))
            root.mkdir()
            for rel, entry in manifest["files"].items():
                dest = (root / rel).resolve()
                if not dest.is_relative_to(root.resolve()):
                    raise ImportFailed(f"directory {a.digest} escapes its folder: {rel}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(_blob(folder, entry["digest"]), dest)
            _, av = store.put_asset(a.kind, a.name, root, media_type=a.media_type, meta=meta)
    else:
        data = _blob(folder, a.digest).read_bytes()
        _, av = store.put_asset(a.kind, a.name, data, media_type=a.media_type, meta=meta)
    if av.digest != a.digest:
        raise ImportFailed(f"{a.kind}:{a.name} v{a.version} came back with digest {av.digest}")
    return av.id


def _link_after(store, e, version_ids, imported: set[str], known: set[str]) -> None:
    """What a RunRecord cannot carry: the path on a run's link to a version, and a
    reproduction's link to its original (both runs imported, or already present).
    `imported`: the runs this import wrote; `known`: those and the ones found present."""
    if e.relation == "reproduces":
        if (e.src_id in known or _exists(store, e.src_id)) and (
                e.dst_id in known or _exists(store, e.dst_id)):
            store.add_edge("run", e.src_id, "run", e.dst_id, "reproduces", e.role)
    elif e.path is not None and e.relation == "used" and e.dst_id in imported:
        if e.src_id in version_ids:
            store.link_run_asset(e.dst_id, version_ids[e.src_id], "used", e.role, e.path)
    elif e.path is not None and e.relation == "produced" and e.src_id in imported:
        if e.dst_id in version_ids:
            store.link_run_asset(e.src_id, version_ids[e.dst_id], "produced", e.role, e.path)


def _exists(store, run_id: str) -> bool:
    try:
        return store.resolve_run(run_id).id == run_id
    except NotFound:
        return False


def _record(entry: RunEntry, where, edges, version_ids, options, report) -> RunRecord:
    """The RunRecord for a bundle run (its parent is set by the writer)."""
    inputs, outputs, missing = [], [], 0
    for e in edges:
        if e.relation == "used" and e.dst_id == entry.id and e.src_type == "asset_version":
            pair, vid = inputs, version_ids.get(e.src_id)
        elif e.relation == "produced" and e.src_id == entry.id and e.dst_type == "asset_version":
            pair, vid = outputs, version_ids.get(e.dst_id)
        else:
            continue
        if vid is None:
            missing += 1
        else:
            pair.append((vid, e.role))
    if missing:
        report.warn(where, f"{missing} lineage edge(s) point at asset versions not imported")
    record = run_record(entry)
    record.experiment = options.experiment or entry.experiment
    record.number = entry.number  # kept where the experiment has not gone past it
    record.started, record.ended = _naive(entry.started), _naive(entry.ended)
    for point in record.metrics:
        point.timestamp = _naive(point.timestamp)
    for note in record.notes:
        note.time = _naive(note.time)
    record.inputs, record.outputs, record.parent_id = inputs, outputs, None
    return record


def _naive(t):
    """Stored times are naive UTC."""
    from datetime import UTC

    if t is None or t.tzinfo is None:
        return t
    return t.astimezone(UTC).replace(tzinfo=None)
