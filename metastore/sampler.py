"""System metrics of a run: a thread samples a process (and its children) with psutil
and logs `system.*` metric histories, one point per sample.

| metric | what |
|---|---|
| `system.cpu_percent` | CPU use of the process tree since the last sample (100 = one core) |
| `system.rss_mb` | resident memory of the process tree, MiB |
| `system.disk_read_mb`, `system.disk_write_mb` | bytes read/written by the process tree since the start, MiB (where the OS reports them) |
| `system.net_sent_mb`, `system.net_recv_mb` | the host's network traffic since the start, MiB |
| `system.gpu.N.utilization`, `system.gpu.N.memory` | GPU N's utilisation (%) and memory in use (MiB), through NVML (nvidia-ml-py) when it is installed and finds a GPU; nothing otherwise |
| `system.cost` | hours since the start × the rate per hour, when a rate is set |

After a command killed by SIGKILL, `oom_verdict` tells an out-of-memory kill from the
cgroup's `oom_kill` count (`oom_kills`) or a peak near the memory limit (`memory_limit`).

Sampling is on by default (every 10 s) for `start_run` and `metastore run`; the interval
comes from the caller or `METASTORE_SYSTEM_METRICS` (seconds; `0`/`off` switches
sampling off everywhere); the rate from the caller or `METASTORE_COST_PER_HOUR`.
A failed write is skipped: the next sample tries again.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

from metastore.errors import InvalidValue
from metastore.records import MetricPoint

DEFAULT_INTERVAL = 10.0
MiB = 1024 * 1024


def interval_setting(value: float | bool | None = None) -> float | None:
    """Seconds between samples, or None when sampling is off. On by default: `value`
    None or True means every 10 s (or the environment's interval), False off, a number
    that interval; the environment variable METASTORE_SYSTEM_METRICS switches it off for
    everyone with `0` or `off`, or sets the default interval in seconds."""
    env = os.environ.get("METASTORE_SYSTEM_METRICS", "").strip().lower()
    if env in ("0", "off", "false", "no"):
        return None
    if value is False:
        return None
    if value is None or value is True:
        if env and env not in ("on", "true", "yes"):
            try:
                value = float(env)
            except ValueError as e:
                raise InvalidValue(f"METASTORE_SYSTEM_METRICS is seconds or 'off', got {env!r}") from e
        else:
            value = DEFAULT_INTERVAL
    seconds = float(value)
    if not seconds > 0:
        raise InvalidValue(f"the system metrics interval must be positive seconds, got {value!r}")
    return seconds


def cost_rate(value: float | None = None) -> float | None:
    """The cost per hour: `value`, else METASTORE_COST_PER_HOUR, else None."""
    if value is None:
        env = os.environ.get("METASTORE_COST_PER_HOUR", "").strip()
        if not env:
            return None
        try:
            value = float(env)
        except ValueError as e:
            raise InvalidValue(f"METASTORE_COST_PER_HOUR is a number, got {env!r}") from e
    if value < 0:
        raise InvalidValue(f"the cost per hour cannot be negative, got {value!r}")
    return float(value)


#: Where the cgroup file systems are mounted (v2 unified, or v1 one per controller).
CGROUP_ROOT = "/sys/fs/cgroup"
#: Peak memory at or above this share of the limit makes a SIGKILL an out-of-memory kill.
NEAR_LIMIT = 0.9


def _cgroup_files(name_v2: str, name_v1: str) -> list[str]:
    """Candidate paths of a memory cgroup file for this process: its own cgroup first
    (from /proc/self/cgroup), then the mount's root (a container's own cgroup)."""
    own_v2 = own_v1 = ""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    own_v2 = path
                elif "memory" in controllers.split(","):
                    own_v1 = path
    except (OSError, ValueError):
        pass
    paths = [f"{CGROUP_ROOT}{own_v2}/{name_v2}", f"{CGROUP_ROOT}/{name_v2}",
             f"{CGROUP_ROOT}/memory{own_v1}/{name_v1}", f"{CGROUP_ROOT}/memory/{name_v1}"]
    return list(dict.fromkeys(p.replace("//", "/") for p in paths))


def oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed in this process's
    memory cgroup (`oom_kill` of cgroup v2 memory.events or v1 memory.oom_control);
    None where no cgroup says."""
    for path in _cgroup_files("memory.events", "memory.oom_control"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


def memory_limit() -> int | None:
    """Bytes this process's memory cgroup may use (v2 memory.max, v1
    memory.limit_in_bytes), else the machine's memory; None when unknown."""
    for path in _cgroup_files("memory.max", "memory.limit_in_bytes"):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**62:  # v1 writes "no limit" as a huge number
            return int(text)
        if text == "max" or text.isdigit():
            break
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # noqa: BLE001 - unknown is an answer
        return None


def oom_verdict(exit_code: int, kills_before: int | None, kills_after: int | None,
                peak_rss: int, limit: int | None) -> str | None:
    """Why a command killed by SIGKILL died, when memory explains it (else None): the
    cgroup's out-of-memory kills went up, or its memory peaked near the limit."""
    if exit_code != -9:
        return None
    if kills_before is not None and kills_after is not None and kills_after > kills_before:
        return (f"killed by the kernel's out-of-memory killer (the cgroup's oom_kill count went "
                f"from {kills_before} to {kills_after}); peak memory {peak_rss / MiB:.0f} MiB")
    if limit and peak_rss >= NEAR_LIMIT * limit:
        return (f"killed by SIGKILL with memory near the limit (peak {peak_rss / MiB:.0f} MiB "
                f"of {limit / MiB:.0f} MiB): probably out of memory")
    return None


class Gpus:
    """The GPUs NVML sees (nvidia-ml-py, imported as `pynvml`): utilisation and memory
    of each, read for every sample. Where NVML is absent (the package not installed, no
    NVIDIA driver, no GPU) there are none, silently: a CPU machine is not an error."""

    def __init__(self, nvml=None):
        self.nvml = None
        self.handles: list = []
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i)
                            for i in range(nvml.nvmlDeviceGetCount())]
            self.nvml = nvml
        except Exception:  # noqa: BLE001 - ImportError, NVMLError_LibraryNotFound/DriverNotLoaded …
            self.handles = []

    def read(self) -> dict[str, float]:
        """`system.gpu.N.utilization` (% of time a kernel ran since the last read) and
        `system.gpu.N.memory` (MiB in use) per GPU N; a GPU that fails a read is left
        out of that sample."""
        values: dict[str, float] = {}
        for i, handle in enumerate(self.handles):
            try:
                rates = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # noqa: BLE001,S112 - NVMLError: lost, resetting, not supported
                continue
            values[f"system.gpu.{i}.utilization"] = float(rates.gpu)
            values[f"system.gpu.{i}.memory"] = memory.used / MiB
        return values


