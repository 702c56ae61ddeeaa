"""What changed between two runs, and did it help?

`diff_runs(store, a, b)` compares run B against run A: params added, removed and
changed; metric deltas, each judged better or worse where the metric's name says which
way is good (rmse, loss, error … lower; accuracy, r2, auc, f1 … higher); input versions
(data, code, environment) that differ, with the packages that changed between the two
environments; code commits; outputs. It reads through the `Store` interface only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from metastore.errors import MetastoreError

if TYPE_CHECKING:
    from metastore.backends.base import Backend
    from metastore.handles import RunHandle, VersionHandle

LOWER_IS_BETTER = re.compile(
    r"loss|err|rmse|mse|mae|mape|smape|perplexity|wer|cer|latency|time|duration|cost|fpr|fnr",
    re.I,
)
HIGHER_IS_BETTER = re.compile(
    r"acc|r2|auc|f1|precision|recall|score|bleu|rouge|iou|dice|map|ndcg|throughput|tpr",
    re.I,
)


def metric_goal(key: str) -> str | None:
    """"min", "max", or None when the name does not say which way is better."""
    if key.startswith("system."):
        return None
    leaf = key.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    if LOWER_IS_BETTER.search(leaf):
        return "min"
    if HIGHER_IS_BETTER.search(leaf):
        return "max"
    return None


@dataclass
class RunDiff:
    """Run B compared with run A. `to_dict()` gives it as JSON-ready data."""

    a: dict[str, Any]
    b: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    code: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "params": self.params,
            "metrics": self.metrics,
            "inputs": self.inputs,
            "code": self.code,
            "environment": self.environment,
            "outputs": self.outputs,
        }

    @property
    def identical_config(self) -> bool:
        """Same params and the same input versions."""
        p, i = self.params, self.inputs
        return not (p["added"] or p["removed"] or p["changed"] or i["changed"]
                    or i["only_a"] or i["only_b"])


def diff_runs(store: Backend, a, b, experiment: str | None = None) -> RunDiff:
    """Compare run `b` with run `a` (each a handle, id, number, experiment#number or name)."""
    ra, rb = _run(store, a, experiment), _run(store, b, experiment)
    result = RunDiff(a=_summary(ra), b=_summary(rb))
    result.params = _diff_params(ra.params, rb.params)
    result.metrics = _diff_metrics(ra.metrics, rb.metrics)
    ins_a, ins_b = ra.inputs, rb.inputs
    result.inputs = _diff_versions(ins_a, ins_b)
    result.outputs = _diff_versions(ra.outputs, rb.outputs)
    result.code = {
        "git_commit": {"a": ra.row.git_commit, "b": rb.row.git_commit,
                       "changed": ra.row.git_commit != rb.row.git_commit},
        "git_dirty": {"a": ra.row.git_dirty, "b": rb.row.git_dirty},
        "assets": [c for c in result.inputs["changed"] if c["kind"] == "code"],
    }
    result.environment = _diff_environment(ins_a, ins_b)
    return result


def _run(store: Backend, ref, experiment: str | None) -> RunHandle:
    from metastore.handles import RunHandle

    if isinstance(ref, RunHandle):
        return ref
    return RunHandle(store, store.resolve_run(ref, experiment))


def _summary(run: RunHandle) -> dict[str, Any]:
    return {"ref": run.ref, "id": run.row.id, "name": run.row.name, "status": run.row.status,
            "duration": run.duration}


def _diff_params(a: dict, b: dict) -> dict[str, Any]:
    return {
        "added": {k: b[k] for k in sorted(b.keys() - a.keys())},
        "removed": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "changed": {k: {"a": a[k], "b": b[k]} for k in sorted(a.keys() & b.keys())
                    if a[k] != b[k] or type(a[k]) is not type(b[k])},
        "unchanged": sorted(k for k in a.keys() & b.keys() if a[k] == b[k]
                            and type(a[k]) is type(b[k])),
    }


def _diff_metrics(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    common = []
    for key in sorted(a.keys() & b.keys()):
        delta = b[key] - a[key]
        goal = metric_goal(key)
        verdict = None
        if goal is not None:
            verdict = "same" if delta == 0 else (
                "better" if (delta < 0) == (goal == "min") else "worse")
        common.append({
            "key": key, "a": a[key], "b": b[key], "delta": delta,
            "relative": delta / abs(a[key]) if a[key] else None,
            "goal": goal, "verdict": verdict,
        })
    return {
        "compared": common,
        "only_a": {k: a[k] for k in sorted(a.keys() - b.keys())},
        "only_b": {k: b[k] for k in sorted(b.keys() - a.keys())},
    }


def _by_asset(versions: list[VersionHandle]) -> dict[tuple[str, str], list[VersionHandle]]:
    out: dict[tuple[str, str], list[VersionHandle]] = {}
    for v in versions:
        out.setdefault((v.kind, v.name), []).append(v)
    return out


def _brief(v: VersionHandle) -> dict[str, Any]:
    return {"ref": v.ref, "version": v.version, "digest": v.digest, "role": v.role}


def _diff_versions(a: list[VersionHandle], b: list[VersionHandle]) -> dict[str, Any]:
    """Versions matched by asset (kind and name): same version, changed, or one-sided."""
    ga, gb = _by_asset(a), _by_asset(b)
    changed, same = [], []
    for key in sorted(ga.keys() & gb.keys()):
        va, vb = {v.id for v in ga[key]}, {v.id for v in gb[key]}
        entry = {"kind": key[0], "name": key[1],
                 "a": [_brief(v) for v in ga[key]], "b": [_brief(v) for v in gb[key]]}
        (same if va == vb else changed).append(entry)
    return {
        "changed": changed,
        "same": [f"{e['kind']}:{e['name']}@{e['a'][0]['version']}" for e in same],
        "only_a": [_brief(v) for key in sorted(ga.keys() - gb.keys()) for v in ga[key]],
        "only_b": [_brief(v) for key in sorted(gb.keys() - ga.keys()) for v in gb[key]],
    }


def parse_requirements(text: str) -> dict[str, str]:
    """`name==version` lines (a pip freeze, or metastore's environment asset) as a
    mapping from normalised package name to version (or the whole line when it pins no
    version, e.g. `pkg @ file://…`)."""
    packages = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            name, _, version = line.partition(" @ ")
        packages[re.sub(r"[-_.]+", "-", name.strip().lower())] = version.strip()
    return packages


def _diff_environment(a: list[VersionHandle], b: list[VersionHandle]) -> dict[str, Any] | None:
    env_a = [v for v in a if v.kind == "environment"]
    env_b = [v for v in b if v.kind == "environment"]
    if not env_a and not env_b:
        return None
    out: dict[str, Any] = {
        "a": [v.ref for v in env_a], "b": [v.ref for v in env_b],
        "same": {v.id for v in env_a} == {v.id for v in env_b},
    }
    if out["same"] or not env_a or not env_b:
        return out
    try:
        pa = parse_requirements(_text(env_a[0]))
        pb = parse_requirements(_text(env_b[0]))
    except (MetastoreError, OSError, UnicodeDecodeError) as e:
        out["error"] = f"cannot read the environments: {e}"
        return out
    out["packages"] = {
        "added": {k: pb[k] for k in sorted(pb.keys() - pa.keys())},
        "removed": {k: pa[k] for k in sorted(pa.keys() - pb.keys())},
        "changed": {k: {"a": pa[k], "b": pb[k]} for k in sorted(pa.keys() & pb.keys())
                    if pa[k] != pb[k]},
    }
    return out


def _text(v: VersionHandle) -> str:
    return v.read_bytes().decode("utf-8")


# -- the terminal view ----------------------------------------------------------------------


def format_text(d: RunDiff) -> str:
    """A plain-text report of a RunDiff."""
    a, b = d.a["ref"], d.b["ref"]
    lines = [f"{b} compared with {a}"]
    if d.identical_config:
        lines.append("  same params and the same input versions")
    judged = {v: [c["key"] for c in d.metrics["compared"] if c["verdict"] == v]
              for v in ("better", "worse")}
    if judged["better"] or judged["worse"]:
        lines.append("  did it help? " + "; ".join(
            f"{v}: {', '.join(keys)}" for v, keys in judged.items() if keys))

    def section(title: str, body: list[str]) -> None:
        if body:
            lines.append("")
            lines.append(title)
            lines.extend(f"  {x}" for x in body)

    p = d.params
    section("params", [f"+ {k} = {_v(v)}" for k, v in p["added"].items()]
            + [f"- {k} = {_v(v)}" for k, v in p["removed"].items()]
            + [f"~ {k}: {_v(c['a'])} -> {_v(c['b'])}" for k, c in p["changed"].items()])
    m = d.metrics
    rows = []
    for c in m["compared"]:
        if c["key"].startswith("system.") and c["delta"] == 0:
            continue
        rel = f" ({c['relative']:+.1%})" if c["relative"] is not None else ""
        verdict = f"  {c['verdict']}" if c["verdict"] not in (None, "same") else ""
        rows.append(f"{c['key']}: {_v(c['a'])} -> {_v(c['b'])}  {c['delta']:+.6g}{rel}{verdict}")
    rows += [f"only in {a}: {k} = {_v(v)}" for k, v in m["only_a"].items()]
    rows += [f"only in {b}: {k} = {_v(v)}" for k, v in m["only_b"].items()]
    section("metrics", rows)

    def versions(part: dict) -> list[str]:
        out = []
        for c in part["changed"]:
            va = ", ".join(f"@{x['version']}" for x in c["a"])
            vb = ", ".join(f"@{x['version']}" for x in c["b"])
            out.append(f"~ {c['kind']}:{c['name']} {va} -> {vb}")
        out += [f"- {x['ref']} (only in {a})" for x in part["only_a"]]
        out += [f"+ {x['ref']} (only in {b})" for x in part["only_b"]]
        return out

    section("inputs", versions(d.inputs) or [f"unchanged: {', '.join(d.inputs['same'])}"]
            if d.inputs["same"] or versions(d.inputs) else [])
    commit = d.code["git_commit"]
    if commit["changed"]:
        section("code", [f"git commit {(commit['a'] or 'none')[:12]} -> {(commit['b'] or 'none')[:12]}"])
    env = d.environment
    if env and not env["same"]:
        body = []
        pk = env.get("packages")
        if pk:
            body += [f"+ {k}=={v}" for k, v in pk["added"].items()]
            body += [f"- {k}=={v}" for k, v in pk["removed"].items()]
            body += [f"~ {k} {c['a']} -> {c['b']}" for k, c in pk["changed"].items()]
            if not body:
                body = ["different environment versions, same packages"]
        elif env.get("error"):
            body.append(env["error"])
        else:
            body.append(f"{', '.join(env['a']) or 'none'} -> {', '.join(env['b']) or 'none'}")
        section("environment", body)
    section("outputs", versions(d.outputs))
    return "\n".join(lines) + "\n"


def _v(value) -> str:
    """A value in a sentence, as every output writes it (true/false, floats to 6 digits)."""
    from metastore.output import value_text

    return value_text(value)


def change_rows(d: RunDiff) -> list[dict[str, Any]]:
    """Every difference as a row {section, item, a, b, change}: the diff as a table."""
    rows: list[dict[str, Any]] = []

    def add(section, item, a, b, change) -> None:
        rows.append({"section": section, "item": item, "a": a, "b": b, "change": change})

    p = d.params
    for k, v in p["added"].items():
        add("params", k, None, v, "added")
    for k, v in p["removed"].items():
        add("params", k, v, None, "removed")
    for k, c in p["changed"].items():
        add("params", k, c["a"], c["b"], "changed")
    for c in d.metrics["compared"]:
        if c["delta"] == 0:
            continue
        rel = f" ({c['relative']:+.1%})" if c["relative"] is not None else ""
        verdict = f" {c['verdict']}" if c["verdict"] not in (None, "same") else ""
        add("metrics", c["key"], c["a"], c["b"], f"{c['delta']:+.6g}{rel}{verdict}")
    for k, v in d.metrics["only_a"].items():
        add("metrics", k, v, None, "removed")
    for k, v in d.metrics["only_b"].items():
        add("metrics", k, None, v, "added")
    for section, part in (("inputs", d.inputs), ("outputs", d.outputs)):
        for c in part["changed"]:
            add(section, f"{c['kind']}:{c['name']}",
                ", ".join(x["ref"] for x in c["a"]), ", ".join(x["ref"] for x in c["b"]),
                "changed")
        for x in part["only_a"]:
            add(section, x["ref"], x["ref"], None, "removed")
        for x in part["only_b"]:
            add(section, x["ref"], None, x["ref"], "added")
    commit = d.code["git_commit"]
    if commit["changed"]:
        add("code", "git commit", commit["a"], commit["b"], "changed")
    packages = (d.environment or {}).get("packages") or {}
    for k, v in packages.get("added", {}).items():
        add("environment", k, None, v, "added")
    for k, v in packages.get("removed", {}).items():
        add("environment", k, v, None, "removed")
    for k, c in packages.get("changed", {}).items():
        add("environment", k, c["a"], c["b"], "changed")
    return rows
