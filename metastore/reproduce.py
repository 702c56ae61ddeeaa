"""What `metastore reproduce RUN` would rebuild, and what is missing for it.

The plan of a reproduction, from what the run recorded: the code (a clone of the
repository at the recorded commit, with the stored uncommitted change applied, or the
run's code assets),
the inputs (each version materialised from the blob store, verified by digest, or
fetched from its URI), the environment (a fresh virtual environment from the recorded
package list, or the current one with `--here`), the command to re-run, and the metrics
to compare. `plan(run)` works on a `RunView`, so `audit` answers per run whether a
reproduction could run, with the same rules; `metastore.reproduction` runs it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metastore.records import RunView

if TYPE_CHECKING:
    from metastore.backends.base import Backend

GIT_DIFF_ASSET = "git-diff"  # what tracking stores a dirty tree's change as


@dataclass
class Step:
    """One part of the plan: what (code, input, environment, command, compare), how, and
    whether it can be done (`missing` says why not)."""

    part: str
    action: str
    missing: str | None = None
    #: What would have made it possible, for a missing step.
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "action": self.action, "missing": self.missing, "hint": self.hint}


@dataclass
class Plan:
    run: str
    steps: list[Step] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [f"{s.part}: {s.missing}" for s in self.steps if s.missing]

    @property
    def can_run(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "can_run": self.can_run, "missing": self.missing,
                "steps": [s.to_dict() for s in self.steps]}


def plan(run: RunView, store: Backend | None = None, *, here: bool = False,
         context: dict | None = None) -> Plan:
    """The reproduction plan of a run; with `store`, inputs are also checked to be in its
    blob store (and local `file://` inputs to exist); `here` plans for the current
    interpreter instead of a fresh environment; `context` (the run's recorded context)
    names the command as it will be re-run."""
    p = Plan(run=run.ref)
    code = [v for v in run.inputs if v.kind == "code"]
    diffs = [v for v in code if v.name == GIT_DIFF_ASSET]
    scripts = [v for v in code if v.name != GIT_DIFF_ASSET]
    if run.git_commit:
        where = f" (branch {run.git_branch})" if run.git_branch else ""
        p.steps.append(Step("code", f"clone of the repository at commit {run.git_commit[:12]}{where}"))
        if run.git_dirty:
            if diffs:
                p.steps.append(Step("code", f"apply the uncommitted change {diffs[0].ref}"))
            else:
                p.steps.append(Step("code", "apply the uncommitted change",
                                    "the tree was dirty and its change was not stored"))
    elif scripts:
        for v in scripts:
            p.steps.append(Step("code", f"materialise {v.ref} ({_filename(v)})"))
    else:
        p.steps.append(Step("code", "rebuild the code", _no_code(context), NO_CODE_HINT))
    for v in run.inputs:
        if v.kind in ("code", "environment"):
            continue
        role = f" as {v.role}" if v.role else ""
        to = input_path(v)
        if v.uri == "blob:":
            missing = None
            if store is not None and not store.blobs.exists(v.digest):
                missing = f"{v.ref}: its content is not in the blob store"
            p.steps.append(Step("input", f"materialise {v.ref}{role} to {to}, "
                                         f"sha256 {v.digest[:12]}", missing))
        else:
            missing = None
            if not v.uri.startswith("file://"):
                missing = f"{v.ref}: only its URI {v.uri} was recorded, and only file:// is fetched"
            elif store is not None and not local_file(v.uri).exists():
                missing = f"{v.ref}: {local_file(v.uri)} is gone and its content was not stored"
            p.steps.append(Step("input", f"fetch {v.ref}{role} from {v.uri} to {to}, check "
                                         f"sha256 {v.digest[:12]}", missing))
    envs = [v for v in run.inputs if v.kind == "environment"]
    if here:
        p.steps.append(Step("environment", "the current interpreter (--here); packages "
                                           "that differ from the recorded ones are listed"))
    elif envs:
        p.steps.append(Step("environment", f"fresh virtual environment from {envs[0].ref}"))
    else:
        p.steps.append(Step("environment", "fresh virtual environment",
                            "no package list recorded (--here would use the current one)"))
    invocation = (context or {}).get("invocation") or {}
    if invocation.get("interactive") and not invocation.get("runner"):
        p.steps.append(Step("command", "re-run the command",
                            "the run was started from an interactive session: no script"))
    elif invocation.get("argv") or run.command:
        argv = invocation.get("argv")
        if not argv:
            how = run.command
        elif invocation.get("runner"):
            how = f"{invocation['runner']} -- {shlex.join(argv)}"
        elif invocation.get("module"):
            how = f"python -m {invocation['module']} {shlex.join(argv[1:])}".rstrip()
        else:
            how = f"python {shlex.join(argv)}"
        p.steps.append(Step("command", how))
    else:
        p.steps.append(Step("command", "re-run the command", "no command recorded"))
    if run.metrics:
        keys = ", ".join(k for k in sorted(run.metrics) if not k.startswith("system."))
        p.steps.append(Step("compare", f"metrics {keys}: identical, within --rtol/--atol, "
                                       "or different"))
    return p


NO_CODE_HINT = ("start the run inside a git repository that has a commit; or store the script "
                "with run.use_asset(\"train.py\", kind=\"code\"); or record it with "
                "`metastore run -- python train.py`, which stores the Python files the script reads")


def _no_code(context: dict | None) -> str:
    """Why a run without a commit and without code assets cannot have its code rebuilt:
    the reason the run recorded (`context.why_no_commit`), else the likely one (audit
    reads runs without their context)."""
    reason = (context or {}).get("no_commit") or (
        "it was started outside a git repository, or with git capture off")
    return (f"no git commit was recorded ({reason}) and no code was stored with the run, "
            "so there is nothing to rebuild its code from")


def _filename(v) -> str:
    return (v.meta or {}).get("filename") or v.name


def input_path(v) -> str:
    """Where an input goes back: the path the run read it from (relative to its working
    folder, or absolute), else its file name in the working folder."""
    return v.path or _filename(v)


def local_file(uri: str):
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))


def format_text(p: Plan) -> str:
    """The plan as `metastore reproduce RUN --dry-run` prints it."""
    lines = [f"reproduce {p.run} (dry run):"]
    for i, s in enumerate(p.steps, 1):
        mark = "MISSING " if s.missing else ""
        lines.append(f"  {i}. [{s.part}] {mark}{s.action}")
        if s.missing:
            lines.append(f"       {s.missing}")
            if s.hint:
                lines.append(f"       to make it reproducible: {s.hint}")
    if p.can_run:
        lines.append("Everything it needs was recorded.")
    else:
        lines.append(f"Cannot reproduce: {'; '.join(p.missing)}.")
    return "\n".join(lines) + "\n"
