"""`metastore run -- COMMAND …`: a run recorded around a command that knows nothing of
metastore.

The command runs as a child process. Its run records the command line, the working
folder, git state and environment (as `start_run` does), the arguments that look like
params (`--lr 0.1`, `--lr=0.1`, `lr=0.1`, `a.b=1`, typed), the exit status (non-zero:
failed), stdout and stderr (passed through to the terminal and stored as a log asset),
metric lines matched by `--metric-pattern`, and, for a Python child, the files it read
(inputs) and wrote (outputs), noted by an audit hook that `metastore/runsite/
sitecustomize.py` installs in the child. The child finds its run with
`metastore.current_run()` (METASTORE_RUN_ID and METASTORE_URL in its environment).

A signal (SIGTERM, SIGINT) to `metastore run` is passed to the child; a child that dies
of a signal leaves its run failed (SIGINT: killed) with an event note and the tag
`event` naming the signal (`runs where event = "sigterm"`). A child killed by SIGKILL
when its cgroup's out-of-memory kills went up, or its memory peaked near the limit, is
the event `oom` (`sampler.oom_verdict`).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metastore import context, sampler
from metastore.errors import InvalidValue
from metastore.importers.values import infer_value
from metastore.records import MetricPoint
from metastore.tracking import ActiveRun

RUNSITE = Path(__file__).parent / "runsite"
#: Files larger than this are recorded by digest only, never copied into the store.
MAX_COPY_BYTES = 100 * 1024 * 1024
#: Kinds guessed from a file's extension.
KIND_BY_EXTENSION = {
    ".csv": "dataset", ".parquet": "dataset", ".tsv": "dataset", ".jsonl": "dataset",
    ".npy": "dataset", ".npz": "dataset", ".arrow": "dataset", ".feather": "dataset",
    ".pkl": "model", ".pickle": "model", ".pt": "model", ".pth": "model", ".onnx": "model",
    ".joblib": "model", ".h5": "model", ".safetensors": "model", ".ckpt": "model",
    ".yaml": "config", ".yml": "config", ".toml": "config", ".ini": "config", ".json": "config",
    ".png": "plot", ".svg": "plot", ".jpg": "plot", ".log": "log", ".ipynb": "notebook",
    ".py": "code",
}
_KEY = re.compile(r"[A-Za-z_][\w.\-]*")
_IGNORED_PARTS = {"__pycache__", ".git", ".metastore", ".cache", "site-packages", "node_modules"}


def parse_params(args: Sequence[str]) -> dict[str, Any]:
    """Params from a command's arguments: `--lr 0.1`, `--lr=0.1`, `lr=0.1`, `a.b=1`
    (Hydra style), `--flag` (true). Values are typed as text params are everywhere."""
    params: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and len(arg) > 1 and not _is_number(arg):
            name, eq, value = arg.lstrip("-").partition("=")
            key = name.replace("-", "_")
            if not _KEY.fullmatch(key or "-"):
                i += 1
                continue
            if eq:
                params[key] = infer_value(value)
            elif i + 1 < len(args) and not (args[i + 1].startswith("-") and not _is_number(args[i + 1])):
                params[key] = infer_value(args[i + 1])
                i += 1
            else:
                params[key] = True
        else:
            name, eq, value = arg.partition("=")
            key = name.lstrip("+~")  # Hydra's +key=value and ~key
            if eq and _KEY.fullmatch(key):
                params[key] = infer_value(value)
        i += 1
    return params


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _script_args(command: Sequence[str]) -> list[str]:
    """The arguments after the program (and after `python [-m mod | script]`)."""
    args = list(command[1:])
    if Path(command[0]).name.startswith("python"):
        while args and args[0].startswith("-") and args[0] != "-m":
            args.pop(0)
        if args[:1] == ["-m"]:
            args = args[2:]
        else:
            args = args[1:]
    return args


def _is_python(command: Sequence[str]) -> bool:
    first = Path(command[0]).name
    if first.startswith("python"):
        return True
    try:
        with open(command[0], "rb") as f:
            return b"python" in f.readline()
    except OSError:
        return False


def guess_kind(path: Path) -> str:
    return KIND_BY_EXTENSION.get(path.suffix.lower(), "other")


def current_run():
    """The run `metastore run` opened for this process (None outside one): log to it
    like to any run; `metastore run` ends it when the command ends."""
    run_id = os.environ.get("METASTORE_RUN_ID")
    if not run_id:
        return None
    from metastore.store import open as open_store

    store = open_store(os.environ.get("METASTORE_URL"), create=False)
    run = ActiveRun(store.backend, store.backend.resolve_run(run_id))
    run._ended = True  # the parent ends it
    run._stop = threading.Event()
    return run


class _Streams:
    """Copies the child's stdout/stderr to ours and to a log file, line by line, and
    picks metric values out of lines matching the pattern."""

    def __init__(self, log_path: Path, pattern: re.Pattern | None, on_metrics):
        self.log = open(log_path, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.lock = threading.Lock()
        self.pattern = pattern
        self.on_metrics = on_metrics
        self.threads: list[threading.Thread] = []

    def follow(self, pipe, sink) -> None:
        def pump():
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", "replace")
                sink.write(line)
                sink.flush()
                with self.lock:
                    self.log.write(line)
                if self.pattern is not None:
                    self._metrics(line)
            pipe.close()

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        self.threads.append(t)

    def _metrics(self, line: str) -> None:
        m = self.pattern.search(line)
        if not m:
            return
        found = {k: v for k, v in m.groupdict().items() if v is not None}
        step = int(found.pop("step")) if "step" in found else None
        points = []
        for key, value in found.items():
            try:
                points.append(MetricPoint.build(key=key, value=float(value), step=step))
            except (ValueError, InvalidValue):
                continue
        if points:
            self.on_metrics(points)

    def close(self) -> None:
        for t in self.threads:
            t.join()
        self.log.close()


def run_command(
    store,
    command: Sequence[str],
    *,
    experiment: str | None = None,
    name: str | None = None,
    metric_pattern: str | None = None,
    track_files: bool = True,
    max_copy_bytes: int = MAX_COPY_BYTES,
    system_metrics: float | bool = True,
    cost_per_hour: float | None = None,
) -> tuple[ActiveRun, int]:
    """Run `command` as a recorded run; (the run, the child's exit status)."""
    if not command:
        raise InvalidValue("no command to run", hint="metastore run -- python train.py --lr 0.1")
    pattern = None
    if metric_pattern:
        try:
            pattern = re.compile(metric_pattern)
        except re.error as e:
            raise InvalidValue(f"--metric-pattern is not a regular expression: {e}") from e
        if not set(pattern.groupindex) - {"step"}:
            raise InvalidValue("--metric-pattern needs a named group per metric, e.g. (?P<loss>[\\d.]+)")
    cwd = Path.cwd()
    python = track_files and _is_python(command)
    run = ActiveRun.start(
        store.backend, experiment=experiment, name=name, command=shlex.join(command),
        tags={"cwd": str(cwd)}, system_metrics=False, cost_per_hour=cost_per_hour,
        # a Python child's packages are those of its interpreter, known once it ran
        capture=set(context.PARTS) - {"packages"} if python else True,
        invocation={"argv": list(command), "runner": "metastore run",
                    **({"metric_pattern": metric_pattern} if metric_pattern else {})},
    )
    interval = sampler.interval_setting(system_metrics)
    params = parse_params(_script_args(command))
    if params:
        run.log_params(params)
    env = dict(os.environ)
    env["METASTORE_RUN_ID"] = run.id
    if "***" not in store.backend.url:  # a hidden password: the child keeps METASTORE_URL
        env["METASTORE_URL"] = store.backend.url
    if getattr(store.backend, "token", None):  # a server's: the child logs with it too
        env["METASTORE_TOKEN"] = store.backend.token
    work = Path(tempfile.mkdtemp(prefix="metastore-run-"))
    files_log = work / "files"
    if python:
        files_log.touch()
        env["METASTORE_RUN_FILES"] = str(files_log)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(RUNSITE), env.get("PYTHONPATH")]))
    before = _snapshot(cwd) if track_files and not python else {}
    streams = _Streams(work / "output.log", pattern, lambda pts: run.store.log_metrics(run.id, pts))
    try:
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        run.note(f"could not start {command[0]!r}: {e.strerror}", kind="event", author="metastore")
        run.end("failed")
        raise InvalidValue(f"cannot run {command[0]!r}: {e.strerror}") from e
    received: list[int] = []
    kills_before = sampler.oom_kills()

    def forward(signum, frame):
        received.append(signum)
        child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}
    streams.follow(child.stdout, sys.stdout)
    streams.follow(child.stderr, sys.stderr)
    watcher = _watch(run, child.pid, interval, run._cost_per_hour)
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if watcher is not None:
            watcher.stop(final_sample=False)
    streams.close()
    run.log_asset(work / "output.log", kind="log", name=f"{run.experiment}-{run.number}-output",
                  media_type="text/plain", role="stdout+stderr")
    if python:
        interpreter = _record_files(run, files_log, cwd, max_copy_bytes)
        run.log_environment(_packages(interpreter, env) or context.packages_text())
    elif track_files:
        after = _snapshot(cwd)
        for path, stamp in after.items():
            if before.get(path) != stamp:
                _log_file(run, path, "produced", max_copy_bytes)
    run.set_tags({"exit_code": str(code)})
    status = "finished"
    oom = sampler.oom_verdict(code, kills_before, sampler.oom_kills(),
                              watcher.peak_rss if watcher is not None else 0, sampler.memory_limit())
    if oom is not None:
        run.event("oom", oom)
        status = "failed"
    elif code < 0 or received:
        signum = -code if code < 0 else received[0]
        sig = signal.Signals(signum).name.lower()
        run.event(sig, f"the command was stopped by {sig.upper()} (exit status {code})")
        status = "killed" if signum == signal.SIGINT else "failed"
    elif code != 0:
        run.note(f"the command exited with status {code}", kind="event", author="metastore")
        status = "failed"
    run.end(status)
    return run, code


