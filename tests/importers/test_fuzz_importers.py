"""Bounded fuzzing of the importers on mutated real files (issue 10): a CSV and a JSON
Lines table (metastore's table export, pandas' JSON writer), a bundle (metastore's
export, as a folder and as .tar.gz) and an MLflow file store (written by MLflow's own
client, the session's `mlflow_sources`) are
truncated, bit-flipped and given values of the wrong type. Whatever the damage:

- only `MetastoreError` subclasses escape;
- what the report counts is what the store holds: as many runs as `imported`, as many
  params and metric points as the report says, and a source that raised leaves no run
  behind (nothing half-written);
- every run the source held is accounted for (imported, or skipped with a reason).

The examples are the same on every run (tests/fuzzing.py: derandomized in CI);
METASTORE_FUZZ=explore looks further, at random. What it finds is kept below as a plain
test.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metastore
from metastore.errors import MetastoreError
from metastore.importers import import_path
from tests.fuzzing import fuzz

#: Values of the wrong type, put where a file had something else.
WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=8), st.just([]), st.just({}), st.just([1, "a", None]),
    st.just({"a": {"b": []}}), st.just("1e999"), st.just("../../etc/passwd"),
)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """A new store's database file, copied for each example (a copy opens in
    milliseconds; creating the schema takes a good part of a second)."""
    folder = tmp_path_factory.mktemp("fuzz-template")
    metastore.open(f"sqlite:///{folder / 'metastore.db'}", blobs=folder / "blobs").close()
    return folder / "metastore.db"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Pristine sources written by the real tools: metastore's exports of a small store
    (runs with params, metric histories, tags, notes and an output each) and pandas'
    JSON Lines of the same table."""
    import pandas as pd

    from metastore.exporters import export

    root = tmp_path_factory.mktemp("fuzz-sources")
    with metastore.open(f"sqlite:///{root / 'src' / 'metastore.db'}") as src:
        for i in range(3):
            with src.start_run(experiment="fuzz", name=f"r{i}", capture=False) as run:
                run.log_params({"lr": 0.1 * (i + 1), "layers": [64, 32], "opt": "adam"})
                run.log_series("loss", [1.0 / (step + 1) for step in range(5)])
                run.set_tag("team", "nlp")
                run.note("converged")
                run.log_asset(f"weights {i}".encode(), kind="model", name="net")
        export(src.backend, root / "runs.csv")
        export(src.backend, root / "bundle", format="bundle")
        export(src.backend, root / "bundle.tar.gz")
    pd.read_csv(root / "runs.csv").to_json(root / "runs.jsonl", orient="records", lines=True)
    return {"csv": root / "runs.csv", "jsonl": root / "runs.jsonl",
            "bundle": root / "bundle", "tar": root / "bundle.tar.gz"}


# -- mutations ---------------------------------------------------------------------------------


def _truncate(data, path: Path) -> str:
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut at")
    path.write_bytes(raw[:cut])
    return f"{path.name} truncated to {cut} bytes"


def _flip(data, path: Path) -> str:
    raw = bytearray(path.read_bytes())
    if not raw:
        return f"{path.name} empty"
    spots = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)),
                               min_size=1, max_size=6), label="bits")
    for pos, bit in spots:
        raw[pos] ^= 1 << bit
    path.write_bytes(bytes(raw))
    return f"{path.name} bits flipped at {sorted(p for p, _ in spots)}"


