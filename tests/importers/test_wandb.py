"""W&B import: offline runs written by the real wandb package (WANDB_MODE=offline), the
file layout of older SDKs, and malformed, killed and corrupted runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from metastore.importers import detect, import_path
from tests.importers.conftest import dry_run_counts_what_import_writes

DATA = Path(__file__).parent.parent / "data" / "wandb"

SCRIPT = textwrap.dedent(
    """
    import os, sys, wandb
    os.chdir(sys.argv[1])
    open("train.csv", "w").write("a,b\\n1,2\\n")
    run = wandb.init(project="mnist", name="baseline", group="sweep-1", job_type="train",
                     tags=["baseline", "cpu"], notes="first try",
                     config={"lr": 0.01, "epochs": 100, "optimizer": {"name": "adam", "beta1": 0.9},
                             "augment": True, "layers": [64, 32]})
    for i in range(100):
        wandb.log({"loss": 1.0 / (i + 1), "val/acc": i / 100,
                   "grad": {"norm": float("nan") if i == 50 else 2.0}})
    wandb.log({"test_acc": 0.97}, step=120)
    run.summary["best_acc"] = 0.99
    run.summary["verdict"] = "good"
    art = wandb.Artifact("train-data", type="dataset")
    art.add_file("train.csv")
    run.log_artifact(art)
    wandb.finish()
    run = wandb.init(project="mnist", name="diverged", config={"lr": 10.0, "epochs": 2})
    wandb.log({"loss": 5.0})
    wandb.log({"loss": 50.0})
    wandb.finish(exit_code=3)
    """
)


@pytest.fixture(scope="module")
def wandb_dir(tmp_path_factory) -> Path:
    """Two offline runs written by the real SDK (one finished, one failed)."""
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wb")
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"),
        "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_DATA_DIR": str(root / ".data"),
    }
    subprocess.run([sys.executable, "-c", SCRIPT, str(root)], env=env, check=True, timeout=300)
    return root / "wandb"


def runs_by_name(store):
    return {r.name: r for r in store.runs()}


def test_detect(wandb_dir):
    assert detect(wandb_dir) == "wandb"
    assert detect(wandb_dir.parent) == "wandb"
    run_dir = next(wandb_dir.glob("offline-run-*"))
    assert detect(run_dir) == "wandb"
    assert detect(next(run_dir.glob("*.wandb"))) == "wandb"


def test_import_offline_runs(store, wandb_dir):
    report = import_path(store.backend, wandb_dir, "wandb")
    # latest-run is a link to one of the two, not a third run
    assert (report.found, report.imported, report.skipped) == (2, 2, [])
    runs = runs_by_name(store)
    base = runs["baseline"]
    assert base.experiment == "mnist"
    assert base.status == "finished"
    assert base.source == "wandb" and base.source_id.startswith("mnist/")
    assert base.params == {
        "lr": 0.01, "epochs": 100, "optimizer.name": "adam", "optimizer.beta1": 0.9,
        "augment": True, "layers": [64, 32],
    }
    loss = base.metric_history("loss")
    assert [m.step for m in loss] == list(range(100))
    assert loss[3].value == 0.25
    assert all(isinstance(m.timestamp, datetime) for m in loss)
    assert loss[0].timestamp <= loss[-1].timestamp
    # every point as logged (W&B has no offline reader to compare with: the script is it)
    assert [(m.step, m.value) for m in loss] == [(i, 1.0 / (i + 1)) for i in range(100)]
    assert [(m.step, m.value) for m in base.metric_history("val/acc")] == [
        (i, i / 100) for i in range(100)]
    assert [m.step for m in base.metric_history("grad.norm")] == [i for i in range(100) if i != 50]
    # the NaN at step 50 cannot be a metric point: dropped, with a warning
    assert len(base.metric_history("grad.norm")) == 99
    assert any("grad.norm" in w for w in report.warnings)
    assert [(m.step, m.value) for m in base.metric_history("test_acc")] == [(120, 0.97)]
    assert base.metrics["best_acc"] == 0.99  # summary only: one point
    assert base.tags["wandb.summary.verdict"] == "good"
    assert {"baseline": "", "cpu": "", "wandb.group": "sweep-1", "wandb.job_type": "train"}.items() <= base.tags.items()
    assert base.notes[0].text == "first try"
    assert base.started <= loss[0].timestamp <= base.ended
    assert base.host
    [data] = base.outputs
    assert (data.kind, data.name) == ("dataset", "train-data")
    assert data.digest.startswith("wandb:") and data.uri == "wandb-artifact://mnist/train-data"
    assert data.meta["files"][0]["path"] == "train.csv" and data.size == 8
    assert any(v.kind == "environment" for v in base.inputs)  # requirements.txt

    diverged = runs["diverged"]
    assert diverged.status == "failed"
    assert [m.value for m in diverged.metric_history("loss")] == [5.0, 50.0]

    again = import_path(store.backend, wandb_dir, "wandb")
    assert (again.imported, again.already_present) == (0, 2)
    assert len(store.runs()) == 2


def test_killed_runs(sqlite_store, wandb_dir, tmp_path):
    """kill -9 leaves the file cut at a 32 KiB block boundary (the writer flushes whole
    blocks), or, when killed early, holding only the header."""
    root = tmp_path / "wandb"
    shutil.copytree(wandb_dir, root, symlinks=True)
    (root / "latest-run").unlink()
    big, small = sorted(root.glob("offline-run-*"), key=lambda d: -next(d.glob("*.wandb")).stat().st_size)
    f = next(big.glob("*.wandb"))
    assert f.stat().st_size > 32768
    f.write_bytes(f.read_bytes()[:32768])
    g = next(small.glob("*.wandb"))
    g.write_bytes(g.read_bytes()[:7])
    report = import_path(sqlite_store.backend, root, "wandb")
    assert (report.found, report.imported, len(report.skipped)) == (2, 1, 1)
    assert report.complete
    assert "holds no run" in report.skipped[0][1] and small.name in report.skipped[0][0]
    [run] = sqlite_store.runs()
    assert run.status == "crashed"
    assert 0 < len(run.metric_history("loss")) < 100
    assert run.ended is not None


def test_corrupt_record_skips_the_run(sqlite_store, wandb_dir, tmp_path):
    root = tmp_path / "wandb"
    shutil.copytree(wandb_dir, root, symlinks=True)
    (root / "latest-run").unlink()
    # the finished run, with its artifact
    victim = max(root.glob("offline-run-*"), key=lambda d: next(d.glob("*.wandb")).stat().st_size)
    f = next(victim.glob("*.wandb"))
    data = bytearray(f.read_bytes())
    data[200] ^= 0xFF
    f.write_bytes(bytes(data))
    report = import_path(sqlite_store.backend, root, "wandb")
    assert (report.imported, len(report.skipped)) == (1, 1)
    assert "checksum" in report.skipped[0][1] and str(f) in report.skipped[0][0]
    assert [r.name for r in sqlite_store.runs()] == ["diverged"]
    assert sqlite_store.assets("dataset") == []  # nothing of the skipped run


def test_old_file_layout_and_malformed(sqlite_store):
    report = import_path(sqlite_store.backend, DATA / "wandb", "wandb", experiment="legacy")
    assert (report.found, report.imported, len(report.skipped)) == (3, 1, 2)
    assert report.complete
    reasons = dict(report.skipped)
    assert any("bad00001" in w and "config.yaml" in r + w for w, r in reasons.items())
    assert any("garbage1" in w and "bad header" in r for w, r in reasons.items())
    [run] = sqlite_store.runs("legacy")
    assert run.source_id == "wandb/old42xyz"
    assert run.params == {"lr": 0.001, "batch_size": 64, "model.arch": "resnet18", "model.pretrained": True}
    assert [(m.step, m.value) for m in run.metric_history("acc")] == [(0, 0.5), (1, 0.8), (2, 0.88), (3, 0.91)]
    assert run.metrics["best_epoch"] == 3
    assert run.git_commit == "3f2c1e0d9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"
    assert run.user == "alice" and run.host == "gpu-node-7"
    assert run.command == "train.py --epochs 4"
    assert run.started == datetime(2024, 1, 5, 10, 15)
    assert {v.kind for v in run.outputs} == {"log"}
    assert run.outputs[0].read_bytes().startswith(b"epoch 0")
    # nothing of the skipped runs was written
    assert len(sqlite_store.runs()) == 1


def test_no_copy_references_files(sqlite_store):
    import_path(sqlite_store.backend, DATA / "wandb", "wandb", copy=False)
    [run] = sqlite_store.runs()
    [log] = run.outputs
    assert log.uri.startswith("file://") and log.uri.endswith("output.log")


MEDIA_SCRIPT = textwrap.dedent(
    """
    import os, sys, numpy as np, wandb
    os.chdir(sys.argv[1])
    run = wandb.init(project="media", name="with-media", config={"lr": 0.1})
    for i in range(3):
        run.log({"loss": 1.0 / (i + 1)})
    run.log({"preds": wandb.Table(columns=["x", "y"], data=[[1, 2], [3, 4]])})
    run.log({"img": wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8)),
             "h": wandb.Histogram([1, 2, 3, 4])})
    run.log({"img": wandb.Image(np.ones((4, 4, 3), dtype=np.uint8))})
    run.finish()
    """
)


@pytest.fixture(scope="module")
def wandb_media_dir(tmp_path_factory) -> Path:
    """One offline run with a table, images and a histogram, written by the real SDK."""
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("wb-media")
    env = {
        **os.environ,
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"), "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_DATA_DIR": str(root / ".data"),
    }
    subprocess.run([sys.executable, "-c", MEDIA_SCRIPT, str(root)], env=env, check=True, timeout=300)
    return root / "wandb"


def test_tables_become_assets_and_other_media_are_counted(store, wandb_media_dir):
    import json

    report = import_path(store.backend, wandb_media_dir, "wandb")
    assert (report.found, report.imported, report.skipped) == (1, 1, [])
    run = store.get_run("with-media")
    assert set(run.metric_summary()) == {"loss"}
    assert [w for w in report.warnings if "preds" in w or "img" in w] == []
    assert report.left_out == {"images": 2, "histograms": 1}
    assert "not imported: 1 histograms, 2 images" in report.summary()
    [table] = [v for v in run.outputs if v.name.endswith("/preds")]
    assert table.kind == "other" and table.meta["nrows"] == 2 and table.meta["ncols"] == 2
    written = next(wandb_media_dir.glob("offline-run-*/files/media/table/preds_*.table.json"))
    assert table.read_bytes() == written.read_bytes()
    assert json.loads(table.read_bytes())["data"] == [[1, 2], [3, 4]]


def test_dry_run_counts_what_the_import_writes(sqlite_store, wandb_dir):
    dry_run_counts_what_import_writes(sqlite_store.backend, wandb_dir, "wandb")
