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
On a SQL store it reads everything in a few queries per 900 runs; on any other store
(a metastore server) through the `Store` interface, a few calls per run.
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


@dataclass
class _Facts:
    """What the checks look at, for one run."""

    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (kind, version id)
    output_kinds: set[str] = field(default_factory=set)
    has_note: bool = False


def audit(store: Store, experiment: str | None = None) -> AuditReport:
    """Check every live run (of `experiment`, or all), oldest first."""
    report = AuditReport(experiment=experiment)
    handles = sorted(store.runs(experiment=experiment), key=lambda r: (r.row.started, r.row.id))
    names = {e.id: e.name for e in store.experiments()}
    from metastore.store import SQLStore

    if isinstance(store, SQLStore):  # a few queries for all runs, not a few per run
        facts = _facts_sql(store, [h.row.id for h in handles])
    else:
        facts = {h.row.id: _facts_handle(h) for h in handles}
    seen: dict[str, str] = {}
    for run in handles:
        ref = f"{names.get(run.row.experiment_id) or run.experiment}#{run.row.number}"
        f = facts[run.row.id]
        entry = _check(run, ref, f)
        signature = _configuration(run, f)
        if signature is not None:
            if signature in seen:
                entry.duplicate_of = seen[signature]
            elif run.row.status == "finished":
                seen[signature] = ref
        report.runs.append(entry)
    return report


def _facts_handle(run: RunHandle) -> _Facts:
    return _Facts(
        params=run.params,
        inputs=[(v.kind, v.id) for v in run.inputs],
        output_kinds={v.kind for v in run.outputs},
        has_note=any(n.kind == "note" for n in run.notes),
    )


def _facts_sql(store, run_ids: list[str]) -> dict[str, _Facts]:
    import sqlalchemy as sa

    from metastore import params as param_codec
    from metastore.models import Asset, AssetVersion, LineageEdge, Note, Param

    facts = {i: _Facts() for i in run_ids}
    edge = LineageEdge
    with store.read() as s:
        for start in range(0, len(run_ids), 900):
            chunk = run_ids[start : start + 900]
            for p in s.execute(sa.select(Param).where(Param.run_id.in_(chunk))).scalars():
                facts[p.run_id].params[p.key] = param_codec.decode(p.type, p.num, p.text)
            inputs = (
                sa.select(edge.dst_id, Asset.kind, AssetVersion.id)
                .join(AssetVersion, AssetVersion.id == edge.src_id)
                .join(Asset, Asset.id == AssetVersion.asset_id)
                .where(edge.dst_type == "run", edge.dst_id.in_(chunk),
                       edge.src_type == "asset_version")
            )
            for run_id, kind, version_id in s.execute(inputs):
                facts[run_id].inputs.append((kind, version_id))
            outputs = (
                sa.select(edge.src_id, Asset.kind)
                .join(AssetVersion, AssetVersion.id == edge.dst_id)
                .join(Asset, Asset.id == AssetVersion.asset_id)
                .where(edge.src_type == "run", edge.src_id.in_(chunk),
                       edge.dst_type == "asset_version")
            )
            for run_id, kind in s.execute(outputs):
                facts[run_id].output_kinds.add(kind)
            noted = sa.select(Note.run_id).where(Note.run_id.in_(chunk), Note.kind == "note")
            for (run_id,) in s.execute(noted.distinct()):
                facts[run_id].has_note = True
    return facts


def _check(run: RunHandle, ref: str, f: _Facts) -> RunAudit:
    kinds_in = {kind for kind, _ in f.inputs}
    checks = {
        "code": bool(run.row.git_commit) or "code" in kinds_in,
        "data": bool(kinds_in & set(DATA_KINDS)),
        "environment": "environment" in kinds_in,
        "seed": any(SEED_LIKE.search(k) for k in f.params),
        "model": "model" in f.output_kinds,
        "note": f.has_note,
    }
    return RunAudit(ref=ref, id=run.row.id, name=run.row.name, status=run.row.status,
                    checks=checks)


def _configuration(run: RunHandle, f: _Facts) -> str | None:
    if not f.params and all(kind == "environment" for kind, _ in f.inputs):
        return None
    return json.dumps(
        {"params": f.params, "inputs": sorted(i for _, i in f.inputs),
         "commit": run.row.git_commit},
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
