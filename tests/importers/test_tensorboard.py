"""TensorBoard import, on event files written by tensorboardX and by tensorboard's own
writer (TF2-style tensor scalars), plus hand-made and truncated files."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metastore.importers import detect, import_path
from tests.importers.conftest import bundle_into_postgresql, dry_run_counts_what_import_writes

DATA = Path(__file__).parent.parent / "data" / "tensorboard"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory) -> Path:
    tbx = pytest.importorskip("tensorboardX")
    from tensorboard.summary import Writer

    root = tmp_path_factory.mktemp("tb") / "runs"
    w = tbx.SummaryWriter(str(root / "exp0"))
    for i in range(5):
        w.add_scalar("loss", 1.0 / (i + 1), i)
        w.add_scalar("val/acc", 0.5 + 0.1 * i, i)
    w.add_text("remark", "baseline with augmentation", 0)
    w.add_hparams({"lr": 0.01, "bs": 32, "opt": "adam", "aug": True}, {"hparam/acc": 0.9})
    w.close()

    w2 = Writer(str(root / "tf2"))
    for i in range(3):
        w2.add_scalar("loss", 0.5 / (i + 1), step=i)
    w2.close()

    # a restart: a second event file in the same run repeats step 2 with a new value
    w3 = tbx.SummaryWriter(str(root / "resumed"), filename_suffix=".a")
    for i in range(3):
        w3.add_scalar("loss", 10.0 - i, i)
    w3.close()
    time.sleep(0.01)
    w4 = tbx.SummaryWriter(str(root / "resumed"), filename_suffix=".b")
    for i in range(2, 4):
        w4.add_scalar("loss", 100.0 + i, i)
    w4.close()
    return root


def test_detect(logdir):
    assert detect(logdir) == "tensorboard"
    assert detect(next((logdir / "tf2").iterdir())) == "tensorboard"


def test_import_logdir(store, logdir):
    report = import_path(store.backend, logdir, "tensorboard")
    assert (report.found, report.imported, report.skipped) == (3, 3, [])
    assert report.complete
    runs = {r.name: r for r in store.runs("runs")}
    assert set(runs) == {"exp0", "tf2", "resumed"}

    exp0 = runs["exp0"]
    assert exp0.params == {"lr": 0.01, "bs": 32, "opt": "adam", "aug": True}
    history = exp0.metric_history("loss")
    assert [(m.step, m.value) for m in history] == [
        (0, 1.0), (1, 0.5), (2, 0.33333334), (3, 0.25), (4, 0.2)
    ]
    assert all(isinstance(m.timestamp, datetime) for m in history)
    assert history[0].timestamp <= history[-1].timestamp
    assert [m.value for m in exp0.metric_history("val/acc")] == [0.5, 0.6, 0.7, 0.8, 0.9]
    # the add_hparams sub-run was folded in
    assert exp0.metrics["hparam/acc"] == 0.9
    assert "baseline with augmentation" in exp0.notes[0].text
    assert exp0.started <= history[0].timestamp and exp0.ended >= history[-1].timestamp
    assert exp0.source == "tensorboard"

    tf2 = runs["tf2"]
    assert [(m.step, m.value) for m in tf2.metric_history("loss")] == [
        (0, 0.5), (1, 0.25), (2, 0.16666667)
    ]
    resumed = runs["resumed"]
    assert [(m.step, m.value) for m in resumed.metric_history("loss")] == [
        (0, 10.0), (1, 9.0), (2, 102.0), (3, 103.0)
    ]
    assert report.metrics == 5 + 5 + 1 + 3 + 4

    again = import_path(store.backend, logdir, "tensorboard")
    assert (again.imported, again.already_present) == (0, 3)
    # importing one run folder alone recognises it too
    assert import_path(store.backend, logdir / "tf2", "tensorboard").already_present == 1
    assert len(store.runs()) == 3


def test_new_runs_are_added(sqlite_store, logdir, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(logdir, copy)
    assert import_path(sqlite_store.backend, copy).imported == 3
    from tensorboardX import SummaryWriter

    w = SummaryWriter(str(copy / "later"))
    w.add_scalar("loss", 1.0, 0)
    w.close()
    report = import_path(sqlite_store.backend, copy)
    assert (report.imported, report.already_present) == (1, 3)


def test_malformed_and_truncated(sqlite_store, logdir, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(DATA / "corrupt", root)
    shutil.copytree(logdir / "tf2", root / "tf2")
    # a writer killed mid-record: the last record is cut off
    cut = root / "killed"
    shutil.copytree(logdir / "exp0", cut, ignore=shutil.ignore_patterns("1*"))
    f = next(cut.glob("events*"))
    f.write_bytes(f.read_bytes()[:-7])
    report = import_path(sqlite_store.backend, root, "tensorboard")
    assert (report.found, report.imported, len(report.skipped)) == (3, 2, 1)
    assert report.complete
    where, reason = report.skipped[0]
    assert "broken_run" in where and "not a TensorBoard event" in reason
    assert any("cut off" in w for w in report.warnings)
    killed = sqlite_store.get_run("killed")
    assert [m.value for m in killed.metric_history("val/acc")] == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert {r.name for r in sqlite_store.runs()} == {"tf2", "killed"}


def test_dry_run(sqlite_store, logdir):
    report = import_path(sqlite_store.backend, logdir, "tensorboard", dry_run=True)
    assert report.imported == 3 and report.metrics == 18
    assert sqlite_store.runs() == []


@pytest.fixture(scope="module")
def twin_logdirs(tmp_path_factory) -> Path:
    """Two experiments, each with a `train` run and `add_scalars` sub-runs, written by
    tensorboardX in the same second on one host: their event files share names."""
    tbx = pytest.importorskip("tensorboardX")
    import numpy as np

    root = tmp_path_factory.mktemp("tb-twins") / "logs"
    for exp, scale in (("expA", 1.0), ("expB", 2.0)):
        w = tbx.SummaryWriter(str(root / exp / "train"))
        for i in range(4):
            w.add_scalar("loss", scale / (i + 1), i)
            w.add_scalars("loss", {"a": scale * i, "b": scale * 2 * i}, i)
            w.add_histogram("weights", np.linspace(0, scale, 10), i)
            w.add_image("sample", np.zeros((3, 4, 4)), i)
        w.close()
    # the same second on the same host: tensorboardX names the files alike
    for a in sorted((root / "expA").rglob(PATTERN_TB)):
        b = root / "expB" / a.relative_to(root / "expA")
        (old,) = list(b.parent.glob(PATTERN_TB))
        old.rename(b)
    return root


PATTERN_TB = "events.out.tfevents.*"


def test_runs_in_folders_of_one_name_do_not_collide(store, twin_logdirs):
    report = import_path(store.backend, twin_logdirs, "tensorboard")
    assert (report.found, report.imported, report.already_present) == (6, 6, 0)
    names = sorted(r.name for r in store.runs("logs"))
    assert names == ["expA/train", "expA/train/loss/a", "expA/train/loss/b",
                     "expB/train", "expB/train/loss/a", "expB/train/loss/b"]
    runs = {r.name: r for r in store.runs("logs")}
    assert [p.value for p in runs["expB/train/loss/b"].metric_history("loss")] == [0, 4, 8, 12]
    assert [p.value for p in runs["expA/train/loss/b"].metric_history("loss")] == [0, 2, 4, 6]
    again = import_path(store.backend, twin_logdirs, "tensorboard")
    assert (again.imported, again.already_present) == (0, 6)


def test_what_is_not_imported_is_counted_by_kind(tmp_path, twin_logdirs):
    import metastore

    s = metastore.open(tmp_path / ".metastore", create=True)
    report = import_path(s.backend, twin_logdirs, "tensorboard")
    assert report.left_out == {"histograms": 8, "images": 8}
    assert "not imported: 8 histograms, 8 images" in report.summary()


def check_against_event_accumulator(store, logdir: Path) -> tuple[int, int]:
    """Every run folder is a run, every scalar point (step, wall time, value) TensorBoard's
    EventAccumulator reads is a metric point; the histograms and images it reads, counted."""
    import numpy as np
    from tensorboard.backend.event_processing.event_accumulator import (
        HISTOGRAMS,
        IMAGES,
        SCALARS,
        TENSORS,
        EventAccumulator,
    )

    runs = {r.name: r for r in store.runs("logs")}
    folders = sorted({p.parent for p in logdir.rglob(PATTERN_TB)})
    assert len(runs) == len(folders)
    histograms = images = 0
    for folder in folders:
        acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0, HISTOGRAMS: 0,
                                                          IMAGES: 0, TENSORS: 0})
        acc.Reload()
        run = runs[folder.relative_to(logdir).as_posix()]
        tags = acc.Tags()
        assert set(run.metrics) == set(tags["scalars"]), folder
        for tag in tags["scalars"]:
            theirs = acc.Scalars(tag)
            ours = run.metric_history(tag)
            # float32 values are kept as the shortest decimal that is the same float32
            as32 = np.float32
            assert [(p.step, as32(p.value)) for p in ours] == [
                (e.step, as32(e.value)) for e in theirs], tag
            for p, e in zip(ours, theirs, strict=True):  # times kept to the microsecond
                assert abs(p.timestamp.replace(tzinfo=UTC).timestamp() - e.wall_time) < 1e-5
        histograms += sum(len(acc.Histograms(t)) for t in tags["histograms"])
        images += sum(len(acc.Images(t)) for t in tags["images"])
    return histograms, images


@pytest.mark.postgres
def test_every_scalar_matches_tensorboards_own_reader(sqlite_store, twin_logdirs, tmp_path):
    """Field by field against TensorBoard's EventAccumulator; then the same again after
    a bundle carried the store into PostgreSQL (numbers included)."""
    import metastore

    report = import_path(sqlite_store.backend, twin_logdirs, "tensorboard")
    histograms, images = check_against_event_accumulator(sqlite_store, twin_logdirs)
    assert report.imported == 6
    assert report.left_out == {"histograms": histograms, "images": images}
    bundle_into_postgresql(sqlite_store, tmp_path, lambda pg: check_against_event_accumulator(
        metastore.Store(pg), twin_logdirs))


def test_dry_run_counts_what_the_import_writes(sqlite_store, twin_logdirs):
    dry_run_counts_what_import_writes(sqlite_store.backend, twin_logdirs, "tensorboard")
