"""Import OpenLineage run events (JSON, JSON Lines / NDJSON, or a folder of them).

A run sends several events (START, RUNNING…, then COMPLETE, FAIL or ABORT); they are
merged by `run.runId` in event-time order: inputs and outputs are the union over the
events, later facets win, the terminal event gives the status and end time.

- job (namespace, name) → experiment named after the job (tags keep the namespace)
- run → run with `source = "openlineage"`, `source_id = runId`; the `parent` facet →
  parent run when the parent is in the store; `tags` facet → tags; `errorMessage` →
  a note; job `sourceCodeLocation` (git) → git commit
- dataset (namespace, name) → asset (kind dataset) named `name` for the `file`
  namespace, else `namespace/name`; its version → an asset version registered by
  reference (no bytes): digest `ol:<datasetVersion>`; an output without a version facet
  becomes the version `olrun:<runId>` (what that run wrote), an input without one points
  at the latest version known for that dataset
- inputs → *used* edges, outputs → *produced* edges; `columnLineage` → *derived_from*
  edges between datasets
- the `metastore_run` / `metastore_asset` facets written by metastore's own exporter
  carry params, metrics, the run id and asset digests, so an export re-imports whole.

A run with no terminal event yet is skipped (with a reason): it may still be running,
and importing again once it ends brings it in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metastore.errors import MetastoreError, NotFound
from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import (
    clean_tags,
    points,
)
from metastore.importers.values import to_utc
from metastore.importers.writer import PendingAsset, Writer
from metastore.models import ASSET_KINDS
from metastore.records import RunRecord

NAME = "openlineage"
SOURCE = "openlineage"
EXTENSIONS = (".json", ".jsonl", ".ndjson")
TERMINAL = {"COMPLETE": "finished", "FAIL": "failed", "ABORT": "killed"}
_RUN_ID = re.compile(r'"runId"\s*:\s*"([^"]+)"')


def detect(path: Path) -> bool:
    files = [path] if path.is_file() else sorted(_files(path))[:5]
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                head = fh.read(4096)
        except (OSError, UnicodeDecodeError):
            continue
        if '"eventType"' in head and '"runId"' in head or "openlineage.io/spec" in head:
            return True
    return False


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for f in sorted(path.rglob("*")):
        if f.is_file() and f.suffix.lower() in EXTENSIONS:
            yield f


@dataclass
class _Run:
    run_id: str
    where: set[str] = field(default_factory=set)
    events: list[dict] = field(default_factory=list)
    broken: str | None = None  # reason the run cannot be imported


def read_events(path: Path) -> tuple[dict[str, _Run], list[tuple[str, str]]]:
    """Events grouped by runId, plus (where, reason) for unreadable events that could not
    be tied to a run."""
    runs: dict[str, _Run] = {}
    orphans: list[tuple[str, str]] = []
    static: list[str] = []

    def mark(run_id: str | None, where: str, reason: str) -> None:
        if run_id is None:
            orphans.append((where, reason))
            return
        run = runs.setdefault(run_id, _Run(run_id))
        run.where.add(where.split(":", 1)[0] if ":" in where else where)
        run.broken = run.broken or f"{where}: {reason}"

    for f in _files(path):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            orphans.append((str(f), f"cannot read: {e}"))
            continue
        for where, chunk, event, error in _parse(f, text):
            if error is not None:
                m = _RUN_ID.search(chunk)
                mark(m.group(1) if m else None, where, error)
                continue
            if _is_static(event):
                static.append(where)
                continue
            problem = _check(event)
            run_id = (event.get("run") or {}).get("runId") if isinstance(event, dict) else None
            if problem:
                mark(run_id if isinstance(run_id, str) else None, where, problem)
                continue
            run = runs.setdefault(run_id, _Run(run_id))
            run.where.add(str(f))
            run.events.append(event)
    if static:
        orphans.append(("", f"{len(static)} static DatasetEvent/JobEvent(s) (no run) not imported, "
                            f"first at {static[0]}"))
    return runs, orphans


def _parse(f: Path, text: str) -> Iterator[tuple[str, str, Any, str | None]]:
    """(where, raw text, event, error) for every event in a file."""
    stripped = text.strip()
    if not stripped:
        return
    if f.suffix.lower() == ".json" or stripped[0] == "[":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            if "\n{" not in stripped:  # not JSON Lines under a .json name either
                yield str(f), stripped, None, f"not valid JSON ({e.msg} at line {e.lineno})"
                return
        else:
            if isinstance(data, dict) and isinstance(data.get("events"), list):
                data = data["events"]  # a Marquez /api/v1/events/lineage page
            for i, event in enumerate(data if isinstance(data, list) else [data]):
                yield (f"{f}[{i}]" if isinstance(data, list) else str(f)), "", event, None
            return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{f}:{n}", line, json.loads(line), None
        except json.JSONDecodeError as e:
            yield f"{f}:{n}", line, None, f"not valid JSON ({e.msg}; truncated?)"


def _is_static(event: Any) -> bool:
    """A DatasetEvent or JobEvent: lineage metadata without a run (spec 2-0-x)."""
    return (
        isinstance(event, dict)
        and "run" not in event
        and "eventType" not in event
        and ("dataset" in event or "job" in event)
    )


def _check(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "an event must be a JSON object"
    run, job = event.get("run"), event.get("job")
    if not isinstance(run, dict) or not isinstance(run.get("runId"), str):
        return "event has no run.runId"
    if not isinstance(job, dict) or not job.get("name"):
        return "event has no job.name"
    if to_utc(event.get("eventTime")) is None:
        return f"event has no valid eventTime ({event.get('eventTime')!r})"
    for name, value in (("run.facets", run.get("facets")), ("job.facets", job.get("facets"))):
        if value is not None and not isinstance(value, dict):
            return f"{name} is not an object"
    for side in ("inputs", "outputs"):
        datasets = event.get(side)
        if datasets is not None and not isinstance(datasets, list):
            return f"{side} is not a list"
        for ds in datasets or []:
            if not isinstance(ds, dict) or not ds.get("name"):
                return f"a dataset in {side} has no name"
            for facets in ("facets", "inputFacets", "outputFacets"):
                if ds.get(facets) is not None and not isinstance(ds[facets], dict):
                    return f"{facets} of dataset {str(ds['name'])[:60]!r} is not an object"
    return None


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    runs, orphans = read_events(path)
    if not runs and not [w for w, _ in orphans if w]:
        raise ImportFailed(f"no OpenLineage run events in {path}")
    unreadable = [(w, r) for w, r in orphans if w]
    report.found = len(runs) + len(unreadable)
    for where, reason in orphans:
        if where:  # an event that could not be tied to a run counts as one skipped entry
            report.skip(where, reason)
        else:
            report.warnings.append(reason)
    ordered = sorted(runs.values(), key=lambda r: min(
        (to_utc(e["eventTime"]) for e in r.events), default=to_utc(0)
    ))
    # dataset → version id written by an earlier run of this import (for unversioned inputs)
    latest: dict[tuple[str, str], str] = {}
    mapped = []
    for run in ordered:
        where = ", ".join(sorted(run.where))
        if run.broken:
            report.skip(where, f"run {run.run_id}: {run.broken}")
            continue
        try:
            record, assets = _to_record(store, run, report, latest)
        except MetastoreError as e:
            report.skip(where, f"run {run.run_id}: {e}")
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            # a facet of another shape than the spec's (`_check` holds the event's frame)
            report.skip(where, f"run {run.run_id}: an event has a field of the wrong type "
                        f"({type(e).__name__}: {str(e)[:80]})")
            continue
        if record is None:
            reason = "no COMPLETE, FAIL or ABORT event yet (still running?); import again when it ends"
            report.skip(where, f"run {run.run_id}: {reason}")
            continue
        for a in assets:
            if a.relation == "produced":
                latest[(a.kind, a.name)] = a.digest
        mapped.append((where, record, assets))
    # runs of metastore's own export carry their ids (and their parents'): one look-up
    # of those in the store; other producers' parents by their run ids, in one look-up
    own = {r.id for _, r, _ in mapped if r.id} | {r.parent_id for _, r, _ in mapped if r.parent_id}
    present = {v.id for v in store.read_runs(run_ids=sorted(own), include_deleted=True)} if own else set()
    ours = {r.id for _, r, _ in mapped if r.id}
    wanted = {r.tags["ol.parent_run_id"] for _, r, _ in mapped if "ol.parent_run_id" in r.tags}
    resolvable = {r.source_id for _, r, _ in mapped} | set(store.runs_by_source(SOURCE, sorted(wanted)))
    with Writer(store, options, report) as writer:
        for done, (where, record, assets) in enumerate(mapped, 1):
            options.progress(done, len(mapped))
            if record.id in present:
                report.already_present += 1
                continue
            if record.parent_id and record.parent_id not in present | ours:
                record.parent_id = None
            parent = record.tags.get("ol.parent_run_id")
            if parent in resolvable:
                del record.tags["ol.parent_run_id"]
            writer.add(record, assets, where, parent=parent if parent in resolvable else None)


def _to_record(store, run: _Run, report: ImportReport, latest) -> tuple[RunRecord | None, list]:
    events = sorted(run.events, key=lambda e: to_utc(e["eventTime"]))
    terminal = [e for e in events if str(e.get("eventType", "")).upper() in TERMINAL]
    if not terminal:
        return None, []
    end = terminal[-1]
    job = end["job"]
    run_facets: dict = {}
    job_facets: dict = {}
    inputs: dict[tuple[str, str], dict] = {}
    outputs: dict[tuple[str, str], dict] = {}
    for e in events:
        run_facets.update((e.get("run") or {}).get("facets") or {})
        job_facets.update((e.get("job") or {}).get("facets") or {})
        for side, acc in (("inputs", inputs), ("outputs", outputs)):
            for ds in e.get(side) or []:
                key = (str(ds.get("namespace") or ""), str(ds["name"]))
                merged = acc.setdefault(key, {"namespace": key[0], "name": key[1], "facets": {}})
                merged["facets"].update(ds.get("facets") or {})
                merged["facets"].update(ds.get("inputFacets") or ds.get("outputFacets") or {})
    starts = [e for e in events if str(e.get("eventType", "")).upper() == "START"]
    ms = run_facets.get("metastore_run") or {}
    tags: dict[str, Any] = {}
    if not ms:  # metastore's own export names the experiment itself
        tags = {"ol.job.namespace": job.get("namespace") or "", "ol.job.name": job["name"]}
    for t in (run_facets.get("tags") or {}).get("tags") or []:
        if isinstance(t, dict) and t.get("key"):
            tags[str(t["key"])] = "" if t.get("value") is None else str(t["value"])
    job_type = job_facets.get("jobType") or {}
    if job_type.get("jobType") and not ms:
        tags["ol.job_type"] = job_type["jobType"]
    if job_type.get("integration") and job_type.get("integration") != "METASTORE":
        tags["ol.integration"] = job_type["integration"]
    if (run_facets.get("nominalTime") or {}).get("nominalStartTime"):
        tags["ol.nominal_start"] = run_facets["nominalTime"]["nominalStartTime"]
    tags.update(ms.get("tags") or {})
    notes = []
    error = run_facets.get("errorMessage") or {}
    if error.get("message"):
        from metastore.models import Note

        text = error["message"] + (f"\n\n{error['stackTrace']}" if error.get("stackTrace") else "")
        notes.append(Note(run_id="", time=to_utc(end["eventTime"]), kind="event", author="openlineage", text=text))
    for n in ms.get("notes") or []:
        from metastore.models import Note

        notes.append(Note(run_id="", time=to_utc(n.get("time")), kind=n.get("kind") or "note",
                          author=n.get("author"), text=n.get("text") or ""))
    git = job_facets.get("sourceCodeLocation") or {}
    parent = run_facets.get("parent") or {}
    # the parent is resolved in import_source, once every run of the import is read:
    # metastore's own export names it by id, other producers by their run id
    parent_id = ms.get("parent_id")
    parent_run_id = (parent.get("run") or {}).get("runId")
    if not parent_id and parent_run_id:
        tags["ol.parent_run_id"] = parent_run_id
    metrics = []
    for key, rows in (ms.get("metrics") or {}).items():
        metrics += points(
            key, ((r[0], to_utc(r[1]), r[2]) for r in rows), report, f"run {run.run_id}"
        )
    status = TERMINAL[str(end["eventType"]).upper()]
    if ms.get("status") in ("finished", "failed", "killed", "crashed"):
        status = ms["status"]
    record = RunRecord(
        experiment=ms.get("experiment") or job["name"],
        name=ms.get("name") or job["name"],
        status=status,
        started=to_utc(ms.get("started")) or to_utc((starts or events)[0]["eventTime"]),
        ended=to_utc(ms.get("ended")) or to_utc(end["eventTime"]),
        user=ms.get("user"),
        host=ms.get("host"),
        git_commit=ms.get("git_commit") or _git_commit(git),
        git_branch=ms.get("git_branch") or git.get("branch"),
        git_dirty=ms.get("git_dirty"),
        command=ms.get("command"),
        params=ms.get("params") or {},
        metrics=metrics,
        tags=clean_tags(tags),
        notes=notes,
        source=SOURCE,
        source_id=run.run_id,
        parent_id=parent_id,
        id=ms.get("id"),
    )
    assets: list[PendingAsset] = []
    for ds in inputs.values():
        assets.append(_dataset(store, ds, "used", run.run_id, latest))
    for ds in outputs.values():
        a = _dataset(store, ds, "produced", run.run_id, latest)
        a.derived_from = _column_sources(ds, inputs, assets)
        assets.append(a)
    return record, assets


def _git_commit(facet: dict) -> str | None:
    version = str(facet.get("version") or "")
    if facet.get("type", "git") == "git" and re.fullmatch(r"[0-9a-f]{7,64}", version):
        return version
    return None


def asset_name(namespace: str, name: str) -> str:
    return name if namespace in ("", "file") else f"{namespace.rstrip('/')}/{name.lstrip('/')}"


def _dataset(store, ds: dict, relation: str, run_id: str, latest) -> PendingAsset:
    facets = ds["facets"]
    ms = facets.get("metastore_asset") or {}
    kind = ms.get("kind") if ms.get("kind") in ASSET_KINDS else "dataset"
    name = ms.get("name") or asset_name(ds["namespace"], ds["name"])
    meta: dict[str, Any] = {"namespace": ds["namespace"], "name": ds["name"]}
    meta.update(ms.get("meta") or {})
    schema = facets.get("schema") or {}
    if schema.get("fields"):
        meta["schema"] = [
            {k: f[k] for k in ("name", "type", "description") if f.get(k) is not None}
            for f in schema["fields"] if isinstance(f, dict)
        ]
    stats = facets.get("outputStatistics") or facets.get("dataQualityMetrics") or {}
    for k in ("rowCount", "fileCount"):
        if stats.get(k) is not None:
            meta[k] = stats[k]
    size = ms.get("size") or stats.get("size") or stats.get("bytes")
    version = (facets.get("version") or {}).get("datasetVersion")
    if ms.get("digest"):
        digest = ms["digest"]
    elif version not in (None, ""):
        meta["datasetVersion"] = version
        digest = _digest("ol:", str(version))
    elif relation == "produced":
        digest = _digest("olrun:", run_id)
    else:
        digest = latest.get((kind, name)) or _latest_digest(store, kind, name) or "ol:unversioned"
    uri = ms.get("uri") or _uri(ds["namespace"], ds["name"])
    if uri == "blob:" and not _has_blob(store, digest):
        uri = f"sha256:{digest}"  # the bytes stayed in the exporting store
    return PendingAsset(
        kind=kind, name=name, relation=relation, uri=uri, digest=digest,
        size=size if isinstance(size, int) else None, media_type=ms.get("media_type"),
        meta=meta, role=ms.get("role"),
    )


def _digest(prefix: str, value: str) -> str:
    text = prefix + value
    if len(text) <= 80:
        return text
    return prefix + "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _latest_digest(store, kind: str, name: str) -> str | None:
    try:
        return store.get_asset_version(kind, name)[1].digest
    except NotFound:
        return None


def _has_blob(store, digest: str) -> bool:
    blobs = getattr(store, "blobs", None)
    try:
        return bool(blobs is not None and blobs.exists(digest))
    except Exception:  # noqa: BLE001 - a malformed digest is simply not there
        return False


def _uri(namespace: str, name: str) -> str:
    if namespace in ("", "file"):
        return "file://" + (name if name.startswith("/") else "/" + name)
    return f"{namespace.rstrip('/')}/{name.lstrip('/')}"


def _column_sources(ds: dict, inputs: dict, assets: list[PendingAsset]) -> list[tuple[str, str]]:
    """The input datasets an output's `columnLineage` facet names."""
    fields = (ds["facets"].get("columnLineage") or {}).get("fields") or {}
    names = set()
    for spec in fields.values():
        for src in (spec or {}).get("inputFields") or []:
            names.add((str(src.get("namespace") or ""), str(src.get("name") or "")))
    by_key = {(a.meta.get("namespace"), a.meta.get("name")): (a.kind, a.name) for a in assets
              if a.relation == "used"}
    return [by_key[n] for n in sorted(names) if n in by_key]
