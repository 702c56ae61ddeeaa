"""Import TensorBoard event files (`events.out.tfevents.*`).

Every directory holding event files is one run (as in TensorBoard's run selector); the
sub-directory that tensorboardX / `torch.utils.tensorboard` `add_hparams` writes (named by
a timestamp, holding the hparams and their metric values) is merged into its parent run.

- scalars → metrics, every step with its wall time; both encodings: `simple_value`
  (tensorboardX, torch, TF1) and scalar tensors of the `scalars` plugin (TF2,
  `tensorboard.summary.Writer`). Values are float32 on disk and read back as the
  shortest decimal that is the same float32 (0.1, not 0.10000000149011612).
- several event files in one run (restarts) are merged; a (tag, step) written twice
  keeps the value written last
- hparams plugin: `session_start_info` → params (typed: number, text, bool; whole
  numbers come back as ints, since the plugin stores every number as a double);
  `session_end_info` status FAILURE → failed
- text plugin → notes
- run: started/ended = first/last wall time, name = the run directory relative to the
  imported folder, experiment = the imported folder's name

Not carried over: images, audio, histograms, distributions, graphs, PR curves,
embeddings, custom scalar layouts; the report counts them by kind ("12 histograms").
A run's source id is its folder's path below the imported folder plus its first event
file's name, so runs in different folders never collide. Records are not CRC-checked; a record that does not
decode skips the run; a record cut off at the end of the last file (the writer was
killed) is dropped with a warning and the rest of the run imports.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import SourceError, points
from metastore.importers.values import to_utc
from metastore.importers.writer import Writer
from metastore.models import Note
from metastore.records import RunRecord

NAME = "tensorboard"
SOURCE = "tensorboard"
PATTERN = "events.out.tfevents.*"
_TIMESTAMP_DIR = re.compile(r"^\d{9,}(\.\d+)?$")


def detect(path: Path) -> bool:
    if path.is_file():
        return path.name.startswith("events.out.tfevents.")
    return next(path.rglob(PATTERN), None) is not None


def _protos():
    try:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.hparams import plugin_data_pb2
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportFailed(
            "reading TensorBoard event files needs the tensorboard package",
            hint="pip install 'metastore[importers]'",
        ) from e
    return event_pb2, plugin_data_pb2


def read_records(path: Path, report: ImportReport) -> list[bytes]:
    """The payloads of a TFRecord file. A record cut off at the very end is dropped with
    a warning; anything else that does not frame is an error."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 12:
            report.warn(path, "last record cut off (writer killed?); ignored")
            break
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + 12 + length + 4
        if end > len(data):
            if length > 1 << 30:
                raise SourceError(path, f"record at byte {pos} has an impossible length {length}")
            report.warn(path, "last record cut off (writer killed?); ignored")
            break
        out.append(data[pos + 12 : pos + 12 + length])
        pos = end
    return out


@dataclass
class _Run:
    directory: Path
    files: list[Path] = field(default_factory=list)


def find_runs(root: Path) -> list[_Run]:
    if root.is_file():
        return [_Run(root.parent, [root])]
    by_dir: dict[Path, _Run] = {}
    for f in sorted(root.rglob(PATTERN)):
        if f.is_file():
            by_dir.setdefault(f.parent, _Run(f.parent)).files.append(f)
    # add_hparams writes its own timestamp-named sub-run: fold it into its parent
    for d in sorted(by_dir, key=lambda p: len(p.parts), reverse=True):
        if _TIMESTAMP_DIR.match(d.name) and d.parent in by_dir and d != root:
            by_dir[d.parent].files.extend(by_dir.pop(d).files)
    return sorted(by_dir.values(), key=lambda r: str(r.directory))


def _f32(value: float) -> float:
    import numpy as np

    return float(str(np.float32(value)))


def read_run(run: _Run, report: ImportReport) -> dict:
    event_pb2, plugin_data_pb2 = _protos()
    from google.protobuf.message import DecodeError

    series: dict[str, dict[int, tuple[float, float]]] = {}
    params: dict = {}
    notes: list[Note] = []
    failed = False
    times: list[float] = []
    for f in sorted(run.files, key=lambda p: p.name):
        for i, payload in enumerate(read_records(f, report)):
            event = event_pb2.Event()
            try:
                event.ParseFromString(payload)
            except DecodeError as e:
                raise SourceError(f, f"record {i} is not a TensorBoard event ({e})") from e
            if event.wall_time:
                times.append(event.wall_time)
            what = event.WhichOneof("what")
            if what in ("graph_def", "meta_graph_def", "tagged_run_metadata"):
                report.leave_out("graphs")
            for v in event.summary.value:
                plugin = v.metadata.plugin_data.plugin_name
                kind = v.WhichOneof("value")
                if plugin == "hparams":
                    hp = plugin_data_pb2.HParamsPluginData()
                    try:
                        hp.ParseFromString(v.metadata.plugin_data.content)
                    except DecodeError as e:
                        raise SourceError(f, f"unreadable hparams data ({e})") from e
                    if hp.HasField("session_start_info"):
                        for key, value in hp.session_start_info.hparams.items():
                            params[key] = _hparam(value)
                    if hp.HasField("session_end_info") and hp.session_end_info.status == 2:
                        failed = True
                    continue
                left_out = _left_out(kind, plugin)
                if left_out:
                    report.leave_out(left_out)
                    continue
                value = None
                if kind == "simple_value":
                    value = _f32(v.simple_value)
                elif kind == "tensor" and plugin in ("scalars", ""):
                    value = _tensor_scalar(v.tensor)
                elif kind == "tensor" and plugin == "text":
                    text = b"\n".join(v.tensor.string_val).decode("utf-8", "replace")
                    tag = v.tag.removesuffix("/text_summary")
                    notes.append(Note(run_id="", time=to_utc(event.wall_time), kind="note",
                                      author="tensorboard", text=f"{tag} (step {event.step}): {text}"))
                if value is None:
                    continue
                per_step = series.setdefault(v.tag, {})
                old = per_step.get(event.step)
                if old is None or event.wall_time >= old[0]:
                    per_step[event.step] = (event.wall_time, value)
    return {"series": series, "params": params, "notes": notes, "failed": failed, "times": times}