_gpus: Gpus | None = None


def gpus() -> Gpus:
    """NVML, initialised once per process (every run's sampler shares it)."""
    global _gpus
    if _gpus is None:
        _gpus = Gpus()
    return _gpus


def _descendants(pid: int) -> list[int] | None:
    """The pids of `pid`'s descendants from Linux's /proc/PID/task/TID/children: a few
    small reads, where psutil's `children()` reads the stat file of every process on
    the machine (tens of milliseconds on a busy one, at each run's start and end).
    None where the kernel does not keep those files."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            if parent == pid:
                return None
            continue  # a child that has ended meanwhile
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                if parent == pid and not os.path.exists(f"/proc/{pid}/task/{task}"):
                    continue  # a thread that has ended meanwhile
                if parent == pid:
                    return None
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


class Sampler:
    """Samples process `pid` (default: this one) and its children every `interval`
    seconds into run `run_id`; `stop()` takes a last sample and ends the thread."""

    def __init__(self, backend, run_id: str, *, interval: float, pid: int | None = None,
                 cost_per_hour: float | None = None, sink=None):
        """`sink` takes each sample's points (a recording run buffers them with its own
        values); without it they are written to `backend` at once."""
        import psutil

        self.backend = backend
        self.sink = sink
        self.run_id = run_id
        self.interval = interval
        self.cost_per_hour = cost_per_hour
        self.process = psutil.Process(pid or os.getpid())
        self._psutil = psutil
        self._gpus = gpus()
        self._stop = threading.Event()
        self._step = 0
        self._t0 = time.monotonic()
        self._net0 = self._net()
        self._io0: dict[int, tuple[int, int]] = {}
        self._cpu_last: dict[int, float] = {}
        self._wall_last = time.monotonic()
        #: The highest resident memory of the process tree a sample saw, bytes.
        self.peak_rss = 0
        self._thread = threading.Thread(target=self._loop, name=f"metastore-sampler-{run_id}", daemon=True)

    def start(self) -> Sampler:
        self._cpu_times()  # baseline
        self._thread.start()
        return self

    def stop(self, final_sample: bool = True) -> None:
        """End sampling; with `final_sample`, one last point (not for a process that
        has exited: it would read as zero)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=30)
        if final_sample:
            self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _tree(self) -> Sequence:
        kids = _descendants(self.process.pid)
        try:
            if kids is None:  # psutil reads every process on the machine to find them
                return [self.process, *self.process.children(recursive=True)]
            return [self.process, *self._processes(kids)]
        except self._psutil.Error:
            return []

    def _processes(self, pids: list[int]) -> list:
        out = []
        for pid in pids:
            try:
                out.append(self._psutil.Process(pid))
            except self._psutil.Error:  # ended meanwhile
                continue
        return out

    def _cpu_times(self, tree: Sequence | None = None) -> float:
        total = 0.0
        for p in self._tree() if tree is None else tree:
            try:
                t = p.cpu_times()
                self._cpu_last[p.pid] = t.user + t.system
            except self._psutil.Error:
                continue
        for value in self._cpu_last.values():
            total += value
        return total

    def _net(self) -> tuple[int, int] | None:
        try:
            n = self._psutil.net_io_counters()
        except (OSError, RuntimeError):
            return None
        return (n.bytes_sent, n.bytes_recv) if n else None

    def _sample(self) -> None:
        now = time.monotonic()
        before = sum(self._cpu_last.values())
        tree = self._tree()
        cpu = self._cpu_times(tree)
        elapsed = max(now - self._wall_last, 1e-9)
        self._wall_last = now
        values: dict[str, float] = {"system.cpu_percent": max(0.0, 100.0 * (cpu - before) / elapsed)}
        rss = read = write = 0
        io_known = False
        for p in tree:
            try:
                rss += p.memory_info().rss
            except self._psutil.Error:
                continue
            try:
                io = p.io_counters()
            except (self._psutil.Error, AttributeError):
                continue
            io_known = True
            r0, w0 = self._io0.setdefault(p.pid, (io.read_bytes, io.write_bytes))
            read += io.read_bytes - r0
            write += io.write_bytes - w0
        self.peak_rss = max(self.peak_rss, rss)
        values["system.rss_mb"] = rss / MiB
        if io_known:
            values["system.disk_read_mb"] = read / MiB
            values["system.disk_write_mb"] = write / MiB
        net = self._net()
        if net is not None and self._net0 is not None:
            values["system.net_sent_mb"] = (net[0] - self._net0[0]) / MiB
            values["system.net_recv_mb"] = (net[1] - self._net0[1]) / MiB
        values.update(self._gpus.read())
        if self.cost_per_hour is not None:
            values["system.cost"] = self.cost_per_hour * (now - self._t0) / 3600
        points = [MetricPoint(key=k, value=v, step=self._step) for k, v in values.items()]
        self._step += 1
        try:
            if self.sink is not None:
                self.sink(points)
            else:
                self.backend.log_metrics(self.run_id, points)
        except Exception:  # noqa: BLE001 - a missed sample is harmless; the next one retries
            pass
