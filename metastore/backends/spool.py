"""The spool: writes a client keeps on disk while its metastore server is away.

One file per process and server (`HOST-PID.START-RANDOM.jsonl`, START the process's
start time in whole seconds: a pid alone is reused) in the spool folder: METASTORE_SPOOL,
else `spool/` in the user's cache folder (`resources.user_cache_dir`). It is JSON Lines
and only ever appended to:

- an entry, written and fsynced before the write's call returns: `{"key", "url",
  "route", "method", "path", "body", "time"}`, the request exactly as it would have
  been sent, with its idempotency key;
- a marker, once the entry was delivered (`{"sent": KEY}`) or the server refused it for
  good (`{"refused": KEY, "error": TEXT}`).

An entry without a marker is pending. Delivering sends pending entries in the order they
were written, each with its own key, so an entry sent twice (a marker lost in a crash,
two processes delivering at once) is still applied once. A file with nothing pending is
deleted; one with lines that are not entries is renamed `….jsonl.corrupt` and kept for
a person to read. `deliver` reports what it sent, what the server refused, what is
still pending and which lines it could not read.

A file whose process is gone (`orphaned`: same host, and no process with that pid and
start time) is an orphan: any client of its server may deliver it (the next `open()`
of that server, or its next write after an outage), not only `metastore sync`. The
lock `deliver` takes makes sure one process at a time sends a file.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from metastore.resources import user_cache_dir

SPOOL_ENV = "METASTORE_SPOOL"
SUFFIX = ".jsonl"
CORRUPT = ".corrupt"


def spool_dir(path: str | os.PathLike | None = None) -> Path:
    """Where spool files live: `path`, else METASTORE_SPOOL, else the user's cache folder."""
    if path is None:
        path = os.environ.get(SPOOL_ENV) or None
    if path is None:
        cache = user_cache_dir()
        path = cache / "spool" if cache is not None else (
            Path(tempfile.gettempdir()) / f"metastore-spool-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
        )
    return Path(path).expanduser()


@dataclass(frozen=True)
class Entry:
    """One kept write: the request as it would have been sent."""

    key: str
    url: str
    route: str
    method: str
    path: str
    body: str | None
    time: str

    @classmethod
    def parse(cls, data: dict) -> Entry:
        names = cls.__dataclass_fields__
        if not isinstance(data, dict) or set(data) != set(names):
            raise ValueError("not a spool entry")
        if not all(isinstance(data[n], str) for n in names if n != "body"):
            raise ValueError("not a spool entry")
        if data["body"] is not None and not isinstance(data["body"], str):
            raise ValueError("not a spool entry")
        return cls(**data)

    def describe(self) -> str:
        return f"{self.method} {self.path} ({self.route}, kept {self.time[:19].replace('T', ' ')})"


@dataclass
class Contents:
    """A spool file read back: pending entries in order, and lines it could not read."""

    path: Path
    pending: list[Entry] = field(default_factory=list)
    done: int = 0
    problems: list[str] = field(default_factory=list)


def read(path: Path) -> Contents:
    """Pending entries and unreadable lines of one spool file. A torn last line (a
    crash mid-append, before the call returned) is reported like any other."""
    contents = Contents(path)
    entries: dict[str, Entry] = {}
    finished: set[str] = set()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
                if isinstance(data, dict) and len(data) <= 2 and (
                    isinstance(data.get("sent"), str) or isinstance(data.get("refused"), str)
                ):
                    finished.add(data.get("sent") or data["refused"])
                    continue
                entry = Entry.parse(data)
            except ValueError as e:  # JSON, UTF-8 and shape errors alike
                text = raw[:60].decode("utf-8", "replace").strip()
                contents.problems.append(
                    f"line {number} of {path} is not a spool entry ({_reason(e)}): {text!r}"
                )
                continue
            entries.setdefault(entry.key, entry)
    contents.pending = [e for k, e in entries.items() if k not in finished]
    contents.done = len(entries) - len(contents.pending)
    return contents


def _reason(e: ValueError) -> str:
    return "not UTF-8" if isinstance(e, UnicodeDecodeError) else str(e).split(":")[0]


