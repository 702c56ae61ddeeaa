"""Import Weights & Biases run directories (`wandb/offline-run-*/`, `wandb/run-*/`).

Since the SDK moved to its Go core, an offline run keeps everything in one binary file,
`run-<id>.wandb`: LevelDB-log framed protobuf `Record`s (header, run, config, history,
summary, artifact, environment, exit …). It is read here directly, offline, with the
protobuf schema shipped in the `wandb` package (`wandb.proto.wandb_internal_pb2`). Runs
without a `.wandb` file (older SDKs, synced online runs) are read from
`files/config.yaml`, `files/wandb-summary.json`, `files/wandb-metadata.json` and
`files/wandb-history.jsonl` instead.

- run id → `source_id` `<project>/<id>`; display name → name; project → experiment
- config → params (nested keys joined with '.'; W&B's internal `_wandb` key dropped)
- history → metrics: every logged step (`_step`) with its time (`_timestamp`); nested
  keys joined with '.'
- tables logged to history → asset versions of kind `other` named
  `<project>/<run id>/<key>` (the `.table.json` file in `files/media/table/`); other
  media (images, histograms, audio, …) are not carried over: the report counts them
- summary values never logged as history → a single metric point at the last step
  (text and bool summary values → `wandb.summary.<key>` tags)
- tags → tags (label → ""); group, job type, project, entity, run id → `wandb.*` tags;
  notes → a note
- environment (host, program and args, git remote and commit, python, os) → run fields
  and context
- exit record → finished (exit code 0) or failed; no exit record (process killed) →
  crashed, with what was written so far
- artifacts logged → produced asset versions, used artifacts → used, registered by
  reference `wandb-artifact://<project>/<name>` with digest `wandb:<digest>` (the files
  are not in the run directory); the manifest (paths, md5s, sizes) goes into metadata
- `files/requirements.txt` → an environment asset; `files/output.log` → a log asset
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import (
    SourceError,
    clean_tags,
    flatten_params,
    points,
)
from metastore.importers.values import finite, to_utc
from metastore.importers.writer import PendingAsset, Writer
from metastore.models import Note
from metastore.records import MetricPoint, RunRecord

NAME = "wandb"
SOURCE = "wandb"
RUN_DIR = re.compile(r"^(offline-)?run-\d{8}_\d{6}-(\w+)$")
HEADER = b":W&B"
BLOCK = 32768
ARTIFACT_KINDS = {"dataset": "dataset", "model": "model", "code": "code", "environment": "environment"}


def detect(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".wandb"
    return bool(find_runs(path))


def find_runs(path: Path) -> list[Path]:
    if path.is_file():
        return [path.parent]
    candidates = [path] if RUN_DIR.match(path.name) else []
    for sub in (path, path / "wandb"):
        if sub.is_dir():
            candidates += [d for d in sorted(sub.iterdir()) if RUN_DIR.match(d.name) and d.is_dir()]
    seen, out = set(), []
    for d in candidates:
        real = d.resolve()
        if real not in seen and (list(d.glob("*.wandb")) or (d / "files").is_dir()):
            seen.add(real)
            out.append(d)
    return out


# -- the .wandb file -------------------------------------------------------------------------


def read_log(path: Path, report: ImportReport) -> list[bytes]:
    """The records of a LevelDB-log file (the `.wandb` framing). A chain cut off at the end
    (the process was killed) is dropped with a warning; a CRC mismatch is an error."""
    data = path.read_bytes()
    if len(data) < 7 or data[:4] != HEADER:
        raise SourceError(path, "not a W&B run file (bad header)")
    (magic,) = struct.unpack_from("<H", data, 4)
    if magic != 0xBEE1:
        raise SourceError(path, f"not a W&B run file (magic {magic:#x})")
    records: list[bytes] = []
    pending: bytes | None = None
    pos = 7
    while pos < len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < 7:
            pos += left_in_block
            continue
        if len(data) - pos < 7:
            break
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left_in_block
            continue
        payload = data[pos + 7 : pos + 7 + length]
        if len(payload) < length:
            pending = b"" if pending is None else pending
            break
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise SourceError(path, f"corrupt record at byte {pos} (checksum mismatch)")
        pos += 7 + length
        if kind == 1:
            records.append(payload)
        elif kind == 2:
            pending = payload
        elif kind == 3 and pending is not None:
            pending += payload
        elif kind == 4 and pending is not None:
            records.append(pending + payload)
            pending = None
        else:
            raise SourceError(path, f"corrupt record at byte {pos} (type {kind})")
    if pending is not None:
        report.warn(path, "last record cut off (process killed?); ignored")
    return records


def _pb():
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as e:  # pragma: no cover - depends on the install
        raise SourceError(
            "wandb", "reading .wandb files needs the wandb package: pip install wandb"
        ) from e
    return wandb_internal_pb2


def _item_key(item) -> str:
    return ".".join(item.nested_key) if len(item.nested_key) else item.key


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_wandb_file(path: Path, report: ImportReport) -> dict:
    pb = _pb()
    from google.protobuf.message import DecodeError

    out: dict[str, Any] = {
        "config": {}, "history": [], "summary": {}, "artifacts": [], "environment": {},
        "exit": None, "run": None,
    }
    for i, payload in enumerate(read_log(path, report)):
        rec = pb.Record()
        try:
            rec.ParseFromString(payload)
        except DecodeError as e:
            raise SourceError(path, f"record {i} does not decode ({e})") from e
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out["run"] = {
                "id": r.run_id, "name": r.display_name, "project": r.project,
                "entity": r.entity, "group": r.run_group, "job_type": r.job_type,
                "tags": list(r.tags), "notes": r.notes, "host": r.host,
                "start": r.start_time.ToDatetime() if r.HasField("start_time") else None,
                "sweep": r.sweep_id,
                "git": {"remote": r.git.remote_url, "commit": r.git.commit}
                if r.HasField("git") and r.git.commit else {},
            }
            _config(out["config"], r.config)
        elif kind == "config":
            _config(out["config"], rec.config)
        elif kind == "history":
            row = {_item_key(it): _loads(it.value_json) for it in rec.history.item}
            if "_step" not in row and rec.history.HasField("step"):
                row["_step"] = rec.history.step.num
            out["history"].append(row)
        elif kind == "summary":
            for it in rec.summary.update:
                out["summary"][_item_key(it)] = _loads(it.value_json)
            for it in rec.summary.remove:
                out["summary"].pop(_item_key(it), None)
        elif kind == "environment":
            env = json.loads(_to_json(rec.environment))
            out["environment"].update(env)
        elif kind == "artifact":
            a = rec.artifact
            out["artifacts"].append({
                "name": a.name, "type": a.type, "digest": a.digest, "project": a.project,
                "aliases": list(a.aliases), "relation": "produced",
                "files": [
                    {"path": c.path, "digest": c.digest, "size": c.size}
                    for c in a.manifest.contents
                ],
            })
        elif kind == "use_artifact":
            u = rec.use_artifact
            out["artifacts"].append({
                "name": u.name or u.id, "type": u.type, "digest": u.id, "project": "",
                "relation": "used", "files": [],
            })
        elif kind == "exit":
            out["exit"] = {"code": rec.exit.exit_code, "runtime": rec.exit.runtime}
    if out["run"] is None:
        raise SourceError(path, "no run record (the file holds no run)")
    return out


def _to_json(message) -> str:
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(message, preserving_proto_field_name=False)


def _config(config: dict, record) -> None:
    for it in record.update:
        config[_item_key(it)] = _loads(it.value_json)
    for it in record.remove:
        config.pop(_item_key(it), None)


# -- the files of older / online runs --------------------------------------------------------


def read_files(run_dir: Path, report: ImportReport) -> dict:
    import yaml

    files = run_dir / "files"
    out: dict[str, Any] = {
        "config": {}, "history": [], "summary": {}, "artifacts": [], "environment": {},
        "exit": None, "run": None,
    }
    m = RUN_DIR.match(run_dir.name)
    run_id = m.group(2) if m else run_dir.name
    current = files
    try:
        current = files / "config.yaml"
        if current.exists():
            raw = yaml.safe_load(current.read_text()) or {}
            if not isinstance(raw, dict):
                raise SourceError(current, "not a mapping of config keys")
            out["config"] = {
                k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
                for k, v in raw.items()
            }
        current = files / "wandb-summary.json"
        if current.exists():
            out["summary"] = flatten_summary(json.loads(current.read_text()))
        current = files / "wandb-metadata.json"
        if current.exists():
            out["environment"] = json.loads(current.read_text())
    except (yaml.YAMLError, json.JSONDecodeError, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SourceError(current, f"unreadable: {reason}") from e
    history = files / "wandb-history.jsonl"
    if history.exists():
        for n, line in enumerate(history.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out["history"].append(flatten_summary(json.loads(line)))
            except json.JSONDecodeError as e:
                raise SourceError(f"{history}:{n}", f"not valid JSON ({e.msg})") from e
    env = out["environment"]
    out["run"] = {
        "id": run_id, "name": env.get("name") or run_id, "project": env.get("project") or "",
        "entity": "", "group": "", "job_type": "", "tags": [], "notes": "",
        "host": env.get("host"), "start": to_utc(env.get("startedAt")),
    }
    out["exit"] = {"code": 0, "runtime": out["summary"].get("_runtime")} if out["summary"] else None
    return out


#: W&B media types that are tables: imported as asset versions (the table's JSON file)
TABLE_TYPES = {"table-file", "table", "joined-table", "partitioned-table"}
#: other W&B media types, by the name the report counts them under (not imported)
MEDIA_KINDS = {
    "image-file": "images", "images/separated": "images", "histogram": "histograms",
    "audio-file": "audio clips", "video-file": "videos", "html-file": "html files",
    "object3D-file": "3D objects", "molecule-file": "molecules", "plotly-file": "plots",
    "bokeh-file": "plots",
}


def split_media(row: dict) -> tuple[dict, dict[str, dict]]:
    """A history row or summary without its media, and the media by key. W&B writes a
    media value either as one object with `_type` (older SDKs, JSON files) or, since
    its Go core, as sub-keys (`preds._type`, `preds.ncols`, …): both become one object."""
    heads = [k[: -len("._type")] for k in row if k.endswith("._type")]
    media: dict[str, dict] = {}
    rest = {}
    for key, value in row.items():
        head = next((h for h in heads if key.startswith(h + ".")), None)
        if head is not None:
            media.setdefault(head, {})[key[len(head) + 1:]] = value
        elif isinstance(value, dict) and "_type" in value:
            media[key] = value
        else:
            rest[key] = value
    return rest, media


def flatten_summary(data: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and "_type" not in v and v:
            out.update(flatten_summary(v, key))
        else:
            out[key] = v
    return out


# -- mapping ---------------------------------------------------------------------------------


def to_record(run_dir: Path, data: dict, report: ImportReport) -> tuple[RunRecord, list[PendingAsset]]:
    run, env = data["run"], data["environment"]
    where = str(run_dir)
    project = run["project"] or "wandb"
    config = {
        k: v for k, v in data["config"].items() if not k.startswith("_wandb") and k != "wandb_version"
    }
    series: dict[str, list] = {}
    tables: list[tuple[str, int, dict]] = []  # (key, step, the table's media object)
    last_step, last_time = 0, None
    for n, row in enumerate(data["history"]):
        row, media = split_media(row)
        step = row.get("_step", n)
        step = int(step) if isinstance(step, int | float) else n
        ts = to_utc(row.get("_timestamp"))
        last_step = max(last_step, step)
        last_time = ts or last_time
        for key, obj in media.items():
            if obj.get("_type") in TABLE_TYPES:
                tables.append((key, step, obj))
            else:
                report.leave_out(MEDIA_KINDS.get(obj.get("_type"), "other media"))
        for key, value in row.items():
            if key.startswith("_"):
                continue
            series.setdefault(key, []).append((step, ts, value))
    metrics: list[MetricPoint] = []
    for key, rows in series.items():
        metrics += points(key, rows, report, where)
    started = run["start"] or to_utc(env.get("startedAt"))
    exit_ = data["exit"]
    ended = last_time
    if exit_ and started and isinstance(exit_.get("runtime"), int | float):
        from datetime import timedelta

        candidate = started + timedelta(seconds=exit_["runtime"])
        ended = max(candidate, ended) if ended else candidate
    text_summary = {}
    summary, _ = split_media(data["summary"])  # media in the summary repeat the history's
    for key, value in summary.items():
        if key.startswith("_") or key in series:
            continue
        if isinstance(value, str | bool):
            text_summary[f"wandb.summary.{key}"] = value if isinstance(value, str) else str(value).lower()
            continue
        if not finite(value):
            continue
        metrics.append(MetricPoint(key=key, value=float(value), step=last_step,
                                   timestamp=ended or started))
    status = "crashed" if exit_ is None else ("finished" if not exit_.get("code") else "failed")
    git = env.get("git") or run.get("git") or {}
    program = env.get("program") or env.get("codePath")
    command = " ".join([program, *env.get("args", [])]) if program else None
    tags: dict[str, Any] = {t: "" for t in run["tags"]}
    tags.update(text_summary)
    for key in ("project", "entity", "group", "job_type", "sweep", "id"):
        if run.get(key):
            tags[f"wandb.{'run_id' if key == 'id' else key}"] = run[key]
    notes = [Note(run_id="", time=started, kind="note", author="wandb", text=run["notes"])] if run["notes"] else []
    context = {k: env[k] for k in ("os", "python", "executable", "root", "cpu_count", "gpu") if k in env}
    if git:
        context["git"] = git
    record = RunRecord(
        experiment=project,
        name=run["name"] or run["id"],
        status=status,
        started=started,
        ended=ended if status != "crashed" else (ended or started),
        user=env.get("username") or run.get("entity") or None,
        host=run.get("host") or env.get("host"),
        git_commit=git.get("commit"),
        command=command,
        context=context or None,
        params=flatten_params(config),
        metrics=metrics,
        tags=clean_tags(tags),
        notes=notes,
        source=SOURCE,
        source_id=f"{project}/{run['id']}",
    )
    assets = []
    for a in data["artifacts"]:
        kind = ARTIFACT_KINDS.get(a["type"], "other")
        size = sum(int(f["size"]) for f in a["files"]) if a["files"] else None
        assets.append(PendingAsset(
            kind=kind, name=a["name"], relation=a["relation"],
            uri=f"wandb-artifact://{a['project'] or project}/{a['name']}",
            digest=f"wandb:{a['digest']}", size=size,
            meta={"wandb_type": a["type"], "files": a["files"], "aliases": a.get("aliases", [])},
        ))
    files = run_dir / "files"
    for key, step, obj in tables:
        table = files / str(obj.get("path") or "")
        if not obj.get("path") or not table.is_file():
            report.leave_out("tables (file missing)")
            continue
        assets.append(PendingAsset(
            kind="other", name=f"{project}/{run['id']}/{key}", relation="produced",
            content=table, media_type="application/vnd.wandb.table+json",
            meta={"wandb_type": obj["_type"], "key": key, "step": step,
                  **{k: obj[k] for k in ("ncols", "nrows") if k in obj}},
        ))
    if (files / "requirements.txt").is_file():
        assets.append(PendingAsset(kind="environment", name=f"{project}/requirements.txt",
                                   relation="used", content=files / "requirements.txt",
                                   media_type="text/plain"))
    if (files / "output.log").is_file():
        assets.append(PendingAsset(kind="log", name=f"{project}/{run['id']}/output.log",
                                   relation="produced", content=files / "output.log",
                                   media_type="text/plain"))
    return record, assets


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    runs = find_runs(path)
    if not runs:
        raise ImportFailed(
            f"no W&B run directories (offline-run-*/ or run-*/) under {path}",
            hint="point at a wandb/ folder or one run directory in it",
        )
    report.found = len(runs)
    with Writer(store, options, report) as writer:
        for done, run_dir in enumerate(runs, 1):
            options.progress(done, len(runs))
            try:
                log = sorted(run_dir.glob("*.wandb"))
                data = read_wandb_file(log[0], report) if log else read_files(run_dir, report)
                record, assets = to_record(run_dir, data, report)
            except (SourceError, OSError) as e:
                where = getattr(e, "where", str(run_dir))
                reason = getattr(e, "reason", str(e))
                report.skip(where, reason)
                continue
            writer.add(record, assets, str(run_dir))
