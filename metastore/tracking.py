"""The recording API: a run as a context manager, and its log_* calls.

    with store.start_run(experiment="diabetes") as run:
        run.log_params({"algorithm": "linear"})
        run.log_metric("rmse", 53.1)

Leaving the block marks the run finished; an exception marks it failed and re-raises;
KeyboardInterrupt marks it killed. A process killed outright leaves the run "running"
with a heartbeat that stops; the store then reports it as crashed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from metastore import context, sampler
from metastore.errors import InvalidValue
from metastore.handles import RunHandle, VersionHandle
from metastore.records import MetricPoint, RunRecord

if TYPE_CHECKING:
    from metastore.backends.base import Backend

ENVIRONMENT_ASSET = "python"
GIT_DIFF_ASSET = "git-diff"  # metastore.reproduce looks for it
DEFAULT_EXPERIMENT = "default"
#: How often a running run says it is alive; a stale heartbeat means a crashed run.
HEARTBEAT_SECONDS = 15.0


class ActiveRun(RunHandle):
    """A run being recorded. Every log_* call is written at once (one transaction), so
    whatever was logged before a crash is kept."""

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
    ) -> ActiveRun:
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
        if "git" in parts:
            git = context.git_info()
            if git:
                record.git_commit, record.git_branch = git["commit"], git["branch"]
                record.git_dirty = git["dirty"]
                ctx["git"] = git
        record.context = ctx or None
        record.parent_id = parent_id
        run = cls(store, store.create_run(record))
        run._t0 = (time.perf_counter(), time.process_time())
        run._ended = False
        if ctx.get("git", {}).get("dirty"):
            # the whole uncommitted change, so the code can be rebuilt (reproduce)
            patch = context.git_patch()
            if patch:
                run.use_asset(patch, kind="code", name=GIT_DIFF_ASSET, role="uncommitted changes",
                              media_type="text/x-diff",
                              meta={"format": "git-diff", "commit": ctx["git"]["commit"],
                                    "apply": "git apply --binary"})
        if "packages" in parts:
            run.log_asset(
                context.packages_text().encode(),
                kind="environment",
                name=ENVIRONMENT_ASSET,
                relation="used",
                media_type="text/plain",
                meta={"format": "pip-freeze"},
            )
        run._start_heartbeat()
        run._cost_per_hour = rate
        run._sampler = None
        if interval is not None:
            run._sampler = sampler.Sampler(
                store, run.row.id, interval=interval, cost_per_hour=run._cost_per_hour
            ).start()
        return run

    # -- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed")
        else:
            self.note(f"{exc_type.__name__}: {exc}", kind="event", author="metastore")
            self.end("failed")
        return False

    def end(self, status: str = "finished") -> None:
        """Mark the run ended (finished, failed or killed) and record its wall and CPU
        time as the system metrics `system.wall_time` and `system.cpu_time` (seconds)."""
        if self._ended:
            return
        self._ended = True
        self._stop.set()
        if getattr(self, "_sampler", None) is not None:
            self._sampler.stop()
        wall = time.perf_counter() - self._t0[0]
        cpu = time.process_time() - self._t0[1]
        points = [MetricPoint(key="system.wall_time", value=wall, step=0),
                  MetricPoint(key="system.cpu_time", value=cpu, step=0)]
        if getattr(self, "_cost_per_hour", None) is not None:
            points.append(MetricPoint.build(key="system.cost", value=self._cost_per_hour * wall / 3600))
        self.store.log_metrics(self.row.id, points)
        self.store.set_run_status(self.row.id, status)
        self.refresh()

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()

        def beat():
            while not self._stop.wait(HEARTBEAT_SECONDS):
                try:
                    self.store.heartbeat(self.row.id)
                except Exception:  # a missed beat is harmless; the next one retries
                    pass

        threading.Thread(target=beat, name=f"metastore-heartbeat-{self.row.id}", daemon=True).start()

    # -- logging ------------------------------------------------------------------------
    def log_param(self, key: str, value: Any) -> None:
        self.store.log_params(self.row.id, {key: value})

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Log params; their Python types are kept (numbers, bools, text, JSON)."""
        self.store.log_params(self.row.id, values)

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: datetime | None = None
    ) -> None:
        """Log one point of a metric. Without `step` it follows the metric's last step."""
        point = MetricPoint.build(key=key, value=value, step=step, timestamp=timestamp)
        self.store.log_metrics(self.row.id, [point])

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        self.store.log_metrics(
            self.row.id, [MetricPoint.build(key=k, value=v, step=step) for k, v in values.items()]
        )

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
        )
        return VersionHandle(self.store, asset, version, role)