def _paths(value, prefix=()):
    """Every place in a JSON value, as a path of keys and indexes."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


def _wrong_json(data, path: Path, lines: bool) -> str:
    """A value somewhere in a JSON (Lines) file replaced by one of another type."""
    text = path.read_text()
    if lines:
        rows = text.splitlines()
        if not rows:
            return f"{path.name} empty"
        i = data.draw(st.integers(0, len(rows) - 1), label="line")
        value = json.loads(rows[i])
    else:
        value = json.loads(text)
    where = data.draw(st.sampled_from(list(_paths(value))), label="where")
    value = _replace(value, where, data.draw(WRONG, label="value"))
    dumped = json.dumps(value)
    if lines:
        rows[i] = dumped
        path.write_text("\n".join(rows) + "\n")
    else:
        path.write_text(dumped)
    return f"{path.name}{'' if not lines else f' line {i + 1}'} at {list(where)} got a wrong type"


def _wrong_cell(data, path: Path, delimiter: str = ",") -> str:
    import csv
    import io

    rows = list(csv.reader(io.StringIO(path.read_text()), delimiter=delimiter))
    r = data.draw(st.integers(0, len(rows) - 1), label="row")
    if not rows[r]:
        return f"{path.name} row {r} empty"
    c = data.draw(st.integers(0, len(rows[r]) - 1), label="column")
    rows[r][c] = data.draw(st.one_of(WRONG.map(json.dumps), st.text(max_size=12)), label="cell")
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    path.write_text(out.getvalue())
    return f"{path.name} row {r} column {c} got a wrong value"


def _wrong_yaml(data, path: Path) -> str:
    import yaml

    value = yaml.safe_load(path.read_text())
    where = data.draw(st.sampled_from(list(_paths(value))), label="where")
    value = _replace(value, where, data.draw(WRONG, label="value"))
    path.write_text(yaml.safe_dump(value))
    return f"{path.name} at {list(where)} got a wrong type"


def _wrong_column(data, path: Path) -> str:
    """A Parquet column replaced by one of another type (same name, same length)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    i = data.draw(st.integers(0, table.num_columns - 1), label="column")
    name = table.column_names[i]
    kind = data.draw(st.sampled_from(["string", "int64", "float64", "bool", "null"]),
                     label="new type")
    values = data.draw(st.lists(WRONG, min_size=table.num_rows, max_size=table.num_rows),
                       label="values")
    converted = {
        "string": lambda v: None if v is None else json.dumps(v),
        "int64": lambda v: v if isinstance(v, int) and not isinstance(v, bool)
        and abs(v) < 2**63 else None,
        "float64": lambda v: float(v) if isinstance(v, int | float) and abs(v) < 2**1000
        else None,
        "bool": lambda v: v if isinstance(v, bool) else None,
        "null": lambda v: None,
    }[kind]
    column = pa.array([converted(v) for v in values], type=getattr(pa, "bool_" if kind == "bool" else kind)())
    pq.write_table(table.set_column(i, name, column), path)
    return f"{path.name} column {name} became {kind}"


#: Columns of an MLflow tracking database a mutation may give values of the wrong type.
MLFLOW_COLUMNS = {
    "experiments": ["experiment_id", "name", "artifact_location", "lifecycle_stage",
                    "creation_time"],
    "runs": ["run_uuid", "name", "status", "start_time", "end_time", "lifecycle_stage",
             "artifact_uri", "experiment_id", "user_id", "source_name"],
    "metrics": ["key", "value", "timestamp", "step", "is_nan", "run_uuid"],
    "latest_metrics": ["key", "value", "timestamp", "step", "run_uuid"],
    "params": ["key", "value", "run_uuid"],
    "tags": ["key", "value", "run_uuid"],
    "experiment_tags": ["key", "value", "experiment_id"],
}
#: SQLite values of the wrong type: any column takes them (no STRICT tables in MLflow).
SQL_WRONG = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True),
    st.text(max_size=8), st.binary(max_size=8), st.just("1e999"), st.just("x" * 300),
)


