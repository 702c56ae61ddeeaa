"""Import DVC experiments: from a repository's git history, from `dvc exp show --json`
output, or from the plain files of one run.

`metastore import dvc PATH` accepts
- a DVC project inside a git repository: every experiment (`refs/exps/…`, what
  `dvc exp run` leaves), each experiment's baseline commit, and the checked-out commit
  (HEAD) when it holds a `dvc.yaml`/`dvc.lock`. Read from git objects with the `git`
  command; DVC itself is not needed. Uncommitted workspace changes are not read
  (`dvc exp save` or commit them first).
- a JSON file written by `dvc exp show --json` (no metric histories in that format)
- a folder that is not in git (a copied project, a standalone `dvclive/` output): one run
  from its files.

Mapping:
- experiment commit → run (`source_id` = commit sha, `git_commit` = it); experiments are
  child runs of their baseline's run; `dvc exp` name → run name (branch or short sha for
  baselines); author → user; commit time → end time
- params files (`params.yaml` and those `dvc.yaml` names, e.g. `dvclive/params.yaml`)
  → params, nested keys joined with '.'
- metrics files named in `dvc.yaml` → final metric values, nested keys joined with '/'
  (the dvclive convention); dvclive histories `<dir>/plots/metrics/**.tsv` → every step,
  with its time when dvclive logged `timestamp=True` (else the run's end time)
- `dvc.lock` deps and outs → asset versions registered by reference: digest `md5:<hex>`
  (directories `md5:<hex>.dir`), URI the object in the DVC cache; deps → *used*, outs →
  *produced* (a stage's outs that later stages read stay outputs only), and each stage's
  outs *derived_from* its data deps (role = stage name). Kind: code for source files,
  model for model-like files, else dataset.
- stage commands → the run's command

Not carried over: plots other than dvclive metric series, images, DVC's experiment queue
and the uncommitted workspace.
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

from metastore.importers import ImportFailed, ImportOptions, ImportReport
from metastore.importers._util import (
    SourceError,
    clean_tags,
    flatten,
    flatten_params,
    points,
    stable_id,
)
from metastore.importers.values import finite, to_utc
from metastore.importers.writer import PendingAsset, Writer
from metastore.records import MetricPoint, RunRecord

NAME = "dvc"
SOURCE = "dvc"
_EXP_REF = re.compile(r"^refs/exps/([0-9a-f]{2})/([0-9a-f]{38})/(.+)$")
_TSV = re.compile(r"^(?P<dir>(?:.*/)?)plots/metrics/(?P<key>.+)\.tsv$")
CODE_SUFFIXES = {".py", ".r", ".ipynb", ".sh", ".jl", ".scala", ".java", ".sql", ".js", ".ts"}
MODEL_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".onnx", ".h5", ".keras",
                  ".ckpt", ".safetensors", ".pb", ".tflite", ".cbm", ".ubj"}


def detect(path: Path) -> bool:
    if path.is_file():
        if path.suffix != ".json":
            return path.name in ("dvc.yaml", "dvc.lock")
        try:
            head = path.read_text(encoding="utf-8", errors="replace")[:2000]
        except OSError:
            return False
        head = head.lstrip()
        if head.startswith("["):
            return '"rev"' in head and '"experiments"' in head
        return head.startswith("{") and '"workspace"' in head and '"baseline"' in head  # DVC 2
    if any((path / n).exists() for n in ("dvc.yaml", "dvc.lock", ".dvc")):
        return True
    return (path / "metrics.json").is_file() and (path / "plots" / "metrics").is_dir()  # dvclive


# -- where files come from: a folder, or a git commit ------------------------------------------


class DirTree:
    def __init__(self, root: Path):
        self.root = root
        self.label = str(root)

    def read(self, path: str) -> bytes | None:
        f = self.root / path
        return f.read_bytes() if f.is_file() else None

    def files(self) -> list[str]:
        return sorted(
            str(p.relative_to(self.root).as_posix())
            for p in self.root.rglob("*")
            if p.is_file() and ".git" not in p.parts and ".dvc" not in p.parts[:1]
        )

    def where(self, path: str) -> str:
        return str(self.root / path)


class GitTree:
    def __init__(self, repo: Path, rev: str, prefix: str):
        self.repo, self.rev, self.prefix = repo, rev, prefix
        self.label = f"{repo}@{rev[:10]}"
        self._files: list[str] | None = None

    def read(self, path: str) -> bytes | None:
        r = subprocess.run(
            ["git", "-C", str(self.repo), "cat-file", "blob", f"{self.rev}:{self.prefix}{path}"],
            capture_output=True,
        )
        return r.stdout if r.returncode == 0 else None

    def files(self) -> list[str]:
        if self._files is None:
            out = _git(self.repo, "ls-tree", "-r", "--name-only", self.rev, "--", self.prefix or ".")
            self._files = [
                line[len(self.prefix):] for line in out.splitlines() if line.startswith(self.prefix)
            ]
        return self._files

    def where(self, path: str) -> str:
        return f"{self.repo}/{self.prefix}{path} (commit {self.rev[:10]})"


def _git(repo: Path, *args: str) -> str:
    try:
        r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    except FileNotFoundError as e:  # pragma: no cover - depends on the machine
        raise ImportFailed("reading a DVC repository needs the git command") from e
    if r.returncode != 0:
        raise SourceError(repo, f"git {' '.join(args[:2])} failed: {r.stderr.strip()}")
    return r.stdout


# -- reading one run ---------------------------------------------------------------------------


def _parse(tree, path: str, data: bytes) -> Any:
    import yaml

    try:
        if path.endswith(".json"):
            return json.loads(data)
        if path.endswith(".toml"):
            import tomllib

            return tomllib.loads(data.decode())
        return yaml.safe_load(data)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        fmt = {".json": "JSON", ".toml": "TOML"}.get(PurePosixPath(path).suffix, "YAML")
        raise SourceError(tree.where(path), f"not valid {fmt}: {first}") from e


def _entries(items: Any) -> list[str]:
    """File names from a dvc.yaml list whose entries are names or {name: options}."""
    out = []
    for item in items or []:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict):
            out.extend(str(k) for k in item)
    return out


def read_tree(tree, report: ImportReport) -> dict:
    raw_yaml = tree.read("dvc.yaml")
    dvc_yaml = (_parse(tree, "dvc.yaml", raw_yaml) if raw_yaml is not None else None) or {}
    raw_lock = tree.read("dvc.lock")
    lock = (_parse(tree, "dvc.lock", raw_lock) if raw_lock is not None else None) or {}
    if not isinstance(dvc_yaml, dict) or not isinstance(lock, dict):
        raise SourceError(tree.where("dvc.yaml"), "not a mapping")
    stages = dvc_yaml.get("stages") or {}
    param_files = ["params.yaml"]
    metric_files = _entries(dvc_yaml.get("metrics"))
    for stage in stages.values() if isinstance(stages, dict) else []:
        if not isinstance(stage, dict):
            continue
        for p in stage.get("params") or []:
            if isinstance(p, dict):
                param_files.extend(str(k) for k in p)
        metric_files += _entries(stage.get("metrics"))
    param_files += _entries(dvc_yaml.get("params"))
    files = tree.files()
    dvclive_dirs = {m.group("dir") for f in files if (m := _TSV.match(f))}
    for d in dvclive_dirs:  # a standalone dvclive folder has no dvc.yaml naming these
        for name in ("metrics.json", "params.yaml"):
            if f"{d}{name}" in files:
                (metric_files if name == "metrics.json" else param_files).append(f"{d}{name}")
    raw: dict[str, bytes] = {}
    for path in dict.fromkeys(param_files + metric_files + [f for f in files if _TSV.match(f)]):
        data = tree.read(path)
        if data is not None:
            raw[path] = data
    params: dict[str, Any] = {}
    for path in dict.fromkeys(param_files):
        if path in raw:
            content = _parse(tree, path, raw[path]) or {}
            if not isinstance(content, dict):
                raise SourceError(tree.where(path), "params file is not a mapping")
            for k, v in flatten_params(content).items():
                if k in params and params[k] != v:
                    report.warn(tree.where(path), f"param {k!r} also set elsewhere; kept the first")
                params.setdefault(k, v)
    final: dict[str, float] = {}
    final_step: dict[str, int] = {}
    for path in dict.fromkeys(metric_files):
        if path not in raw:
            continue
        content = _parse(tree, path, raw[path]) or {}
        if not isinstance(content, dict):
            raise SourceError(tree.where(path), "metrics file is not a mapping")
        is_live = (path.rsplit("/", 1)[0] + "/" if "/" in path else "") in dvclive_dirs
        step = content.get("step") if is_live else None
        for k, v in flatten(content, "/").items():
            if is_live and k == "step":
                continue
            if finite(v) and k not in final:
                final[k] = float(v)
                if isinstance(step, int):
                    final_step[k] = step
    histories: dict[str, list[tuple[int, Any, Any]]] = {}
    for path, data in raw.items():
        m = _TSV.match(path)
        if not m:
            continue
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8", "replace")), delimiter="\t"))
        key = m.group("key")
        leaf = PurePosixPath(key).name
        series = []
        for n, row in enumerate(rows):
            try:
                step = int(float(row.get("step", n)))
                ts = to_utc(int(row["timestamp"])) if row.get("timestamp") else None
                value = float(row.get(leaf) if leaf in row else list(row.values())[-1])
            except (TypeError, ValueError) as e:
                raise SourceError(tree.where(path), f"row {n + 2} is malformed ({e})") from e
            series.append((step, ts, value))
        histories[key] = series
    return {
        "params": params, "final": final, "final_step": final_step, "histories": histories,
        "lock": lock, "yaml": dvc_yaml, "metric_files": set(metric_files),
        "tsv_files": [p for p in raw if _TSV.match(p)],
    }


def lock_stages(lock: dict) -> dict:
    """The stages of a dvc.lock: under `stages:` since DVC 2 (schema 2.0), the top level
    in DVC 1 files."""
    if not isinstance(lock, dict):
        return {}
    if "stages" in lock or "schema" in lock:
        stages = lock.get("stages") or {}
    else:
        stages = lock
    return stages if isinstance(stages, dict) else {}


def _kind(path: str, declared: dict[str, str]) -> str:
    if path in declared:
        return declared[path]
    p = PurePosixPath(path)
    if p.suffix.lower() in CODE_SUFFIXES:
        return "code"
    if p.suffix.lower() in MODEL_SUFFIXES or "model" in p.name.lower():
        return "model"
    return "dataset"


def _hash(entry: dict) -> tuple[str, str] | None:
    """(algorithm, value) of a dvc.lock dep/out entry."""
    for algo in ("md5", "etag", "checksum", "version_id"):
        if entry.get(algo):
            return algo, str(entry[algo])
    return None


def lineage(data: dict, cache: Path | None) -> list[PendingAsset]:
    """Asset versions from dvc.lock: inputs first, then outputs in pipeline order."""
    stages = lock_stages(data["lock"])
    if not isinstance(stages, dict):
        return []
    declared = {}
    for art in ((data["yaml"] or {}).get("artifacts") or {}).values():
        if isinstance(art, dict) and art.get("path"):
            kind = art.get("type") if art.get("type") in ("model", "dataset") else "model"
            declared[str(art["path"])] = kind
    skip = data["metric_files"]
    produced = {
        str(o.get("path")) for s in stages.values() if isinstance(s, dict)
        for o in s.get("outs") or [] if isinstance(o, dict)
    }
    assets: dict[tuple[str, str], PendingAsset] = {}
    outputs: list[PendingAsset] = []

    def asset(entry: dict, relation: str, stage: str) -> PendingAsset | None:
        path = str(entry.get("path") or "")
        h = _hash(entry)
        if not path or h is None or path in skip:
            return None
        algo, value = h
        kind = _kind(path, declared)
        uri = _uri(path, algo, value, cache)
        meta = {"path": path, algo: value, "stage": stage}
        if entry.get("nfiles") is not None:
            meta["nfiles"] = entry["nfiles"]
        return PendingAsset(
            kind=kind, name=path, relation=relation, uri=uri, digest=f"{algo}:{value}",
            size=entry.get("size") if isinstance(entry.get("size"), int) else None,
            media_type="inode/directory" if value.endswith(".dir") else None,
            meta=meta, role=stage,
        )

    for stage_name, stage in _ordered(stages):
        ups = []
        for dep in stage.get("deps") or []:
            a = asset(dep, "used", stage_name) if isinstance(dep, dict) else None
            if a is None:
                continue
            key = (a.kind, a.name)
            if a.name not in produced and key not in assets:
                assets[key] = a
            if a.kind != "code":
                ups.append(key)
        for out in stage.get("outs") or []:
            a = asset(out, "produced", stage_name) if isinstance(out, dict) else None
            if a is not None:
                a.derived_from = ups
                outputs.append(a)
    return list(assets.values()) + outputs


def _uri(path: str, algo: str, value: str, cache: Path | None) -> str:
    """Where DVC keeps that content: the object in the project's cache (DVC 3 layout),
    else `dvc:<path>` (a path in the project, at that version)."""
    if algo == "md5" and cache is not None:
        return (cache / "files" / "md5" / value[:2] / value[2:]).as_uri()
    return f"dvc:{path}"


def _ordered(stages: dict) -> list[tuple[str, dict]]:
    """Stages so that a stage comes after those producing its deps."""
    items = [(n, s) for n, s in stages.items() if isinstance(s, dict)]
    out_of = {str(o.get("path")): n for n, s in items for o in s.get("outs") or [] if isinstance(o, dict)}
    done: list[str] = []

    def visit(name: str, seen: set[str]) -> None:
        if name in done or name in seen:
            return
        seen.add(name)
        for dep in stages[name].get("deps") or []:
            up = out_of.get(str(dep.get("path"))) if isinstance(dep, dict) else None
            if up and up != name:
                visit(up, seen)
        done.append(name)

    for name, _ in items:
        visit(name, set())
    return [(n, stages[n]) for n in done]


def to_record(
    data: dict, report: ImportReport, where: str, *, experiment: str, source_id: str,
    name: str | None, ended, user: str | None = None, git_commit: str | None = None,
    parent_id: str | None = None, tags: dict | None = None,
) -> RunRecord:
    metrics: list[MetricPoint] = []
    stamps = [ts for s in data["histories"].values() for _, ts, _ in s if ts is not None]
    started = min(stamps) if stamps else ended
    if stamps and ended is not None and max(stamps) > ended:
        ended = max(stamps)
    for key, series in sorted(data["histories"].items()):
        metrics += points(key, ((st, ts or ended, v) for st, ts, v in series), report, where)
    for key, value in sorted(data["final"].items()):
        if key not in data["histories"]:
            metrics.append(MetricPoint(key=key, value=value, step=data["final_step"].get(key, 0),
                                       timestamp=ended))
    stages = lock_stages(data["lock"])
    cmds = []
    for stage in stages.values() if isinstance(stages, dict) else []:
        cmd = stage.get("cmd") if isinstance(stage, dict) else None
        cmds += cmd if isinstance(cmd, list) else [cmd] if cmd else []
    return RunRecord(
        experiment=experiment, name=name, status="finished", started=started, ended=ended,
        user=user, git_commit=git_commit, command="; ".join(map(str, cmds)) or None,
        params=data["params"], metrics=metrics, tags=clean_tags(tags or {}),
        source=SOURCE, source_id=source_id, parent_id=parent_id,
    )


# -- the three entry points ----------------------------------------------------------------------


def import_source(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    path = path.resolve()
    if path.is_file() and path.suffix == ".json":
        return import_exp_show(store, path, options, report)
    if path.is_file():
        path = path.parent
    top = _git_toplevel(path)
    if top is not None and _has_commits(top) and import_git(store, path, top, options, report):
        return None
    return import_folder(store, path, options, report)


def _git_toplevel(path: Path) -> Path | None:
    try:
        r = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],
                           capture_output=True, text=True)
    except FileNotFoundError:
        return None
    return Path(r.stdout.strip()).resolve() if r.returncode == 0 else None


def _has_commits(top: Path) -> bool:
    return subprocess.run(["git", "-C", str(top), "rev-parse", "--verify", "-q", "HEAD"],
                          capture_output=True).returncode == 0


def _cache_dir(project: Path) -> Path | None:
    cache = project / ".dvc" / "cache"
    return cache if cache.is_dir() else None


def import_git(store, path: Path, top: Path, options: ImportOptions, report: ImportReport) -> bool:
    """Import the runs committed in git; False when no commit holds a DVC project here."""
    prefix = "" if path == top else path.relative_to(top).as_posix() + "/"
    experiment = path.name
    head = _git(top, "rev-parse", "HEAD").strip()
    exps: list[tuple[str, str, str]] = []  # (sha, name, baseline)
    for line in _git(top, "for-each-ref", "--format=%(objectname) %(refname)", "refs/exps/").splitlines():
        sha, ref = line.split(" ", 1)
        m = _EXP_REF.match(ref)
        if m:
            exps.append((sha, m.group(3), m.group(1) + m.group(2)))
    baselines = list(dict.fromkeys([head] + [b for _, _, b in exps]))
    candidates: list[tuple[str, str | None, str | None, str | None]] = []  # sha, name, baseline, exp name
    for b in baselines:
        candidates.append((b, _branch_name(top, b) or b[:7], None, None))
    for sha, name, base in sorted(exps, key=lambda e: _commit_time(top, e[0])):
        candidates.append((sha, name, base, name))
    runs = [c for c in candidates if _is_dvc_rev(top, c[0], prefix)]
    if not runs:
        return False
    report.found = len(runs)
    cache = _cache_dir(path)
    writer = Writer(store, options, report)
    for done, (sha, name, baseline, exp_name) in enumerate(runs, 1):
        options.progress(done, len(runs))
        tree = GitTree(top, sha, prefix)
        where = tree.label
        try:
            data = read_tree(tree, report)
            info = _git(top, "show", "-s", "--format=%ct%x00%an%x00%ae", sha).strip().split("\x00")
        except SourceError as e:
            report.skip(e.where, e.reason)
            continue
        tags = {"dvc.baseline": baseline} if baseline else {"dvc.baseline": sha}
        if exp_name:
            tags["dvc.exp_name"] = exp_name
        record = to_record(
            data, report, where, experiment=experiment, source_id=sha, name=name,
            ended=to_utc(int(info[0])), user=info[1] or None, git_commit=sha, tags=tags,
        )
        writer.add(record, lineage(data, cache), where, parent=baseline)
    writer.flush()
    return True


def _is_dvc_rev(top: Path, sha: str, prefix: str) -> bool:
    for name in ("dvc.yaml", "dvc.lock"):
        r = subprocess.run(["git", "-C", str(top), "cat-file", "-e", f"{sha}:{prefix}{name}"],
                           capture_output=True)
        if r.returncode == 0:
            return True
    return False


def _branch_name(top: Path, sha: str) -> str | None:
    out = _git(top, "branch", "--format=%(refname:short)", "--points-at", sha).split()
    return out[0] if out else None


def _commit_time(top: Path, sha: str) -> int:
    return int(_git(top, "show", "-s", "--format=%ct", sha).strip() or 0)


def import_folder(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    tree = DirTree(path)
    report.found = 1
    try:
        data = read_tree(tree, report)
    except SourceError as e:
        report.skip(e.where, e.reason)
        return
    if not (data["params"] or data["final"] or data["histories"] or data["lock"]):
        raise ImportFailed(f"no DVC params, metrics, dvc.lock or dvclive output in {path}")
    fingerprint = [tree.read(f) or b"" for f in ("dvc.lock", "params.yaml")]
    fingerprint += [json.dumps(data["final"], sort_keys=True).encode()]
    fingerprint += [json.dumps(data["histories"], sort_keys=True, default=str).encode()]
    # the run ended when its results were last written (not the data: it may be huge)
    read = ["dvc.lock", "params.yaml", *data["metric_files"], *data["tsv_files"]]
    times = [(path / f).stat().st_mtime for f in read if (path / f).is_file()]
    record = to_record(
        data, report, str(path), experiment=path.parent.name or path.name,
        source_id=stable_id(str(path.name), *fingerprint), name=path.name,
        ended=to_utc(max(times)) if times else None, tags={"dvc.folder": str(path)[-500:]},
    )
    with Writer(store, options, report) as writer:
        writer.add(record, lineage(data, _cache_dir(path)), str(path))


def import_exp_show(store, path: Path, options: ImportOptions, report: ImportReport) -> None:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImportFailed(f"{path} is not readable `dvc exp show --json` output: {e}") from e
    if isinstance(rows, dict):
        entries = _dvc2_entries(rows)
    elif isinstance(rows, list):
        entries = []  # (entry, baseline rev)
        for row in rows:
            if not isinstance(row, dict) or row.get("rev") == "workspace":
                continue
            entries.append((row, None))
            for group in row.get("experiments") or []:
                for rev in (group or {}).get("revs") or []:
                    entries.append((rev, row.get("rev")))
    else:
        raise ImportFailed(f"{path} is not `dvc exp show --json` output")
    report.found = len(entries)
    experiment = path.parent.name or "dvc"
    writer = Writer(store, options, report)
    for done, (entry, baseline) in enumerate(entries, 1):
        options.progress(done, len(entries))
        rev = entry.get("rev")
        where = f"{path} (rev {str(rev)[:10]})"
        data = entry.get("data")
        if not isinstance(rev, str) or not isinstance(data, dict):
            reason = f"DVC reported an error: {entry.get('error')}" if entry.get("error") else "entry without rev or data"
            report.skip(where, reason)
            continue
        try:
            record, assets = _from_exp_show(data, report, where, _cache_dir(path.parent))
        except SourceError as e:
            report.skip(where, e.reason)
            continue
        record.experiment = experiment
        record.name = entry.get("name") or rev[:7]
        record.source_id = rev
        record.git_commit = rev
        record.tags = {"dvc.baseline": baseline or rev}
        if baseline:
            record.tags["dvc.exp_name"] = record.name
        writer.add(record, assets, where, parent=baseline)
    writer.flush()


def _dvc2_entries(rows: dict) -> list[tuple[dict, str | None]]:
    """Entries of the DVC 2.x layout: {baseline sha: {"baseline": {"data": …},
    exp sha: {"data": …}, …}, "workspace": …}, as (entry with "rev", baseline rev)."""
    entries: list[tuple[dict, str | None]] = []
    for base_rev, group in rows.items():
        if base_rev == "workspace" or not isinstance(group, dict):
            continue
        base = group.get("baseline") or {}
        data = base.get("data") if isinstance(base, dict) else None
        name = data.get("name") if isinstance(data, dict) else None
        entries.append(({"rev": base_rev, "name": name, "data": data, "error": base.get("error")}, None))
        for rev, exp in group.items():
            if rev == "baseline" or not isinstance(exp, dict):
                continue
            data = exp.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            entries.append(({"rev": rev, "name": name, "data": data, "error": exp.get("error")}, base_rev))
    return entries


def _from_exp_show(data: dict, report: ImportReport, where: str, cache: Path | None) -> tuple[RunRecord, list]:
    params: dict[str, Any] = {}
    for file, content in (data.get("params") or {}).items():
        if isinstance(content, dict) and isinstance(content.get("data"), dict):
            for k, v in flatten_params(content["data"]).items():
                params.setdefault(k, v)
        elif isinstance(content, dict) and content.get("error"):
            report.warn(where, f"params file {file}: {content['error']}")
    final: dict[str, float] = {}
    steps: dict[str, int] = {}
    for file, content in (data.get("metrics") or {}).items():
        if isinstance(content, dict) and isinstance(content.get("data"), dict):
            values = content["data"]
            live = "dvclive" in file
            for k, v in flatten(values, "/").items():
                if live and k == "step":
                    continue
                if finite(v):
                    final.setdefault(k, float(v))
                    if live and isinstance(values.get("step"), int):
                        steps[k] = values["step"]
        elif isinstance(content, dict) and content.get("error"):
            report.warn(where, f"metrics file {file}: {content['error']}")
    ts = to_utc(data.get("timestamp"))
    metrics = [MetricPoint(key=k, value=v, step=steps.get(k, 0), timestamp=ts) for k, v in final.items()]
    deps, outs = data.get("deps") or {}, data.get("outs") or {}
    assets: list[PendingAsset] = []

    def add(path: str, entry: dict, relation: str) -> None:
        value = entry.get("hash")
        if not value:
            return
        assets.append(PendingAsset(
            kind=_kind(path, {}), name=path, relation=relation, uri=_uri(path, "md5", value, cache),
            digest=f"md5:{value}", size=entry.get("size") if isinstance(entry.get("size"), int) else None,
            media_type="inode/directory" if str(value).endswith(".dir") else None,
            meta={"path": path, "md5": value, **({"nfiles": entry["nfiles"]} if entry.get("nfiles") else {})},
        ))

    produced = {p for p, o in outs.items() if isinstance(o, dict) and not o.get("is_data_source")}
    for p, d in deps.items():
        if p not in produced and isinstance(d, dict):
            add(p, d, "used")
    for p, o in outs.items():
        if p in produced:
            add(p, o, "produced")
    record = RunRecord(experiment="", status="finished", started=ts, ended=ts, params=params,
                       metrics=metrics, source=SOURCE, source_id="")
    return record, assets
