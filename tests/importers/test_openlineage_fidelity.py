"""OpenLineage at realistic shape, field by field: a scheduler's week of DAG runs written
by the real openlineage-python client through its file transport (a DAG run per day
with three child task runs; RUNNING events that add outputs; versioned and unversioned
datasets in three namespaces, schema, statistics and column lineage facets; a failed
task with its stack trace, an aborted one, one still running; the same job name in two
namespaces), imported and compared with the events themselves, read back as the
client wrote them (OpenLineage has no reader: the JSON lines are its record); then
exported as a bundle, imported into PostgreSQL and compared again (numbers included)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from metastore.importers import import_path
from metastore.importers.openlineage import asset_name
from tests.importers.conftest import bundle_into_postgresql

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
T0 = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)
STATUS = {"COMPLETE": "finished", "FAIL": "failed", "ABORT": "killed"}
DAYS = 5


def write_week(target: Path) -> None:
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
        column_lineage_dataset as cl,
    )
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        job_type_job,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
        schema_dataset,
        source_code_location_job,
        tags_run,
    )
    from openlineage.client.transport.file import FileConfig, FileTransport

    client = ol.OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(target), append=True)))
    pg = "postgres://db:5432"
    schema = schema_dataset.SchemaDatasetFacet(fields=[
        schema_dataset.SchemaDatasetFacetFields(name="id", type="bigint"),
        schema_dataset.SchemaDatasetFacetFields(name="amount", type="numeric", description="in EUR")])
    git = source_code_location_job.SourceCodeLocationJobFacet(
        type="git", url="https://example.com/etl.git", version="c0ffee" + "0" * 34, branch="main")

    def job(namespace, name, kind="TASK", facets=None):
        return Job(namespace=namespace, name=name, facets={
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="AIRFLOW", jobType=kind),
            **(facets or {})})

    def emit(state, at, run_id, j, inputs=(), outputs=(), facets=None):
        client.emit(RunEvent(eventType=state, eventTime=at.isoformat(), run=Run(runId=run_id, facets=facets or {}),
                             job=j, producer="https://example.com/airflow", inputs=list(inputs),
                             outputs=list(outputs)))

    for day in range(DAYS):
        t = T0 + timedelta(days=day)
        dag_id = str(uuid.uuid4())
        dag = job("airflow", "daily_sales", kind="DAG", facets={"sourceCodeLocation": git})
        nominal = {"nominalTime": nominal_time_run.NominalTimeRunFacet(nominalStartTime=t.isoformat())}
        emit(RunState.START, t, dag_id, dag, facets={
            **nominal, "tags": tags_run.TagsRunFacet(tags=[
                tags_run.TagsRunFacetFields(key="env", value="prod"),
                tags_run.TagsRunFacetFields(key="team", value="sales")])})
        parent = {"parent": parent_run.ParentRunFacet(run=parent_run.Run(runId=dag_id),
                                                      job=parent_run.Job(namespace="airflow", name="daily_sales"))}
        orders = InputDataset(namespace=pg, name="shop.public.orders", facets={
            "schema": schema, "version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=f"v{day}")})
        rates = InputDataset(namespace="file", name="/data/rates.csv")
        daily = f"s3://lake/sales/{t:%Y-%m-%d}.parquet"
        out = OutputDataset(namespace="s3://lake", name=f"sales/{t:%Y-%m-%d}.parquet", facets={
            "schema": schema,
            "columnLineage": cl.ColumnLineageDatasetFacet(fields={"amount": cl.Fields(inputFields=[
                cl.InputField(namespace=pg, name="shop.public.orders", field="amount"),
                cl.InputField(namespace="file", name="/data/rates.csv", field="rate")])})},
            outputFacets={"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=1000 + day, size=4096 * (day + 1))})
        extract_id, report_id = str(uuid.uuid4()), str(uuid.uuid4())
        extract = job("airflow", "daily_sales.extract")
        emit(RunState.START, t + timedelta(minutes=1), extract_id, extract, [orders, rates], facets=parent)
        # a RUNNING event names the output first; the COMPLETE repeats the inputs only
        emit(RunState.RUNNING, t + timedelta(minutes=3), extract_id, extract, [orders], [out], facets=parent)
        emit(RunState.COMPLETE, t + timedelta(minutes=4), extract_id, extract, [orders, rates], facets=parent)
        report = job("airflow", "daily_sales.report")
        report_in = InputDataset(namespace="s3://lake", name=f"sales/{t:%Y-%m-%d}.parquet")
        emit(RunState.START, t + timedelta(minutes=5), report_id, report, [report_in], facets=parent)
        if day == 2:  # fails, with the stack trace
            emit(RunState.FAIL, t + timedelta(minutes=6), report_id, report, [report_in], facets={
                **parent, "errorMessage": error_message_run.ErrorMessageRunFacet(
                    message="KeyError: 'amount'", programmingLanguage="python",
                    stackTrace="Traceback (most recent call last):\n  ...\nKeyError: 'amount'")})
        elif day == 3:  # cancelled by an operator
            emit(RunState.ABORT, t + timedelta(minutes=6), report_id, report, [report_in], facets=parent)
        elif day == DAYS - 1:  # still running when the file was read
            pass
        else:
            emit(RunState.COMPLETE, t + timedelta(minutes=7), report_id, report, [report_in],
                 [OutputDataset(namespace="s3://reports", name=f"{t:%Y-%m-%d}/sales.pdf")], facets=parent)
        # the same job name in another namespace: another team's pipeline
        other = str(uuid.uuid4())
        emit(RunState.START, t + timedelta(minutes=8), other, job("team-b", "daily_sales.extract"), [orders])
        emit(RunState.COMPLETE, t + timedelta(minutes=9), other, job("team-b", "daily_sales.extract"), [orders])
        if day < DAYS - 1:
            emit(RunState.COMPLETE, t + timedelta(minutes=10), dag_id, dag, facets=nominal)
        assert daily


def read_back(path: Path) -> dict[str, list[dict]]:
    """The events the client wrote, by run id, in event-time order."""
    runs: dict[str, list[dict]] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        runs.setdefault(event["run"]["runId"], []).append(event)
    return {k: sorted(v, key=lambda e: e["eventTime"]) for k, v in runs.items()}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def expected_runs(events: dict[str, list[dict]]) -> dict[str, dict]:
    """What docs/importing.md says metastore holds for each run the events describe."""
    out = {}
    #: a version's schema: as the first run that named that version gave it (a reader of
    #: an unversioned dataset links the version its writer made, with the writer's facets)
    schemas: dict[tuple[str, str], dict | None] = {}
    produced: dict[str, str] = {}  # asset name → digest of its latest version (event-time order)
    ordered = sorted(events.items(), key=lambda kv: kv[1][0]["eventTime"])
    for run_id, evs in ordered:
        ends = [e for e in evs if e["eventType"] in STATUS]
        if not ends:
            continue
        end, job = ends[-1], ends[-1]["job"]
        run_facets, job_facets = {}, {}
        inputs, outputs = {}, {}
        for e in evs:
            run_facets.update(e["run"].get("facets") or {})
            job_facets.update(e["job"].get("facets") or {})
            for side, acc in (("inputs", inputs), ("outputs", outputs)):
                for ds in e.get(side) or []:
                    merged = acc.setdefault((ds["namespace"], ds["name"]), {})
                    merged.update(ds.get("facets") or {})
                    merged.update(ds.get("inputFacets") or ds.get("outputFacets") or {})
        tags = {"ol.job.namespace": job["namespace"], "ol.job.name": job["name"],
                "ol.job_type": job_facets["jobType"]["jobType"],
                "ol.integration": job_facets["jobType"]["integration"]}
        tags |= {t["key"]: t["value"] for t in (run_facets.get("tags") or {}).get("tags", [])}
        if "nominalTime" in run_facets:
            tags["ol.nominal_start"] = run_facets["nominalTime"]["nominalStartTime"]
        error = run_facets.get("errorMessage")
        used = {}
        for (ns, name), facets in inputs.items():
            v = (facets.get("version") or {}).get("datasetVersion")
            used[asset_name(ns, name)] = f"ol:{v}" if v else produced.get(asset_name(ns, name), "ol:unversioned")
        made = {}
        for (ns, name), facets in outputs.items():
            v = (facets.get("version") or {}).get("datasetVersion")
            made[asset_name(ns, name)] = (f"ol:{v}" if v else f"olrun:{run_id}", facets)
        produced |= {k: d for k, (d, _) in made.items()}
        for (ns, name), facets in inputs.items():
            schemas.setdefault((asset_name(ns, name), used[asset_name(ns, name)]), facets.get("schema"))
        for k, (d, f) in made.items():
            schemas.setdefault((k, d), f.get("schema"))
        out[run_id] = {
            "experiment": job["name"], "name": job["name"], "status": STATUS[end["eventType"]],
            "started": _t([e for e in evs if e["eventType"] == "START"][0]["eventTime"]),
            "ended": _t(end["eventTime"]), "tags": tags,
            "parent": (run_facets.get("parent") or {}).get("run", {}).get("runId"),
            "notes": [error["message"] + "\n\n" + error["stackTrace"]] if error else [],
            "git_commit": (job_facets.get("sourceCodeLocation") or {}).get("version"),
            "used": used, "produced": {k: d for k, (d, _) in made.items()},
            "stats": {k: f.get("outputStatistics") for k, (_, f) in made.items()},
            "schema": schemas,
            "derived": {(asset_name(s["namespace"], s["name"]), k)
                        for k, (_, f) in made.items()
                        for spec in ((f.get("columnLineage") or {}).get("fields") or {}).values()
                        for s in spec["inputFields"]},
        }
    for e in out.values():  # a parent not imported (still running) stays a tag
        if e["parent"] is not None and e["parent"] not in out:
            e["tags"]["ol.parent_run_id"], e["parent"] = e["parent"], None
    return out


def check_against_events(backend, events: dict[str, list[dict]]) -> None:
    expected = expected_runs(events)
    views = {v.source_id: v for v in backend.read_runs(include_deleted=True)}
    assert sorted(views) == sorted(expected)
    records = {r.id: r for r in backend.dump_runs([v.id for v in views.values()])}
    by_id = {v.id: v for v in views.values()}
    versions = {}
    for view in views.values():
        for link in (*view.inputs, *view.outputs):
            versions[link.id] = link
    derived = {(versions[e.src_id].name, versions[e.dst_id].name) for e in backend.list_edges()
               if e.relation == "derived_from"}
    want_derived = set()
    for run_id, e in expected.items():
        view, r = views[run_id], records[views[run_id].id]
        assert (r.experiment, r.name, r.source, r.status) == (
            e["experiment"], e["name"], "openlineage", e["status"]), run_id
        assert (r.started.replace(tzinfo=UTC), r.ended.replace(tzinfo=UTC)) == (e["started"], e["ended"])
        assert r.tags == e["tags"], run_id
        assert r.git_commit == e["git_commit"], run_id
        assert [n.text for n in r.notes] == e["notes"], run_id
        parent = by_id[r.parent_id].source_id if r.parent_id else None
        assert parent == e["parent"], run_id
        assert {v.name: v.digest for v in view.inputs} == e["used"], run_id
        assert {v.name: v.digest for v in view.outputs} == e["produced"], run_id
        for link in (*view.inputs, *view.outputs):
            schema = e["schema"][(link.name, link.digest)]
            assert link.meta.get("schema") == ([
                {k: f[k] for k in ("name", "type", "description") if f.get(k) is not None}
                for f in schema["fields"]] if schema else None), (run_id, link.name)
        for link in view.outputs:
            stats = e["stats"][link.name]
            assert (link.meta.get("rowCount"), link.size) == (
                (stats["rowCount"], stats["size"]) if stats else (None, None)), (run_id, link.name)
        want_derived |= e["derived"]
    assert derived == want_derived and len(derived) == 2 * DAYS


def test_realistic_events_come_through_field_by_field(sqlite_store, tmp_path):
    path = tmp_path / "events.ndjson"
    write_week(path)
    events = read_back(path)
    report = import_path(sqlite_store.backend, path, "openlineage")
    # 5 days x (DAG run, extract, report, team-b extract); the last DAG run and report
    # have no terminal event yet: skipped, with the reason, until they end
    assert (report.found, report.imported) == (4 * DAYS, 4 * DAYS - 2)
    assert len(report.skipped) == 2 and all("still running" in r for _, r in report.skipped)
    assert report.warnings == [w for w in report.warnings if w.startswith("skipped")]
    check_against_events(sqlite_store.backend, events)
    runs = sqlite_store.runs("daily_sales.extract")
    assert sorted(r.tags["ol.job.namespace"] for r in runs) == ["airflow"] * DAYS + ["team-b"] * DAYS
    again = import_path(sqlite_store.backend, path, "openlineage")
    assert (again.imported, again.already_present, again.enriched, again.edges) == (0, 4 * DAYS - 2, 0, 0)

    bundle_into_postgresql(sqlite_store, tmp_path, lambda pg: check_against_events(pg, events))
