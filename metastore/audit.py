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
It reads through the `Store` interface only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metastore.handles import RunHandle
    from metastore.store import Store

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

    @property
    def missing(self) -> list[str]:
        return [c for c in CHECKS if not self.checks[c]]

    @property
    def complete(self) -> bool:
        return not self.missing and self.duplicate_of is None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "id": self.id, "name": self.name, "status": self.status,
                "checks": self.checks, "missing": self.missing,
                "duplicate_of": self.duplicate_of}


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


def audit(store: Store, experiment: str | None = None) -> AuditReport:
    """Check every live run (of `experiment`, or all), oldest first."""
    report = AuditReport(experiment=experiment)
    handles = sorted(store.runs(experiment=experiment), key=lambda r: (r.row.started, r.row.id))
    seen: dict[str, str] = {}
    for run in handles:
        params, inputs = run.params, run.inputs
        entry = _check(run, params, inputs)
        signature = _configuration(run, params, inputs)
        if signature is not None:
            if signature in seen:
                entry.duplicate_of = seen[signature]
            elif run.row.status == "finished":
                seen[signature] = run.ref
        report.runs.append(entry)
    return report


def _check(run: RunHandle, params: dict, inputs: list) -> RunAudit:
    outputs = run.outputs
    kinds_in = {v.kind for v in inputs}
    checks = {
        "code": bool(run.row.git_commit) or "code" in kinds_in,
        "data": bool(kinds_in & set(DATA_KINDS)),
        "environment": "environment" in kinds_in,
        "seed": any(SEED_LIKE.search(k) for k in params),
        "model": any(v.kind == "model" for v in outputs),
        "note": any(n.kind == "note" for n in run.notes),
    }
    return RunAudit(ref=run.ref, id=run.row.id, name=run.row.name, status=run.row.status,
                    checks=checks)


def _configuration(run: RunHandle, params: dict, inputs: list) -> str | None:
    if not params and all(v.kind == "environment" for v in inputs):
        return None
    return json.dumps(
        {"params": params, "inputs": sorted(v.id for v in inputs),
         "commit": run.row.git_commit},
        sort_keys=True, default=str,
    )


def format_text(report: AuditReport) -> str:
    """A checklist per run and a summary, for the terminal."""
    lines = []
    width = max([len(r.ref) for r in report.runs] + [3])
    header = f"{'run':<{width}}  " + "  ".join(f"{c:<11}" for c in CHECKS) + "  duplicate of"
    lines.append(header)
    for r in report.runs:
        marks = "  ".join(f"{'yes' if r.checks[c] else 'MISSING':<11}" for c in CHECKS)
        lines.append(f"{r.ref:<{width}}  {marks}  {r.duplicate_of or ''}".rstrip())
    s = report.summary
    lines.append("")
    scope = f"experiment {report.experiment!r}" if report.experiment else "all experiments"
    lines.append(f"{s['runs']} runs in {scope}: {s['complete']} reproducible as recorded.")
    gaps = [f"{c} in {n}" for c, n in s["missing"].items() if n]
    if gaps:
        lines.append("Missing: " + ", ".join(gaps) + ".")
    if s["duplicates"]:
        lines.append(f"{s['duplicates']} runs repeat an earlier finished run's params and inputs.")
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
    return "\n".join(lines) + "\n"
