"""The page handlers: gather through the Store, render a template.

Every piece of a view lives in its URL (experiment, chosen columns, sort, query, runs
compared, lineage direction and depth), so any view can be bookmarked or sent to a
colleague and reproduces exactly.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import networkx as nx
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from metastore.errors import MetastoreError, NotFound
from metastore.server.ui import charts, data, graph
from metastore.server.ui.format import FILTERS, lower_is_better, short_digest

MAX_COMPARE = 10
# A browser stays quick up to a few hundred rows; beyond, the page offers the rest.
MAX_TABLE_ROWS = 500
MAX_QUERY_LENGTH = 10_000
#: Seconds the query box's suggestions reuse the store's names of an experiment.
SUGGEST_NAMES_FOR = 10.0
#: Points drawn per metric history chart: longer histories are downsampled (extremes kept).
CHART_POINTS = 1000
LINEAGE_DIRECTIONS = ("both", "upstream", "downstream")
KIND_TITLES = {"model": "Models", "dataset": "Datasets"}


def make_env() -> Environment:
    env = Environment(
        loader=PackageLoader("metastore.server.ui", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals.update(
        run_url=run_url, version_url=version_url, asset_url=asset_url,
        experiment_url=experiment_url, lineage_url=lineage_url, quote=quote,
    )
    return env


# -- URLs: one place that knows them ----------------------------------------------------


def experiment_url(name: str, **params: Any) -> str:
    query = urlencode([(k, v) for k, vs in params.items() for v in _as_list(vs)])
    return f"/experiments/{quote(name, safe='')}" + (f"?{query}" if query else "")


def run_url(run_id: str) -> str:
    return f"/runs/{quote(str(run_id), safe='')}"


def version_url(version_id: str) -> str:
    return f"/versions/{quote(str(version_id), safe='')}"


def asset_url(kind: str, name: str) -> str:
    return f"/assets/{quote(kind, safe='')}/{quote(name, safe='')}"


def lineage_url(node_type: str, node_id: str, direction: str = "both", depth: int = 3) -> str:
    return f"/lineage/{node_type}/{quote(str(node_id), safe='')}?direction={direction}&depth={depth}"


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


# -- lineage through the Store interface ------------------------------------------------


#: Edges drawn per direction: a hub's thousands of edges come a page at a time.
LINEAGE_PAGE = 300


def lineage_graph(store, ref, direction: str, depth: int | None, cursor: str | None = None,
                  count: bool = False) -> nx.DiGraph:
    """One page of `store.lineage` around a run or version handle ("both" walks both
    ways): the nearest LINEAGE_PAGE edges per direction."""
    return store.lineage(ref, direction=direction, depth=depth, limit=LINEAGE_PAGE,
                         cursor=cursor, count=count)


def node_href(attrs: dict) -> str | None:
    node_id = attrs.get("id")
    if node_id is None:
        return None
    return run_url(node_id) if attrs.get("kind") == "run" else version_url(node_id)


def _focus(g: nx.DiGraph, node_id: str):
    return next((n for n, a in g.nodes(data=True) if str(a.get("id")) == str(node_id)), None)


def _run_node_ids(g: nx.DiGraph, exclude: str | None = None) -> list[str]:
    return [
        a["id"] for _, a in g.nodes(data=True)
        if a.get("kind") == "run" and a.get("id") and a.get("id") != exclude
    ]


# -- the router -------------------------------------------------------------------------


def make_router(store, signed_in: Callable[[], bool] = lambda: False) -> APIRouter:
    """The pages for `store`; `signed_in()` says whether the server asks for tokens
    (then the top bar offers to sign out)."""
    env = make_env()
    router = APIRouter(include_in_schema=False)

    def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("store_url", getattr(store, "url", ""))
        ctx.setdefault("signed_in", signed_in())
        ctx["request"] = request
        return HTMLResponse(env.get_template(template).render(**ctx), status_code=status)

    def page(fn: Callable) -> Callable:
        """A user's mistake (unknown run, bad reference) gets a page saying so, not a 500."""

        @wraps(fn)
        def wrapper(request: Request, *args, **kwargs):
            try:
                return fn(request, *args, **kwargs)
            except MetastoreError as e:
                status = 404 if isinstance(e, NotFound) else 400
                return render(
                    request, "error.html", status=status, title="Not found" if status == 404
                    else "Cannot show this", message=e.message, hint=e.hint,
                )

        return wrapper

    @router.get("/", response_class=HTMLResponse)
    @page
    def home(request: Request):
        experiments = []
        by_experiment = data.runs_by_experiment(store)
        for exp in store.experiments():
            rows = by_experiment.get(exp.name, [])
            metric = data.primary_metric(rows)
            experiments.append(
                {
                    "name": exp.name,
                    "description": exp.description,
                    "runs": len(rows),
                    "failed": sum(1 for r in rows if r.status in ("failed", "crashed")),
                    "running": sum(1 for r in rows if r.status == "running"),
                    "last": max((r.started for r in rows), default=None),
                    "metric": metric,
                    "best": data.best_run(rows, metric),
                }
            )
        counts: dict[str, int] = {}
        for asset in store.assets():
            counts[asset.kind] = counts.get(asset.kind, 0) + 1
        return render(request, "home.html", title="Experiments", experiments=experiments,
                      asset_counts=counts)

    @router.get("/experiments/{name:path}", response_class=HTMLResponse)
    @page
    def experiment(
        request: Request,
        name: str,
        q: str = "",
        cols: list[str] = Query(default=[]),
        sort: str = "",
        desc: int = 0,
        show_all: int = Query(default=0, alias="all"),
    ):
        store.get_experiment(name)
        rows = data.load_runs(store, name)
        primary = data.primary_metric(rows)
        chosen = [c for c in cols if c] or data.default_columns(rows)
        columns = data.make_columns(chosen, rows)
        if not sort and primary:
            sort, desc = f"metrics.{primary}", int(not lower_is_better(primary))
        valid = {c.key for c in columns} | {"number", "name", "status", "started", "duration"}
        if sort not in valid:
            sort = ""
        shown = data.sort_rows(rows, sort, bool(desc))
        total = len(shown)
        if not show_all:
            shown = shown[:MAX_TABLE_ROWS]
        best = data.best_run(rows, primary)
        overview = None
        if best is not None:
            overview = charts.overview(
                [
                    charts.Point(r.number, r.metrics.get(primary), f"#{r.number} {r.name or ''}",
                                 "#13795b" if r.id == best.id else "#4e79a7", run_url(r.id),
                                 r.id == best.id)
                    for r in rows
                ],
                metric=primary, lower_better=lower_is_better(primary),
            )
        view = {"cols": chosen if cols else [], "sort": sort, "desc": desc}

        def sort_link(key: str) -> str:
            flip = int(not desc) if key == sort else int(
                key.startswith("metrics.") and not lower_is_better(key.partition(".")[2])
            )
            return experiment_url(name, q=q or None, cols=view["cols"], sort=key, desc=flip)

        result = error = None
        q = q.strip()
        if q:
            if len(q) > MAX_QUERY_LENGTH:
                error = {"message": f"the query is longer than {MAX_QUERY_LENGTH} characters"}
            else:
                try:
                    result = _query_table(store, q, name, rows)
                except MetastoreError as e:
                    error = _query_error(e, q)
        return render(
            request, "experiment.html", title=name, experiment=name, rows=shown, total=total,
            all_link=experiment_url(name, cols=view["cols"], sort=sort or None,
                                    desc=desc if sort else None, all=1),
            columns=columns, groups=data.column_groups(columns), sort=sort, desc=desc, sort_link=sort_link, best=best,
            primary=primary, overview=overview, primary_lower=bool(primary and lower_is_better(primary)),
            best_values=data.best_values(rows, columns), q=q,
            result=result, error=error,
            permalink=experiment_url(name, q=q or None, cols=view["cols"], sort=sort or None,
                                     desc=desc if sort else None),
            param_keys=data.all_keys(rows, "params"), metric_keys=data.all_keys(rows, "metrics"),
            chosen=set(chosen), examples=_examples(rows, primary),
        )

    # The store's names per experiment, for the query box: `fields` reads every run of
    # the experiment (most of a second at 5,000 runs), too slow for each keystroke, and
    # names come and go far more slowly than anyone types. Kept SUGGEST_NAMES_FOR seconds.
    names: dict[str | None, tuple[float, list[tuple[str, str]]]] = {}

    def vocabulary(experiment: str | None) -> list[tuple[str, str]]:
        now = time.monotonic()
        kept = names.get(experiment)
        if kept is None or now - kept[0] > SUGGEST_NAMES_FOR:
            try:
                found = [(f["name"], f["kind"]) for f in store.fields(experiment)]
            except MetastoreError:  # no such experiment (any more): the language's words only
                found = []
            if len(names) > 100:
                names.clear()
            names[experiment] = kept = (now, found)
        return kept[1]

    @router.get("/suggest")
    def suggest_words(experiment: str | None = None, q: str = "", at: int | None = None) -> JSONResponse:
        """What may come next at `at` in the query box's text `q` (query/suggest.py): the
        store's names in `experiment`, the language's words, references."""
        from metastore.completion import references
        from metastore.query.suggest import suggest

        if len(q) > MAX_QUERY_LENGTH:
            return JSONResponse({"start": 0, "items": []})
        found = suggest(q, at, vocabulary(experiment), refs=lambda word: references(store, word))
        return JSONResponse(found.to_dict())

    @router.get("/runs/{ref:path}", response_class=HTMLResponse)
    @page
    def run_page(request: Request, ref: str):
        run = store.get_run(ref)
        summaries = run.metric_summary()
        charts_ = []
        for key, s in summaries.items():
            if s.count > 1:
                # downsampled: a million points would make a page of megabytes
                history = run.metric_series(key, max_points=CHART_POINTS)
                charts_.append(
                    (key, charts.line_chart(
                        [charts.Series(key, list(zip(history.steps.tolist(),
                                                     history.values.tolist(), strict=True)))],
                        y_title=key,
                    ))
                )
        inputs, outputs = run.inputs, run.outputs
        environment = next((v for v in inputs if v.kind == "environment"), None)
        packages = _read_text(environment) if environment else None
        neighbourhood, lineage_error = None, None
        reproduces, reproduced_by = [], []  # (ref, run id) by `reproduces` edges
        try:
            g = lineage_graph(store, run, "both", 1)
            neighbourhood = graph.draw(g, node_href, focus=_focus(g, run.id))
            me = _focus(g, run.id)
            for u, v, e in g.edges(data=True):
                if e.get("relation") == "reproduces":
                    if v == me:
                        reproduces.append((u, g.nodes[u].get("id")))
                    elif u == me:
                        reproduced_by.append((v, g.nodes[v].get("id")))
        except (MetastoreError, ImportError) as e:
            lineage_error = getattr(e, "message", str(e))
        siblings = sorted(store.runs(run.experiment), key=lambda r: r.number)
        numbers = [r.number for r in siblings]
        idx = numbers.index(run.number) if run.number in numbers else -1
        prev_run = siblings[idx - 1] if idx > 0 else None
        next_run = siblings[idx + 1] if 0 <= idx < len(siblings) - 1 else None
        return render(
            request, "run.html", title=f"{run.experiment} #{run.number}", run=run,
            params=run.params, summaries=summaries, charts=charts_, inputs=inputs,
            outputs=outputs, notes=run.notes, tags=run.tags, context=run.context,
            packages=packages, environment=environment,
            package_count=sum(1 for line in (packages or "").splitlines()
                              if line.strip() and not line.startswith("#")), neighbourhood=neighbourhood,
            lineage_error=lineage_error, prev_run=prev_run, next_run=next_run,
            lower_is_better=lower_is_better, aliases=_aliases_by_version(store.aliases()),
            reproduces=reproduces, reproduced_by=reproduced_by,
        )

    @router.get("/compare", response_class=HTMLResponse)
    @page
    def compare(
        request: Request,
        runs: list[str] = Query(default=[]),
        x: str = "",
        y: str = "",
    ):
        refs = [r for item in runs for r in item.split(",") if r.strip()]
        refs = list(dict.fromkeys(r.strip() for r in refs))
        if not 2 <= len(refs) <= MAX_COMPARE:
            raise MetastoreError(
                f"compare takes 2 to {MAX_COMPARE} runs, got {len(refs)}",
                hint="tick the runs to compare in an experiment's runs table",
            )
        handles = [store.get_run(r) for r in refs]
        experiments = sorted({h.experiment for h in handles})
        all_rows = {e: data.load_runs(store, e) for e in experiments}
        by_id = {r.id: r for rows in all_rows.values() for r in rows}
        picked = [by_id[h.id] for h in handles]
        colors = [charts.color(i) for i in range(len(picked))]
        param_rows = data.compare_params(picked)
        metric_rows = data.compare_metrics(picked)
        history_charts = []
        summaries = {h.id: h.metric_summary() for h in handles}
        histories = {h.id: h.metric_series for h in handles}
        for key in data.all_keys(picked, "metrics"):
            series = []
            for run, c in zip(picked, colors, strict=True):
                summary = summaries[run.id].get(key)
                if summary is not None and summary.count > 1:
                    h = histories[run.id](key, max_points=CHART_POINTS)
                    pts = list(zip(h.steps.tolist(), h.values.tolist(), strict=True))
                    series.append(charts.Series(f"#{run.number}", pts, c, run_url(run.id)))
            if series:
                history_charts.append((key, charts.line_chart(series, y_title=key)))
        everyone = [r for rows in all_rows.values() for r in rows]
        metric_keys = [k for k in data.all_keys(picked, "metrics")]
        param_keys = data.all_keys(picked, "params")
        differing = [r.key for r in param_rows if r.differs]
        y = y if y in metric_keys else (data.primary_metric(picked) or "")
        if x not in param_keys:
            x = _telling_param(differing or param_keys, picked)
        scatter = None
        if x and y:
            chosen_ids = {r.id: i for i, r in enumerate(picked)}
            points = [
                charts.Point(
                    r.params.get(x), r.metrics.get(y), f"#{r.number} {r.name or ''}".strip(),
                    colors[chosen_ids[r.id]] if r.id in chosen_ids else "#9aa5b1",
                    run_url(r.id), r.id in chosen_ids,
                )
                for r in everyone
            ]
            scatter = charts.scatter(points, x_title=x, y_title=y)
        # axes where the compared runs really differ: a param two runs share a value
        # of, or a metric some run lacks, would only add clutter
        axes = [
            charts.Axis(k, [r.params.get(k) for r in picked])
            for k in differing if _distinct(r.params.get(k) for r in picked) > 1
        ][:8]
        axes += [
            charts.Axis(m.key, list(m.values)) for m in metric_rows
            if m.differs and not m.key.startswith("system.") and None not in m.values
        ][:4]
        lines = [
            charts.Series(f"#{r.number} {r.name or ''}".strip(), [], c, run_url(r.id))
            for r, c in zip(picked, colors, strict=True)
        ]
        parallel = charts.parallel_coordinates(axes, lines)
        return render(
            request, "compare.html", title=f"Compare {len(picked)} runs", runs=picked,
            colors=colors, param_rows=param_rows, metric_rows=metric_rows,
            history_charts=history_charts, scatter=scatter, parallel=parallel, x=x, y=y,
            param_keys=param_keys, metric_keys=metric_keys, refs=refs,
            experiments=experiments,
        )

    @router.get("/lineage/{node_type}/{node_id:path}", response_class=HTMLResponse)
    @page
    def lineage(
        request: Request, node_type: str, node_id: str, direction: str = "both", depth: int = 3,
        cursor: str | None = None,
    ):
        if direction not in LINEAGE_DIRECTIONS:
            raise MetastoreError(f"direction is one of {', '.join(LINEAGE_DIRECTIONS)}")
        depth = max(1, min(depth, 20))
        if node_type == "run":
            ref = store.get_run(node_id)
            subject = {"kind": "run", "title": f"{ref.experiment} #{ref.number}",
                       "name": ref.name, "href": run_url(ref.id), "id": ref.id}
        elif node_type == "version":
            ref = _version(store, node_id)
            subject = {"kind": ref.kind, "title": f"{ref.name} v{ref.version}",
                       "name": short_digest(ref.digest),
                       "href": version_url(ref.id), "id": ref.id}
        else:
            raise NotFound(f"no lineage page for {node_type!r}; use run or version")
        if direction == "both":
            cursor = None
        g = lineage_graph(store, ref, direction, depth, cursor, count=True)
        svg = graph.draw(g, node_href, focus=_focus(g, ref.id))
        next_cursor = g.graph.get("next_cursor")
        next_url = (f"{lineage_url(node_type, ref.id, direction, depth)}&cursor={next_cursor}"
                    if next_cursor else None)
        kinds: dict[str, int] = {}
        for _, a in g.nodes(data=True):
            kinds[graph.node_kind(a)] = kinds.get(graph.node_kind(a), 0) + 1
        return render(
            request, "lineage.html", title=f"Lineage of {subject['title']}", subject=subject,
            svg=svg, direction=direction, depth=depth, node_type=node_type, node_id=ref.id,
            nodes=g.number_of_nodes(), edges=g.number_of_edges(), kinds=kinds,
            directions=LINEAGE_DIRECTIONS, edge_count=g.graph.get("edge_count"),
            more=g.graph.get("more"), next_url=next_url, paged=cursor is not None,
        )

    @router.get("/assets", response_class=HTMLResponse)
    @page
    def assets(request: Request, kind: str = ""):
        groups: dict[str, list] = {}
        for asset in store.assets(kind or None):
            versions = store.versions(asset.kind, asset.name)
            latest = versions[-1] if versions else None
            producer = None
            if latest is not None and latest.created_by:
                try:
                    producer = store.get_run(latest.created_by)
                except MetastoreError:
                    producer = None
            groups.setdefault(asset.kind, []).append(
                {"asset": asset, "versions": versions, "latest": latest, "producer": producer,
                 "total": sum(v.size or 0 for v in versions)}
            )
        order = sorted(groups, key=lambda k: ({"model": 0, "dataset": 1}.get(k, 2), k))
        return render(
            request, "assets.html", title="Assets", groups=[(k, groups[k]) for k in order],
            kind=kind, kind_titles=KIND_TITLES,
        )

    @router.get("/assets/{kind}/{name:path}", response_class=HTMLResponse)
    @page
    def asset(request: Request, kind: str, name: str):
        versions = store.versions(kind, name)
        rows = [_version_info(store, v) for v in versions]
        return render(
            request, "asset.html", title=f"{kind}: {name}", kind=kind, name=name,
            rows=list(reversed(rows)),
            aliases=_aliases_by_version(store.aliases(f"{kind}:{name}")) if rows else {},
        )

    @router.get("/versions/{version_id}", response_class=HTMLResponse)
    @page
    def version(request: Request, version_id: str):
        v = _version(store, version_id)
        info = _version_info(store, v)
        preview = None
        if (v.media_type or "").startswith(("text/", "application/json")) or v.kind in (
            "environment", "config"
        ):
            preview = _read_text(v, limit=20_000)
        aliases = [a for a in store.aliases(f"{v.kind}:{v.name}") if a.version_id == v.id]
        return render(request, "version.html", title=v.ref, v=v, info=info, preview=preview,
                      aliases=aliases)

    @router.get("/versions/{version_id}/download")
    @page
    def download(request: Request, version_id: str):
        v = _version(store, version_id)
        filename = v.meta.get("filename") or f"{v.name}-v{v.version}"
        if v.is_directory:
            return _zip_directory(v, filename)
        if v.uri != "blob:" and not v.uri.startswith("file://"):
            raise MetastoreError(
                f"{v.ref} is stored outside metastore, at {v.uri}",
                hint="fetch it with the tool that owns that location",
            )
        stream = v.open()
        return StreamingResponse(
            _chunks(stream),
            media_type=v.media_type or "application/octet-stream",
            headers={"Content-Disposition": _attachment(filename),
                     **({"Content-Length": str(v.size)} if v.size is not None else {})},
        )

    return router


