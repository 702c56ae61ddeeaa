"""Running a reproduction: `metastore reproduce RUN`, `Store.reproduce(ref)`.

The plan (`metastore.reproduce.plan`) says what a run needs; this module builds it in a
folder and runs it again:

    FOLDER/code   the code: a clone of the recorded repository at the recorded commit,
                  with the recorded uncommitted change (the `git-diff` code asset) applied,
                  or the run's code assets; every input is put back at the path the run
                  read it from, verified by digest
    FOLDER/venv   a fresh virtual environment from the recorded package list (not with
                  `here`, which uses the current interpreter and lists what differs)

The command is re-run in the run's working folder inside `code/` (a `metastore run`
command through `metastore run` again, with its metric pattern). The run it records is
linked to the original by a `reproduces` edge, and each of the original's metrics gets a
verdict: identical, within tolerance (`rtol`, `atol`, as `math.isclose`), different, or
missing. When they are not all identical, `metastore.diff` says what differed in inputs,
code and environment between the two runs.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metastore import context as capture
from metastore import reproduce
from metastore.diff import change_rows, diff_runs, parse_requirements
from metastore.errors import Conflict, InvalidValue, NotReproducible
from metastore.handles import RunHandle, VersionHandle
from metastore.tracking import STARTED_RUNS_ENV

if TYPE_CHECKING:
    from metastore.backends.base import Backend
    from metastore.records import RunView, VersionLink

#: Verdicts, best first; a reproduction's verdict is its worst metric's.
VERDICTS = ("identical", "within tolerance", "different", "missing")


@dataclass
class Done:
    """One part of the reproduction as built: `status` is done, changed (it differs from
    what was recorded, and the run goes on with it) or missing."""

    part: str
    action: str
    status: str = "done"
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "action": self.action, "status": self.status,
                "detail": self.detail}


@dataclass
class MetricVerdict:
    key: str
    original: float
    reproduced: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "original": self.original, "reproduced": self.reproduced,
                "verdict": self.verdict}


@dataclass
class Reproduction:
    """What `reproduce` built, ran and found. `verdict`: identical, within tolerance,
    different, or failed (the command failed or recorded no run)."""

    original: str
    folder: str
    steps: list[Done] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    run: str | None = None
    run_id: str | None = None
    metrics: list[MetricVerdict] = field(default_factory=list)
    verdict: str = "failed"
    reason: str | None = None
    #: Rows of what differs between the original and the reproduction (params, inputs,
    #: code, environment), as `metastore diff` gives them; empty when identical.
    differences: list[dict[str, Any]] = field(default_factory=list)
    rtol: float = 0.0
    atol: float = 0.0

    @property
    def ok(self) -> bool:
        return self.verdict in ("identical", "within tolerance")

    def to_dict(self) -> dict[str, Any]:
        return {"original": self.original, "run": self.run, "run_id": self.run_id,
                "verdict": self.verdict, "reason": self.reason, "folder": self.folder,
                "command": self.command, "exit_code": self.exit_code,
                "rtol": self.rtol, "atol": self.atol,
                "metrics": [m.to_dict() for m in self.metrics],
                "differences": self.differences, "steps": [s.to_dict() for s in self.steps]}


def reproduce_run(
    store: Backend,
    ref,
    *,
    experiment: str | None = None,
    into: str | os.PathLike | None = None,
    here: bool = False,
    rtol: float = 0.0,
    atol: float = 0.0,
    timeout: float | None = None,
    stdout=None,
) -> Reproduction:
    """Rebuild run `ref` in `into` (a new temporary folder by default; kept), re-run its
    command and judge its metrics. Raises NotReproducible when the plan misses something
    or a part cannot be built; a command that fails gives the verdict "failed"."""
    if rtol < 0 or atol < 0 or not (math.isfinite(rtol) and math.isfinite(atol)):
        raise InvalidValue(f"--rtol and --atol are finite numbers of 0 or more, not {rtol}, {atol}")
    original = RunHandle(store, store.resolve_run(ref, experiment))
    [view] = store.read_runs(run_ids=[original.id])
    ctx = original.context
    p = reproduce.plan(view, store, here=here, context=ctx)
    if not p.can_run:
        raise NotReproducible(f"cannot reproduce {view.ref}: {'; '.join(p.missing)}",
                              hint=f"metastore reproduce {view.ref} --dry-run shows the plan")
    folder = _folder(into)
    out = Reproduction(original=view.ref, folder=str(folder), rtol=rtol, atol=atol)
    code = folder / "code"
    root = _code(store, view, ctx, code, out)
    workdir = _workdir(ctx, root, code)
    for v in view.inputs:
        if v.kind not in ("code", "environment"):
            out.steps.append(_put_input(store, v, workdir, folder))
    python, env = _environment(store, view, folder, here, out)
    out.command = _command(view, ctx, python, root, code)
    started = folder / "started-runs"
    started.write_text("")
    env.update(_store_env(store))
    env[STARTED_RUNS_ENV] = str(started)
    env["METASTORE_EXPERIMENT"] = view.experiment
    out.steps.append(Done("command", shlex.join(out.command), detail=f"in {workdir}"))
    try:
        out.exit_code = subprocess.run(out.command, cwd=workdir, env=env, timeout=timeout,
                                       stdout=stdout).returncode
    except subprocess.TimeoutExpired:
        out.reason = f"the command did not end within {timeout:g} s"
    except OSError as e:
        out.reason = f"cannot start {out.command[0]!r}: {e.strerror}"
    new = _the_reproduction(store, view, started.read_text().split())
    if new is None:
        out.reason = out.reason or (f"the command exited with status {out.exit_code}"
                                    if out.exit_code else "the command recorded no run")
        return out
    store.add_edge("run", original.id, "run", new.id, "reproduces")
    store.add_note(new.id, f"reproduction of {view.ref} (metastore reproduce)", kind="event",
                   author="metastore")
    out.run, out.run_id = new.ref, new.id
    if new.status != "finished" or out.exit_code:
        out.reason = out.reason or f"the command exited with status {out.exit_code}"
    _judge(store, view, new, out)
    # queryable: runs where reproduces = "diabetes#1" and reproduce_verdict != "identical"
    store.set_tags("run", new.id, {"reproduces": view.ref, "reproduce_verdict": out.verdict})
    return out


# -- the folder and the code ----------------------------------------------------------------


def _folder(into) -> Path:
    if into is None:
        return Path(tempfile.mkdtemp(prefix="metastore-reproduce-"))
    folder = Path(into).absolute()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(f"{folder} is not an empty folder",
                       hint="name a new folder with --into; a reproduction never overwrites")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, timeout=600)


def _code(store: Backend, run: RunView, ctx: dict, code: Path, out: Reproduction) -> Path | None:
    """Put the code in `code/`; the original repository root when it came from git."""
    git = ctx.get("git") or {}
    if not run.git_commit:
        code.mkdir()
        for v in run.inputs:
            if v.kind == "code":
                out.steps.append(_put_input(store, v, code, code.parent))
        return None
    sources = [s for s in (git.get("root"), git.get("remote")) if s]
    sources = [s for s in sources if s != git.get("root") or Path(s).is_dir()]
    if not sources:
        raise NotReproducible(
            f"{run.ref} was made from commit {run.git_commit[:12]} of {git.get('root') or 'a repository'},"
            " which is not here, and no remote was recorded")
    errors = []
    for source in sources:
        shutil.rmtree(code, ignore_errors=True)
        done = _git("clone", "--quiet", "--no-checkout", source, str(code))
        if done.returncode == 0:
            if _git("checkout", "--quiet", "--detach", run.git_commit, cwd=code).returncode != 0:
                _git("fetch", "--quiet", "origin", run.git_commit, cwd=code)
                done = _git("checkout", "--quiet", "--detach", run.git_commit, cwd=code)
        if done.returncode == 0:
            out.steps.append(Done("code", f"clone of {source} at commit {run.git_commit[:12]}"))
            break
        errors.append(f"{source}: {done.stderr.decode(errors='replace').strip()[-300:]}")
    else:
        raise NotReproducible(f"cannot check out commit {run.git_commit[:12]}: {'; '.join(errors)}")
    diffs = [v for v in run.inputs if v.kind == "code" and v.name == reproduce.GIT_DIFF_ASSET]
    if run.git_dirty and diffs:
        patch = VersionHandle(store, *store.get_version_by_id(diffs[0].id)).read_bytes()
        applied = _git("apply", "--binary", "--whitespace=nowarn", "-", cwd=code, stdin=patch)
        if applied.returncode != 0:
            raise NotReproducible(f"the uncommitted change {diffs[0].ref} does not apply to commit "
                                  f"{run.git_commit[:12]}: {applied.stderr.decode(errors='replace')[-300:]}")
        out.steps.append(Done("code", f"applied the uncommitted change {diffs[0].ref}"))
    return Path(git["root"]) if git.get("root") else None


def _workdir(ctx: dict, root: Path | None, code: Path) -> Path:
    """The run's working folder inside code/: where it was within its repository."""
    cwd = (ctx.get("invocation") or {}).get("cwd") or (ctx.get("system") or {}).get("cwd")
    where = code
    if cwd and root is not None:
        rel = os.path.relpath(cwd, root)
        if not rel.startswith(os.pardir):
            where = code / rel
    where.mkdir(parents=True, exist_ok=True)
    return where


