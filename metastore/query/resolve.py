"""Names → fields: what `rmse`, `metrics.rmse`, `loss.min` or `` `train/loss` `` mean.

A bare name is, in this order of precedence:
1. an attribute of the source's rows (for runs: id, number, status, started …);
2. else a metric, a param or a tag, looked up in the store's catalog (the keys that
   exist). A name that is more than one of these is ambiguous and the error offers the
   qualified forms `metrics.x`, `params.x`, `tags.x`;
3. else, for a metric, a name ending in `.min`, `.max`, `.first`, `.last`, `.count`,
   `.mean` or `.last_step` is that aggregate of the metric's history.

Without a store (`metastore.compile`) the catalog is open: a name that is not an
attribute compiles to a lookup that tries metrics, then params, then tags at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from metastore.query import ast
from metastore.query.catalog import OPEN_CATALOG, Catalog  # noqa: F401 - resolved against
from metastore.query.errors import at, closest
from metastore.vocabulary import ASSET_KINDS

HISTORY = ("min", "max", "first", "last", "count", "mean", "last_step")
QUALIFIERS = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "tags": "tag",
    "tag": "tag",
}

# Attributes per row kind: name -> value type (number, int, text, time, bool).
RUN_ATTRS = {
    "id": "text",
    "number": "int",
    "name": "text",
    "ref": "text",
    "status": "text",
    "experiment": "text",
    "project": "text",
    "started": "time",
    "ended": "time",
    "duration": "number",
    "user": "text",
    "host": "text",
    "commit": "text",
    "branch": "text",
    "dirty": "bool",
    "command": "text",
    "parent": "text",
    "source": "text",
    "note": "text",
}
NOTE_ATTRS = {
    "id": "int",
    "run": "text",
    "experiment": "text",
    "number": "int",
    "kind": "text",
    "author": "text",
    "time": "time",
    "created": "time",
    "text": "text",
}
EXPERIMENT_ATTRS = {
    "id": "int",
    "name": "text",
    "project": "text",
    "description": "text",
    "created": "time",
    "runs": "int",
}
VERSION_ATTRS = {
    "id": "text",
    "kind": "text",
    "name": "text",
    "ref": "text",
    "asset": "text",
    "version": "int",
    "latest": "bool",
    "alias": "text",
    "digest": "text",
    "size": "int",
    "uri": "text",
    "media_type": "text",
    "created": "time",
    "created_by": "text",
    "project": "text",
}
NODE_ATTRS = {
    "type": "text",
    "id": "text",
    "kind": "text",
    "name": "text",
    "ref": "text",
    "depth": "int",
    # runs
    "number": "int",
    "status": "text",
    "experiment": "text",
    "started": "time",
    "ended": "time",
    # asset versions
    "asset": "text",
    "version": "int",
    "digest": "text",
    "size": "int",
    "uri": "text",
    "media_type": "text",
    "created": "time",
    "created_by": "text",
    "alias": "text",
}
ATTRS = {"run": RUN_ATTRS, "experiment": EXPERIMENT_ATTRS, "version": VERSION_ATTRS, "node": NODE_ATTRS,
         "note": NOTE_ATTRS}

PLURALS = {f"{k}s": k for k in ASSET_KINDS} | {"datasets": "dataset", "models": "model"}


@dataclass(frozen=True)
class SourceKind:
    """What the rows of a source are: runs, experiments, asset versions (optionally of
    one kind), or lineage nodes."""

    rows: str  # run | experiment | version | node | note
    asset_kind: str | None = None


def source_kind(source: ast.EntitySource, text: str) -> SourceKind:
    name = source.name
    if name in ("runs", "run"):
        return SourceKind("run")
    if name in ("experiments", "experiment"):
        return SourceKind("experiment")
    if name in ("notes", "note", "events"):
        return SourceKind("note")
    if name in ("assets", "asset", "versions"):
        return SourceKind("version")
    if name in PLURALS:
        return SourceKind("version", PLURALS[name])
    if name in ASSET_KINDS:
        return SourceKind("version", name)
    known = ["runs", "experiments", "notes", "assets", *sorted(PLURALS)]
    found = closest(name, known)
    hint = (
        "did you mean " + " or ".join(repr(c) for c in found) + "?"
        if found
        else "a query starts with runs, experiments, assets, models, datasets …, "
        "or upstream of / downstream of"
    )
    raise at(f"unknown source {name!r}", text, source.pos, hint)


REF_KINDS = ("run", *ASSET_KINDS)
#: The prefix of the metrics metastore records itself (system.cost, system.rss_mb …):
#: a query may name them without it when nothing else has the short name.
SYSTEM = "system."


def check_ref(ref: ast.Ref, text: str) -> None:
    if ref.kind not in REF_KINDS:
        found = closest(ref.kind, REF_KINDS)
        raise at(
            f"unknown lineage reference {ref.kind!r}",
            text,
            ref.pos,
            ("did you mean " + " or ".join(repr(c) for c in found) + "?")
            if found
            else f"name a run (diabetes#4, run 4) or an asset version ({ASSET_KINDS[0]}:NAME@VERSION)",
        )
    if ref.kind == "run" and ref.version is not None:
        raise at("a run has no versions", text, ref.pos, "write diabetes#4 or run 4")
    if ref.kind != "run" and isinstance(ref.value, int):
        raise at(
            f"name the {ref.kind} with a string", text, ref.pos, f'e.g. {ref.kind} "{ref.value}"'
        )




# ---- bindings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attr:
    name: str
    type: str


@dataclass(frozen=True)
class MetricRef:
    key: str
    agg: str = "last"


@dataclass(frozen=True)
class ParamRef:
    key: str


@dataclass(frozen=True)
class TagRef:
    key: str


@dataclass(frozen=True)
class AnyRef:
    """Open catalog: metric, else param, else tag, decided by the data."""

    key: str


Binding = Attr | MetricRef | ParamRef | TagRef | AnyRef


def bind(f: ast.Field, rows: str, catalog: Catalog, text: str) -> Binding:
    """What a name means for rows of kind `rows`; raises QueryError with suggestions."""
    attrs = ATTRS[rows]
    parts = f.parts
    has_run = rows in ("run", "version", "node", "note")  # rows that reach a run's metrics/params
    # 1. qualified: metrics.x, params.x, tags.x (x may itself contain dots)
    if len(parts) >= 2 and parts[0].lower() in QUALIFIERS and not (f.quoted and f.quoted[0]):
        what = QUALIFIERS[parts[0].lower()]
        rest = parts[1:]
        if what == "metric":
            return _metric(f, rest, catalog, text, rows)
        key = ".".join(rest)
        known = catalog.params if what == "param" else catalog.tag_keys(rows)
        if what == "param" and not has_run:
            raise at(f"{_rows_name(rows)} have no params", text, f.pos)
        if not catalog.open and key not in known:
            raise _unknown(f, key, what, sorted(known), text)
        return ParamRef(key) if what == "param" else TagRef(key)
    name = ".".join(parts)
    # 2. attributes
    if len(parts) == 1 and not f.quoted[0] and name.lower() in attrs:
        return Attr(name.lower(), attrs[name.lower()])
    if rows == "experiment":
        # experiments have tags, nothing else
        if catalog.open or name in catalog.tag_keys(rows):
            return TagRef(name)
        raise _unknown(f, name, "field", [*attrs, *catalog.tag_keys(rows)], text)
    if catalog.open:
        if len(parts) >= 2 and parts[-1] in HISTORY and not f.quoted[-1]:
            return MetricRef(".".join(parts[:-1]), parts[-1])
        return AnyRef(name)
    hits = []
    if name in catalog.metrics:
        hits.append(("metrics", MetricRef(name)))
    if name in catalog.params:
        hits.append(("params", ParamRef(name)))
    if name in catalog.tag_keys(rows):
        hits.append(("tags", TagRef(name)))
    if len(hits) == 1:
        return hits[0][1]
    if len(hits) > 1:
        forms = " or ".join(f"{q}.{_quote(name)}" for q, _ in hits)
        kinds = " and a ".join(q[:-1] for q, _ in hits)
        raise at(f"{name!r} is both a {kinds}", text, f.pos, f"say which: {forms}")
    # 3. a system metric by its short name when nothing else has it: cost, rss_mb
    if f"{SYSTEM}{name}" in catalog.metrics:
        return MetricRef(f"{SYSTEM}{name}")
    # 4. history aggregate: loss.min (and cost.max for system.cost)
    if len(parts) >= 2 and parts[-1].lower() in HISTORY and not f.quoted[-1]:
        base = ".".join(parts[:-1])
        if base not in catalog.metrics and f"{SYSTEM}{base}" in catalog.metrics:
            return MetricRef(f"{SYSTEM}{base}", parts[-1].lower())
        return _metric(f, parts, catalog, text, rows)
    _check_suffix(f, parts, catalog, text)
    raise _unknown(f, name, "field", _candidates(rows, catalog), text)


def _check_suffix(f: ast.Field, parts: tuple[str, ...], catalog: Catalog, text: str) -> None:
    """`loss.mn` where loss is a metric: say which history values there are."""
    if len(parts) < 2 or f.quoted[-1] or ".".join(parts[:-1]) not in catalog.metrics:
        return
    base, suffix = ".".join(parts[:-1]), parts[-1]
    found = closest(suffix.lower(), HISTORY)
    hint = f"did you mean {base}.{found[0]}? " if found else ""
    raise at(f"metric {base!r} has no history value {suffix!r}", text, f.pos,
             hint + "a metric's history values are " + ", ".join(f"{base}.{h}" for h in HISTORY))


def _metric(f: ast.Field, parts: tuple[str, ...], catalog: Catalog, text: str, rows: str) -> MetricRef:
    if rows == "experiment":
        raise at("experiments have no metrics", text, f.pos)
    key = ".".join(parts)
    if catalog.open or key in catalog.metrics:
        return MetricRef(key)
    if len(parts) >= 2 and parts[-1].lower() in HISTORY:
        base = ".".join(parts[:-1])
        if catalog.open or base in catalog.metrics:
            return MetricRef(base, parts[-1].lower())
        raise _unknown(f, base, "metric", sorted(catalog.metrics), text)
    _check_suffix(f, parts, catalog, text)
    raise _unknown(f, key, "metric", sorted(catalog.metrics), text)


def _candidates(rows: str, catalog: Catalog) -> list[str]:
    out = list(ATTRS[rows])
    if rows != "experiment":
        out += sorted(catalog.metrics) + sorted(catalog.params)
    out += sorted(catalog.tag_keys(rows))
    return out


def _unknown(f: ast.Field, name: str, what: str, candidates, text: str):
    found = closest(name, candidates)
    hint = ("did you mean " + " or ".join(repr(c) for c in found) + "?") if found else None
    label = "unknown field" if what == "field" else f"no {what} named"
    return at(f"{label} {name!r}", text, f.pos, hint)


def _quote(name: str) -> str:
    if name.replace("_", "a").isalnum() and not name[0].isdigit():
        return name
    return "`" + name.replace("`", "``") + "`"


def _rows_name(rows: str) -> str:
    return {"run": "runs", "experiment": "experiments", "version": "assets", "node": "lineage nodes"}[rows]
