"""Export runs as OpenLineage run events (spec 2-0-2), one JSON object per line.

Each run gives a START event at its start time and, once it has ended, a terminal event
(COMPLETE for finished, FAIL for failed, ABORT for killed or crashed) at its end time.
Both carry the run's inputs and outputs as datasets, so any OpenLineage consumer
(Marquez, DataHub, OpenMetadata…) sees the lineage.

Mapping:
- experiment → job (`namespace`, default "metastore"; name = experiment name)
- run → run; `runId` is the run's ULID read as a UUID (both are 128 bits), so the same
  run always gets the same runId; a parent run → the standard `parent` facet
- tags → the standard `tags` run facet; git commit → the `sourceCodeLocation` job facet
- asset version → dataset: an external URI gives the namespace/name OpenLineage's naming
  rules expect (file, s3://bucket, …); content in the blob store is dataset
  `<kind>/<name>` in namespace `metastore`; the digest is the `version` facet
- everything OpenLineage has no standard facet for (params with their types, metric
  histories, status, the run id and number, asset kind/digest/URI) travels in the custom
  facets `metastore_run` and `metastore_asset`, which `metastore import openlineage`
  reads back, so an export re-imports whole (metric points, params, lineage).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from metastore.errors import InvalidValue
from metastore.handles import RunHandle

SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
PRODUCER = "https://github.com/metastore/metastore"
FACET_SCHEMA = "https://github.com/metastore/metastore/blob/main/docs/importing.md#openlineage"
TERMINAL = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT", "crashed": "ABORT"}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def run_uuid(run_id: str) -> str:
    """The UUID form of a metastore run id (a 26-character ULID); any other id (e.g. a
    run imported with its own id) is mapped to a name-based UUID."""
    text = run_id.upper()
    if len(text) == 26 and all(c in _CROCKFORD for c in text):
        value = 0
        for c in text:
            value = value * 32 + _CROCKFORD.index(c)
        if value < 1 << 128:
            return str(uuid.UUID(int=value))
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"metastore:run:{run_id}"))


def _iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _facet(**fields: Any) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA, **fields}


def _dataset(asset, version, role: str | None, namespace: str) -> dict:
    uri = version.uri or "blob:"
    if uri.startswith("file://"):
        ds_ns, ds_name = "file", uri[len("file://"):]
    elif "://" in uri:
        scheme, rest = uri.split("://", 1)
        bucket, _, key = rest.partition("/")
        ds_ns, ds_name = f"{scheme}://{bucket}", key or "/"
    else:
        ds_ns, ds_name = namespace, f"{asset.kind}/{asset.name}"
    meta = json.loads(version.meta) if version.meta else {}
    facets: dict[str, Any] = {
        "version": _facet(datasetVersion=version.digest),
        "metastore_asset": _facet(
            kind=asset.kind,
            name=asset.name,
            version=version.version,
            digest=version.digest,
            uri=uri,
            size=version.size,
            media_type=version.media_type,
            meta=meta,
            role=role,
        ),
    }
    schema = meta.get("schema")
    if isinstance(schema, list) and all(isinstance(f, dict) and "name" in f for f in schema):
        facets["schema"] = _facet(fields=schema)
    return {"namespace": ds_ns, "name": ds_name, "facets": facets}


def run_events(store, run, namespace: str = "metastore") -> list[dict]:
    """The OpenLineage events of one run (a RunHandle)."""
    row = run.row
    experiment = run.experiment
    params = run.params
    metrics = {
        key: [[m.step, _iso(m.timestamp), m.value] for m in run.metric_history(key)]
        for key in store.get_metric_summaries(row.id)
    }
    tags = run.tags
    run_facets: dict[str, Any] = {
        "metastore_run": _facet(
            id=row.id,
            number=row.number,
            name=row.name,
            experiment=experiment,
            status=row.status,
            started=_iso(row.started),
            ended=_iso(row.ended),
            user=row.user,
            host=row.host,
            git_commit=row.git_commit,
            git_branch=row.git_branch,
            git_dirty=row.git_dirty,
            command=row.command,
            parent_id=row.parent_id,
            source=row.source,
            source_id=row.source_id,
            params=params,
            metrics=metrics,
            tags=tags,
            notes=[
                {"time": _iso(n.time), "kind": n.kind, "author": n.author, "text": n.text}
                for n in run.notes
            ],
        ),
    }
    if tags:
        run_facets["tags"] = _facet(
            tags=[{"key": k, "value": v or "", "source": "METASTORE"} for k, v in tags.items()]
        )
    if row.parent_id:
        parent = RunHandle(store, store.resolve_run(row.parent_id))
        run_facets["parent"] = _facet(
            run={"runId": run_uuid(parent.row.id)},
            job={"namespace": namespace, "name": parent.experiment},
        )
    job_facets: dict[str, Any] = {
        "jobType": _facet(processingType="BATCH", integration="METASTORE", jobType="RUN"),
    }
    if row.git_commit:
        url = (run.context.get("git") or {}).get("remote") if run.context else None
        job_facets["sourceCodeLocation"] = _facet(
            type="git", url=url or "unknown", version=row.git_commit,
            **({"branch": row.git_branch} if row.git_branch else {}),
        )
    inputs = [_dataset(a, v, role, namespace) for a, v, role in store.run_assets(row.id, "inputs")]
    outputs = [
        _dataset(a, v, role, namespace) for a, v, role in store.run_assets(row.id, "outputs")
    ]
    base = {
        "producer": PRODUCER,
        "schemaURL": SPEC_URL,
        "job": {"namespace": namespace, "name": experiment, "facets": job_facets},
        "inputs": inputs,
        "outputs": outputs,
    }
    run_id = run_uuid(row.id)
    events = [
        {
            "eventType": "START",
            "eventTime": _iso(row.started),
            "run": {"runId": run_id, "facets": run_facets},
            **base,
        }
    ]
    if row.status in TERMINAL and row.ended is not None:
        events.append(
            {
                "eventType": TERMINAL[row.status],
                "eventTime": _iso(row.ended),
                "run": {"runId": run_id, "facets": run_facets},
                **base,
            }
        )
    return events


def iter_events(
    store, run: str | None = None, experiment: str | None = None, namespace: str = "metastore"
) -> Iterator[dict]:
    """Events for one run (`run`: id, number or name), an experiment, or every run."""
    if run is not None:
        handles: Iterable = [RunHandle(store, store.resolve_run(run, experiment))]
    else:
        handles = [RunHandle(store, r) for r in store.list_runs(experiment)]
    # parents first, so a consumer (and our own importer) can link children to them
    handles = sorted(handles, key=lambda h: (h.row.parent_id is not None, h.row.started))
    for handle in handles:
        yield from run_events(store, handle, namespace)


def export_openlineage(
    store,
    out: str | Path | IO[str],
    *,
    run: str | None = None,
    experiment: str | None = None,
    namespace: str = "metastore",
) -> int:
    """Write OpenLineage events (NDJSON) for a run, an experiment or the whole store to
    `out` (a path, or an open text stream). Returns the number of events written."""
    if not namespace:
        raise InvalidValue("the OpenLineage namespace cannot be empty")
    if isinstance(out, str | Path):
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            return export_openlineage(
                store, fh, run=run, experiment=experiment, namespace=namespace
            )
    n = 0
    for event in iter_events(store, run=run, experiment=experiment, namespace=namespace):
        out.write(json.dumps(event, default=str) + "\n")
        n += 1
    return n
