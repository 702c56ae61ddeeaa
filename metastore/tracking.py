"""The recording API: a run as a context manager, and its log_* calls.

    with store.start_run(experiment="diabetes") as run:
        run.log_params({"algorithm": "linear"})
        run.log_metric("rmse", 53.1)

Leaving the block marks the run finished; an exception marks it failed and re-raises;
KeyboardInterrupt marks it killed. SIGTERM and SIGINT are recorded as events on the run
and then do what they did before (`metastore.run_signals`). A process killed outright leaves the run "running"
with a heartbeat that stops; the store then reports it as crashed.

Params and metrics are buffered: `log_param(s)`, `log_metric(s)` and `log_series` check
their values at once (a bad key or value raises at the call) and return; a background
flusher writes what is pending every `flush_interval` seconds (default 1.0, or the
environment variable METASTORE_FLUSH_INTERVAL) in one transaction (`Backend.log_batch`:
one request through a server), and so do `flush()`, the end of the run (whose last
write carries the run's status too), reading the run's own params or metrics, and the exit of
the interpreter. A process killed outright loses at most the last `flush_interval` of
values. `flush_interval=0` writes every call at once. An error a buffered write meets
(the database gone, a param another writer set differently) is raised by the run's next
call, `flush()` or the end of the run: it is never dropped silently. The values of a
write that failed are not written again here: the backends retry (the HTTP backend with
an idempotency key, so a retried write applies once, and through a long outage it keeps
the run's writes in its spool, which the flusher delivers when the server is back).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import TYPE_CHECKING, Any, NamedTuple

from metastore import context, params, run_signals, sampler, settings
from metastore.errors import Conflict, InvalidValue, MetastoreError, NotFound, StoreUnavailable
from metastore.handles import RunHandle, VersionHandle
from metastore.models import Metric, utcnow
from metastore.records import (
    MAX_STEP,
    RunRecord,
    validate_key,
    validate_metric_value,
    validate_step,
)

if TYPE_CHECKING:
    from metastore.backends.base import Backend

ENVIRONMENT_ASSET = "python"
GIT_DIFF_ASSET = "git-diff"  # metastore.reproduce looks for it
DEFAULT_EXPERIMENT = "default"
#: How often a running run says it is alive; a stale heartbeat means a crashed run.
HEARTBEAT_SECONDS = 15.0
#: Seconds between background writes of buffered params and metrics: what a process
#: killed outright can lose. 0 writes every call at once.
FLUSH_INTERVAL = 1.0
#: Pending points that wake the flusher early; ten times as many make the caller wait.
MAX_PENDING = 10_000

_live: weakref.WeakSet[ActiveRun] = weakref.WeakSet()


class _Point(NamedTuple):
    """A buffered, already checked metric point: a MetricPoint by its attributes
    (`Backend.log_metrics` reads them; a server request validates them as MetricPoint),
    a tenth of the cost of building one, which a million-point series feels."""

    key: str
    value: float
    step: int | None
    timestamp: datetime


_now: tuple[float, datetime] = (0.0, utcnow())


def _clock() -> datetime:
    """utcnow() to the millisecond, the precision MLflow keeps: a training loop logging
    thousands of points a second shares one datetime per millisecond, built once (and
    written once: `SQLBackend` converts a time for the driver once per run of points)."""
    global _now
    t = time.time()
    if t - _now[0] >= 0.001:
        _now = (t, utcnow())
    return _now[1]


def _checked_values(key: str, values: Iterable[float]) -> list[float]:
    """A series' values as floats, each checked like `log_metric`'s; a numpy array of
    numbers is checked in one pass."""
    import numpy as np

    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iuf":
        array = values.astype(np.float64, copy=False)
        if np.isfinite(array).all():
            return array.tolist()
    return [validate_metric_value(key, v) for v in values]


@atexit.register
def _flush_at_exit() -> None:
    """A script that never ends its run still keeps what it logged."""
    for run in list(_live):
        try:
            run.flush()
        except Exception:  # noqa: S110 - nothing is left to tell at interpreter exit
            pass


#: A file `metastore reproduce` names for the command it re-runs: each run started in
#: that command appends its id, so the reproduction can be told among them.
STARTED_RUNS_ENV = "METASTORE_STARTED_RUNS"


def _announce(run_id: str) -> None:
    target = os.environ.get(STARTED_RUNS_ENV)
    if target:
        try:
            with open(target, "a", encoding="utf-8") as f:
                f.write(run_id + "\n")
        except OSError:  # the reproduction then says the command started no run
            pass


def _flush_interval(value: float | None) -> float:
    if value is None:
        value = float(os.environ.get("METASTORE_FLUSH_INTERVAL", FLUSH_INTERVAL))
    if value < 0:
        raise InvalidValue(f"flush_interval must be 0 or more seconds, got {value}")
    return float(value)


class ActiveRun(RunHandle):
    """A run being recorded. Params and metrics are buffered and written by a
    background flusher (see the module's docstring); everything else at once."""

    @classmethod
    def start(
        cls,
        store: Backend,
        experiment: str | None = None,
        name: str | None = None,
        *,
        parent=None,
        tags: Mapping[str, str] | None = None,
        capture: bool | Iterable[str] = True,
        command: str | None = None,
        system_metrics: float | bool | None = None,
        cost_per_hour: float | None = None,
        flush_interval: float | None = None,
        invocation: Mapping[str, Any] | None = None,
    ) -> ActiveRun:
        """Create the run and capture its context. `invocation` is how a wrapper started
        the command it records (`metastore run`: its argv, metric pattern …); otherwise
        this process's own (sys.argv) is kept when "command" is captured."""
        flush_every = _flush_interval(flush_interval)
        parts = context.selected(capture)
        interval = sampler.interval_setting(system_metrics)  # bad settings fail before the run
        rate = sampler.cost_rate(cost_per_hour)
        experiment = experiment or os.environ.get("METASTORE_EXPERIMENT") or DEFAULT_EXPERIMENT
        parent_id = None
        if parent is not None:
            parent_id = parent.id if isinstance(parent, RunHandle) else store.resolve_run(parent).id
        record = RunRecord(experiment=experiment, name=name, status="running", tags=tags or {})
        ctx: dict[str, Any] = {}
        if "system" in parts:
            system = context.system_info()
            record.user, record.host = system["user"], system["host"]
            ctx["system"] = system
        if command is not None:  # the command a wrapper runs (`metastore run`)
            record.command = command
        elif "command" in parts:
            record.command = context.command_line()
        if invocation is not None or "command" in parts:
            # what `metastore reproduce` re-runs, and the folder input paths are relative to
            ctx["invocation"] = ({"cwd": os.getcwd(), **invocation} if invocation is not None
                                 else context.invocation())
        if "git" in parts:
            git = context.git_info()
            if git:
                record.git_commit, record.git_branch = git["commit"], git["branch"]
                record.git_dirty = git["dirty"]
                ctx["git"] = git
            else:
                ctx["no_commit"] = context.why_no_commit()
        record.context = ctx or None
        record.parent_id = parent_id
        run = cls(store, store.create_run(record), flush_interval=flush_every)
        run._root = ctx.get("git", {}).get("root")
        _announce(run.row.id)
        if ctx.get("git", {}).get("dirty"):
            # the whole uncommitted change, so the code can be rebuilt (reproduce)
            patch = context.git_patch()
            if patch:
                run._unless_away("the uncommitted change (git-diff)", lambda: run.use_asset(
                    patch, kind="code", name=GIT_DIFF_ASSET, role="uncommitted changes",
                    media_type="text/x-diff",
                    meta={"format": "git-diff", "commit": ctx["git"]["commit"],
                          "apply": "git apply --binary"}))
        if "packages" in parts:
            run._unless_away("the environment (python packages)",
                             lambda: run.log_environment(context.packages_text()))
        if rate is None:  # the store's rate for this resource or host, if it keeps one
            try:
                rate = settings.cost_rate(store, record.host or socket.gethostname())
            except (NotFound, StoreUnavailable):  # an older server keeps no rates; or it
                rate = None  # is away (the run waits in the client's spool)
        run._cost_per_hour = rate
        run._unhook = run_signals.install(run)
        if interval is not None:
            run._sampler = sampler.Sampler(
                store, run.row.id, interval=interval, cost_per_hour=run._cost_per_hour,
                sink=run._take_samples,
            ).start()
        return run

    def _unless_away(self, what: str, write) -> None:
        """Content `start` records beside the run: a server away past its retry time
        (the run itself waits in the client's spool) loses it, said in an event note,
        rather than the training script."""
        try:
            write()
        except StoreUnavailable as e:
            self.note(f"{what} not recorded: {e}", kind="event", author="metastore")

    def log_environment(self, packages: str) -> None:
        """The packages the run's code ran with (`context.packages_text`'s lines), as the
        environment asset it used: what `reproduce` rebuilds a virtual environment from."""
        self.log_asset(packages.encode(), kind="environment", name=ENVIRONMENT_ASSET, relation="used",
                       media_type="text/plain", meta={"format": "pip-freeze"})

    def __init__(self, store: Backend, row, *, flush_interval: float | None = None):
        """Record into an existing run (`start` creates one): buffers, and the flusher
        thread that writes them and beats the heartbeat until the run ends."""
        super().__init__(store, row)
        self._t0 = (time.perf_counter(), time.process_time())
        self._ended = False
        self._interval = _flush_interval(flush_interval)
        self._lock = threading.Lock()  # guards the buffers below
        self._writing = threading.Lock()  # one flush at a time, in order
        self._points: list[_Point] = []
        self._params: dict[str, Any] = {}
        self._seen_params: dict[str, params.Encoded] = {}
        self._keys: set[str] = set()
        self._error: BaseException | None = None
        self._sampler = None
        self._cost_per_hour: float | None = None
        self._cwd = os.getcwd()  # input paths are kept relative to it
        self._root: str | None = None  # the git repository's root, when in one
        self._unhook = lambda: None  # puts back the signal handlers `start` replaced
        self._start_flusher()
        _live.add(self)

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("finished")
            return False
        # The block's own exception propagates; a write error met now is kept as an event.
        status = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        if status == "failed":
            self.note(f"{exc_type.__name__}: {exc}", kind="event", author="metastore")
        try:
            self.end(status)
        except Exception as e:
            self.note(f"values not written: {type(e).__name__}: {e}", kind="event",
                      author="metastore")
        return False

    @property
    def ended(self) -> bool:
        return self._ended

    def event(self, kind: str, detail: str) -> None:
        """Record what happened to the run (a signal, an out-of-memory kill …): a note of
        kind "event" with `detail`, and the tag `event` = `kind`, so
        `runs where event = "sigterm"` finds it."""
        self.note(detail, kind="event", author="metastore")
        self.set_tags({"event": kind})

    def end(self, status: str = "finished") -> None:
        """Write what is buffered, mark the run ended (finished, failed or killed) and
        record its wall and CPU time as the system metrics `system.wall_time` and
        `system.cpu_time` (seconds). A write error met by the last flush, or earlier and
        not yet reported, is raised after the run is marked ended."""
        if self._ended:
            return
        self._ended = True
        self._unhook()
        self._stop.set()
        self._wake.set()
        if self._sampler is not None:
            self._sampler.stop()
        wall = time.perf_counter() - self._t0[0]
        cpu = time.process_time() - self._t0[1]
        now = utcnow()
        with self._lock:
            self._points.append(_Point("system.wall_time", wall, 0, now))
            self._points.append(_Point("system.cpu_time", cpu, 0, now))
            if self._cost_per_hour is not None:
                self._points.append(_Point(
                    "system.cost", validate_metric_value("system.cost",
                                                         self._cost_per_hour * wall / 3600),
                    None, now))
        error = None
        with self._writing:
            ended = self._write(end=(status, now))
        try:
            self._raise_pending()
        except Exception as e:
            error = e
        if not ended:  # the last write failed: the run is marked ended all the same
            self.store.set_run_status(self.row.id, status, now)
        self.row.status, self.row.ended = status, now
        _live.discard(self)
        if error is not None:
            raise error

    def flush(self) -> None:
        """Write the buffered params and metrics now; raise the first error met by this
        write or by an earlier background one."""
        with self._writing:
            self._write()
        self._raise_pending()

    def _raise_pending(self) -> None:
        error = self._error
        if error is not None:
            self._error = None
            raise error

    def _write(self, end: tuple[str, datetime] | None = None) -> bool:
        """Write both buffers and, with `end` (status, time), the run's end, as one
        `log_batch`: one transaction, one request through a server (the caller holds
        `_writing`). An error is kept in `_error` for the run's next call. True when
        the end (if any) was written."""
        with self._lock:
            pending_params, self._params = self._params, {}
            points, self._points = self._points, []
        status, ended = end if end is not None else (None, None)
        if not (pending_params or points or end):
            return True
        try:
            self.store.log_batch(self.row.id, pending_params, points, status, ended)
            return True
        except MetastoreError as e:  # refused: nothing of the batch was written
            self._keep(e)
            if not pending_params:
                return False
            with self._lock:  # not written: the store, not this run, knows the value
                for key in pending_params:
                    self._seen_params.pop(key, None)
        except Exception as e:
            self._keep(e)
            return False
        if not (points or end):
            return True
        # a param another writer set differently refuses the whole batch: the rest
        # is written without the params
        try:
            self.store.log_batch(self.row.id, None, points, status, ended)
            return True
        except Exception as e:
            self._keep(e)
            return False

    def _keep(self, error: BaseException) -> None:
        """Remember a write error for the run's next call. The values of that write are
        not retried here: the backends already retry what cannot have been written, and
        repeating a write that may have arrived would record its points twice."""
        if self._error is None:
            self._error = error

    def _start_flusher(self) -> None:
        """One thread per run: writes the buffers every `flush_interval` seconds (or
        when woken by a full buffer) and beats the heartbeat, until the run ends."""
        self._stop = threading.Event()
        self._wake = threading.Event()
        wait = min(self._interval or HEARTBEAT_SECONDS, HEARTBEAT_SECONDS)

        def loop():
            last_beat = time.monotonic()
            while True:
                self._wake.wait(wait)
                self._wake.clear()
                with self._writing:
                    if self._stop.is_set():
                        return
                    self._write()
                try:  # writes a server kept waiting in the spool go as soon as it is back
                    self.store.deliver_spooled()
                except Exception:  # noqa: S110 - delivered by a later write or `metastore sync`
                    pass
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = time.monotonic()
                    try:
                        self.store.heartbeat(self.row.id)
                    except Exception:  # noqa: S110 - a missed beat is harmless; the next retries
                        pass

        threading.Thread(target=loop, name=f"metastore-run-{self.row.id}", daemon=True).start()

    def _pending(self, count: int) -> None:
        """After buffering: write now when unbuffered, wake or wait for the flusher when
        much is pending."""
        if not self._interval:
            self.flush()
        elif count >= MAX_PENDING:
            if count >= 10 * MAX_PENDING:
                self.flush()
            elif not self._wake.is_set():
                self._wake.set()

    def _take_samples(self, points) -> None:
        """The sampler's points (already checked), buffered with the run's own values:
        written by the next flush, the last one by the end of the run."""
        now = utcnow()
        with self._lock:
            self._points.extend(_Point(p.key, p.value, p.step, p.timestamp or now) for p in points)
            count = len(self._points)
        self._pending(count)

    # -- reading back what this run logged: pending values are written first -------------
    @property
    def params(self) -> dict[str, Any]:
        self.flush()
        return super().params

    @property
    def metrics(self) -> dict[str, float]:
        self.flush()
        return super().metrics

    def metric_summary(self, key: str | None = None):
        self.flush()
        return super().metric_summary(key)

    def metric_history(self, key: str) -> list[Metric]:
        self.flush()
        return super().metric_history(key)

    def metric_series(self, key: str, max_points: int | None = None):
        self.flush()
        return super().metric_series(key, max_points)

    # -- logging ------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Log params; their Python types are kept (numbers, bools, text, JSON). A param
        does not change within a run: logging it again with another value raises
        Conflict. All or nothing: a bad key refuses the whole call."""
        if self._error is not None:
            self._raise_pending()
        encoded = params.encode_all(values, validate_key)
        with self._lock:
            seen = self._seen_params
            for key, (ptype, _num, text) in encoded.items():
                old = seen.get(key)
                if old is not None and (old[0], old[2]) != (ptype, text):
                    raise Conflict(
                        f"param {key!r} is already {params.decode(*old)!r} on this run;"
                        " params do not change within a run",
                        hint="log the changed value as a new run, or as a metric",
                    )
            seen.update(encoded)
            self._params.update(values)
        self._pending(0)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: datetime | None = None
    ) -> None:
        """Log one point of a metric. Without `step` it follows the metric's last step."""
        if self._error is not None:
            self._raise_pending()
        if key not in self._keys:
            validate_key(key, "metric")
            self._keys.add(key)
        # the common case (a finite float, an int step) costs two type tests
        if type(value) is not float or value - value != 0.0:  # inf - inf is nan
            value = validate_metric_value(key, value)
        if step is not None and (type(step) is not int or not -MAX_STEP <= step <= MAX_STEP):
            step = validate_step(step)
        point = _Point(key, value, step, timestamp or _clock())
        with self._lock:
            self._points.append(point)
            count = len(self._points)
        if count >= MAX_PENDING or not self._interval:
            self._pending(count)

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        """Log one point of each metric, at the same step."""
        if self._error is not None:
            self._raise_pending()
        now = utcnow()
        points = []
        for key, value in values.items():
            if key not in self._keys:
                validate_key(key, "metric")
                self._keys.add(key)
            points.append(_Point(key, validate_metric_value(key, value), validate_step(step), now))
        with self._lock:
            self._points.extend(points)
            count = len(self._points)
        self._pending(count)

    def log_series(
        self,
        key: str,
        values: Iterable[float],
        steps: Iterable[int] | None = None,
        timestamps: Iterable[datetime] | None = None,
    ) -> None:
        """Log many points of one metric at once: a whole history (lists, tuples or
        numpy arrays). Without `steps` the values follow the metric's last step."""
        if self._error is not None:
            self._raise_pending()
        validate_key(key, "metric")
        self._keys.add(key)
        values = _checked_values(key, values)
        n = len(values)
        steps = [None] * n if steps is None else [validate_step(s) for s in steps]
        times = [utcnow()] * n if timestamps is None else list(timestamps)
        if not len(steps) == len(times) == n:
            raise InvalidValue(
                f"metric {key!r}: {n} values, {len(steps)} steps and"
                f" {len(times)} timestamps; give as many of each"
            )
        points = list(map(_Point, repeat(key, n), values, steps, times))
        with self._lock:
            self._points.extend(points)
            count = len(self._points)
        self._pending(count)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.store.set_tags("run", self.row.id, tags)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def note(self, text: str, *, kind: str = "note", author: str | None = None) -> None:
        """Attach qualitative context: what you saw, what to try next."""
        if author is None and kind == "note":
            author = self.row.user
        self.store.add_note(self.row.id, text, kind=kind, author=author)

    def use_asset(
        self,
        source,
        kind: str = "dataset",
        name: str | None = None,
        *,
        role: str | None = None,
        meta: Mapping[str, Any] | None = None,
        media_type: str | None = None,
        copy: bool = True,
    ) -> VersionHandle:
        """Record an input: a file or directory path, bytes, or an existing version."""
        return self.log_asset(
            source, kind, name, role=role, meta=meta, media_type=media_type, copy=copy,
            relation="used",
        )

    def log_asset(
        self,
        source,
        kind: str = "other",
        name: str | None = None,
        *,
        role: str | None = None,
        meta: Mapping[str, Any] | None = None,
        media_type: str | None = None,
        derived_from: Sequence[VersionHandle | str] = (),
        copy: bool = True,
        relation: str = "produced",
    ) -> VersionHandle:
        """Record an output: a file or directory path, bytes, or an existing version.
        The same content is the same version; new content gets the next version number.
        `derived_from` adds derivation edges from upstream versions (a fine-tuned
        model's base model, a cleaned dataset's raw one)."""
        if isinstance(source, VersionHandle):
            self.store.link_run_asset(self.row.id, source.id, relation, role)
            return source
        path = None if isinstance(source, bytes | bytearray) else self._link_path(source)
        if name is None:
            if isinstance(source, bytes | bytearray):
                raise InvalidValue("name= is required when logging bytes")
            name = os.path.splitext(os.path.basename(os.fspath(source).rstrip("/")))[0]
        upstream = [d.id if isinstance(d, VersionHandle) else d for d in derived_from]
        asset, version = self.store.put_asset(
            kind,
            name,
            source,
            meta=meta,
            media_type=media_type,
            run_id=self.row.id,
            relation=relation,
            role=role,
            derived_from=upstream,
            copy=copy,
            path=path,
        )
        return VersionHandle(self.store, asset, version, role)

    def _link_path(self, source) -> str:
        """Where the run read or wrote a file, as `metastore reproduce` puts it back:
        relative to the run's working folder when inside it or its git repository
        ("data/train.csv", "../data/train.csv"), else absolute."""
        full = os.path.abspath(os.fspath(source))
        rel = os.path.relpath(full, self._cwd)
        inside = not (rel == os.pardir or rel.startswith(os.pardir + os.sep))
        if not inside and self._root:
            root = os.path.abspath(self._root)
            inside = os.path.commonpath([full, root]) == root
        return (rel if inside else full).replace(os.sep, "/")