# -- inputs -----------------------------------------------------------------------------------


def _digest_of(path: Path) -> str:
    from metastore.blobs import directory_manifest, manifest_bytes, sha256_file

    if path.is_dir():
        return hashlib.sha256(manifest_bytes(directory_manifest(path))).hexdigest()
    return sha256_file(path)[0]


def _put_input(store: Backend, v: VersionLink, workdir: Path, folder: Path) -> Done:
    """Put one input back where the run read it, verified by digest. Never writes
    outside the reproduction's folder: an input read from elsewhere is only checked."""
    path = reproduce.input_path(v)
    target = Path(path) if os.path.isabs(path) else workdir / path
    inside = target.resolve().is_relative_to(folder.resolve())
    action = f"{v.ref} at {path}"
    if not inside:
        if not target.exists():
            return Done("input", action, "missing",
                        f"read from {target}, outside the reproduction folder, which is gone")
        found = _digest_of(target)
        if found != v.digest:
            return Done("input", action, "changed", f"{target} holds other content: sha256 "
                        f"{found[:12]}, recorded {v.digest[:12]}")
        return Done("input", action, detail=f"in place at {target}, verified")
    if target.exists():
        if _digest_of(target) == v.digest:
            return Done("input", action, detail="already in place (from the code), verified")
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if v.uri == "blob:":
        VersionHandle(store, *store.get_version_by_id(v.id)).path(target)
        return Done("input", action, detail=f"from the blob store, sha256 {v.digest[:12]} verified")
    if not v.uri.startswith("file://"):
        return Done("input", action, "missing", f"only its URI {v.uri} was recorded")
    source = reproduce.local_file(v.uri)
    if not source.exists():
        return Done("input", action, "missing", f"{source} is gone and its content was not stored")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    found = _digest_of(target)
    if found != v.digest:
        return Done("input", action, "changed", f"fetched from {source}, whose content changed: "
                    f"sha256 {found[:12]}, recorded {v.digest[:12]}")
    return Done("input", action, detail=f"fetched from {source}, sha256 verified")


