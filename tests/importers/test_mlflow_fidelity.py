"""MLflow at realistic shape, field by field: a file store and a SQL store written by
MLflow's own library (tests/importers/mlflow_realistic.py: 3 experiments, 30 runs,
100-step histories, nested, deleted and failed runs, file and directory artifacts, a
dataset, logged scikit-learn models, a model registry with aliases), imported, and
compared with what MLflow's client reads back from the same store; then exported as a
bundle and imported into PostgreSQL, and compared again (numbers included).

Writing the stores takes MLflow ~30 s (both at once, shared by the module): slow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metastore.importers import import_path
from metastore.importers.values import infer_value
from tests.importers.conftest import bundle_into_postgresql, have

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "mlflow_realistic.py"
#: MLflow tags that become run fields, not tags
FIELD_TAGS = {"mlflow.runName", "mlflow.user", "mlflow.parentRunId", "mlflow.source.name",
              "mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.note.content"}


def _run(*args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _done(proc: subprocess.Popen) -> bytes:
    out, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"MLflow failed:\n{err.decode(errors='replace')[-3000:]}")
    return out


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """Both layouts, written at once; with what MLflow's client reads back from each."""
    if not have("mlflow") or not have("sklearn"):
        pytest.skip("mlflow and scikit-learn are not installed (pip install 'metastore[test]')")
    files = tmp_path_factory.mktemp("realistic-files")
    sql = tmp_path_factory.mktemp("realistic-sql")
    uris = {"files": f"file://{files / 'mlruns'}", "sql": f"sqlite:///{sql / 'mlflow.db'}"}
    where = {"files": files, "sql": sql}
    for p in [_run("write", uris[k], str(where[k]), cwd=where[k]) for k in uris]:
        _done(p)
    dumps = {k: _run("dump", uris[k], cwd=where[k]) for k in uris}
    paths = {"files": files / "mlruns", "sql": sql / "mlflow.db"}
    return {k: (paths[k], json.loads(_done(p))) for k, p in dumps.items()}


def _meta(v) -> dict:
    return json.loads(v.meta) if isinstance(v.meta, str) else (v.meta or {})


def _ms(t: datetime | None) -> int | None:
    return None if t is None else round(t.replace(tzinfo=UTC).timestamp() * 1000)


def check_against_mlflow(backend, mlflow: dict) -> None:
    """Every run, param, tag, metric point, artifact, dataset, registered version and
    alias MLflow reads back is in the store, as the mapping in docs/importing.md says."""
    views = check_runs(backend, mlflow)
    check_registry(backend, mlflow, views)


def check_runs(backend, mlflow: dict) -> dict:
    """The runs, field by field; their views by MLflow run id."""
    views = {v.source_id: v for v in backend.read_runs(include_deleted=True)}
    live = {v.id for v in backend.read_runs()}
    records = {r.id: r for r in backend.dump_runs([v.id for v in views.values()])}
    assert len(views) == len(mlflow["runs"])
    for m in mlflow["runs"]:
        view = views[m["run_id"]]
        r = records[view.id]
        where = f"{m['experiment']}/{m['name']}"
        assert (r.experiment, r.name, r.source) == (m["experiment"], m["name"], "mlflow"), where
        assert r.status == m["status"].lower(), where
        assert (_ms(r.started), _ms(r.ended)) == (m["start_time"], m["end_time"]), where
        assert (view.id not in live) == m["deleted"], where
        assert r.params == {k.replace("/", "."): infer_value(v) for k, v in m["params"].items()}, where
        assert r.tags == {k: v for k, v in m["tags"].items() if k not in FIELD_TAGS}, where
        assert r.user == (m["user"] or m["tags"].get("mlflow.user")), where
        assert r.command == m["tags"].get("mlflow.source.name"), where
        parent = m["tags"].get("mlflow.parentRunId")
        assert r.parent_id == (views[parent].id if parent else None), where
        history: dict[str, list] = {}
        for p in r.metrics:
            history.setdefault(p.key, []).append([p.step, _ms(p.timestamp), p.value])
        # the exact duplicates the file store appends when a model is logged: one point
        assert {k: sorted(v) for k, v in history.items()} == {
            k: sorted(map(list, {tuple(p) for p in v})) for k, v in m["metrics"].items()}, where
        # artifacts: each top-level entry one version; a file's version is its bytes
        outputs = {(o.name): o for o in view.outputs if not (o.meta or {}).get("mlflow_model_id")}
        assert set(outputs) == {p.split("/")[0] for p in m["artifacts"]}, where
        for path, sha in m["artifacts"].items():
            if "/" not in path:
                assert outputs[path].digest == sha, f"{where}: {path}"
        assert {(i.name, (i.meta or {}).get("mlflow_digest"), i.role) for i in view.inputs} == {
            (name, digest, (ctx or [None])[0]) for name, digest, ctx in m["datasets"]}, where
    return views


