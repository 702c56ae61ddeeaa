"""Loaded by a Python child of `metastore run` (this folder is first on its PYTHONPATH):
an audit hook notes the files the child opens, for its run's inputs and outputs.

Each regular file opened is written once per mode ("r" read, "w" written) as a line
`MODE<TAB>ABSOLUTE PATH` to the file named by METASTORE_RUN_FILES, after a first line
`python<TAB>PREFIX<TAB>EXECUTABLE` naming the interpreter (its packages are the run's
environment). Files of the Python
installation (site-packages, the standard library), caches, /proc, /sys and /dev are
left out. Nothing of metastore is imported here: the child starts as fast as without.
After the hook is installed, any sitecustomize the child would have loaded is loaded.
"""

import os
import sys


def _install() -> None:
    target = os.environ.get("METASTORE_RUN_FILES")
    if not target:
        return
    limit = int(os.environ.get("METASTORE_RUN_MAX_FILES", "1000"))
    skip = tuple(
        os.path.join(os.path.realpath(p), "")
        for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev",
                  os.path.dirname(os.path.abspath(__file__))}
    )
    seen = set()
    out = open(target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the process
    # which Python this is: `metastore run` records its packages, not its own
    out.write(f"python\t{sys.prefix}\t{sys.executable}\n")

    def hook(event, args):
        if event != "open" or len(seen) >= limit:
            return
        path, mode = args[0], args[1]
        if not isinstance(path, str) or path.startswith(("/proc", "/sys", "/dev")):
            return
        if mode is None:  # os.open: flags only
            flags = args[2] if len(args) > 2 else 0
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND))
        else:
            writing = any(c in str(mode) for c in "wax+")
        full = os.path.abspath(path)
        if full == target or full.startswith(skip) or "__pycache__" in full or full.endswith(".pyc"):
            return
        key = ("w" if writing else "r", full)
        if key in seen:
            return
        seen.add(key)
        try:
            out.write(f"{key[0]}\t{full}\n")
        except (OSError, ValueError):
            pass

    sys.addaudithook(hook)


_install()
del _install

# Load the sitecustomize this one shadows, if the child had one.
_here = os.path.dirname(os.path.abspath(__file__))
_rest = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import importlib.machinery as _machinery  # noqa: E402
import importlib.util as _util  # noqa: E402

_spec = _machinery.PathFinder.find_spec("sitecustomize", _rest)
if _spec is not None and _spec.loader is not None and _spec.origin != __file__:
    _module = _util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