# -- helpers ----------------------------------------------------------------------------


def _distinct(values) -> int:
    return len({json.dumps(v, sort_keys=True, default=str) for v in values if v is not None})


def _telling_param(keys: list[str], runs: list[data.RunRow]) -> str:
    """The param to plot first: the one taking the most values among the compared runs,
    numeric before text on a tie."""
    if not keys:
        return ""

    def score(k):
        values = [r.params.get(k) for r in runs]
        return (_distinct(values), data.is_numeric(values))

    return max(keys, key=score)


def _version(store, version_id: str):
    from metastore.handles import VersionHandle

    # The Store API names versions by kind, name and number; by id is the primitive's.
    return VersionHandle(store.backend, *store.backend.get_version_by_id(version_id))


def _aliases_by_version(aliases) -> dict[str, list[str]]:
    """version id → the aliases pointing at it now."""
    out: dict[str, list[str]] = {}
    for a in aliases:
        out.setdefault(a.version_id, []).append(a.alias)
    return out


def _version_info(store, v) -> dict:
    """A version with the runs that produced and used it (one lineage hop down)."""
    producer = None
    if v.created_by:
        try:
            producer = store.get_run(v.created_by)
        except MetastoreError:
            producer = None
    users: list = []
    try:
        g = store.lineage(v, direction="downstream", depth=1)
        for run_id in _run_node_ids(g):
            try:
                users.append(store.get_run(run_id))
            except MetastoreError:
                continue
    except (MetastoreError, ImportError):
        users = []
    users = [u for u in users if producer is None or u.id != producer.id]
    return {"v": v, "producer": producer, "users": users}


