"""What a run captures without being asked: git, command, system, installed packages.

Each part is cheap, never raises (a missing git or a non-repository folder simply gives
nothing) and can be switched off: `start_run(capture=False)` or `capture={"git", ...}`.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata

PARTS = ("git", "command", "system", "packages")


def selected(capture) -> set[str]:
    if capture is True:
        return set(PARTS)
    if capture is False or capture is None:
        return set()
    chosen = set(capture)
    unknown = chosen - set(PARTS)
    if unknown:
        from metastore.errors import InvalidValue

        raise InvalidValue(f"unknown capture part(s) {sorted(unknown)}; choose from {PARTS}")
    return chosen


def _git(*args: str, cwd: str | None = None, strip: bool = True) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if strip else out.stdout


def git_info(cwd: str | None = None) -> dict:
    """commit, branch, dirty flag and a summary of the uncommitted diff, if in a repo."""
    commit = _git("rev-parse", "HEAD", cwd=cwd)
    if not commit:
        return {}
    # Not stripped: porcelain lines start with a status column that may be a space.
    status = (_git("status", "--porcelain", cwd=cwd, strip=False) or "").rstrip("\n")
    info = {
        "commit": commit,
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd),
        "dirty": bool(status),
        "root": _git("rev-parse", "--show-toplevel", cwd=cwd),
    }
    remote = _git("config", "--get", "remote.origin.url", cwd=cwd)
    if remote:
        info["remote"] = remote
    if status:
        changed = status.splitlines()
        info["changed_files"] = [line[3:] for line in changed[:50]]
        info["diff_stat"] = (_git("diff", "HEAD", "--shortstat", cwd=cwd) or "").strip()
    return info


MAX_PATCH_BYTES = 50 * 2**20
MAX_UNTRACKED = 200


def git_patch(cwd: str | None = None) -> bytes | None:
    """The whole uncommitted change as one patch that `git apply --binary` puts back on
    the commit: tracked files (staged or not) against HEAD, then untracked files (not
    ignored) as new files. None when clean, outside a repository, over 50 MB or over 200
    untracked files."""
    try:
        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)

        top = run("rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return None
        root = top.stdout.decode().strip()
        tracked = subprocess.run(["git", "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"],
                                 cwd=root, capture_output=True, timeout=60)
        if tracked.returncode != 0:
            return None
        parts = [tracked.stdout]
        others = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"],
                                cwd=root, capture_output=True, timeout=60)
        untracked = [p for p in others.stdout.decode(errors="replace").split("\0") if p]
        if len(untracked) > MAX_UNTRACKED:  # a build folder nobody ignored: not the code
            return None
        for path in untracked:
            new = subprocess.run(
                ["git", "diff", "--binary", "--no-color", "--no-index", "--", "/dev/null", path],
                cwd=root, capture_output=True, timeout=60,
            )
            parts.append(new.stdout)  # exit status 1 means "differs", as expected
            if sum(map(len, parts)) > MAX_PATCH_BYTES:
                return None
    except (OSError, subprocess.SubprocessError):
        return None
    patch = b"".join(parts)
    return patch if patch.strip() and len(patch) <= MAX_PATCH_BYTES else None


def command_line() -> str:
    return " ".join([os.path.basename(sys.executable), *sys.argv])


def system_info() -> dict:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = None
    return {
        "user": user,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cwd": os.getcwd(),
    }


def packages_text() -> str:
    """Installed distributions as sorted `name==version` lines: the environment asset.
    The same environment gives the same bytes, so it is stored once."""
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    header = f"# python {platform.python_version()} on {platform.system().lower()}\n"
    return header + "\n".join(seen[k] for k in sorted(seen)) + "\n"
