"""DVC import: a real repository made with `dvc init`, `dvc add`, `dvc repro` and
`dvc exp run` (with dvclive logging metrics), its `dvc exp show --json` output, a plain
run folder, and hand-made malformed files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from metastore.importers import ImportFailed, detect, import_path
from tests.importers.conftest import bundle_into_postgresql, dry_run_counts_what_import_writes

DATA = Path(__file__).parent.parent / "data" / "dvc"

TRAIN = textwrap.dedent(
    """
    import json, yaml
    from dvclive import Live
    p = yaml.safe_load(open("params.yaml"))
    with Live(save_dvc_exp=False) as live:
        live.log_params({"seed": 7})
        for e in range(p["train"]["epochs"]):
            live.log_metric("train/loss", 1.0 / (e + 1) / p["train"]["lr"], timestamp=True)
            live.log_metric("acc", 0.5 + e * 0.1)
            live.next_step()
    open("model.pkl", "w").write("model %s" % p["train"]["lr"])
    json.dump({"rmse": 1.5 / p["train"]["lr"], "val": {"r2": 0.3}}, open("metrics.json", "w"))
    """
)
PREPARE = textwrap.dedent(
    """
    import os, shutil
    os.makedirs("data/prepared", exist_ok=True)
    shutil.copy("data/raw.csv", "data/prepared/train.csv")
    open("data/prepared/test.csv", "w").write("x,y\\n5,6\\n")
    """
)
DVC_YAML = textwrap.dedent(
    """
    stages:
      prepare:
        cmd: python prepare.py
        deps: [data/raw.csv, prepare.py]
        outs: [data/prepared]
      train:
        cmd: python train.py
        deps: [data/prepared, train.py]
        params: [train.lr, train.epochs]
        outs: [model.pkl]
        metrics:
        - metrics.json:
            cache: false
    """
)


#: tests on the repository the real dvc CLI makes (init, repro, exp run, exp show: tens
#: of seconds once per module); the hand-made fixtures below run without it
real_dvc = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC project: a baseline (`dvc repro`, committed) and one `dvc exp run`."""
    pytest.importorskip("dvc")
    pytest.importorskip("dvclive")
    root = tmp_path_factory.mktemp("dvc") / "wine"
    root.mkdir()
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(root.parent / "site-cache"),
        "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    }

    def sh(*args):
        r = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr}"

    dvc = [sys.executable, "-m", "dvc"]
    sh("git", "init", "-q", "-b", "main")
    sh(*dvc, "init", "-q")
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("x,y\n1,2\n3,4\n")
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 3\n  use_bias: true\nmodel: linear\n")
    (root / "prepare.py").write_text(PREPARE)
    (root / "train.py").write_text(TRAIN)
    (root / "dvc.yaml").write_text(DVC_YAML)
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "pipeline")  # dvclive wants a commit to compare against
    sh(*dvc, "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "baseline")
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.5", "-S", "train.epochs=2", "-n", "lr-05")
    out = subprocess.run([*dvc, "exp", "show", "--json"], cwd=root, env=env, check=True,
                         capture_output=True, text=True, timeout=300).stdout
    (root.parent / "exp_show.json").write_text(out)
    return root


@real_dvc
def test_detect(repo):
    assert detect(repo) == "dvc"
    assert detect(repo.parent / "exp_show.json") == "dvc"
    assert detect(repo / "dvclive") == "dvc"


@real_dvc
def test_import_repository(store, repo):
    report = import_path(store.backend, repo, "dvc")
    assert (report.found, report.imported, report.skipped) == (2, 2, [])
    runs = {r.name: r for r in store.runs("wine")}
    assert set(runs) == {"main", "lr-05"}
    base, exp = runs["main"], runs["lr-05"]
    assert exp.parent_id == base.id
    assert exp.tags["dvc.exp_name"] == "lr-05" and exp.tags["dvc.baseline"] == base.source_id
    assert exp.source == "dvc" and exp.git_commit == exp.source_id and len(exp.source_id) == 40
    assert exp.user == "Ada"
    assert exp.command == "python prepare.py; python train.py"
    assert base.params == {"train.lr": 0.1, "train.epochs": 3, "train.use_bias": True,
                           "model": "linear", "seed": 7}
    assert exp.params["train.lr"] == 0.5 and exp.params["train.epochs"] == 2

    loss = exp.metric_history("train/loss")
    assert [(m.step, m.value) for m in loss] == [(0, 2.0), (1, 1.0)]
    assert loss[0].timestamp < loss[1].timestamp  # dvclive logged timestamps
    assert [(m.step, m.value) for m in base.metric_history("acc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert exp.metrics["rmse"] == 3.0 and exp.metrics["val/r2"] == 0.3
    assert "step" not in exp.metrics
    assert exp.started <= loss[0].timestamp <= exp.ended

    inputs = {(v.kind, v.name): v for v in exp.inputs}
    assert set(inputs) == {("dataset", "data/raw.csv"), ("code", "prepare.py"), ("code", "train.py")}
    raw = inputs[("dataset", "data/raw.csv")]
    assert raw.digest == "md5:178ba85707470c41cf680fb37ff99f7f"
    assert raw.meta["md5"] == "178ba85707470c41cf680fb37ff99f7f" and raw.size == 12
    assert raw.uri.endswith(".dvc/cache/files/md5/17/8ba85707470c41cf680fb37ff99f7f")
    assert Path(raw.uri.removeprefix("file://")).read_text() == "x,y\n1,2\n3,4\n"
    outputs = {(v.kind, v.name): v for v in exp.outputs}
    assert set(outputs) == {("dataset", "data/prepared"), ("model", "model.pkl")}
    assert outputs[("dataset", "data/prepared")].digest.endswith(".dir")
    # same data, same version; different models, different versions
    assert {v.digest for v in base.inputs} == {v.digest for v in exp.inputs}
    models = store.versions("model", "model.pkl")
    assert len(models) == 2
    # each stage's outs derive from its data deps
    graph = store.lineage(exp.outputs[1] if exp.outputs[1].kind == "model" else exp.outputs[0])
    derived = {
        (graph.nodes[u]["name"], graph.nodes[v]["name"], d["role"])
        for u, v, d in graph.edges(data=True) if d["relation"] == "derived_from"
    }
    assert derived == {
        ("data/raw.csv", "data/prepared", "prepare"), ("data/prepared", "model.pkl", "train")
    }

    again = import_path(store.backend, repo, "dvc")
    assert (again.imported, again.already_present) == (0, 2)
    assert len(store.runs()) == 2


@real_dvc
def test_exp_show_json_then_repository(store, repo):
    show = repo.parent / "exp_show.json"
    report = import_path(store.backend, show)
    assert (report.found, report.imported) == (2, 2)
    runs = {r.name: r for r in store.runs()}
    exp = runs["lr-05"]
    assert exp.parent_id == runs["main"].id
    assert exp.params["train.lr"] == 0.5
    assert exp.metrics == {"rmse": 3.0, "val/r2": 0.3, "train/loss": 1.0, "acc": 0.6}
    assert exp.metric_summary("acc").last_step == 1
    assert {v.name for v in exp.outputs} == {"data/prepared", "model.pkl"}
    # the same experiments, read from git, are recognised, and completed with what the
    # repository has and the JSON had not: histories and per-stage lineage
    again = import_path(store.backend, repo, "dvc")
    assert (again.imported, again.already_present, again.enriched) == (0, 2, 2)
    assert "2 completed with what this source adds" in again.summary()
    runs = {r.name: r for r in store.runs()}
    assert len(runs) == 2
    exp, base = runs["lr-05"], runs["main"]
    assert [(m.step, m.value) for m in exp.metric_history("train/loss")] == [(0, 2.0), (1, 1.0)]
    assert [(m.step, m.value) for m in base.metric_history("acc")] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert exp.metrics["acc"] == 0.6 and exp.metrics["rmse"] == 3.0
    assert {(v.kind, v.name) for v in exp.inputs} >= {("dataset", "data/raw.csv")}
    [model] = [v for v in exp.outputs if v.name == "model.pkl"]
    graph = store.lineage(model)
    derived = {
        (graph.nodes[u]["name"], graph.nodes[v]["name"])
        for u, v, d in graph.edges(data=True) if d["relation"] == "derived_from"
    }
    assert derived == {("data/raw.csv", "data/prepared"), ("data/prepared", "model.pkl")}
    # and a third import, of either, adds nothing
    third = import_path(store.backend, repo, "dvc")
    assert (third.already_present, third.enriched, third.metrics, third.edges) == (2, 0, 0, 0)


@real_dvc
def test_new_experiment_is_added(sqlite_store, repo, tmp_path):
    copy = tmp_path / "wine"
    shutil.copytree(repo, copy)
    assert import_path(sqlite_store.backend, copy, "dvc").imported == 2
    # a new experiment commit: the baseline with other params (what `dvc exp run` makes)
    git = ["git", "-C", str(copy)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    _commit_experiment(copy, head, "lr-2", {"params.yaml": "train:\n  lr: 2.0\n  epochs: 1\n"})
    report = import_path(sqlite_store.backend, copy, "dvc")
    assert (report.found, report.imported, report.already_present) == (3, 1, 2)
    assert sqlite_store.get_run("lr-2").params["train.lr"] == 2.0


def _commit_experiment(repo: Path, base: str, name: str, files: dict[str, str]) -> str:
    """Commit changed files on top of `base` and file it under refs/exps like DVC does."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "a@e",
           "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "a@e",
           "GIT_INDEX_FILE": str(repo / ".git" / f"index-{name}")}

    def git(*args, data=None):
        return subprocess.run(["git", "-C", str(repo), *args], input=data, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()

    git("read-tree", base)
    for path, text in files.items():
        blob = git("hash-object", "-w", "--stdin", data=text)
        git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
    tree = git("write-tree")
    sha = git("commit-tree", tree, "-p", base, "-m", f"dvc: commit experiment {name}")
    git("update-ref", f"refs/exps/{base[:2]}/{base[2:]}/{name}", sha)
    return sha


@real_dvc
def test_broken_experiment_commit_is_skipped(sqlite_store, repo, tmp_path):
    copy = tmp_path / "wine"
    shutil.copytree(repo, copy)
    head = subprocess.run(["git", "-C", str(copy), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    sha = _commit_experiment(copy, head, "broken", {"dvclive/metrics.json": '{"acc": 0.9, "step": '})
    report = import_path(sqlite_store.backend, copy, "dvc")
    assert (report.found, report.imported, len(report.skipped)) == (3, 2, 1)
    assert report.complete
    where, reason = report.skipped[0]
    assert "dvclive/metrics.json" in where and sha[:10] in where and "not valid JSON" in reason
    assert {r.name for r in sqlite_store.runs()} == {"main", "lr-05"}


@real_dvc
def test_plain_folder(sqlite_store, repo, tmp_path):
    folder = tmp_path / "copied-run"
    shutil.copytree(repo, folder, ignore=shutil.ignore_patterns(".git"))
    report = import_path(sqlite_store.backend, folder, "dvc")
    assert (report.found, report.imported) == (1, 1)
    [run] = sqlite_store.runs()
    assert run.name == "copied-run"
    assert run.params["train.lr"] == 0.5  # `dvc exp run` left its results in the workspace
    assert [m.step for m in run.metric_history("acc")] == [0, 1]
    assert {v.name for v in run.outputs} == {"data/prepared", "model.pkl"}
    assert import_path(sqlite_store.backend, folder, "dvc").already_present == 1
    # a standalone dvclive folder
    live = tmp_path / "live-only"
    shutil.copytree(repo / "dvclive", live)
    assert detect(live) == "dvc"
    assert import_path(sqlite_store.backend, live).imported == 1
    assert sqlite_store.get_run("live-only").params == {"seed": 7}


def test_malformed_folder_and_exp_show(sqlite_store, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(DATA / "broken_folder", folder)  # outside any git repository
    report = import_path(sqlite_store.backend, folder, "dvc")
    assert (report.found, report.imported, len(report.skipped)) == (1, 0, 1)
    assert "dvc.lock" in report.skipped[0][0] and "not valid YAML" in report.skipped[0][1]
    assert sqlite_store.runs() == []

    show = tmp_path / "exp_show_errors.json"
    shutil.copy(DATA / "exp_show_errors.json", show)
    report = import_path(sqlite_store.backend, show, "dvc")
    assert (report.found, report.imported, len(report.skipped)) == (3, 2, 1)
    assert report.complete
    assert "YAML file structure is corrupted" in report.skipped[0][1]
    assert any("metrics.json does not exist" in w for w in report.warnings)
    base = sqlite_store.get_run("main")
    assert base.started == datetime(2025, 6, 1, 10, 0)
    assert base.metrics == {"rmse": 2.5, "val/r2": 0.4}
    assert sqlite_store.get_run("no-metrics").metrics == {}

    with pytest.raises(ImportFailed, match="not readable"):
        import_path(sqlite_store.backend, DATA / "exp_show_truncated.json", "dvc")


@real_dvc
def test_exp_show_output_is_valid_json(repo):
    rows = json.loads((repo.parent / "exp_show.json").read_text())
    assert rows[0]["rev"] == "workspace"


def test_lineage_cycle_is_a_warning_not_a_lost_run(sqlite_store, tmp_path):
    """Run two derives a.csv from b.csv, which run one derived from that same a.csv: the
    edge would close a cycle, so it is left out with a warning and the run still imports."""
    shutil.copytree(DATA / "cycle", tmp_path / "cycle")
    assert import_path(sqlite_store.backend, tmp_path / "cycle" / "one", "dvc").imported == 1
    report = import_path(sqlite_store.backend, tmp_path / "cycle" / "two", "dvc")
    assert report.imported == 1 and report.skipped == []
    assert any("cycle" in w for w in report.warnings)
    two = sqlite_store.get_run("two")
    assert [v.name for v in two.outputs] == ["a.csv"] and [v.name for v in two.inputs] == ["b.csv"]


def test_dvc1_lock_file(sqlite_store, tmp_path):
    shutil.copytree(DATA / "dvc1_folder", tmp_path / "old-run")
    report = import_path(sqlite_store.backend, tmp_path / "old-run", "dvc")
    assert report.imported == 1
    run = sqlite_store.get_run("old-run")
    assert run.params == {"alpha": 0.5} and run.command == "python train.py"
    assert {(v.name, v.digest) for v in run.inputs} == {
        ("data.csv", "md5:0123456789abcdef0123456789abcdef"),
        ("train.py", "md5:11112222333344445555666677778888"),
    }
    assert [(v.kind, v.name) for v in run.outputs] == [("model", "model.pkl")]


def test_exp_show_json_of_dvc2(sqlite_store, tmp_path):
    show = tmp_path / "repo" / "exps.json"
    show.parent.mkdir()
    shutil.copy(DATA / "exp_show_dvc2.json", show)
    assert detect(show) == "dvc"
    report = import_path(sqlite_store.backend, show, "dvc")
    assert (report.found, report.imported) == (2, 2)
    base, exp = sqlite_store.get_run("master"), sqlite_store.get_run("exp-1f2e3")
    assert exp.parent_id == base.id and exp.experiment == "repo"
    assert base.params == {"lr": 0.1, "epochs": 5} and exp.metrics == {"auc": 0.84}
    assert base.started == datetime(2022, 8, 1, 12, 0)
    assert [v.digest for v in base.outputs] == ["md5:fedcba9876543210fedcba9876543210"]


def _flat(data: dict, sep: str, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        key = f"{prefix}{sep}{k}" if prefix else k
        out.update(_flat(v, sep, key) if isinstance(v, dict) and v else {key: v})
    return out


@real_dvc
@pytest.mark.postgres
def test_repository_matches_dvc_exp_show_field_by_field(sqlite_store, repo, tmp_path):
    """What DVC itself reads back (`dvc exp show --json`, run in the fixture) for every
    commit and experiment: the params of every params file, the last value of every
    metric, and the md5 of every dep and out are what the store holds for that run;
    the same again after a bundle carried the store into PostgreSQL."""
    import metastore

    import_path(sqlite_store.backend, repo, "dvc")
    check_against_exp_show(sqlite_store, repo)
    bundle_into_postgresql(sqlite_store, tmp_path,
                           lambda pg: check_against_exp_show(metastore.Store(pg), repo))


def check_against_exp_show(store, repo) -> None:
    runs = {r.source_id: r for r in store.runs("wine")}
    rows = json.loads((repo.parent / "exp_show.json").read_text())
    entries = [r for r in rows if r["rev"] != "workspace"]
    entries += [e for r in rows for g in r.get("experiments") or [] for e in g["revs"]]
    assert {e["rev"] for e in entries} == set(runs)
    for entry in entries:
        run, data = runs[entry["rev"]], entry["data"]
        params = {}
        for content in data["params"].values():
            params.update(_flat(content["data"], "."))
        assert run.params == params, entry["rev"]
        metrics = {}
        for content in data["metrics"].values():
            metrics.update({k: v for k, v in _flat(content["data"], "/").items() if k != "step"})
        assert run.metrics == metrics, entry["rev"]
        produced = {p for p, o in data["outs"].items() if not o.get("is_data_source")}
        used = {p: d["hash"] for p, d in data["deps"].items() if p not in produced}
        assert {v.name: v.meta["md5"] for v in run.inputs} == used, entry["rev"]
        assert {v.name: v.meta["md5"] for v in run.outputs} == {
            p: data["outs"][p]["hash"] for p in produced}, entry["rev"]
        if entry.get("name"):
            assert run.name == entry["name"]


@real_dvc
def test_dry_run_counts_what_the_import_writes(sqlite_store, repo):
    dry_run_counts_what_import_writes(sqlite_store.backend, repo, "dvc")


@pytest.fixture(scope="module")
def busy_repo(tmp_path_factory) -> Path:
    """A project at a realistic shape: two baselines, each with an experiment named
    `lr-05` (DVC names experiments per baseline), an experiment removed with
    `dvc exp remove`, and an experiment whose training failed (`dvc exp run` exits
    non-zero: DVC keeps no experiment of it)."""
    pytest.importorskip("dvc")
    pytest.importorskip("dvclive")
    root = tmp_path_factory.mktemp("dvc-busy") / "wine"
    root.mkdir()
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": str(root.parent / "site-cache"),
        "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    }

    def sh(*args, ok=True):
        r = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert (r.returncode == 0) == ok, f"{args}: {r.stdout}\n{r.stderr}"
        return r.stdout

    dvc = [sys.executable, "-m", "dvc"]
    sh("git", "init", "-q", "-b", "main")
    sh(*dvc, "init", "-q")
    (root / "data").mkdir()
    (root / "data" / "raw.csv").write_text("x,y\n1,2\n3,4\n")
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n  epochs: 3\n  use_bias: true\nmodel: linear\n")
    (root / "prepare.py").write_text(PREPARE)
    (root / "train.py").write_text(TRAIN)
    (root / "dvc.yaml").write_text(DVC_YAML)
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "pipeline")
    sh(*dvc, "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "baseline 1")
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.5", "-n", "lr-05")
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.3", "-n", "scratch")
    sh(*dvc, "exp", "remove", "scratch")
    (root / "params.yaml").write_text("train:\n  lr: 0.2\n  epochs: 4\n  use_bias: false\nmodel: ridge\n")
    sh(*dvc, "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "baseline 2")
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.5", "-n", "lr-05")
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0", "-n", "diverged", ok=False)  # 1 / lr
    # both baselines (by default DVC shows the checked-out one's experiments only)
    (root.parent / "exp_show.json").write_text(sh(*dvc, "exp", "show", "--json", "-n", "2"))
    return root


@real_dvc
@pytest.mark.postgres
def test_busy_repository_matches_dvc_exp_show_field_by_field(sqlite_store, busy_repo, tmp_path):
    """Every commit and experiment DVC shows for both baselines, field by field (two
    experiments of one name stay two runs, each the child of its baseline; a removed or
    failed experiment, which DVC keeps no ref of, is not a run); again in PostgreSQL."""
    import metastore

    report = import_path(sqlite_store.backend, busy_repo, "dvc")
    assert report.skipped == []
    check_against_exp_show(sqlite_store, busy_repo)
    runs = sqlite_store.runs("wine")
    names = sorted(r.name for r in runs)
    assert names.count("lr-05") == 2 and "scratch" not in names and "diverged" not in names
    parents = {r.parent_id for r in runs if r.name == "lr-05"}
    assert len(parents) == 2 and None not in parents  # each a child of its own baseline
    bundle_into_postgresql(sqlite_store, tmp_path,
                           lambda pg: check_against_exp_show(metastore.Store(pg), busy_repo))