def _read_text(v, limit: int = 200_000) -> str | None:
    try:
        with v.open() as f:
            raw = f.read(limit + 1)
    except (MetastoreError, OSError):
        return None
    text = raw[:limit].decode("utf-8", errors="replace")
    return text + ("\n…" if len(raw) > limit else "")


def _chunks(stream, size: int = 1 << 16):
    with stream:
        while chunk := stream.read(size):
            yield chunk


def _attachment(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _zip_directory(v, filename: str) -> Response:
    with tempfile.TemporaryDirectory() as tmp:
        folder = v.path(Path(tmp) / "content")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(folder).as_posix())
        shutil.rmtree(folder, ignore_errors=True)
    return Response(
        buffer.getvalue(), media_type="application/zip",
        headers={"Content-Disposition": _attachment(f"{filename}.zip")},
    )


def _query_table(store, text: str, experiment: str, rows: list[data.RunRow]) -> dict:
    """Run a query and shape its answer for the page: each row with the run it is (for
    compare ticks) and links for the cells that name something with a page."""
    result = store.query(text, experiment=experiment)
    columns = list(result.columns)
    records = [dict(r) for r in result]
    by_number = {r.number: r.id for r in rows}
    ids = {r.id for r in rows}
    versions: dict[tuple, str | None] = {}

    def version_id(kind, name, version) -> str | None:
        key = (kind, name, version)
        if key not in versions and len(versions) < 500:
            try:
                versions[key] = store.get_asset(kind, name, int(version)).id
            except (MetastoreError, TypeError, ValueError):
                versions[key] = None
        return versions.get(key)

    shaped = []
    for rec in records:
        run_id = None
        is_version = all(rec.get(k) is not None for k in ("kind", "name", "version"))
        if isinstance(rec.get("id"), str) and rec["id"] in ids:
            run_id = rec["id"]
        elif not is_version and rec.get("number") in by_number and rec.get(
            "experiment", experiment
        ) == experiment:
            run_id = by_number[rec["number"]]
        links: dict[str, str] = {}
        if run_id:
            links.update({c: run_url(run_id) for c in ("number", "name", "id") if c in rec})
        if is_version and rec.get("kind") != "run":
            vid = version_id(rec["kind"], rec["name"], rec["version"])
            links["name"] = asset_url(rec["kind"], rec["name"])
            if vid:
                links["version"] = version_url(vid)
                if "digest" in rec:
                    links["digest"] = version_url(vid)
        if isinstance(rec.get("created_by"), str) and rec["created_by"]:
            links["created_by"] = run_url(rec["created_by"])
        if isinstance(rec.get("experiment"), str):
            links["experiment"] = experiment_url(rec["experiment"])
        shaped.append((run_id, rec, links))
    return {
        "columns": columns,
        "rows": shaped,
        "sql": getattr(result, "sql", None),
        "has_runs": any(run_id for run_id, _, _ in shaped),
        "numeric": {c: data.is_numeric(rec.get(c) for rec in records) for c in columns},
    }


