"""What you can ask: every name a query can use, with its kind, type and how many runs
have it (`metastore fields`, `Store.fields`).

Params, metrics and tags come from the runs themselves (one `read_runs` call, so it
works on every backend and through a server); attributes, history suffixes, lineage
conditions, sources and group keys come from the query language's own tables, so the
list cannot drift from what the compiler accepts.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from metastore.models import ASSET_KINDS
from metastore.query.resolve import HISTORY, NOTE_ATTRS, RUN_ATTRS, VERSION_ATTRS

if TYPE_CHECKING:
    from metastore.backends.base import Backend

LINEAGE_CONDITIONS = {
    "uses REF": "the run used the version (or the version fed the run)",
    "used by REF": "the version was used by the run",
    "produced REF": "the run produced the version",
    "produced by REF": "the version was produced by the run",
    "derived from REF": "the version was derived from REF (any hops, or depth N)",
    "upstream of REF": "REF came from it (any hops, or depth N)",
    "downstream of REF": "it came from REF (any hops, or depth N)",
}
HISTORY_MEANING = {
    "min": "smallest value logged", "max": "largest value logged",
    "first": "value at the first step", "last": "value at the last step (what a bare name means)",
    "count": "how many points were logged", "mean": "mean of every point",
    "last_step": "the last step logged",
}


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "json"


def fields(store: Backend, experiment: str | None = None) -> list[dict[str, Any]]:
    """Every queryable name: `name`, `kind` (param, metric, tag, attribute, history
    suffix, lineage condition, source, group key), `type`, `runs` (how many runs have it,
    for params, metrics and tags) and `about`."""
    views = store.read_runs(experiment=experiment)
    params: dict[str, Counter] = {}
    metrics: Counter = Counter()
    tags: Counter = Counter()
    for v in views:
        for k, value in v.params.items():
            params.setdefault(k, Counter())[_type_of(value)] += 1
        metrics.update(v.metrics.keys())
        tags.update(v.tags.keys())
    out: list[dict[str, Any]] = []
    for k in sorted(params):
        types = params[k]
        out.append({"name": k, "kind": "param", "type": "|".join(sorted(types)),
                    "runs": sum(types.values()), "about": f"or params.{k}"})
    for k in sorted(metrics):
        out.append({"name": k, "kind": "metric", "type": "number", "runs": metrics[k],
                    "about": f"last value; {k}.min, {k}.max … for its history"})
    for k in sorted(tags):
        out.append({"name": k, "kind": "tag", "type": "text", "runs": tags[k],
                    "about": f"or tags.{k}"})
    for k, t in RUN_ATTRS.items():
        out.append({"name": k, "kind": "attribute", "type": t, "runs": len(views),
                    "about": "of every run"})
    for k, t in VERSION_ATTRS.items():
        out.append({"name": k, "kind": "version attribute", "type": t, "runs": None,
                    "about": "of asset versions (models, datasets …)"})
    for k, t in NOTE_ATTRS.items():
        out.append({"name": k, "kind": "note attribute", "type": t, "runs": None,
                    "about": "of notes and events (notes where text matches \"…\")"})
    for h in HISTORY:
        out.append({"name": f"METRIC.{h}", "kind": "history suffix",
                    "type": "int" if h in ("count", "last_step") else "number", "runs": None,
                    "about": HISTORY_MEANING[h]})
    for cond, about in LINEAGE_CONDITIONS.items():
        out.append({"name": cond, "kind": "lineage condition", "type": "bool", "runs": None,
                    "about": about + "; REF as diabetes#4, model:regressor@3, model:regressor@production"})
    out.append({"name": "config", "kind": "group key", "type": "text", "runs": None,
                "about": "group by config [except seed]: params but those named, plus inputs"})
    sources = ["runs", "experiments", "notes", "assets", *(f"{k}s" for k in ASSET_KINDS),
               "upstream of REF", "downstream of REF"]
    for src in dict.fromkeys(sources):
        out.append({"name": src, "kind": "source", "type": None, "runs": None,
                    "about": "what a query starts from"})
    return out
