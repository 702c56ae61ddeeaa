"""Export a store to the portable bundle and import it into another store (SQLite →
PostgreSQL / MariaDB / SQLite), and the CSV / Parquet table export."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import jsonschema
import pytest

from metastore.exporters import export
from metastore.exporters.bundle import bundle_json_schema, export_bundle
from metastore.importers import detect, import_path

SCHEMA_FILE = Path(__file__).parent.parent.parent / "schema" / "bundle.schema.json"


def snapshot(store, experiment: str | None = None) -> dict:
    """Everything the round trip must keep, keyed by run id (stable across stores)."""
    runs = {}
    for r in store.runs(experiment):
        runs[r.id] = {
            "experiment": r.experiment, "number": r.number, "name": r.name,
            "status": r.status, "started": r.started, "ended": r.ended, "user": r.user,
            "host": r.host, "git_commit": r.git_commit, "command": r.command,
            "parent_id": r.parent_id, "source": (r.source, r.source_id), "context": r.context,
            "params": r.params, "tags": r.tags,
            "notes": [(n.time, n.kind, n.author, n.text) for n in r.notes],
            "metrics": {
                k: [(m.step, m.timestamp, m.value) for m in r.metric_history(k)]
                for k in r.metric_summary()
            },
            "inputs": sorted((v.kind, v.name, v.version, v.digest, v.role) for v in r.inputs),
            "outputs": sorted((v.kind, v.name, v.version, v.digest, v.role) for v in r.outputs),
        }
    return runs


def version_edges(store) -> set:
    """derived_from edges as (kind:name@version → kind:name@version, role)."""
    edges = set()
    derived = [e for e in store.backend.list_edges() if e.relation == "derived_from"]
    for asset in store.assets():
        for v in store.versions(asset.kind, asset.name):
            meta = (v.kind, v.name, v.version, v.digest, v.size, v.media_type, json.dumps(v.meta, sort_keys=True))
            edges.add(("version",) + meta)
            for e in derived:
                if e.dst_id == v.id:
                    a, up = store.backend.get_version_by_id(e.src_id)
                    edges.add(("derived", f"{a.kind}:{a.name}@{up.version}", v.ref, e.role))
    return edges


def validate_bundle(folder: Path) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema == bundle_json_schema(), "schema/bundle.schema.json is stale: regenerate it"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads((folder / "bundle.json").read_text()), schema)
    for name, record in schema["x-files"].items():
        if name == "bundle.json":
            continue
        sub = {"$ref": f"#/$defs/{record}", "$defs": schema["$defs"]}
        validator = jsonschema.Draft202012Validator(sub, format_checker=jsonschema.FormatChecker())
        for line in (folder / name).read_text().splitlines():
            validator.validate(json.loads(line))


def test_round_trip(demo_store, store, tmp_path):
    from metastore import aliases

    model = demo_store.get_run("diabetes#4").outputs[0]
    aliases.set_alias(demo_store.backend, model.ref, "production", note="best rmse")
    bundle = tmp_path / "bundle"
    counts = export_bundle(demo_store.backend, bundle)
    assert counts["runs"] == 12 and counts["blobs"] > 0 and counts["edges"] > 0
    assert counts["aliases"] == 1
    validate_bundle(bundle)
    assert detect(bundle) == "bundle"
    report = import_path(store.backend, bundle)
    assert (report.found, report.imported, report.skipped) == (12, 12, [])
    assert snapshot(store) == snapshot(demo_store)
    assert version_edges(store) == version_edges(demo_store)
    # content travels, verified by digest
    model = store.get_run("diabetes#4").outputs[0]
    assert model.read_bytes() == demo_store.get_run("diabetes#4").outputs[0].read_bytes()
    # aliases travel: where they point, who set them, why
    [alias] = store.backend.list_aliases()
    assert (alias.kind, alias.name, alias.alias, alias.version, alias.note) == (
        model.kind, model.name, "production", model.version, "best rmse")
    assert report.aliases == 1
    again = import_path(store.backend, bundle)
    assert (again.imported, again.already_present, again.aliases, again.edges) == (0, 12, 0, 0)


def test_tar_gz_and_one_experiment(demo_store, sqlite_store, tmp_path):
    with demo_store.start_run(experiment="other", name="lonely") as run:
        run.log_metric("x", 1.0)
    archive = tmp_path / "diabetes.tar.gz"
    export(demo_store.backend, archive, experiment="diabetes")
    with tarfile.open(archive) as tar:
        assert "bundle.json" in tar.getnames()
    assert detect(archive) == "bundle"
    report = import_path(sqlite_store.backend, archive, "bundle")
    assert report.imported == 12
    assert [e.name for e in sqlite_store.experiments()] == ["diabetes"]
    assert snapshot(sqlite_store) == snapshot(demo_store, "diabetes")


def test_directories_and_long_histories_survive(sqlite_store, tmp_path):
    import metastore

    src = metastore.open(f"sqlite:///{tmp_path / 'src' / 'm.db'}")
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (folder / "sub" / "cfg.json").write_text("{}")
    with src.start_run(experiment="e", name="parent") as parent:
        parent.log_params({"lr": 0.1, "layers": [1, 2], "nan": float("nan"), "ok": True, "n": 3})
        for step in range(50):
            parent.log_metric("loss", 1 / (step + 1), step=step)
        parent.log_asset(folder, kind="model", name="net")
        parent.note("a note")
        with src.start_run(experiment="e", name="child", parent=parent) as child:
            child.use_asset(folder, kind="model", name="net", role="base")
    bundle = tmp_path / "b"
    export_bundle(src.backend, bundle)
    validate_bundle(bundle)
    import_path(sqlite_store.backend, bundle)
    import math

    got_nan = sqlite_store.get_run("parent").params.pop("nan")
    assert math.isnan(got_nan)
    mine, theirs = snapshot(sqlite_store), snapshot(src)
    for runs in (mine, theirs):
        for r in runs.values():
            r["params"].pop("nan", None)
    assert mine == theirs
    [net] = [v for v in sqlite_store.get_run("child").inputs if v.name == "net"]
    assert net.is_directory and net.role == "base"
    got = net.path(tmp_path / "restored")
    assert (got / "sub" / "cfg.json").read_text() == "{}", sorted(got.rglob("*"))
    src.close()


def test_corrupt_bundle_lines_are_skipped(demo_store, sqlite_store, tmp_path):
    bundle = tmp_path / "bundle"
    export_bundle(demo_store.backend, bundle)
    lines = (bundle / "runs.jsonl").read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]  # truncated
    lines[5] = lines[5].replace('"status":"finished"', '"status":"exploded"')
    (bundle / "runs.jsonl").write_text("\n".join(lines) + "\n")
    report = import_path(sqlite_store.backend, bundle)
    assert report.found == 12 and report.imported == 10 and report.complete
    text = "\n".join(f"{w}: {r}" for w, r in report.skipped)
    assert "runs.jsonl line 4: is not a valid RunEntry" in text
    assert "runs.jsonl line 6: is not a valid RunEntry (status" in text


def test_a_corrupt_asset_line_is_a_warning_the_cli_shows(demo_store, tmp_path):
    """An asset version line that is not valid is no run: not among the skipped runs,
    but a warning (it used to read "skipped …", which the CLI keeps for skipped runs and
    so never printed)."""
    from typer.testing import CliRunner

    from metastore.cli import app

    bundle = tmp_path / "bundle"
    export_bundle(demo_store.backend, bundle)
    lines = (bundle / "assets.jsonl").read_text().splitlines()
    lines[0] = lines[0][: len(lines[0]) // 2]
    (bundle / "assets.jsonl").write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{tmp_path / 'st' / 'm.db'}"
    result = CliRunner().invoke(app, ["import", str(bundle), "--store", url], catch_exceptions=False)
    assert "assets.jsonl line 1: not imported: is not a valid" in result.output, result.output


def test_bundle_refuses_to_overwrite(demo_store, tmp_path):
    from metastore.errors import InvalidValue

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("keep me")
    with pytest.raises(InvalidValue, match="not an empty directory"):
        export_bundle(demo_store.backend, tmp_path / "x")


def test_table_export_csv_and_parquet(demo_store, sqlite_store, tmp_path):
    import pandas as pd

    counts = export(demo_store.backend, tmp_path / "runs.csv")
    assert counts["runs"] == 12
    frame = pd.read_csv(tmp_path / "runs.csv")
    assert list(frame["run"][:2]) == ["diabetes#1", "diabetes#2"]
    assert {"params.algorithm", "params.n_estimators", "metrics.rmse", "metrics.loss"} <= set(frame.columns)
    assert frame["metrics.rmse"].dtype == float
    export(demo_store.backend, tmp_path / "runs.parquet", experiment="diabetes")
    parquet = pd.read_parquet(tmp_path / "runs.parquet")
    assert len(parquet) == 12 and parquet["params.normalize"].dtype == bool
    rmse = {r.ref: r.metrics["rmse"] for r in demo_store.runs()}
    assert dict(zip(parquet["run"], parquet["metrics.rmse"], strict=True)) == rmse
    # the CSV export is what the csv importer reads
    report = import_path(sqlite_store.backend, tmp_path / "runs.csv", experiment="again")
    assert report.imported == 12
    assert sqlite_store.get_run("again#1").params == demo_store.get_run("diabetes#1").params


def test_bundle_into_another_experiment_keeps_run_ids(demo_store, sqlite_store, tmp_path):
    bundle = tmp_path / "b"
    export_bundle(demo_store.backend, bundle, experiment="diabetes")
    report = import_path(sqlite_store.backend, bundle, experiment="copy")
    assert report.imported == 12
    assert [e.name for e in sqlite_store.experiments()] == ["copy"]
    assert {r.id for r in sqlite_store.runs("copy")} == {r.id for r in demo_store.runs("diabetes")}
    dry = import_path(sqlite_store.backend, bundle, dry_run=True)
    assert (dry.imported, dry.already_present) == (0, 12)


def test_numbers_survive_a_deleted_run(store, tmp_path):
    """exp_b#3 was deleted before the export: exp_b#4.. keep their numbers, and the
    report counts the asset versions and edges it wrote."""
    import metastore

    src = metastore.open(f"sqlite:///{tmp_path / 'src' / 'm.db'}")
    for i in range(1, 6):
        # the environment is captured, not git: a dirty checkout would add its diff
        with src.start_run(experiment="exp_b", name=f"r{i}", capture={"packages"}) as run:
            run.log_metric("loss", 1.0 / i)
            if i in (2, 4):
                run.log_asset(f"weights {i}".encode(), kind="model", name="net")
    src.delete_run("exp_b#3")
    bundle = tmp_path / "b"
    export_bundle(src.backend, bundle)
    report = import_path(store.backend, bundle)
    assert (report.found, report.imported) == (4, 4)
    # two models and the captured python environment; 4 runs used it, 2 produced a model
    assert (report.assets, report.edges) == (3, 6)
    assert "3 asset versions, 6 edges" in report.summary()
    assert {r.name: r.number for r in store.runs("exp_b")} == {"r1": 1, "r2": 2, "r4": 4, "r5": 5}
    assert store.get_run("exp_b#4").name == "r4"
    # the experiment goes on after the highest number
    with store.start_run(experiment="exp_b", name="next") as run:
        pass
    assert store.get_run(run.id).number == 6
    src.close()


def test_alias_history_and_asset_tags_travel(demo_store, store, tmp_path):
    """Every move of an alias (set, moved, removed: who, when, why) and the tags of
    assets and asset versions come through a bundle, once however often it is imported."""
    from metastore import aliases

    src = demo_store.backend
    asset = next(a for a in src.list_assets() if len(src.list_versions(a.kind, a.name)) >= 2)
    (_, v1), (_, v2) = src.list_versions(asset.kind, asset.name)[:2]
    ref = f"{asset.kind}:{asset.name}"
    aliases.set_alias(src, f"{ref}@{v1.version}", "production", note="first good one", author="ana")
    aliases.set_alias(src, f"{ref}@{v2.version}", "production", note="better rmse", author="ben")
    aliases.set_alias(src, f"{ref}@{v1.version}", "staging", author="ana")
    aliases.unset_alias(src, f"{ref}@staging", note="retired", author="cy")
    src.set_tags("asset", str(asset.id), {"owner": "ml-team", "task": "regression"})
    src.set_tags("asset_version", v2.id, {"approved": "yes", "ticket": "ML-42"})

    bundle = tmp_path / "bundle"
    counts = export_bundle(src, bundle)
    assert counts["alias_moves"] == 4
    validate_bundle(bundle)
    report = import_path(store.backend, bundle)
    assert report.aliases == 4

    def history(be):
        return [(h.kind, h.name, h.alias, h.version, h.previous, h.time, h.author, h.note)
                for h in be.alias_history(asset.kind, asset.name)]

    def tags(be):
        [a] = [x for x in be.list_assets(asset.kind) if x.name == asset.name]
        versions = {v.version: be.get_tags("asset_version", v.id) for _, v in be.list_versions(a.kind, a.name)}
        return be.get_tags("asset", str(a.id)), versions

    dst = store.backend
    assert history(dst) == history(src) and len(history(src)) == 4
    assert tags(dst) == tags(src)
    assert [(a.alias, a.version, a.author, a.note) for a in dst.list_aliases(asset.kind, asset.name)] == [
        ("production", v2.version, "ben", "better rmse")]
    again = import_path(store.backend, bundle)
    assert again.aliases == 0
    assert history(dst) == history(src) and tags(dst) == tags(src)