def _wrong_sql(data, path: Path) -> str:
    """A value in an MLflow database replaced by one of another type (SQLite keeps any
    type in any column): the database stays readable, its contents are wrong."""
    import sqlite3

    table = data.draw(st.sampled_from(sorted(MLFLOW_COLUMNS)), label="table")
    column = data.draw(st.sampled_from(MLFLOW_COLUMNS[table]), label="column")
    value = data.draw(SQL_WRONG, label="value")
    con = sqlite3.connect(path)
    try:
        rows = [r[0] for r in con.execute(f"select rowid from {table}")]  # noqa: S608
        if not rows:
            return f"{table} is empty"
        row = data.draw(st.sampled_from(rows), label="row")
        try:
            con.execute("pragma foreign_keys = off")
            con.execute(f"update {table} set {column} = ? where rowid = ?", (value, row))  # noqa: S608
            con.commit()
        except sqlite3.Error as e:  # NOT NULL, a unique key: the database refuses it
            return f"{table}.{column} kept ({e})"
    finally:
        con.close()
    return f"{table}.{column} of row {row} became {value!r}"


def _flip_pages(data, path: Path) -> str:
    """Bits flipped inside the database's pages (past its 100-byte header, so SQLite
    still opens it and trips over the damage where it reads)."""
    raw = bytearray(path.read_bytes())
    spots = data.draw(st.lists(st.tuples(st.integers(100, len(raw) - 1), st.integers(0, 7)),
                               min_size=1, max_size=8), label="bits")
    for pos, bit in spots:
        raw[pos] ^= 1 << bit
    path.write_bytes(bytes(raw))
    return f"{path.name} page bits flipped at {sorted(p for p, _ in spots)}"


def mutate(data, files: list[Path]) -> str:
    import yaml

    target = data.draw(st.sampled_from(files), label="file")
    kinds = ["truncate", "flip"]
    suffix = target.suffix
    if suffix in (".json", ".jsonl", ".ndjson", ".csv", ".tsv", ".yaml", ".lock", ".parquet",
                  ".db") or target.parent.name in ("params", "tags"):
        kinds.append("types")
    if suffix == ".db":
        kinds.append("pages")
    kind = data.draw(st.sampled_from(kinds), label="mutation")
    if kind == "truncate":
        return _truncate(data, target)
    if kind == "flip":
        return _flip(data, target)
    if kind == "pages":
        return _flip_pages(data, target)
    try:
        if suffix in (".json", ".jsonl", ".ndjson"):
            return _wrong_json(data, target, lines=suffix != ".json")
        if suffix in (".csv", ".tsv"):
            return _wrong_cell(data, target, delimiter="," if suffix == ".csv" else "\t")
        if suffix in (".yaml", ".lock"):
            return _wrong_yaml(data, target)
        if suffix == ".parquet":
            return _wrong_column(data, target)
        if suffix == ".db":
            return _wrong_sql(data, target)
    except (ValueError, UnicodeDecodeError, OSError, yaml.YAMLError):  # not parseable: flip

        return _flip(data, target)
    return _flip(data, target)  # a param's or tag's value file: text, no type to break


# -- the check -----------------------------------------------------------------------------