def check_registry(backend, mlflow: dict, views: dict) -> None:
    """Registered versions (their runs, tags, descriptions) and aliases."""
    for model in mlflow["registry"]:
        versions = {_meta(v).get("mlflow_version"): v
                    for _, v in backend.list_versions("model", model["name"])}
        assert set(versions) == {v["version"] for v in model["versions"]}, model["name"]
        for v in model["versions"]:
            stored = versions[v["version"]]
            meta = _meta(stored)
            assert (meta.get("mlflow_source"), meta.get("mlflow_description")) == (
                v["source"], v["description"])
            assert backend.get_tags("asset_version", stored.id) == v["tags"]
            producer = views[v["run_id"]]
            assert stored.id in {o.id for o in producer.outputs}
        aliases = {a.alias: a.version_id for a in backend.list_aliases("model", model["name"])}
        assert aliases == {a: versions[int(n)].id for a, n in model["aliases"].items()}
        asset = next(a for a in backend.list_assets("model") if a.name == model["name"])
        expected = dict(model["tags"])
        if model["description"]:
            expected["mlflow.description"] = model["description"]
        assert backend.get_tags("asset", str(asset.id)) == expected


@pytest.mark.parametrize("layout", ["files", "sql"])
def test_realistic_store_comes_through_field_by_field(sqlite_store, realistic, layout):
    path, mlflow = realistic[layout]
    dry = import_path(sqlite_store.backend, path, dry_run=True)
    report = import_path(sqlite_store.backend, path)
    # a dry run counts what the import then writes
    counts = lambda r: (r.found, r.imported, r.params, r.metrics, r.assets, r.edges, r.aliases)  # noqa: E731
    assert counts(dry) == counts(report)
    assert (report.found, report.imported, report.skipped) == (30, 30, []), report.warnings
    # 30 runs x 2 metrics x 100 steps; 6 params each; 2 registered versions of wine-model
    # + 1 live version of scratch (the same files as wine-model@2), 2 aliases
    assert report.metrics == 6000 and report.params == 180 and report.aliases == 2
    assert report.left_out == {"deleted model versions": 1, "traces": 3}
    check_against_mlflow(sqlite_store.backend, mlflow)
    again = import_path(sqlite_store.backend, path)
    assert (again.imported, again.already_present, again.enriched) == (0, 30, 0)
    assert (again.assets, again.edges, again.aliases, again.metrics) == (0, 0, 0, 0)
    check_against_mlflow(sqlite_store.backend, mlflow)


@pytest.mark.postgres
def test_bundle_round_trip_into_postgresql(sqlite_store, realistic, tmp_path):
    """SQLite → bundle → PostgreSQL: the same runs (ids and numbers), values, versions
    (digests) and edges; what MLflow reads back still matches."""
    path, mlflow = realistic["sql"]
    import_path(sqlite_store.backend, path)
    aliases = lambda be: sorted(  # noqa: E731
        (a.kind, a.name, a.alias, a.version) for a in be.list_aliases())
    assert len(aliases(sqlite_store.backend)) == 2

    def check(pg):
        # a bundle carries live runs (the deleted one stays behind; numbers keep its gap)
        check_runs(pg, {**mlflow, "runs": [m for m in mlflow["runs"] if not m["deleted"]]})
        assert aliases(pg) == aliases(sqlite_store.backend)

    bundle_into_postgresql(sqlite_store, tmp_path, check)
