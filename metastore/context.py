"""What a run captures without being asked: git, command, system, installed packages.

Each part is cheap, never raises (a missing git or a non-repository folder simply gives
nothing) and can be switched off: `start_run(capture=False)` or `capture={"git", ...}`.
"""

from __future__ import annotations

import getpass
import os
import platform
import shutil
import socket
import subprocess
import sys

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


#: What a repository's location cannot change within a process: (root, remote) by folder.
_repo_cache: dict[str, tuple[str | None, str | None]] = {}


def git_info(cwd: str | None = None) -> dict:
    """commit, branch, dirty flag and a summary of the uncommitted diff, if in a repo.
    One `git status` per call (plus `git diff --shortstat` when dirty); the root and
    the remote are read once per folder and process."""
    # Not stripped: status lines may end in significant spaces.
    out = _git("status", "--porcelain=v2", "--branch", "--untracked-files=normal",
               cwd=cwd, strip=False)
    if out is None:
        return {}
    commit = branch = None
    changed = []
    for line in out.splitlines():
        if line.startswith("# branch.oid "):
            commit = line[len("# branch.oid "):]
        elif line.startswith("# branch.head "):
            branch = line[len("# branch.head "):]
        elif line.startswith(("1 ", "2 ", "u ", "? ")):
            changed.append(_changed_path(line))
    if not commit or commit == "(initial)":
        return {}
    where = os.path.abspath(cwd or os.getcwd())
    if where not in _repo_cache:
        _repo_cache[where] = (
            _git("rev-parse", "--show-toplevel", cwd=cwd),
            _git("config", "--get", "remote.origin.url", cwd=cwd),
        )
    root, remote = _repo_cache[where]
    info = {
        "commit": commit,
        "branch": "HEAD" if branch == "(detached)" else branch,
        "dirty": bool(changed),
        "root": root,
    }
    if remote:
        info["remote"] = remote
    if changed:
        info["changed_files"] = changed[:50]
        info["diff_stat"] = (_git("diff", "HEAD", "--shortstat", cwd=cwd) or "").strip()
    return info


def why_no_commit(cwd: str | None = None) -> str:
    """Why `git_info` found no commit here: kept in the context of a run without one, so
    `reproduce` can say why its code cannot be rebuilt from git."""
    where = os.path.abspath(cwd or os.getcwd())
    if shutil.which("git") is None:
        return "git is not installed"
    if _git("rev-parse", "--is-inside-work-tree", cwd=cwd) is None:
        return f"it was started in {where}, which is not inside a git repository"
    return f"the git repository of {where} has no commit yet"


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


def _changed_path(line: str) -> str:
    """The path of one `git status --porcelain=v2` entry (a rename: "old -> new")."""
    kind = line[0]
    if kind == "?":
        return line[2:]
    if kind == "1":
        return line.split(" ", 8)[8]
    if kind == "2":
        new, old = line.split(" ", 9)[9].split("\t", 1)
        return f"{old} -> {new}"
    return line.split(" ", 10)[10]  # "u": unmerged


def command_line() -> str:
    return " ".join([os.path.basename(sys.executable), *sys.argv])


def invocation(cwd: str | None = None) -> dict:
    """How this process was started, as `metastore reproduce` re-runs it: the working
    folder, the interpreter, sys.argv, and the module of `python -m` (argv[0] is then the
    module's file). `interactive` when there is no script to re-run (a REPL, `-c`)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv = list(sys.argv)
    out = {"cwd": os.path.abspath(cwd or os.getcwd()), "executable": sys.executable,
           "argv": argv}
    if spec is not None and getattr(spec, "name", None) not in (None, "__main__"):
        out["module"] = spec.name.removesuffix(".__main__")
    if not argv or argv[0] in ("", "-c") or not hasattr(main, "__file__"):
        out["interactive"] = True
    return out


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


_packages: tuple[tuple, str] | None = None

#: The environment asset's text, written by the interpreter it describes: run here by
#: `packages_text`, and by another interpreter (`packages_of`) for a `metastore run`
#: child that is not this Python.
_FREEZE = """
import platform
from importlib import metadata

def freeze():
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    header = f"# python {platform.python_version()} on {platform.system().lower()}\\n"
    return header + "\\n".join(seen[k] for k in sorted(seen)) + "\\n"
"""


def packages_text() -> str:
    """Installed distributions as sorted `name==version` lines: the environment asset.
    The same environment gives the same bytes, so it is stored once. Read once per
    process, and again only when a folder on sys.path changed (a package installed or
    removed), since reading every distribution's metadata takes a quarter of a second."""
    global _packages
    key = tuple(_mtime(p) for p in sys.path)
    if _packages is not None and _packages[0] == key:
        return _packages[1]
    scope: dict = {}
    exec(_FREEZE, scope)  # noqa: S102 - our own constant, shared with packages_of
    text = scope["freeze"]()
    _packages = (key, text)
    return text


def packages_of(executable: str, env: dict[str, str] | None = None) -> str | None:
    """`packages_text` as another Python interpreter sees it (None if it cannot say)."""
    script = _FREEZE + "\nimport sys\nsys.stdout.write(freeze())\n"
    try:
        done = subprocess.run([executable, "-c", script], env=env, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.startswith("# python ") else None


def _mtime(path: str) -> tuple[str, int]:
    try:
        return path, os.stat(path or ".").st_mtime_ns
    except OSError:
        return path, 0