def check_import(empty_db: Path, source: Path, what: str, name: str | None = None) -> None:
    """Import the mutated source (with importer `name`, else the one detected) into a
    new store and hold the promises above."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-store-", dir=source.parent.parent))
    try:
        shutil.copy(empty_db, work / "metastore.db")
        with metastore.open(f"sqlite:///{work / 'metastore.db'}", blobs=work / "blobs") as store:
            try:
                report = import_path(store.backend, source, name)
            except MetastoreError as e:
                assert str(e)
                assert store.runs() == [], f"{what}: raised {e!r} after writing runs"
                return
            except Exception as e:  # noqa: BLE001 - exactly what the fuzzing looks for
                raise AssertionError(f"{what}: {type(e).__name__} escaped: {e}") from e
            runs = store.runs()
            assert report.complete, f"{what}: {report.summary()}"
            assert len(runs) == report.imported, f"{what}: {report.summary()}"
            assert sum(len(r.params) for r in runs) == report.params, what
            points = sum(len(r.metric_history(k)) for r in runs for k in r.metrics)
            assert points == report.metrics, f"{what}: {points} points, {report.summary()}"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fresh_copy(source: Path) -> Path:
    """A copy of the pristine source the example may damage."""
    work = Path(tempfile.mkdtemp(prefix="fuzz-source-", dir=source.parent))
    target = work / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
@fuzz(8)
@given(data=st.data())
def test_mutated_tables(sources, empty_db, kind, data):
    source = fresh_copy(sources[kind])
    what = mutate(data, [source])
    check_import(empty_db, source, what)


@fuzz(15)
@given(data=st.data())
def test_mutated_bundle_folder(sources, empty_db, data):
    source = fresh_copy(sources["bundle"])
    files = sorted(p for p in source.rglob("*") if p.is_file())
    what = mutate(data, files)
    check_import(empty_db, source, what)


@fuzz(15)
@given(data=st.data())
def test_mutated_bundle_archive(sources, empty_db, data):
    source = fresh_copy(sources["tar"])
    what = mutate(data, [source])
    check_import(empty_db, source, what)


@pytest.fixture(scope="module")
def mlruns_source(mlflow_sources) -> Path:
    return mlflow_sources["files"]


@fuzz(10)
@given(data=st.data())
def test_mutated_mlflow_file_store(mlruns_source, empty_db, data):
    project = fresh_copy(mlruns_source)
    mlruns = project / "mlruns"
    files = sorted(p for p in mlruns.rglob("*") if p.is_file() and "artifacts" not in p.parts)
    what = mutate(data, files)
    check_import(empty_db, mlruns, what)


# -- the other importers, on files their tools wrote (fixtures of their own tests) -------------

from tests.importers.test_dvc import repo as dvc_repo  # noqa: E402 - fixtures reused
from tests.importers.test_neptune import export as neptune_export  # noqa: E402
from tests.importers.test_openlineage import client_events  # noqa: E402
from tests.importers.test_tensorboard import logdir as tensorboard_logdir  # noqa: E402
from tests.importers.test_wandb import wandb_dir  # noqa: E402

__all__ = ["client_events", "dvc_repo", "neptune_export", "tensorboard_logdir", "wandb_dir"]


def _files(root: Path, skip=(".git", ".dvc")) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and not set(skip) & set(p.parts))


@fuzz(10)
@given(data=st.data())
def test_mutated_dvc_repository(dvc_repo, empty_db, data):
    """The workspace of a repository made by dvc itself: params.yaml, dvc.lock, dvc.yaml,
    metrics.json and dvclive's files (the experiments in git are read as they are)."""
    repo = fresh_copy(dvc_repo)
    what = mutate(data, _files(repo))
    check_import(empty_db, repo, what, "dvc")


@fuzz(8)
@given(data=st.data())
def test_mutated_dvc_exp_show_json(dvc_repo, empty_db, data):
    """`dvc exp show --json` as dvc printed it for that repository."""
    shown = fresh_copy(dvc_repo.parent / "exp_show.json")
    what = mutate(data, [shown])
    check_import(empty_db, shown, what, "dvc")


@fuzz(10)
@given(data=st.data())
def test_mutated_wandb_offline_runs(wandb_dir, empty_db, data):
    """Offline run folders written by wandb: the .wandb record log, config.yaml,
    wandb-summary.json, wandb-metadata.json."""
    folder = fresh_copy(wandb_dir)
    what = mutate(data, _files(folder))
    check_import(empty_db, folder, what, "wandb")


@fuzz(8)
@given(data=st.data())
def test_mutated_tensorboard_event_files(tensorboard_logdir, empty_db, data):
    logdir = fresh_copy(tensorboard_logdir)
    what = mutate(data, _files(logdir))
    check_import(empty_db, logdir, what, "tensorboard")


@fuzz(8)
@given(data=st.data())
def test_mutated_neptune_export(neptune_export, empty_db, data):
    """neptune-exporter's Parquet parts (built with pyarrow in its schema: the service is
    gone) and the files beside them."""
    exports = fresh_copy(neptune_export.parent)
    what = mutate(data, _files(exports))
    check_import(empty_db, exports / "data", what, "neptune")


@fuzz(8)
@given(data=st.data())
def test_mutated_openlineage_events(client_events, empty_db, data):
    """NDJSON written by the openlineage client's file transport."""
    events = fresh_copy(client_events[0])
    what = mutate(data, [events])
    check_import(empty_db, events, what, "openlineage")