# -- the environment --------------------------------------------------------------------------


def _recorded_packages(store: Backend, run: RunView) -> tuple[str | None, str]:
    envs = [v for v in run.inputs if v.kind == "environment"]
    if not envs:
        return None, ""
    text = VersionHandle(store, *store.get_version_by_id(envs[0].id)).read_bytes().decode()
    return envs[0].ref, text


def _environment(store: Backend, run: RunView, folder: Path, here: bool,
                 out: Reproduction) -> tuple[str, dict[str, str]]:
    """The interpreter to run with and the environment variables of the command."""
    ref, recorded = _recorded_packages(store, run)
    env = dict(os.environ)
    # the command records its run with this metastore, whichever the folder finds first
    metastore_home = str(Path(__file__).resolve().parent.parent)
    if here:
        out.steps.append(_compare_packages(ref, recorded, capture.packages_text()))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [metastore_home, env.get("PYTHONPATH")]))
        return sys.executable, env
    venv = folder / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    if made.returncode != 0:
        raise NotReproducible(f"cannot make a virtual environment: {made.stderr.decode()[-300:]}")
    python = str(venv / "bin" / "python")
    pins = _installable(recorded)
    requirements = folder / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    if pins:
        pip = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-input", "-r", str(requirements)], capture_output=True)
        if pip.returncode != 0:
            raise NotReproducible(
                f"pip could not install {ref} in {venv}: {pip.stderr.decode(errors='replace')[-600:]}",
                hint="--here re-runs with the current interpreter and lists the packages that differ")
    # metastore itself (often an editable install, not on the package index) comes from
    # this installation, so the command can record its run
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True).stdout.strip()
    Path(site, "_metastore_reproduce.pth").write_text(f"{metastore_home}\n")
    recorded_python = recorded.partition("\n")[0].removeprefix("# python ").split(" ")[0]
    ours = platform.python_version()
    if recorded_python and recorded_python != ours and recorded.startswith("# python"):
        out.steps.append(Done("environment", f"fresh virtual environment {venv} from {ref}",
                              "changed", f"{len(pins)} pinned packages installed; Python "
                              f"{ours}, recorded {recorded_python}"))
    else:
        out.steps.append(Done("environment", f"fresh virtual environment {venv} from {ref}",
                              detail=f"{len(pins)} pinned packages installed"))
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env.pop("PYTHONHOME", None)
    # fresh: nothing of this process's path leaks in, but metastore (for `metastore run`)
    env["PYTHONPATH"] = metastore_home
    return python, env


