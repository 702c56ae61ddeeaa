"""Recording and reading back runs, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from metastore.errors import Conflict, InvalidValue, NotFound


def test_record_and_read_back(store, tmp_path, monkeypatch):
    # outside any repository: a dirty checkout running the tests would add code:git-diff
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    model = tmp_path / "model.pkl"
    model.write_bytes(b"weights-1")
    with store.start_run(experiment="diabetes", name="lr-all") as run:
        run.log_params({"algorithm": "linear", "features": "age,bmi", "normalize": True, "seed": 0,
                        "alpha": 0.5, "layers": [64, 32]})
        run.use_asset(data, kind="dataset", name="diabetes")
        for epoch in range(20):
            run.log_metric("loss", 1 / (epoch + 1), step=epoch)
        run.log_metrics({"rmse": 53.1, "r2": 0.47, "mae": 42.8})
        run.log_asset(model, kind="model", name="regressor")
        run.note("bmi dominates; try dropping s3")

    got = store.get_run(run.id)
    assert got.status == "finished" and got.ended is not None and got.duration >= 0
    assert got.params == {"algorithm": "linear", "features": "age,bmi", "normalize": True,
                          "seed": 0, "alpha": 0.5, "layers": [64, 32]}
    assert type(got.params["seed"]) is int and type(got.params["normalize"]) is bool
    assert got.metrics["rmse"] == 53.1 and got.metrics["loss"] == pytest.approx(1 / 20)
    history = got.metric_history("loss")
    assert [p.step for p in history] == list(range(20))
    assert got.metric_summary("loss").min == pytest.approx(1 / 20)
    assert got.metric_summary("loss").max == 1.0 and got.metric_summary("loss").count == 20
    assert "system.wall_time" in got.metrics and "system.cpu_time" in got.metrics
    assert {(v.kind, v.name) for v in got.inputs} == {("dataset", "diabetes"), ("environment", "python")}
    [out] = got.outputs
    assert out.ref == "model:regressor@1" and out.created_by == run.id
    assert out.read_bytes() == b"weights-1"
    assert out.path().read_bytes() == b"weights-1"
    assert [n.text for n in got.notes] == ["bmi dominates; try dropping s3"]
    assert store.get_run(1, experiment="diabetes").id == run.id
    assert store.get_run("diabetes#1").id == run.id
    assert store.get_run("lr-all").id == run.id


def test_same_content_same_version(store):
    with store.start_run(experiment="e") as a:
        v1 = a.log_asset(b"same", kind="model", name="m")
    with store.start_run(experiment="e") as b:
        v2 = b.log_asset(b"same", kind="model", name="m")
        v3 = b.log_asset(b"different", kind="model", name="m")
    assert v1 == v2 and v1.version == 1 and v3.version == 2
    assert store.get_asset("model", "m").version == 2
    assert store.get_asset("model", "m", version=1).digest == v1.digest
    # an unchanged environment is stored once
    envs = store.versions("environment", "python")
    assert len(envs) == 1


def test_run_numbers_and_failed_status(store):
    with pytest.raises(RuntimeError):
        with store.start_run(experiment="e", capture=False) as run:
            run.log_metric("x", 1.0)
            raise RuntimeError("boom")
    failed = store.get_run(run.id)
    assert failed.status == "failed" and failed.metrics["x"] == 1.0
    assert any("boom" in n.text for n in failed.notes)
    with store.start_run(experiment="e", capture=False) as second:
        pass
    assert (failed.number, store.get_run(second.id).number) == (1, 2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "high", None, True])
def test_bad_metric_values_are_refused(store, bad):
    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue):
            run.log_metric("rmse", bad)
    assert "rmse" not in store.get_run(run.id).metrics


@pytest.mark.parametrize("key", ["", "  ", "a/b", " lead"])
def test_bad_param_keys_are_refused(store, key):
    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue):
            run.log_params({"ok": 1, key: 2})
    # all or nothing: the good key of the failed call was not written either
    assert store.get_run(run.id).params == {}


def test_param_cannot_change(store):
    with store.start_run(experiment="e", capture=False) as run:
        run.log_param("lr", 0.1)
        run.log_param("lr", 0.1)
        with pytest.raises(Conflict):
            run.log_param("lr", 0.2)
    assert store.get_run(run.id).params == {"lr": 0.1}


def test_missing_path_and_unknown_refs(store, tmp_path):
    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue, match="no such file"):
            run.use_asset(tmp_path / "absent.csv", kind="dataset")
    with pytest.raises(NotFound):
        store.get_run(99)
    with pytest.raises(NotFound):
        store.get_asset("model", "nope")


def test_directory_asset_round_trip(store, tmp_path):
    folder = tmp_path / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("A")
    (folder / "sub" / "b.bin").write_bytes(b"\x00\x01")
    with store.start_run(experiment="e", capture=False) as run:
        v = run.log_asset(folder, kind="model", name="dir-model")
        again = run.log_asset(folder, kind="model", name="dir-model")
    assert v == again and v.is_directory and v.size == 3
    out = v.path(tmp_path / "restored")
    assert (out / "a.txt").read_text() == "A" and (out / "sub" / "b.bin").read_bytes() == b"\x00\x01"


def test_soft_delete_purge_and_gc(store):
    with store.start_run(experiment="keep", capture=False) as keep:
        keep.log_asset(b"shared", kind="dataset", name="d", relation="used")
    with store.start_run(experiment="gone", capture=False) as gone:
        gone.use_asset(store.get_asset("dataset", "d"))
        gone.log_asset(b"only-gone", kind="model", name="m")
    store.delete_run(gone.id)
    assert [r.id for r in store.runs()] == [keep.id]
    with pytest.raises(NotFound):
        store.get_run(gone.id)
    counts = store.purge()
    assert counts["runs"] == 1 and counts["versions"] == 1 and counts["blobs"] == 1
    assert store.get_asset("dataset", "d").read_bytes() == b"shared"
    with pytest.raises(NotFound):
        store.get_asset("model", "m")
    store.delete_experiment("keep")
    assert store.runs() == [] and store.purge()["experiments"] == 1


def test_corrupt_blob_is_detected(sqlite_store):
    from metastore.errors import IntegrityFailure

    with sqlite_store.start_run(experiment="e", capture=False) as run:
        v = run.log_asset(b"precious", kind="model", name="m")
    sqlite_store.backend.blobs.local_path(v.digest).write_bytes(b"tampered")
    with pytest.raises(IntegrityFailure):
        v.read_bytes()


def test_bulk_and_single_run_creation_record_the_same_liveness(sqlite_store):
    """A running run written in bulk names the process the record gives (the client's,
    through a server), like one written alone; before, the bulk path recorded the
    writing process's pid, so a dead client was never marked crashed."""
    from metastore.records import RunRecord

    [bulk_id] = sqlite_store.backend.create_runs(
        [RunRecord(experiment="e", status="running", pid=4_000_000, host="elsewhere")]
    )
    single = sqlite_store.backend.create_run(RunRecord(experiment="e", status="running", pid=4_000_000))
    with sqlite_store.backend.read() as s:
        from metastore.models import Run

        bulk = s.get(Run, bulk_id)
    assert bulk.pid == single.pid == 4_000_000
    assert single.host  # always recorded for a running run
    # the pid cannot exist on this host: the single-created run is found crashed
    assert sqlite_store.get_run(single.id).status == "crashed"


@pytest.mark.parametrize("ref", ["99999999999999999999999", "2147483648", "²"])
def test_run_references_no_run_can_have_are_not_found(store, ref):
    with store.start_run(experiment="e", capture=False):
        pass
    with pytest.raises(NotFound):
        store.get_run(ref)