#: summary kinds and plugins metastore has no place for, by the name the report gives them
_LEFT_OUT_KINDS = {"histo": "histograms", "image": "images", "audio": "audio clips"}
_LEFT_OUT_PLUGINS = {
    "histograms": "histograms", "distributions": "histograms", "images": "images",
    "audio": "audio clips", "pr_curves": "PR curves", "mesh": "meshes",
    "projector": "embeddings", "custom_scalars": "custom scalar layouts", "graphs": "graphs",
}


def _left_out(kind: str | None, plugin: str) -> str | None:
    """The report's name for a summary value metastore does not import, else None."""
    if kind in _LEFT_OUT_KINDS:
        return _LEFT_OUT_KINDS[kind]
    if plugin in _LEFT_OUT_PLUGINS:
        return _LEFT_OUT_PLUGINS[plugin]
    return None


def _hparam(value):
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        n = value.number_value
        return int(n) if n.is_integer() and abs(n) < 2**53 else n
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _tensor_scalar(tensor) -> float | None:
    if tensor.tensor_shape.dim:
        return None
    for name in ("float_val", "double_val", "int_val", "int64_val", "half_val"):
        vals = getattr(tensor, name)
        if len(vals):
            return _f32(vals[0]) if name == "float_val" else float(vals[0])
    if tensor.tensor_content:
        fmt = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}.get(tensor.dtype)
        if fmt and struct.calcsize(fmt) == len(tensor.tensor_content):
            (v,) = struct.unpack(fmt, tensor.tensor_content)
            return _f32(v) if tensor.dtype == 1 else float(v)
    return None


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    path = path.resolve()
    runs = find_runs(path)
    if not runs:
        raise ImportFailed(f"no TensorBoard event files under {path}")
    report.found = len(runs)
    base = path if path.is_dir() else path.parent
    single = len(runs) == 1 and runs[0].directory == base
    experiment = (base.parent.name if single else base.name) or "tensorboard"
    # one bulk look-up of the ids this import, or an earlier one of a folder above, wrote
    candidates = {id(run): _known_ids(run, base) for run in runs}
    known = set(store.runs_by_source(SOURCE, [i for ids in candidates.values() for i in ids]))
    with Writer(store, options, report) as writer:
        for done, run in enumerate(runs, 1):
            options.progress(done, len(runs))
            if known.intersection(candidates[id(run)]):
                report.already_present += 1
                continue
            record = _record(run, base, experiment, report)
            if record is not None:
                writer.add(record, [], str(run.directory))


def _record(run: _Run, base: Path, experiment: str, report: ImportReport) -> RunRecord | None:
    """The run read from its event files, or None when they cannot be read (skipped)."""
    where = str(run.directory)
    try:
        data = read_run(run, report)
    except (SourceError, OSError) as e:
        reason = e.reason if isinstance(e, SourceError) else str(e)
        report.skip(getattr(e, "where", where), reason)
        return None
    first = min(run.files, key=lambda p: p.name)
    name = str(run.directory.relative_to(base)) if run.directory != base else base.name
    metrics = []
    for tag, per_step in sorted(data["series"].items()):
        metrics += points(
            tag,
            ((step, to_utc(t), v) for step, (t, v) in sorted(per_step.items())),
            report,
            where,
        )
    times = data["times"] or [first.stat().st_mtime]
    return RunRecord(
        experiment=experiment,
        name=name,
        status="failed" if data["failed"] else "finished",
        started=to_utc(min(times)),
        ended=to_utc(max(times)),
        params={k.replace("/", "."): v for k, v in data["params"].items() if v is not None},
        metrics=metrics,
        notes=data["notes"],
        tags={"tensorboard.logdir": str(run.directory)[-500:]},
        source=SOURCE,
        # unique within the source: the run's whole path below the imported folder
        # (two `train/` folders written in the same second on one host share their
        # first event file's name)
        source_id=_source_id(run, base, first),
    )


def _source_id(run: _Run, base: Path, first: Path) -> str:
    """The run folder's path below the imported folder (its own name when it is the
    imported folder) and its first event file's name."""
    top = base if run.directory != base else base.parent
    return f"{run.directory.relative_to(top).as_posix()}/{first.name}"


def _known_ids(run: _Run, base: Path) -> list[str]:
    """The source ids an import of `base` or of any folder above it gives this run."""
    first = min(run.files, key=lambda p: p.name)
    ids = [_source_id(run, base, first)]
    for above in base.parents:
        if run.directory == above or not run.directory.is_relative_to(above):
            break
        ids.append(f"{run.directory.relative_to(above).as_posix()}/{first.name}")
    return ids