def _installable(recorded: str) -> list[str]:
    """The recorded pins pip can install from an index: `name==version` lines, without
    metastore itself (put in from this installation) and without local paths."""
    pins = []
    for line in recorded.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")) or " @ " in line or "==" not in line:
            continue
        if line.split("==", 1)[0].strip().lower() == "metastore":
            continue
        pins.append(line)
    return pins


def _compare_packages(ref: str | None, recorded: str, current: str) -> Done:
    if ref is None:
        return Done("environment", "the current interpreter (--here)", "changed",
                    "no package list was recorded to compare with")
    a, b = parse_requirements(recorded), parse_requirements(current)
    differ = ([f"{k} {a[k]} -> {b[k]}" for k in sorted(a.keys() & b.keys()) if a[k] != b[k]]
              + [f"{k} {a[k]} -> not installed" for k in sorted(a.keys() - b.keys())]
              + [f"{k} not recorded -> {b[k]}" for k in sorted(b.keys() - a.keys())])
    py_a, py_b = recorded.partition("\n")[0], current.partition("\n")[0]
    if py_a.startswith("# python") and py_a != py_b:
        differ.insert(0, f"{py_a[2:]} -> {py_b[2:]}")
    if not differ:
        return Done("environment", "the current interpreter (--here)",
                    detail=f"the same packages as {ref}")
    shown = "; ".join(differ[:20]) + (f"; and {len(differ) - 20} more" if len(differ) > 20 else "")
    return Done("environment", "the current interpreter (--here)", "changed",
                f"{len(differ)} package(s) differ from {ref}: {shown}")


# -- the command ------------------------------------------------------------------------------


def _command(run: RunView, ctx: dict, python: str, root: Path | None, code: Path) -> list[str]:
    """The recorded command, with the chosen interpreter, and paths into the original
    repository moved into the reproduction's code/."""
    inv = ctx.get("invocation") or {}

    def moved(arg: str) -> str:
        if root is not None and os.path.isabs(arg):
            rel = os.path.relpath(arg, root)
            if not rel.startswith(os.pardir):
                return str(code / rel)
        return arg

    if inv.get("runner") == "metastore run":
        argv = [moved(a) for a in inv["argv"]]
        if Path(argv[0]).name.startswith("python"):
            argv[0] = python
        cmd = [sys.executable, "-m", "metastore", "run", "--experiment", run.experiment]
        if inv.get("metric_pattern"):
            cmd += ["--metric-pattern", inv["metric_pattern"]]
        return [*cmd, "--", *argv]
    if inv.get("argv"):
        argv = inv["argv"]
        if inv.get("module"):
            return [python, "-m", inv["module"], *[moved(a) for a in argv[1:]]]
        return [python, *[moved(a) for a in argv]]
    argv = shlex.split(run.command or "")  # recorded before invocations were: best effort
    if argv and Path(argv[0]).name.startswith("python"):
        argv[0] = python
    return [moved(a) for a in argv]