@fuzz(10)
@given(data=st.data())
def test_mutated_mlflow_database(mlflow_sources, empty_db, data):
    """A tracking database written by MLflow (SQLite): truncated, bits flipped in its
    pages, values of the wrong type in its tables."""
    db = fresh_copy(mlflow_sources["sql"]) / "mlflow.db"
    what = mutate(data, [db])
    check_import(empty_db, db, what, "mlflow")


def test_the_pristine_sources_import_whole(sources, empty_db, mlruns_source):
    """The fuzzing starts from sources that import without a skip."""
    for source in [*sources.values(), mlruns_source / "mlruns"]:
        work = Path(tempfile.mkdtemp(prefix="fuzz-store-"))
        shutil.copy(empty_db, work / "metastore.db")
        with metastore.open(f"sqlite:///{work / 'metastore.db'}", blobs=work / "blobs") as store:
            report = import_path(store.backend, source)
            assert report.imported and not report.skipped, (source, report.summary())
        shutil.rmtree(work)
    assert tarfile.is_tarfile(sources["tar"])


# -- what the fuzzing found, kept as plain tests ------------------------------------------------


def test_a_bundle_line_that_is_not_utf8_is_one_skipped_line(sources, empty_db):
    source = fresh_copy(sources["bundle"])
    runs = source / "runs.jsonl"
    lines = runs.read_bytes().splitlines()
    lines[1] = lines[1][:20] + b"\xff\xfe" + lines[1][22:]
    runs.write_bytes(b"\n".join(lines) + b"\n")
    (source / "edges.jsonl").write_bytes(b"\xba" + (source / "edges.jsonl").read_bytes())
    check_import(empty_db, source, "bytes that are not UTF-8 in runs.jsonl and edges.jsonl")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, source)
    assert report.imported == 2 and "runs.jsonl line 2" in report.skipped[0][0]


def test_a_bundle_archive_whose_deflate_stream_breaks_is_import_failed(sources, empty_db):
    """A byte flipped deep in the compressed stream: zlib fails while the archive is
    unpacked, after tarfile opened it."""
    import io
    import zlib

    from metastore.importers import ImportFailed

    folder = fresh_copy(sources["bundle"])
    # text compresses: the archive is one long deflate stream, read lazily by tarfile
    (folder / "zz-padding.txt").write_text("".join(f"line {n}\n" for n in range(40_000)))
    archive = folder.parent / "big.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for p in sorted(folder.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False)
    raw = archive.read_bytes()
    for pos in range(len(raw) - 20, len(raw) // 2, -97):  # find a flip zlib trips over
        damaged = bytearray(raw)
        damaged[pos] ^= 0x10
        try:
            with tarfile.open(fileobj=io.BytesIO(bytes(damaged)), mode="r:gz") as tar:
                tar.extractall(tempfile.mkdtemp(dir=folder.parent), filter="data")
        except zlib.error:
            break
        except Exception:  # noqa: BLE001, S112 - another kind of damage: look further
            continue
    else:
        pytest.fail("no single flipped byte broke the deflate stream")
    archive.write_bytes(bytes(damaged))
    with _new_store(empty_db) as store, pytest.raises(ImportFailed):
        import_path(store.backend, archive, "bundle")
    check_import(empty_db, archive, f"byte {pos} flipped")


def test_a_bundle_archive_with_a_time_out_of_range_is_import_failed(sources, empty_db, tmp_path):
    from metastore.importers import ImportFailed

    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for p in sorted(sources["bundle"].rglob("*")):
            info = tar.gettarinfo(p, arcname=str(p.relative_to(sources["bundle"])))
            info.mtime = 10**20  # GNU tar stores it (base-256); no file system can
            if p.is_file():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    with _new_store(empty_db) as store, pytest.raises(ImportFailed, match="not a readable"):
        import_path(store.backend, archive, "bundle")


@pytest.mark.parametrize("field, value", [
    ("artifact_uri", True), ("run_name", True), ("start_time", "x"), ("status", 2**70),
    ("run_id", ["a"]), ("user_id", {"a": 1}),
])
def test_mlflow_run_meta_of_the_wrong_type_skips_the_run(mlruns_source, empty_db, field, value):
    import yaml

    mlruns = fresh_copy(mlruns_source) / "mlruns"
    meta = next(p for p in sorted(mlruns.glob("*/*/meta.yaml")) if p.parent.name != "datasets"
                and yaml.safe_load(p.read_text()).get("run_name"))
    data = yaml.safe_load(meta.read_text())
    data[field] = value
    meta.write_text(yaml.safe_dump(data))
    check_import(empty_db, mlruns, f"{field}: {value!r}")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, mlruns)
    if field != "status":  # an unknown status number is kept as text, the run imported
        assert any(field in reason for _, reason in report.skipped), report.skipped


