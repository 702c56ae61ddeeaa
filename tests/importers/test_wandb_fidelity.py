"""W&B at realistic shape, field by field: offline runs written by the real wandb SDK
(tests/importers/wandb_realistic.py: two projects, a sweep of grouped runs, two runs of
one name, a failed run, a run killed with its core service, an artifact, media),
imported, and compared with what W&B's own reader (`wandb leet inspect`, the SDK's Go
core) reads back from the same files; then exported as a bundle, imported into
PostgreSQL, and compared again (numbers included).

Writing the runs and reading them back through W&B's CLI takes ~40 s: slow."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metastore.importers import import_path
from tests.importers.conftest import bundle_into_postgresql, have

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SCRIPT = Path(__file__).parent / "wandb_realistic.py"
#: W&B's state of a run → metastore's status (a run W&B still calls running has no
#: exit record: its process died)
STATUS = {"finished": "finished", "failed": "failed", "running": "crashed"}
#: media types counted as not imported, by the report's name for them
MEDIA = {"histogram": "histograms", "image-file": "images"}


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> tuple[Path, dict]:
    """The wandb/ folder, and what W&B reads back from each run folder in it."""
    if not have("wandb"):
        pytest.skip("wandb is not installed (pip install 'metastore[test]')")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from wandb_realistic import offline_env
    finally:
        sys.path.pop(0)
    root = tmp_path_factory.mktemp("wandb-realistic")
    env = offline_env(root)
    subprocess.run([sys.executable, str(SCRIPT), "write", str(root)], env=env, check=True,
                   timeout=600, capture_output=True, cwd=root)
    out = subprocess.run([sys.executable, str(SCRIPT), "dump", str(root / "wandb")], env=env,
                         check=True, timeout=600, capture_output=True, cwd=root).stdout
    return root / "wandb", json.loads(out)


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and "_type" not in v:
            out.update(_flat(v, key))
        else:
            out[key] = v
    return out


def expected_run(folder: str, wandb: dict) -> dict:
    """What docs/importing.md says metastore holds for one run W&B reads back."""
    summary, records = wandb["summary"], wandb["records"]
    [run] = [r["run"] for r in records if r["type"] == "run"]
    history: dict[str, list] = {}
    media: dict[str, int] = {}
    tables = []
    for rec in records:
        if rec["type"] != "history":
            continue
        item = rec["history"]["item"]
        heads = {k[: -len("._type")]: v for k, v in item.items() if k.endswith("._type")}
        for head, kind in heads.items():
            if kind == "table-file":
                tables.append(head)
            else:
                media[MEDIA[kind]] = media.get(MEDIA[kind], 0) + 1
        for key, value in item.items():
            if key.startswith("_") or key.split(".")[0] in heads:
                continue
            if isinstance(value, int | float) and math.isfinite(value):
                history.setdefault(key, []).append((item["_step"], item["_timestamp"], value))
    last_step = summary["step"]
    tags = {t: "" for t in run.get("tags", [])}
    for key, value in _flat(summary["summary"]).items():
        if key.startswith("_") or key in history or key.split(".")[0] in tables:
            continue
        if isinstance(value, dict):  # other media: counted from the history
            continue
        if isinstance(value, str | bool):
            tags[f"wandb.summary.{key}"] = value if isinstance(value, str) else str(value).lower()
        else:
            history[key] = [(last_step, None, value)]
    for field, tag in (("project", "project"), ("run_group", "group"), ("job_type", "job_type"),
                       ("run_id", "run_id")):
        if run.get(field):
            tags[f"wandb.{tag}"] = run[field]
    artifacts = {(a["artifact"]["name"], "wandb:" + a["artifact"]["digest"])
                 for a in records if a["type"] == "artifact"}
    artifacts |= {(f"{run['project']}/{run['run_id']}/{t}", None) for t in tables}
    return {
        "source_id": f"{run['project']}/{run['run_id']}", "experiment": run["project"],
        "name": run["display_name"], "status": STATUS[summary["state"]],
        "started": datetime.fromisoformat(run["start_time"]),
        "params": _flat(summary["config"]), "tags": tags,
        "notes": [run["notes"]] if run.get("notes") else [],
        "history": history, "media": media, "artifacts": artifacts, "folder": folder,
    }


def check_against_wandb(backend, wandb: dict) -> None:
    """Every run W&B reads back, field by field, is in the store; nothing more."""
    expected = [expected_run(f, w) for f, w in wandb.items() if w["summary"]["run_id"]]
    views = {v.source_id: v for v in backend.read_runs()}
    records = {r.id: r for r in backend.dump_runs([v.id for v in views.values()])}
    assert sorted(views) == sorted(e["source_id"] for e in expected)
    for e in expected:
        view = views[e["source_id"]]
        r, where = records[view.id], e["folder"]
        assert (r.experiment, r.name, r.source, r.status) == (
            e["experiment"], e["name"], "wandb", e["status"]), where
        assert r.started.replace(tzinfo=UTC) == e["started"], where
        assert r.params == e["params"], where
        assert r.tags == e["tags"], where
        assert [n.text for n in r.notes] == e["notes"], where
        ours: dict[str, list] = {}
        for p in r.metrics:
            ours.setdefault(p.key, []).append(p)
        assert set(ours) == set(e["history"]), where
        for key, theirs in e["history"].items():
            points = sorted(ours[key], key=lambda p: p.step)
            assert [(p.step, p.value) for p in points] == [(s, v) for s, _, v in theirs], (where, key)
            for p, (_, ts, _) in zip(points, theirs, strict=True):
                if ts is not None:  # times kept to the microsecond
                    assert abs(p.timestamp.replace(tzinfo=UTC).timestamp() - ts) < 1e-5, (where, key)
        outputs = {(o.name, o.digest if o.digest.startswith("wandb:") else None)
                   for o in view.outputs}
        assert outputs == e["artifacts"], where


def test_realistic_runs_come_through_field_by_field(sqlite_store, realistic, tmp_path):
    wandb_dir, wandb = realistic
    report = import_path(sqlite_store.backend, wandb_dir, "wandb")
    runs = [w for w in wandb.values() if w["summary"]["run_id"]]
    # the run killed before its first block: W&B reads no run from it; skipped, said why
    [(where, reason)] = report.skipped
    assert "holds no run" in reason
    assert (report.found, report.imported) == (len(wandb), len(runs)) == (13, 12)
    states = {w["summary"]["name"]: w["summary"]["state"] for w in runs}
    assert states["diverged"] == "failed", states
    # killed with its core service, W&B reads the run as still running (no exit record);
    # should the core not have been the script's own, W&B finished it, and so does
    # metastore (check_against_wandb compares the status either way)
    killed_core = (wandb_dir.parent / "killed-3000.cores").read_text() != "0"
    assert states["killed-3000"] == ("running" if killed_core else "finished"), states
    media: dict[str, int] = {}
    for f, w in wandb.items():
        if w["summary"]["run_id"]:
            for kind, n in expected_run(f, w)["media"].items():
                media[kind] = media.get(kind, 0) + n
    assert report.left_out == media == {"images": 2, "histograms": 1}
    # the NaN W&B reads back in lr-2's history is the one point not imported, said once
    [nan] = [w for w in report.warnings if "non-finite" in w]
    assert "grad.norm" in nan and "1 non-finite" in nan
    check_against_wandb(sqlite_store.backend, wandb)
    # two runs of one name stay two runs; the killed run is crashed with what it wrote
    assert sorted(r.name for r in sqlite_store.runs("mnist")).count("baseline") == 2
    [killed] = [r for r in sqlite_store.runs("cifar") if r.name == "killed-3000"]
    if killed_core:
        assert killed.status == "crashed" and 0 < len(killed.metric_history("loss")) < 3000
    again = import_path(sqlite_store.backend, wandb_dir, "wandb")
    assert (again.imported, again.already_present, again.enriched, again.metrics) == (0, 12, 0, 0)

    bundle_into_postgresql(sqlite_store, tmp_path, lambda pg: check_against_wandb(pg, wandb))