def _store_env(store: Backend) -> dict[str, str]:
    """How the command's runs reach this store."""
    if "***" in store.url:
        raise NotReproducible("the store's URL hides its password, so the command cannot reach it",
                              hint="set METASTORE_URL with the password, or use a server")
    env = {"METASTORE_URL": store.url}
    token = getattr(store, "token", None)
    if token:
        env["METASTORE_TOKEN"] = token
    blobs = getattr(store.blobs, "url", None)
    if blobs and not store.url.startswith(("http://", "https://")):
        env["METASTORE_BLOBS"] = str(blobs)
    return env


def _the_reproduction(store: Backend, original: RunView, started: list[str]) -> RunView | None:
    """Among the runs the command started, the reproduction: the first with the
    original's params (a script may start several), else the first."""
    views = store.read_runs(run_ids=list(dict.fromkeys(started))) if started else []
    order = {run_id: i for i, run_id in enumerate(dict.fromkeys(started))}
    views.sort(key=lambda v: order[v.id])
    for v in views:
        if v.params == original.params:
            return v
    return views[0] if views else None


# -- the verdict ------------------------------------------------------------------------------


def _judge(store: Backend, original: RunView, new: RunView, out: Reproduction) -> None:
    """A verdict per metric of the original (system.* ones aside: time and cost differ
    every run), the worst of them for the whole, and what differs when not identical."""
    worst = 0
    for key in sorted(original.metrics):
        if key.startswith("system."):
            continue
        a, b = original.metrics[key], new.metrics.get(key)
        if b is None:
            verdict = "missing"
        elif a == b:
            verdict = "identical"
        elif math.isclose(a, b, rel_tol=out.rtol, abs_tol=out.atol):
            verdict = "within tolerance"
        else:
            verdict = "different"
        worst = max(worst, VERDICTS.index(verdict))
        out.metrics.append(MetricVerdict(key, a, b, verdict))
    if out.reason is None:
        out.verdict = "different" if worst == VERDICTS.index("missing") else VERDICTS[worst]
    if out.verdict != "identical":
        d = diff_runs(store, original.id, new.id)
        out.differences = [r for r in change_rows(d)
                           if r["section"] in ("params", "inputs", "code", "environment")]


def format_text(r: Reproduction) -> str:
    """The reproduction as `metastore reproduce RUN` prints it."""
    lines = [f"reproduce {r.original} in {r.folder}:"]
    mark = {"done": "", "changed": "CHANGED ", "missing": "MISSING "}
    for i, s in enumerate(r.steps, 1):
        lines.append(f"  {i}. [{s.part}] {mark.get(s.status, '')}{s.action}")
        if s.detail:
            lines.append(f"       {s.detail}")
    if r.run:
        lines.append(f"recorded as {r.run}, linked to {r.original} by a reproduces edge")
    if r.metrics:
        lines.append("metrics:")
        for m in r.metrics:
            got = "-" if m.reproduced is None else f"{m.reproduced:.10g}"
            lines.append(f"  {m.key}: {m.original:.10g} -> {got}  {m.verdict}")
    if r.differences:
        lines.append(f"what differs between {r.original} and {r.run}:")
        for d in r.differences:
            a = "-" if d["a"] is None else d["a"]
            b = "-" if d["b"] is None else d["b"]
            lines.append(f"  {d['section']}: {d['item']}: {a} -> {b} ({d['change']})")
    elif r.verdict == "different":
        lines.append("the same params, inputs, code and environment: the command itself is not"
                     " deterministic (a seed, threads, time)")
    tol = f" (rtol {r.rtol:g}, atol {r.atol:g})" if r.rtol or r.atol else ""
    lines.append(f"verdict: {r.verdict}{tol}" + (f": {r.reason}" if r.reason else ""))
    return "\n".join(lines) + "\n"