def _query_error(e: MetastoreError, text: str) -> dict:
    """A QueryError's parts for the page; the caret line is rebuilt if not given."""
    line = getattr(e, "line", None)
    column = getattr(e, "column", None)
    caret = getattr(e, "caret", None) or getattr(e, "caret_text", None)
    if not caret and line and column:
        lines = text.splitlines() or [""]
        src = lines[min(line, len(lines)) - 1]
        caret = f"{src}\n{' ' * (column - 1)}^"
    suggestion = getattr(e, "suggestion", None) or e.hint
    message = getattr(e, "message", str(e))
    return {"message": message, "line": line, "column": column, "caret": caret,
            "suggestion": suggestion}


def _examples(rows: list[data.RunRow], primary: str | None) -> list[str]:
    m = primary or "rmse"
    desc = "" if lower_is_better(m) else " desc"
    out = [f"runs order by {m}{desc} limit 5 show number, name, {m}"]
    params = data.varying_params(rows)
    if params:
        out.append(f"runs group by {params[0]} show {params[0]}, count(), mean({m}), min({m})")
        sample = next((r.params[params[0]] for r in rows if params[0] in r.params), None)
        if isinstance(sample, str):
            out.append(f'runs where {params[0]} = {json.dumps(sample)} show number, {m}')
    out.append('runs where status = "failed" show number, name, started')
    return out
