"""The reproducibility self-check: could each run be re-made from what was recorded?

For every run (of one experiment, or all) `audit()` checks that it has
- code: a git commit, or a code asset among its inputs;
- data: a dataset (or feature_set) version among its inputs;
- environment: an environment version among its inputs (metastore records the
  installed packages as `environment:python` unless capture is switched off);
- seed: a param whose name says it seeds randomness (seed, random_state, rng …);
- model: a model version among its outputs;
- note: a note written by a person (events from the infrastructure do not count);

and flags runs whose configuration — params plus input versions — is identical to an
earlier finished run's: duplicates that spent compute to learn nothing new. Runs with
no params and no inputs but an environment have no configuration to compare.
It reads every run in one `read_runs` call: a few queries per 500 runs on a SQL
store, one request through a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from metastore import reproduce
from metastore.backends.base import Backend
from metastore.records import RunView

CHECKS = ("code", "data", "environment", "seed", "model", "note")
SEED_LIKE = re.compile(r"seed|random_state|(^|[._/-])rng($|[._/-])", re.I)
DATA_KINDS = ("dataset", "feature_set")


@dataclass
class RunAudit:
    ref: str
    id: str
    name: str | None
    status: str
    checks: dict[str, bool]
    duplicate_of: str | None = None
    #: Why `metastore reproduce` could not run it (empty when it could).
    reproduce_missing: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [c for c in CHECKS if not self.checks[c]]

    @property
    def complete(self) -> bool:
        return not self.missing and self.duplicate_of is None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "id": self.id, "name": self.name, "status": self.status,
                "checks": self.checks, "missing": self.missing,
                "duplicate_of": self.duplicate_of,
                "reproduce": {"can_run": not self.reproduce_missing,
                              "missing": self.reproduce_missing}}


@dataclass
class AuditReport:
    experiment: str | None
    runs: list[RunAudit] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return {
            "runs": len(self.runs),
            "complete": sum(r.complete for r in self.runs),
            "missing": {c: sum(not r.checks[c] for r in self.runs) for c in CHECKS},
            "duplicates": sum(r.duplicate_of is not None for r in self.runs),
        }

    @property
    def ok(self) -> bool:
        return all(r.complete for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "summary": self.summary,
                "runs": [r.to_dict() for r in self.runs]}


def audit(store: Backend, experiment: str | None = None) -> AuditReport:
    """Check every live run (of `experiment`, or all), oldest first."""
    report = AuditReport(experiment=experiment)
    views = sorted(store.read_runs(experiment=experiment), key=lambda r: (r.started, r.id))
    seen: dict[str, str] = {}
    for run in views:
        entry = _check(run)
        signature = _configuration(run)
        if signature is not None:
            if signature in seen:
                entry.duplicate_of = seen[signature]
            elif run.status == "finished":
                seen[signature] = run.ref
        report.runs.append(entry)
    return report


def _check(run: RunView) -> RunAudit:
    kinds_in = {v.kind for v in run.inputs}
    checks = {
        "code": bool(run.git_commit) or "code" in kinds_in,
        "data": bool(kinds_in & set(DATA_KINDS)),
        "environment": "environment" in kinds_in,
        "seed": any(SEED_LIKE.search(k) for k in run.params),
        "model": any(v.kind == "model" for v in run.outputs),
        "note": run.has_note,
    }
    return RunAudit(ref=run.ref, id=run.id, name=run.name, status=run.status, checks=checks,
                    reproduce_missing=reproduce.plan(run).missing)


def _configuration(run: RunView) -> str | None:
    if not run.params and all(v.kind == "environment" for v in run.inputs):
        return None
    return json.dumps(
        {"params": run.params, "inputs": sorted(v.id for v in run.inputs),
         "commit": run.git_commit},
        sort_keys=True, default=str,
    )


def mark(ok: bool) -> str:
    """A check's cell in the checklist."""
    return "yes" if ok else "MISSING"


def format_text(report: AuditReport) -> str:
    """A checklist per run and a summary, for the terminal."""
    width = max([len(r.ref) for r in report.runs] + [3])
    cols = {c: max(len(c), len(mark(False))) for c in CHECKS}
    lines = [f"{'run':<{width}}  " + "  ".join(f"{c:<{cols[c]}}" for c in CHECKS)
             + "  duplicate of"]
    for r in report.runs:
        marks = "  ".join(f"{mark(r.checks[c]):<{cols[c]}}" for c in CHECKS)
        lines.append(f"{r.ref:<{width}}  {marks}  {r.duplicate_of or ''}".rstrip())
    return "\n".join([*lines, "", *summary_lines(report)]) + "\n"


def summary_lines(report: AuditReport) -> list[str]:
    """What the checklist adds up to, and how to fill each gap."""
    lines = []
    s = report.summary
    scope = f"experiment {report.experiment!r}" if report.experiment else "all experiments"
    lines.append(f"{s['runs']} runs in {scope}: {s['complete']} reproducible as recorded.")
    gaps = [f"{c} in {n}" for c, n in s["missing"].items() if n]
    if gaps:
        lines.append("Missing: " + ", ".join(gaps) + ".")
    if s["duplicates"]:
        lines.append(f"{s['duplicates']} runs repeat an earlier finished run's params and inputs.")
    can = sum(not r.reproduce_missing for r in report.runs)
    lines.append(f"{can} of {s['runs']} runs have what `metastore reproduce` needs"
                 " (--format json says what the others lack).")
    hints = {
        "code": "run from a git repository, or log the script with run.use_asset(path, kind='code')",
        "data": "record inputs with run.use_asset(path, kind='dataset')",
        "environment": "leave package capture on (start_run(capture=True))",
        "seed": "log the random seed as a param, e.g. run.log_param('seed', 0)",
        "model": "log the trained model with run.log_asset(path, kind='model')",
        "note": "say what you tried and saw with run.note('…')",
    }
    for c, n in s["missing"].items():
        if n:
            lines.append(f"  {c}: {hints[c]}")
    return lines
