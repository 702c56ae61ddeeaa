"""Neptune import from neptune-exporter output. The Neptune service has shut down, so the
exports are built here with pyarrow, following neptune-exporter's Parquet schema and
on-disk layout (`<data>/<project dir>/<run>_part_<n>.parquet`, files beside it)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from metastore.importers import detect, import_path

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

DATA = Path(__file__).parent.parent / "data" / "neptune"
PROJECT = "acme/vision"
PROJECT_DIR = "acme-vision_3f9a"
T0 = datetime(2025, 11, 3, 9, 0, tzinfo=UTC)

SCHEMA = pa.schema([
    ("project_id", pa.string()),
    ("run_id", pa.string()),
    ("attribute_path", pa.string()),
    ("attribute_type", pa.string()),
    ("step", pa.decimal128(18, 6)),
    ("timestamp", pa.timestamp("ms", tz="UTC")),
    ("int_value", pa.int64()),
    ("float_value", pa.float64()),
    ("string_value", pa.string()),
    ("bool_value", pa.bool_()),
    ("datetime_value", pa.timestamp("ms", tz="UTC")),
    ("string_set_value", pa.list_(pa.string())),
    ("file_value", pa.struct([("path", pa.string())])),
    ("histogram_value", pa.struct([
        ("type", pa.string()), ("edges", pa.list_(pa.float64())), ("values", pa.list_(pa.float64()))
    ])),
])


def row(run, path, type_, **values):
    base = {name: None for name in SCHEMA.names}
    base.update(project_id=PROJECT, run_id=run, attribute_path=path, attribute_type=type_)
    base.update(values)
    return base


def run_rows(run: str, *, name="resnet-sweep", failed=False, lr=0.01, fork=None, fractional=False):
    rows = [
        row(run, "sys/id", "string", string_value=run),
        row(run, "sys/name", "string", string_value=name),
        row(run, "sys/creation_time", "datetime", datetime_value=T0),
        row(run, "sys/modification_time", "datetime", datetime_value=T0 + timedelta(minutes=30)),
        row(run, "sys/owner", "string", string_value="marta"),
        row(run, "sys/hostname", "string", string_value="gpu-3"),
        row(run, "sys/failed", "bool", bool_value=failed),
        row(run, "sys/tags", "string_set", string_set_value=["resnet", "baseline"]),
        row(run, "sys/description", "string", string_value="lr sweep, first pass"),
        row(run, "sys/state", "string", string_value="Inactive"),
        row(run, "parameters/lr", "float", float_value=lr),
        row(run, "parameters/batch_size", "int", int_value=64),
        row(run, "parameters/optimizer", "string", string_value="sgd"),
        row(run, "parameters/nesterov", "bool", bool_value=True),
        row(run, "parameters/started", "datetime", datetime_value=T0),
        row(run, "parameters/classes", "string_set", string_set_value=["dog", "cat"]),
        row(run, "model/weights", "file", file_value={"path": f"{run}/model/weights.pt"}),
        row(run, "model/missing", "file", file_value={"path": f"{run}/model/not-downloaded.bin"}),
    ]
    for i in range(5):
        step = Decimal(i) / 2 if fractional else Decimal(i)
        rows.append(row(run, "train/loss", "float_series", step=step,
                        timestamp=T0 + timedelta(minutes=i), float_value=1.0 / (i + 1)))
        rows.append(row(run, "monitoring/stdout", "string_series", step=Decimal(i),
                        timestamp=T0 + timedelta(minutes=i), string_value=f"epoch {i}"))
    rows.append(row(run, "train/grads", "histogram_series", step=Decimal(0), timestamp=T0,
                    histogram_value={"type": "COUNTING", "edges": [0.0, 1.0], "values": [3.0]}))
    rows.append(row(run, "train/loss", "float_series", step=Decimal(5),
                    timestamp=T0 + timedelta(minutes=5), float_value=float("nan")))
    if fork:
        rows.append(row(run, "sys/forking/parent", "string", string_value=fork))
        rows.append(row(run, "sys/forking/step", "float", float_value=2.0))
    return rows


def write_run(data: Path, files: Path, run: str, parts: int = 1, **kw) -> None:
    rows = run_rows(run, **kw)
    folder = data / PROJECT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(rows) // parts)
    for n in range(parts):
        chunk = rows[n * size:(n + 1) * size]
        pq.write_table(pa.Table.from_pylist(chunk, schema=SCHEMA), folder / f"{run}_part_{n}.parquet",
                       compression="snappy")
    weights = files / PROJECT_DIR / run / "model" / "weights.pt"
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(f"weights of {run}".encode())


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("neptune") / "exports"
    data, files = root / "data", root / "files"
    write_run(data, files, "CV-1", parts=2)
    write_run(data, files, "CV-2", failed=True, lr=0.1, fork="CV-1", fractional=True)
    return data


def test_detect(export):
    assert detect(export) == "neptune"
    assert detect(export / PROJECT_DIR) == "neptune"


def test_import_export(store, export):
    report = import_path(store.backend, export, "neptune")
    assert (report.found, report.imported, report.skipped) == (2, 2, [])
    runs = {r.name: r for r in store.runs("resnet-sweep")}
    one, two = runs["CV-1"], runs["CV-2"]
    assert one.source == "neptune" and one.source_id == "acme/vision/CV-1"
    assert one.params == {
        "parameters.lr": 0.01, "parameters.batch_size": 64, "parameters.optimizer": "sgd",
        "parameters.nesterov": True, "parameters.started": "2025-11-03T09:00:00",
        "parameters.classes": ["cat", "dog"],
    }
    loss = one.metric_history("train/loss")
    assert [(m.step, m.value) for m in loss] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25), (4, 0.2)]
    assert loss[2].timestamp == datetime(2025, 11, 3, 9, 2)
    assert any("non-finite" in w for w in report.warnings)  # the NaN point
    assert report.left_out == {"histogram points": 2}  # one per run, counted by kind
    assert any("not-downloaded" in w or "not under" in w for w in report.warnings)
    assert (one.status, one.user, one.host) == ("finished", "marta", "gpu-3")
    assert one.started == datetime(2025, 11, 3, 9, 0) and one.ended == datetime(2025, 11, 3, 9, 30)
    assert {"resnet": "", "baseline": "", "neptune.state": "Inactive"}.items() <= one.tags.items()
    assert one.notes[0].text == "lr sweep, first pass"
    outputs = {v.name: v for v in one.outputs}
    assert outputs["model/weights"].kind == "model"
    assert outputs["model/weights"].read_bytes() == b"weights of CV-1"
    log = outputs["acme/vision/CV-1/monitoring/stdout"]
    assert log.kind == "log" and log.read_bytes().decode().splitlines()[1].endswith("\tepoch 1")

    assert two.status == "failed" and two.parent_id == one.id
    assert two.tags["neptune.fork_step"] == "2.0"
    # steps 0, 0.5, 1 … scaled to whole numbers
    assert [m.step for m in two.metric_history("train/loss")] == [0, 5, 10, 15, 20]
    assert two.tags["neptune.step_scale.train/loss"] == "10"

    again = import_path(store.backend, export, "neptune")
    assert (again.imported, again.already_present) == (0, 2)


def test_incomplete_and_corrupt_runs(sqlite_store, export, tmp_path):
    data = tmp_path / "exports" / "data"
    shutil.copytree(export.parent, tmp_path / "exports")
    shutil.copy(DATA / "exports" / "data" / PROJECT_DIR / "CV-7_part_0.parquet", data / PROJECT_DIR)
    # an export interrupted mid-run leaves .tmp parts and no part_0
    (data / PROJECT_DIR / "CV-9_part_1.parquet.tmp").write_bytes(b"partial")
    report = import_path(sqlite_store.backend, data, "neptune")
    assert (report.found, report.imported, len(report.skipped)) == (4, 2, 2)
    assert report.complete
    reasons = dict(report.skipped)
    assert any("CV-7_part_0.parquet" in w and "not a readable Parquet" in r for w, r in reasons.items())
    assert any("CV-9" in w and "incomplete" in r for w, r in reasons.items())
    assert {r.name for r in sqlite_store.runs()} == {"CV-1", "CV-2"}


def test_files_path_option_and_no_copy(sqlite_store, export, tmp_path):
    moved = tmp_path / "cold" / "files"
    shutil.copytree(export.parent / "files", moved)
    data = tmp_path / "data"
    shutil.copytree(export, data)
    report = import_path(sqlite_store.backend, data / PROJECT_DIR, "neptune", copy=False, files_path=str(moved))
    assert report.imported == 2
    weights = sqlite_store.get_run("CV-1").outputs
    [w] = [v for v in weights if v.name == "model/weights"]
    assert w.uri.startswith("file://") and str(moved) in w.uri