@pytest.mark.parametrize("which, field", [("inputs", "tags"), ("datasets", "profile")])
def test_mlflow_dataset_meta_of_the_wrong_type_skips_the_run(mlruns_source, empty_db, which,
                                                            field):
    import yaml

    mlruns = fresh_copy(mlruns_source) / "mlruns"
    metas = sorted(mlruns.glob(f"*/*/{which}/*/meta.yaml") if which == "inputs"
                   else mlruns.glob(f"*/{which}/*/meta.yaml"))
    assert metas, f"the MLflow store has no {which}"
    for meta in metas:
        data = yaml.safe_load(meta.read_text())
        data[field] = True
        meta.write_text(yaml.safe_dump(data))
    check_import(empty_db, mlruns, f"{which} {field}: true")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, mlruns)
    assert report.skipped


def test_an_unreadable_experiment_tag_is_a_warning_and_its_runs_come_in(mlruns_source,
                                                                       empty_db):
    """Found by the fuzzing: bytes that are not UTF-8 in an experiment's tag file (not a
    run's) made the whole import raise; the experiment's tags are what is lost."""
    mlruns = fresh_copy(mlruns_source) / "mlruns"
    tag = next(p for p in sorted(mlruns.glob("*/tags/*")) if p.parent.parent.name != ".trash")
    tag.write_bytes(b"\xf6" + tag.read_bytes())
    check_import(empty_db, mlruns, "an experiment tag that is not UTF-8")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, mlruns)
    assert report.imported and not report.skipped, report.summary()
    assert any(str(tag.parent) in w for w in report.warnings), report.warnings


def _new_store(empty_db: Path):
    work = Path(tempfile.mkdtemp(prefix="fuzz-store-", dir=empty_db.parent))
    shutil.copy(empty_db, work / "metastore.db")
    return metastore.open(f"sqlite:///{work / 'metastore.db'}", blobs=work / "blobs")


def test_an_openlineage_dataset_facet_of_the_wrong_type_skips_its_run(client_events,
                                                                     empty_db):
    """Found by the fuzzing: `inputFacets` holding a list raised a TypeError."""
    events = fresh_copy(client_events[0])
    lines = events.read_text().splitlines()
    first = json.loads(lines[0])
    first["inputs"][0]["inputFacets"] = [1, "a", None]
    lines[0] = json.dumps(first)
    events.write_text("\n".join(lines) + "\n")
    check_import(empty_db, events, "inputFacets: a list", "openlineage")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, events, "openlineage")
    assert report.imported == 1, report.summary()
    assert any("inputFacets" in reason for _, reason in report.skipped), report.skipped


