"""TensorBoard at realistic shape, field by field: a log directory written by tensorboardX
and by TensorBoard's own writer and hparams summaries (a sweep whose runs have 50-step
scalars, histograms, images, text and `add_hparams` sub-runs; a failed session; runs of
one name under two experiments; TF2 tensor scalars; a writer killed mid-record),
imported, and compared with what TensorBoard's own reader (EventAccumulator, and the
hparams plugin's protobuf for its summaries) reads back; then exported as a bundle,
imported into PostgreSQL and compared again (numbers included)."""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path

import pytest

from metastore.importers import import_path
from tests.importers.conftest import bundle_into_postgresql

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
EVENTS = "events.out.tfevents.*"
#: the folder tensorboardX's add_hparams writes below its run (a time stamp): one run
SUB_RUN = re.compile(r"^\d+(\.\d+)?$")


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    tbx = pytest.importorskip("tensorboardX")
    import numpy as np
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.summary import Writer

    root = tmp_path_factory.mktemp("tb-realistic") / "logs"
    rng = np.random.default_rng(0)
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        w = tbx.SummaryWriter(str(root / "sweep" / f"lr-{lr}"))
        for step in range(50):
            w.add_scalar("loss", (i + 1) / (step + 1), step)
            w.add_scalar("val/acc", step / 50 + i / 100, step)
            if step % 10 == 0:
                w.add_histogram("weights", rng.normal(size=100), step)
                w.add_image("sample", np.zeros((3, 4, 4)), step)
        w.add_text("remark", f"lr={lr}, cosine schedule", 0)
        w.add_hparams({"lr": lr, "bs": 32, "opt": "adam", "aug": i % 2 == 0}, {"hparam/acc": 0.9 - i / 10})
        w.close()
    # a failed session: tensorboardX's hparams summaries in the run itself, the end
    # one saying FAILURE (tensorboardX always writes SUCCESS; TensorBoard's own
    # session_end_pb needs TensorFlow)
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData, SessionEndInfo
    from tensorboardX.summary import hparams

    w = tbx.SummaryWriter(str(root / "sweep" / "diverged"))
    exp, ssi, sei = hparams({"lr": 10.0, "opt": "sgd", "bs": 64}, {"hparam/acc": 0.0})
    for summary in (exp, ssi):
        w.file_writer.add_summary(summary)
    for step in range(5):
        w.add_scalar("loss", 10.0 * (step + 1), step)
    end = sei.value[0].metadata.plugin_data
    end.content = HParamsPluginData(session_end_info=SessionEndInfo(status=api_pb2.STATUS_FAILURE),
                                    version=0).SerializeToString()
    w.file_writer.add_summary(sei)
    w.close()
    for exp, scale in (("expA", 1.0), ("expB", 2.0)):  # one run name in two experiments
        w = tbx.SummaryWriter(str(root / exp / "eval"))
        for step in range(10):
            w.add_scalar("acc", scale * step / 10, step)
        w.close()
    tf2 = Writer(str(root / "tf2"))  # TF2-style tensor scalars
    for step in range(20):
        tf2.add_scalar("loss", 1.0 / (step + 1), step=step)
    tf2.close()
    w = tbx.SummaryWriter(str(root / "killed"))
    for step in range(30):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    w.close()
    f = next((root / "killed").glob(EVENTS))
    f.write_bytes(f.read_bytes()[:-7])  # the writer killed mid-record
    return root