def _watch(run: ActiveRun, pid: int, interval: float | None, cost: float | None):
    """A sampler of the child's process tree (None when off or the child is gone)."""
    if interval is None:
        return None
    import psutil

    try:
        return sampler.Sampler(
            run.store, run.id, interval=interval, pid=pid, cost_per_hour=cost
        ).start()
    except psutil.Error:
        return None


def _ignored(path: Path) -> bool:
    return bool(_IGNORED_PARTS & set(path.parts)) or path.suffix == ".pyc"


def _snapshot(root: Path, limit: int = 20_000) -> dict[Path, tuple[int, int]]:
    found: dict[Path, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _IGNORED_PARTS]
        for f in filenames:
            p = Path(dirpath, f)
            try:
                st = p.stat()
            except OSError:
                continue
            found[p] = (st.st_mtime_ns, st.st_size)
            if len(found) >= limit:
                return found
    return found


def _packages(interpreter: tuple[str, str] | None, env: dict[str, str]) -> str | None:
    """The package list of the child's Python (prefix, executable): this process's when
    it is the same installation, else asked of the child's interpreter (`python` on the
    PATH, another virtual environment …); None when the child never said which it was."""
    if interpreter is None:
        return None
    prefix, executable = interpreter
    if os.path.realpath(prefix) == os.path.realpath(sys.prefix):
        return context.packages_text()
    probe = {k: v for k, v in env.items() if k != "METASTORE_RUN_FILES"}
    return context.packages_of(executable, probe)


def _record_files(run: ActiveRun, files_log: Path, cwd: Path,
                  max_copy_bytes: int) -> tuple[str, str] | None:
    """Log the files the child read and wrote; the child's interpreter (prefix,
    executable), as its first line says."""
    read: dict[Path, None] = {}
    written: dict[Path, None] = {}
    interpreter = None
    for line in files_log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("python\t") and interpreter is None:
            _, prefix, executable = (line.split("\t", 2) + ["", ""])[:3]
            interpreter = (prefix, executable)
            continue
        mode, _, path = line.partition("\t")
        p = Path(path)
        if not path or _ignored(p) or not p.is_file():
            continue
        (written if mode == "w" else read)[p] = None
    for p in read:
        if p not in written:
            _log_file(run, p, "used", max_copy_bytes)
    for p in written:
        _log_file(run, p, "produced", max_copy_bytes)
    return interpreter


def _log_file(run: ActiveRun, path: Path, relation: str, max_copy_bytes: int) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        return
    run.log_asset(
        path, kind=guess_kind(path), name=path.stem, relation=relation,
        copy=size <= max_copy_bytes, meta={"path": str(path)},
    )
