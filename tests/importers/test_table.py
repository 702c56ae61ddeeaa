"""The CSV / TSV / JSON Lines importer (NAME "csv") on hand-made tables in tests/data/csv."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from metastore.importers import ImportFailed, detect, import_path
from metastore.importers.values import finite, infer_value, to_utc

CSV = Path(__file__).parent.parent / "data" / "csv"


@pytest.mark.parametrize(
    "text, value",
    [
        ("0.1", 0.1), ("5", 5), ("-3", -3), ("1e-3", 0.001), (".5", 0.5), ("true", True),
        ("False", False), ("TRUE", True), ("[64, 32]", [64, 32]), ('{"a": 1}', {"a": 1}),
        ("['a', 'b']", ["a", "b"]), ("(1, 2)", [1, 2]), ("007", "007"), ("0123.5", "0123.5"),
        ("None", "None"), ("1_000", "1_000"), ("", ""), ("adam", "adam"), ("[oops", "[oops"),
        (" 5 ", 5), ("0", 0), ("-0.0", -0.0),
    ],
)
def test_infer_value(text, value):
    got = infer_value(text)
    assert got == value and type(got) is type(value)


T = datetime(2023, 11, 14, 22, 13, 20)


@pytest.mark.parametrize("value,kwargs,expected", [
    (1700000000, {}, T), (1700000000000, {}, T), (1700000000000000, {}, T),  # by magnitude
    ("1700000000", {}, T), (1700000000000, {"unit": "ms"}, T),  # MLflow: milliseconds
    (1700000, {"unit": "ms"}, datetime(1970, 1, 1, 0, 28, 20)),  # small but still ms
    ("2023-11-14T22:13:20Z", {}, T), ("2023-11-15T00:13:20+02:00", {}, T),
    (datetime(2023, 11, 14, 22, 13, 20), {}, T), (None, {}, None), ("", {}, None),
    ("yesterday", {}, None), (float("nan"), {}, None),
])
def test_one_time_parser(value, kwargs, expected):
    assert to_utc(value, **kwargs) == expected


def test_time_parser_strict_says_what_is_wrong():
    with pytest.raises(ValueError, match="not a time"):
        to_utc("yesterday", strict=True)


def test_finite():
    assert finite(1) and finite(0.5) and not finite(True) and not finite(float("inf"))
    assert not finite(float("nan")) and not finite("1")


def test_spreadsheet_by_hand(store):
    path = CSV / "spreadsheet.csv"
    assert detect(path) == "csv"
    report = import_path(store.backend, path, metrics=["acc", "loss"])
    assert (report.found, report.imported, report.skipped) == (3, 3, [])
    runs = {r.name: r for r in store.runs("spreadsheet")}
    assert runs["baseline"].params == {
        "lr": 0.1, "batch": 32, "optimizer": "sgd", "use_bn": True,
    }
    assert runs["baseline"].metrics == {"acc": 0.81, "loss": 0.52}
    assert [n.text for n in runs["baseline"].notes] == ["first try"]
    # an empty cell is "not recorded", not 0
    assert runs["adam"].metrics == {"acc": 0.88}
    assert runs["adam"].params["lr"] == 0.001 and runs["adam"].params["use_bn"] is True
    assert [n.text for n in runs["adam"].notes] == ["adam, finally"]
    assert runs["bigger batch"].source == "csv"


def test_params_option_makes_the_rest_metrics(sqlite_store):
    import_path(sqlite_store.backend, CSV / "spreadsheet.csv", params="lr,batch,optimizer,use_bn")
    run = sqlite_store.get_run("baseline")
    assert set(run.params) == {"lr", "batch", "optimizer", "use_bn"}
    assert run.metrics == {"acc": 0.81, "loss": 0.52}


def test_unprefixed_columns_default_to_params_with_a_warning(sqlite_store):
    report = import_path(sqlite_store.backend, CSV / "spreadsheet.csv")
    assert sqlite_store.get_run("baseline").params["acc"] == 0.81
    assert any("acc" in w and "--metrics" in w for w in report.warnings)


def test_mlflow_search_runs_export(sqlite_store):
    report = import_path(sqlite_store.backend, CSV / "search_runs.csv", experiment="mlflow-export")
    assert report.imported == 2
    runs = {r.name: r for r in sqlite_store.runs("mlflow-export")}
    enet = runs["enet-0"]
    assert enet.source_id == "4c0c3b9d1fd94b2f8bd6a2cdd4d1c0a1"
    assert enet.params == {"alpha": 0.5, "l1_ratio": 0.1}
    assert enet.metrics == {"rmse": 0.79, "r2": 0.12}
    assert enet.tags == {"team": "vision"} and enet.user == "alice"
    assert enet.started == datetime(2026, 11, 20, 10, 0, 0, 123000)
    assert enet.ended == datetime(2026, 11, 20, 10, 0, 5, 500000)
    assert runs["enet-1"].status == "failed" and runs["enet-1"].metrics == {}


def test_json_lines(sqlite_store):
    path = CSV / "runs.jsonl"
    assert detect(path) == "csv"
    report = import_path(sqlite_store.backend, path)
    assert report.found == 4 and report.imported == 2 and len(report.skipped) == 2
    assert report.complete
    text = "\n".join(f"{w}: {r}" for w, r in report.skipped)
    assert "runs.jsonl line 4: is not a JSON object" in text
    assert "runs.jsonl line 5: is not valid JSON" in text
    one = sqlite_store.get_run("one")
    assert one.params == {"lr": 0.1, "layers": [64, 32], "opt": {"name": "adam"}}
    assert one.metrics == {"acc": 0.9} and one.tags == {"team": "nlp"}
    assert one.started == datetime(2026, 11, 23, 7, 54, 20, 492000)
    two = sqlite_store.get_run("two")
    assert two.params == {"lr": 0.2, "seed": 7} and two.metrics == {"acc": 0.93}


def test_malformed_rows_are_skipped_and_counted(store):
    report = import_path(store.backend, CSV / "broken.csv")
    assert report.found == 5 and report.imported == 1 and len(report.skipped) == 4
    assert report.complete
    text = "\n".join(f"{w}: {r}" for w, r in report.skipped)
    assert "broken.csv line 3: has 5 cells but the header has 4" in text
    assert "broken.csv line 4: metric 'acc': 'high' is not a number" in text
    assert "status 'exploded'" in text
    assert [r.name for r in store.runs("broken")] == ["ok"]


def test_idempotent_and_new_rows(sqlite_store, tmp_path):
    path = tmp_path / "runs.csv"
    shutil.copy(CSV / "spreadsheet.csv", path)
    import_path(sqlite_store.backend, path, metrics="acc,loss")
    again = import_path(sqlite_store.backend, path, metrics="acc,loss")
    assert (again.imported, again.already_present) == (0, 3)
    with open(path, "a") as f:
        f.write("sgd again,0.1,32,sgd,true,0.81,0.52,first try\n")
        f.write("sgd again,0.1,32,sgd,true,0.81,0.52,first try\n")  # a repeat is a new run
    third = import_path(sqlite_store.backend, path, metrics="acc,loss")
    assert (third.imported, third.already_present) == (2, 3)
    assert len(sqlite_store.runs("runs")) == 5


def test_dry_run(sqlite_store):
    report = import_path(sqlite_store.backend, CSV / "spreadsheet.csv", dry_run=True)
    assert report.imported == 3 and sqlite_store.runs() == []


def test_unreadable_files_fail_whole(sqlite_store, tmp_path):
    with pytest.raises(ImportFailed, match="not UTF-8"):
        import_path(sqlite_store.backend, CSV / "not_utf8.csv", "csv")
    dup = tmp_path / "dup.csv"
    dup.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(ImportFailed, match="appear twice: a"):
        import_path(sqlite_store.backend, dup)


def test_tsv_and_semicolons(sqlite_store, tmp_path):
    (tmp_path / "t.tsv").write_text("name\tparams.lr\tmetrics.acc\nx\t0.1\t0.5\n")
    (tmp_path / "s.csv").write_text("name;params.lr;metrics.acc\ny;0.2;0.6\n")
    import_path(sqlite_store.backend, tmp_path / "t.tsv")
    import_path(sqlite_store.backend, tmp_path / "s.csv")
    assert sqlite_store.get_run("x").metrics == {"acc": 0.5}
    assert sqlite_store.get_run("y").params == {"lr": 0.2}


def test_a_run_the_store_refuses_is_skipped_alone(store, tmp_path):
    """Runs are written in batches; when one run of a batch cannot be written (here a
    tag over the store's 500-character limit), only that run is skipped."""
    path = tmp_path / "mixed.csv"
    rows = ["name,params.lr,tags.comment"]
    rows += [f"run-{i},0.{i},fine" for i in range(5)]
    rows.insert(3, "too-long,0.9," + "x" * 600)
    path.write_text("\n".join(rows) + "\n")
    report = import_path(store.backend, path)
    assert (report.found, report.imported) == (6, 5) and report.complete
    [(where, why)] = report.skipped
    assert where.endswith("mixed.csv line 4") and "at most 500 characters" in why
    assert [r.name for r in store.runs("mixed")] == [f"run-{i}" for i in range(5)]
    assert report.params == 5


def test_bulk_create_runs_with_parents(store):
    from metastore.models import new_id
    from metastore.records import MetricPoint, RunRecord

    parent_id = new_id()
    ids = store.backend.create_runs(
        [
            RunRecord(experiment="bulk", name="parent", id=parent_id, params={"a": 1},
                      metrics=[MetricPoint(key="loss", value=0.5, step=0), MetricPoint(key="loss", value=0.25, step=1)]),
            RunRecord(experiment="bulk", name="child", parent_id=parent_id, tags={"t": "v"}),
            RunRecord(experiment="other", name="alone"),
        ]
    )
    assert ids[0] == parent_id and len(ids) == 3
    parent, child = store.runs("bulk")
    assert (parent.number, child.number) == (1, 2) and child.parent_id == parent_id
    assert parent.metrics == {"loss": 0.25} and parent.metric_summary("loss").count == 2
    assert child.tags == {"t": "v"} and store.runs("other")[0].number == 1
    assert store.backend.runs_by_source("x", ["a"]) == {}


@pytest.fixture(scope="module")
def pandas_tables(tmp_path_factory) -> tuple[Path, Path, object]:
    """40 runs written by pandas, as CSV and JSON Lines, with typed params, empty metric
    cells, tags and times."""
    pd = pytest.importorskip("pandas")
    n = 40
    frame = pd.DataFrame({
        "run_id": [f"r{i:03d}" for i in range(n)],
        "name": [f"trial-{i}" for i in range(n)],
        "experiment": [["tabular", "vision"][i % 2] for i in range(n)],
        "status": [["finished", "failed", "killed", "finished"][i % 4] for i in range(n)],
        "start_time": pd.to_datetime([f"2026-03-01 10:{i:02d}:00.250" for i in range(n)]),
        "params.lr": [0.001 * (i + 1) for i in range(n)],
        "params.layers": [2 + i % 3 for i in range(n)],
        "params.opt": [["adam", "sgd"][i % 2] for i in range(n)],
        "params.use_bn": [i % 3 == 0 for i in range(n)],
        "metrics.acc": [None if i % 7 == 0 else 0.5 + i / 100 for i in range(n)],
        "metrics.loss": [1.0 / (i + 1) for i in range(n)],
        "tags.team": [["nlp", "cv", "ops"][i % 3] for i in range(n)],
    })
    root = tmp_path_factory.mktemp("tables")
    frame.to_csv(root / "runs.csv", index=False)
    frame.to_json(root / "runs.jsonl", orient="records", lines=True, date_format="iso")
    return root / "runs.csv", root / "runs.jsonl", pd


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_tables_written_by_pandas_field_by_field(sqlite_store, pandas_tables, kind):
    """Every cell pandas reads back from the file is what the store holds for the run."""
    csv_path, jsonl_path, pd = pandas_tables
    path = csv_path if kind == "csv" else jsonl_path
    report = import_path(sqlite_store.backend, path)
    assert (report.found, report.imported, report.skipped) == (40, 40, [])
    back = pd.read_csv(path) if kind == "csv" else pd.read_json(path, lines=True, precise_float=True)
    runs = {r.source_id: r for r in sqlite_store.backend.dump_runs(
        [v.id for v in sqlite_store.backend.read_runs()])}
    for row in back.to_dict("records"):
        run = runs[row["run_id"]]
        assert (run.name, run.experiment, run.status) == (
            row["name"], row["experiment"], row["status"])
        assert run.started == pd.Timestamp(row["start_time"]).to_pydatetime()
        assert run.params == {k.removeprefix("params."): (v.item() if hasattr(v, "item") else v)
                              for k, v in row.items() if k.startswith("params.")}
        assert {p.key: p.value for p in run.metrics} == {
            k.removeprefix("metrics."): v for k, v in row.items()
            if k.startswith("metrics.") and not pd.isna(v)}
        assert run.tags == {"team": row["tags.team"]}
    again = import_path(sqlite_store.backend, path)
    assert (again.imported, again.already_present) == (0, 40)


def test_a_run_id_twice_in_one_source_is_one_run(sqlite_store, tmp_path):
    """The writer tells runs apart by source id within a batch too (it wrote both)."""
    path = tmp_path / "dup.csv"
    path.write_text("run_id,params.lr\na,0.1\na,0.2\nb,0.3\n")
    report = import_path(sqlite_store.backend, path)
    assert (report.found, report.imported, report.already_present) == (3, 2, 1)
    assert any("holds run a twice" in w for w in report.warnings)
    assert sorted(r.params["lr"] for r in sqlite_store.runs()) == [0.1, 0.3]
