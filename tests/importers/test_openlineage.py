"""OpenLineage import (events written by the real openlineage-python client, and hand-made
malformed files) and export (round trip through our own importer)."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import metastore
from metastore.exporters.openlineage import export_openlineage, run_uuid
from metastore.importers import detect, import_path
from tests.importers.conftest import dry_run_counts_what_import_writes

DATA = Path(__file__).parent.parent / "data" / "openlineage"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def write_client_events(target: Path) -> dict[str, str]:
    """Three runs through the real client's FileTransport (NDJSON): a training run that
    reads a versioned file and writes an unversioned model, an evaluation (child of the
    training run) that reads that model and fails, and a run still in progress."""
    ol = pytest.importorskip("openlineage.client")
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        parent_run,
        schema_dataset,
        source_code_location_job,
    )
    from openlineage.client.transport.file import FileConfig, FileTransport

    client = ol.OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(target), append=True)))
    ids = {name: str(uuid.uuid4()) for name in ("train", "evaluate", "pending")}
    wine = InputDataset(
        namespace="file",
        name="/data/wine.csv",
        facets={
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name="alcohol", type="double")]
            ),
            "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion="493d6146"),
        },
    )
    model_out = OutputDataset(namespace="s3://models", name="wine/model.pkl")
    model_in = InputDataset(namespace="s3://models", name="wine/model.pkl")
    git = source_code_location_job.SourceCodeLocationJobFacet(
        type="git", url="https://example.com/repo.git", version="a" * 40
    )
    train_job = Job(namespace="demo", name="train_wine", facets={"sourceCodeLocation": git})
    eval_job = Job(namespace="demo", name="evaluate_wine")

    def emit(state, minutes, run_id, job, inputs=(), outputs=(), facets=None):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=(T0 + timedelta(minutes=minutes)).isoformat(),
                run=Run(runId=run_id, facets=facets or {}),
                job=job,
                producer="https://example.com/test",
                inputs=list(inputs),
                outputs=list(outputs),
            )
        )

    emit(RunState.START, 0, ids["train"], train_job, [wine])
    emit(RunState.COMPLETE, 5, ids["train"], train_job, [wine], [model_out])
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=ids["train"]), job=parent_run.Job(namespace="demo", name="train_wine")
    )
    emit(RunState.START, 6, ids["evaluate"], eval_job, [model_in], facets={"parent": parent})
    emit(
        RunState.FAIL, 7, ids["evaluate"], eval_job, [model_in],
        facets={
            "parent": parent,
            "errorMessage": error_message_run.ErrorMessageRunFacet(
                message="ValueError: bad input", programmingLanguage="python"
            ),
        },
    )
    emit(RunState.START, 8, ids["pending"], eval_job)
    return ids


@pytest.fixture(scope="module")
def client_events(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("ol") / "events.ndjson"
    return path, write_client_events(path)


def test_detects_events(client_events):
    path, _ = client_events
    assert detect(path) == "openlineage"
    assert detect(path.parent) == "openlineage"


def test_import_client_events(store, client_events):
    path, ids = client_events
    report = import_path(store.backend, path, "openlineage")
    assert (report.found, report.imported, len(report.skipped)) == (3, 2, 1)
    assert report.complete
    assert "still running" in report.skipped[0][1]

    train = store.get_run(store.backend.find_run_by_source("openlineage", ids["train"]).id)
    assert train.experiment == "train_wine"
    assert train.status == "finished"
    assert train.started == datetime(2026, 3, 1, 12, 0)
    assert train.ended == datetime(2026, 3, 1, 12, 5)
    assert train.git_commit == "a" * 40
    assert train.tags["ol.job.namespace"] == "demo"
    [data] = train.inputs
    assert (data.kind, data.name, data.digest) == ("dataset", "/data/wine.csv", "ol:493d6146")
    assert data.meta["schema"] == [{"name": "alcohol", "type": "double"}]
    assert data.uri == "file:///data/wine.csv"
    [model] = train.outputs
    assert model.name == "s3://models/wine/model.pkl"
    assert model.digest == f"olrun:{ids['train']}"

    evaluate = store.get_run(store.backend.find_run_by_source("openlineage", ids["evaluate"]).id)
    assert evaluate.status == "failed"
    assert evaluate.parent_id == train.id
    # the unversioned input is the version the training run wrote
    assert [v.digest for v in evaluate.inputs] == [model.digest]
    assert "ValueError: bad input" in evaluate.notes[0].text

    again = import_path(store.backend, path, "openlineage")
    assert (again.imported, again.already_present, len(again.skipped)) == (0, 2, 1)
    assert len(store.runs()) == 2


def test_run_imported_once_it_ends(sqlite_store, tmp_path):
    events = tmp_path / "live.ndjson"
    start = {
        "eventType": "START", "eventTime": "2026-01-01T00:00:00Z",
        "run": {"runId": "55555555-5555-4555-8555-555555555555"},
        "job": {"namespace": "n", "name": "long_job"}, "producer": "p",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    events.write_text(json.dumps(start) + "\n")
    first = import_path(sqlite_store.backend, events, "openlineage")
    assert (first.found, first.imported, len(first.skipped)) == (1, 0, 1)
    with events.open("a") as fh:
        fh.write(json.dumps({**start, "eventType": "ABORT", "eventTime": "2026-01-01T01:00:00Z"}) + "\n")
    second = import_path(sqlite_store.backend, events, "openlineage")
    assert second.imported == 1
    assert sqlite_store.runs()[0].status == "killed"


def test_malformed_events_skip_their_run_only(sqlite_store):
    report = import_path(sqlite_store.backend, DATA, "openlineage")  # static/ holds one good run more
    assert report.found == 6 and report.imported == 2 and len(report.skipped) == 4
    assert report.complete
    reasons = " | ".join(f"{w}: {r}" for w, r in report.skipped)
    assert "broken.ndjson:4" in reasons and "truncated" in reasons  # cut-off line, run 2222…
    assert "no job.name" in reasons  # run 3333…
    assert "broken.ndjson:6" in reasons  # not JSON, no run id to blame
    assert "truncated.json" in reasons  # run 4444…
    run = sqlite_store.get_run(
        sqlite_store.backend.find_run_by_source("openlineage", "11111111-1111-4111-8111-111111111111").id
    )
    assert {r.source_id for r in sqlite_store.runs()} == {run.source_id, "66666666-6666-4666-8666-666666666666"}
    [out] = run.outputs
    assert out.name == "s3://lake/orders/2026-01-05.parquet"
    assert out.meta["rowCount"] == 120 and out.size == 4096
    assert [v.name for v in run.inputs] == ["postgres://db:5432/shop.public.orders"]
    # nothing of the skipped runs was written
    assert {a.name for a in sqlite_store.assets()} == {
        "s3://lake/orders/2026-01-05.parquet", "postgres://db:5432/shop.public.orders"
    }


def test_dry_run_writes_nothing(sqlite_store, client_events):
    path, _ = client_events
    report = import_path(sqlite_store.backend, path, "openlineage", dry_run=True)
    # one dataset version produced by one run and used by the next counts once
    assert report.imported == 2 and (report.assets, report.edges) == (2, 3)
    assert sqlite_store.runs() == [] and sqlite_store.assets() == []
    real = import_path(sqlite_store.backend, path, "openlineage")
    assert (real.imported, real.assets, real.edges) == (2, 2, 3)
    assert sum(len(sqlite_store.versions(a.kind, a.name)) for a in sqlite_store.assets()) == 2


# -- export ---------------------------------------------------------------------------------


def test_run_uuid_is_the_ulid():
    assert run_uuid("00000000000000000000000001") == "00000000-0000-0000-0000-000000000001"
    assert str(uuid.UUID(run_uuid("01JD0000000000000000000000")))
    assert run_uuid("not-a-ulid") == run_uuid("not-a-ulid")


def test_export_events_follow_the_spec(demo_store):
    buf = io.StringIO()
    n = export_openlineage(demo_store.backend, buf, experiment="diabetes")
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert n == len(events) == 24  # START + COMPLETE for each of the 12 runs
    for e in events:
        assert {"eventTime", "producer", "schemaURL", "eventType", "run", "job"} <= set(e)
        uuid.UUID(e["run"]["runId"])
        assert e["job"] == {**e["job"], "namespace": "metastore", "name": "diabetes"}
        for ds in e["inputs"] + e["outputs"]:
            assert ds["namespace"] and ds["name"] and ds["facets"]["version"]["datasetVersion"]
            for facet in ds["facets"].values():
                assert facet["_producer"] and facet["_schemaURL"]
    assert {e["eventType"] for e in events} == {"START", "COMPLETE"}
    # the real client reads them back
    from openlineage.client.event_v2 import RunEvent  # noqa: F401 - import check only

    one = demo_store.runs()[0]
    single = io.StringIO()
    assert export_openlineage(demo_store.backend, single, run=one.id) == 2


def test_export_round_trip(demo_store, sqlite_store, tmp_path):
    out = tmp_path / "lineage.ndjson"
    export_openlineage(demo_store.backend, out, experiment="diabetes")
    report = import_path(sqlite_store.backend, out, "openlineage")
    assert report.imported == 12 and report.complete
    for original in demo_store.runs("diabetes"):
        copy = sqlite_store.get_run(original.id)  # the run id travels with the events
        assert copy.experiment == "diabetes" and copy.number == original.number
        assert (copy.name, copy.status, copy.started, copy.ended) == (
            original.name, original.status, original.started, original.ended
        )
        assert copy.params == original.params
        assert copy.tags == original.tags
        for key in original.metrics:
            assert [(m.step, m.value, m.timestamp) for m in copy.metric_history(key)] == [
                (m.step, m.value, m.timestamp) for m in original.metric_history(key)
            ]
        for side in ("inputs", "outputs"):
            assert sorted((v.kind, v.name, v.digest) for v in getattr(copy, side)) == sorted(
                (v.kind, v.name, v.digest) for v in getattr(original, side)
            )
    # importing the export into the store it came from finds every run already there
    back = import_path(demo_store.backend, out, "openlineage")
    assert (back.imported, back.already_present) == (0, 12)
    # and into the copy again
    assert import_path(sqlite_store.backend, out, "openlineage").already_present == 12


def test_export_parent_failed_and_external_data(sqlite_store, tmp_path):
    from metastore.records import MetricPoint, RunRecord

    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    csv_version = sqlite_store.put_asset("dataset", "train", data, copy=False)
    parent = sqlite_store.backend.create_run(RunRecord(experiment="sweep", name="sweep", ended=T0.replace(tzinfo=None)))
    child = sqlite_store.backend.create_run(RunRecord(
        experiment="sweep", name="trial-1", status="failed", parent_id=parent.id,
        started=T0.replace(tzinfo=None), ended=T0.replace(tzinfo=None) + timedelta(minutes=1),
        params={"lr": 0.1, "layers": [2, 3], "use_bn": False}, tags={"stage": "dev"},
        metrics=[MetricPoint(key="loss", value=1.5, step=0, timestamp=T0.replace(tzinfo=None))],
        inputs=[(csv_version.id, "train")],
    ))
    buf = io.StringIO()
    export_openlineage(sqlite_store.backend, buf, experiment="sweep")
    events = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE", "START", "FAIL"]
    fail = events[-1]
    assert fail["run"]["facets"]["parent"]["run"]["runId"] == run_uuid(parent.id)
    [ds] = fail["inputs"]
    assert ds["namespace"] == "file" and ds["name"] == str(data.resolve())
    assert fail["run"]["facets"]["tags"]["tags"] == [{"key": "stage", "value": "dev", "source": "METASTORE"}]

    out = tmp_path / "sweep.ndjson"
    out.write_text(buf.getvalue())
    other = metastore.open(f"sqlite:///{tmp_path / 'other' / 'm.db'}")
    report = import_path(other.backend, out, "openlineage")
    assert report.imported == 2
    copy = other.get_run(child.id)
    assert copy.parent_id == parent.id and copy.status == "failed"
    assert copy.params == {"lr": 0.1, "layers": [2, 3], "use_bn": False}
    [v] = copy.inputs
    assert v.uri == data.resolve().as_uri() and v.digest == csv_version.digest and v.role == "train"
    other.close()


def test_cli_export_then_import(demo_store_path, tmp_path):
    """`metastore export --format openlineage` and `metastore import openlineage`."""
    from typer.testing import CliRunner

    from metastore.cli import app

    source = tmp_path / "source" / ".metastore"
    shutil.copytree(demo_store_path, source)
    out = tmp_path / "diabetes-lineage.ndjson"
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(out), "--format", "openlineage", "--experiment",
                                 "diabetes", "--store", f"sqlite:///{source / 'metastore.db'}"])
    assert result.exit_code == 0, result.output
    assert "24 events" in result.output
    target = f"sqlite:///{tmp_path / 'target' / 'metastore.db'}"
    result = runner.invoke(app, ["import", "openlineage", str(out), "--store", target, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["imported"] == 12
    # detected without naming the source; everything is already there
    result = runner.invoke(app, ["import", str(out), "--store", target, "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["already_present"] == 12


def test_static_events_are_not_runs(sqlite_store):
    report = import_path(sqlite_store.backend, DATA / "static", "openlineage")
    assert (report.found, report.imported, report.skipped) == (1, 1, [])
    assert any("2 static DatasetEvent/JobEvent" in w for w in report.warnings)


def test_dry_run_counts_what_the_import_writes(sqlite_store, client_events):
    dry_run_counts_what_import_writes(sqlite_store.backend, client_events[0], "openlineage")