class SpoolFile:
    """This process's spool file; created on the first entry. Appends and deliveries
    take an exclusive advisory lock on the file (`flock`, where it exists), so a
    `metastore sync` in another process never removes a file under a new entry."""

    def __init__(self, directory: Path):
        self.directory = directory
        started = _started(os.getpid())
        # without a start time the name is PID alone: never an orphan while that pid lives
        owner = f"{os.getpid()}.{started}" if started is not None and started >= 0 else str(os.getpid())
        self.path = directory / f"{socket.gethostname()}-{owner}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self.lock = threading.RLock()  # this process's threads, one at a time

    def append(self, entry: Entry) -> None:
        """Keep an entry: on disk (fsynced) before this returns."""
        line = json.dumps(asdict(entry), separators=(",", ":")).encode() + b"\n"
        with self.lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            while True:
                new = not self.path.exists()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    _lock(fd, wait=True)
                    if os.fstat(fd).st_nlink == 0:  # delivered and removed meanwhile
                        continue
                    os.write(fd, line)
                    os.fsync(fd)
                    break
                finally:
                    os.close(fd)
            if new:
                _fsync_dir(self.directory)


def _lock(fd: int, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the idempotency keys keep a double send safe
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _started(pid: int) -> int | None:
    """When process `pid` started, in whole seconds since the epoch: None when there is
    no such process, -1 when it cannot be told (another user's, on some systems)."""
    import psutil

    try:
        return int(psutil.Process(pid).create_time())
    except psutil.NoSuchProcess:
        return None
    except (psutil.Error, OSError):
        return -1


def orphaned(path: Path) -> bool:
    """The process that wrote this spool file is gone: it was on this host and no
    process has its pid, or the pid is another process's now (another start time).
    A file from another host, or of a name that says no owner, is never an orphan
    (only `metastore sync` sends it)."""
    host, sep, rest = path.name.removesuffix(SUFFIX).rpartition("-")  # rest: RANDOM
    host, sep2, owner = host.rpartition("-")
    if not (sep and sep2) or host != socket.gethostname():
        return False
    pid_text, _, start_text = owner.partition(".")
    if not pid_text.isdigit() or (start_text and not start_text.isdigit()):
        return False
    pid = int(pid_text)
    started = _started(pid)
    if started is None:
        return True
    # a file named before start times were (HOST-PID-RANDOM): a live pid may be its owner
    return started >= 0 and bool(start_text) and abs(started - int(start_text)) > 1


def files(directory: Path) -> list[Path]:
    """The spool files in a folder, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))


# -- delivering ------------------------------------------------------------------------------

#: What sending one entry came to: delivered, refused for good (with the error), or the
#: server is away or refuses the token (stop; the entry stays pending).
Outcome = tuple[Literal["sent", "refused", "stop"], str | None]


@dataclass
class Delivery:
    """What `deliver` did: entries sent and refused, entries still pending (and why),
    and lines it could not read."""

    sent: list[Entry] = field(default_factory=list)
    refused: list[tuple[Entry, str]] = field(default_factory=list)
    pending: list[Entry] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Delivery) -> None:
        for name in ("sent", "refused", "pending", "stopped", "problems"):
            getattr(self, name).extend(getattr(other, name))


def deliver(path: Path, send: Callable[[Entry], Outcome]) -> Delivery:
    """Send a spool file's pending entries in order; stop at the first that cannot be
    sent now. A file with nothing left pending is removed (or kept as `.corrupt` when
    some of its lines could not be read). A file another process is delivering (or
    appending to) at the moment is skipped. Markers are appended without fsync: a lost
    one only means the entry is sent again, and its key has the server answer without
    applying it twice."""
    done = Delivery()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return done
    try:
        if not _lock(fd, wait=False) or os.fstat(fd).st_nlink == 0:
            return done
        contents = read(path)
        done.problems.extend(contents.problems)
        for i, entry in enumerate(contents.pending):
            outcome, detail = send(entry)
            if outcome == "stop":
                done.pending.extend(contents.pending[i:])
                if detail:
                    done.stopped.append(detail)
                return done
            marker = {"sent": entry.key} if outcome == "sent" else {
                "refused": entry.key, "error": detail or "refused"}
            os.write(fd, json.dumps(marker, separators=(",", ":")).encode() + b"\n")
            if outcome == "sent":
                done.sent.append(entry)
            else:
                done.refused.append((entry, detail or "refused"))
        if contents.problems:
            path.rename(path.with_name(path.name + CORRUPT))
        else:
            path.unlink()
    finally:
        os.close(fd)
    return done


def utc_now_text() -> str:
    return datetime.now(UTC).isoformat()