@pytest.mark.parametrize("table, column, value", [
    ("params", "key", b""), ("metrics", "value", b""), ("metrics", "key", b"\x9fC"),
    ("tags", "value", b"\xff"), ("runs", "start_time", "soon"), ("runs", "name", b"\x00"),
])
def test_an_mlflow_database_value_of_the_wrong_type_skips_its_run(mlflow_sources, empty_db,
                                                                   table, column, value):
    """Found by the fuzzing: SQLite keeps any type in any column; a BLOB key or value
    raised TypeError, ValueError or a ValidationError from the middle of the import."""
    import sqlite3

    db = fresh_copy(mlflow_sources["sql"]) / "mlflow.db"
    con = sqlite3.connect(db)
    [(run_id,)] = con.execute(f"select run_uuid from {table} where run_uuid is not null "  # noqa: S608
                              "order by run_uuid limit 1").fetchall()
    con.execute(f"update {table} set {column} = ? where rowid = (select min(rowid) from "  # noqa: S608
                f"{table} where run_uuid = ?)", (value, run_id))
    con.commit()
    con.close()
    check_import(empty_db, db, f"{table}.{column} = {value!r}", "mlflow")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, db, "mlflow")
        assert report.imported and store.backend.runs_by_source("mlflow", [run_id]) == {}
    [(where, reason)] = report.skipped
    assert run_id in where and table in reason, report.skipped


def test_an_mlflow_database_sqlite_cannot_read_is_import_failed(mlflow_sources, empty_db):
    """Text that is not UTF-8 (a flipped bit in a page) makes SQLite fail the read of
    the whole table: ImportFailed, before a run is written (was an OperationalError)."""
    import sqlite3

    from metastore.importers import ImportFailed

    db = fresh_copy(mlflow_sources["sql"]) / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute("update params set value = cast(x'ff41' as text) "
                "where rowid = (select min(rowid) from params)")
    con.commit()
    con.close()
    with _new_store(empty_db) as store, pytest.raises(ImportFailed, match="MLflow database"):
        import_path(store.backend, db, "mlflow")
    check_import(empty_db, db, "a param that is not UTF-8", "mlflow")


def test_an_mlflow_database_whose_table_names_are_not_utf8_is_import_failed(mlflow_sources,
                                                                           empty_db):
    """Found by the fuzzing: a flipped bit in the schema page made reading the table
    names raise UnicodeDecodeError: SQLite's "malformed database schema (NAME)" error
    quotes a name that is not UTF-8, and sqlite3 fails to decode its own message."""
    import sqlite3

    from metastore.importers import ImportFailed

    db = fresh_copy(mlflow_sources["sql"]) / "mlflow.db"
    con = sqlite3.connect(db)
    con.execute('create table "zz\u00e9zz" (x)')
    con.commit()
    con.close()
    raw = db.read_bytes().replace(b'CREATE TABLE "zz', b'CREATE TABLF "zz')  # malformed
    db.write_bytes(raw.replace("zz\u00e9zz".encode(), b"zz\xb2\xa9zz"))
    with _new_store(empty_db) as store, pytest.raises(ImportFailed):
        import_path(store.backend, db, "mlflow")
    check_import(empty_db, db, "a table name that is not UTF-8", "mlflow")


@pytest.mark.parametrize("column, new_type", [("string_value", "float64"),
                                              ("attribute_path", "null")])
def test_a_neptune_column_of_the_wrong_type_skips_its_run(neptune_export, empty_db, column,
                                                          new_type):
    """Found by the fuzzing: `string_value` holding floats reached RunRecord as the
    owner's name (a ValidationError); a column of nulls naming the rows an
    AttributeError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    exports = fresh_copy(neptune_export.parent)
    part = sorted((exports / "data").rglob("CV-2_part_0.parquet"))[0]
    table = pq.read_table(part)
    i = table.column_names.index(column)
    values = [1.5] * table.num_rows if new_type == "float64" else [None] * table.num_rows
    table = table.set_column(i, column, pa.array(values, type=getattr(pa, new_type)()))
    pq.write_table(table, part)
    check_import(empty_db, exports / "data", f"{column} became {new_type}", "neptune")
    with _new_store(empty_db) as store:
        report = import_path(store.backend, exports / "data", "neptune")
    assert report.imported == 1, report.summary()
    [(where, reason)] = report.skipped
    assert "CV-2" in where and column in reason, report.skipped