def read_back(logs: Path) -> dict[str, dict]:
    """Per run (its folder below `logs`, with add_hparams' sub-run folded in): what
    TensorBoard's EventAccumulator and its hparams plugin data read from its files."""
    from tensorboard.backend.event_processing.event_accumulator import (
        HISTOGRAMS,
        IMAGES,
        SCALARS,
        TENSORS,
        EventAccumulator,
    )
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from tensorboard.util import tensor_util

    runs: dict[str, dict] = {}
    for folder in sorted({p.parent for p in logs.rglob(EVENTS)}):
        run_folder = folder.parent if SUB_RUN.match(folder.name) else folder
        run = runs.setdefault(run_folder.relative_to(logs).as_posix(), {
            "scalars": {}, "params": {}, "failed": False, "texts": [], "histograms": 0, "images": 0})
        acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0, HISTOGRAMS: 0, IMAGES: 0, TENSORS: 0})
        acc.Reload()
        tags = acc.Tags()
        for tag in tags["scalars"]:
            run["scalars"][tag] = [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
        for tag in tags["tensors"]:
            plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
            events = acc.Tensors(tag)
            if plugin == "scalars":
                run["scalars"][tag] = [(e.step, e.wall_time, tensor_util.make_ndarray(e.tensor_proto).item())
                                       for e in events]
            elif plugin == "text":
                run["texts"] += [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in events]
        try:
            hp = acc.PluginTagToContent("hparams")
        except KeyError:  # no hparams summaries in this folder
            hp = {}
        for content in hp.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                for key, value in data.session_start_info.hparams.items():
                    v = getattr(value, value.WhichOneof("kind"))
                    run["params"][key] = int(v) if isinstance(v, float) and v.is_integer() else v
            if data.HasField("session_end_info"):
                run["failed"] = data.session_end_info.status == api_pb2.STATUS_FAILURE
        run["histograms"] += sum(len(acc.Histograms(t)) for t in tags["histograms"])
        run["images"] += sum(len(acc.Images(t)) for t in tags["images"])
    return runs


def check_against_tensorboard(backend, logs: Path, tb: dict[str, dict]) -> None:
    import numpy as np

    views = {v.name: v for v in backend.read_runs()}
    assert set(views) == set(tb)
    records = {r.id: r for r in backend.dump_runs([v.id for v in views.values()])}
    for name, theirs in tb.items():
        r = records[views[name].id]
        assert (r.experiment, r.source) == (logs.name, "tensorboard"), name
        assert r.status == ("failed" if theirs["failed"] else "finished"), name
        assert r.params == theirs["params"], name
        ours: dict[str, list] = {}
        for p in r.metrics:
            ours.setdefault(p.key, []).append(p)
        assert set(ours) == set(theirs["scalars"]), name
        for tag, points in theirs["scalars"].items():
            mine = sorted(ours[tag], key=lambda p: p.step)
            # float32 values are kept as the shortest decimal that is the same float32
            assert [(p.step, np.float32(p.value)) for p in mine] == [
                (s, np.float32(v)) for s, _, v in points], (name, tag)
            for p, (_, wall, _) in zip(mine, points, strict=True):  # to the microsecond
                assert abs(p.timestamp.replace(tzinfo=UTC).timestamp() - wall) < 1e-5, (name, tag)
        for text in theirs["texts"]:
            assert any(text in n.text for n in r.notes), (name, text)


def test_realistic_logdir_comes_through_field_by_field(sqlite_store, logs, tmp_path):
    tb = read_back(logs)
    report = import_path(sqlite_store.backend, logs, "tensorboard")
    assert (report.found, report.imported, report.skipped) == (len(tb), len(tb), []) == (8, 8, [])
    assert report.left_out == {"histograms": sum(r["histograms"] for r in tb.values()),
                               "images": sum(r["images"] for r in tb.values())} == {
                                   "histograms": 15, "images": 15}
    assert any("cut off" in w for w in report.warnings)
    assert tb["sweep/diverged"]["failed"] and tb["sweep/lr-0.1"]["params"]["bs"] == 32
    check_against_tensorboard(sqlite_store.backend, logs, tb)
    again = import_path(sqlite_store.backend, logs, "tensorboard")
    assert (again.imported, again.already_present, again.enriched) == (0, 8, 0)

    bundle_into_postgresql(sqlite_store, tmp_path, lambda pg: check_against_tensorboard(pg, logs, tb))
