"""Lineage graphs: traversal in SQL, results as networkx graphs.

Edges run in the direction data flows: a dataset version is *used* by a run, the run
*produced* a model version, and a fine-tuned model version is *derived_from* its base
(upstream version → downstream version). "Upstream" walks edges backwards (what made
this?), "downstream" forwards (what did this feed?).

The walk is one recursive CTE over `lineage_edge` (SQLite, PostgreSQL, MySQL/MariaDB):
each row is a node reached. The CTE combines with UNION, not UNION ALL, which discards a
row already produced; that is the cycle protection — an unbounded walk yields and
expands each node once, so it ends even on a cyclic graph, and a depth-bounded walk
yields each node at most once per hop count and stops at the bound. The same query then
reads the edges leaving the nodes reached. Only those edges and their end nodes are read
into Python and become a `networkx.DiGraph`.

Node keys are the human labels: `diabetes#4` for a run (experiment#number) and
`model:regressor@3` for an asset version. Each node carries `kind` ("run" or the asset
kind), `type` ("run" / "asset_version"), `id`, `label`, `depth` (hops from the start) and
the entity's key fields; each edge carries `relation` and `role`.

Soft-deleted runs are left out, together with whatever was reachable only through them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import sqlalchemy as sa

from metastore.errors import Conflict, InvalidValue
from metastore.models import Asset, AssetVersion, Experiment, LineageEdge, Run
from metastore.refs import RUN, VERSION, Node, resolve

if TYPE_CHECKING:
    from metastore.store import Store

DIRECTIONS = ("upstream", "downstream", "both")
_CHUNK = 900  # ids per IN list, below every dialect's limit on parameters
EDGE = LineageEdge.__table__


def _check(direction: str, depth: int | None) -> None:
    if direction not in DIRECTIONS:
        raise InvalidValue(
            f"direction must be upstream, downstream or both, not {direction!r}"
        )
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise InvalidValue(f"depth must be a whole number >= 0 (or None for no limit), not {depth!r}")


# -- the traversal in SQL ---------------------------------------------------------------


def _ends(direction: str) -> tuple[str, str]:
    if direction not in ("upstream", "downstream"):
        raise InvalidValue(f"walk direction is upstream or downstream, not {direction!r}")
    return ("src", "dst") if direction == "downstream" else ("dst", "src")


def walk_cte(starts: Sequence[Node], direction: str, depth: int | None = None) -> sa.CTE:
    """The recursive CTE `walk(node_type, node_id[, depth])`: the nodes reachable from
    `starts` going `direction` ("upstream" or "downstream"), one row per node (per node
    and hop count when `depth` bounds the walk, which then stops `depth` hops out)."""
    near, far = _ends(direction)
    e = EDGE.alias("e")
    start = sa.or_(
        *(sa.and_(e.c[f"{near}_id"] == n.id, e.c[f"{near}_type"] == n.type) for n in starts)
    )
    cols = [e.c[f"{far}_type"].label("node_type"), e.c[f"{far}_id"].label("node_id")]
    if depth is not None:
        # Inline SQL, not a bound parameter: PostgreSQL types a bound int by its value,
        # and a recursive CTE needs the same column type in both of its terms.
        cols.append(sa.literal_column("1").label("depth"))
    walk = sa.select(*cols).where(start).cte("walk", recursive=True)
    n = EDGE.alias("n")
    step = sa.select(n.c[f"{far}_type"], n.c[f"{far}_id"]).where(
        n.c[f"{near}_id"] == walk.c.node_id, n.c[f"{near}_type"] == walk.c.node_type
    )
    if depth is not None:
        step = step.add_columns(walk.c.depth + sa.literal_column("1")).where(
            walk.c.depth < depth
        )
    return walk.union(step)


def walk_query(starts: Sequence[Node], direction: str, depth: int | None = None) -> sa.Select:
    """A SELECT of the distinct edges within `depth` hops of `starts` going `direction`:
    the edges leaving a start or a node `walk_cte` reached less than `depth` hops out.
    Columns: id, src_type, src_id, dst_type, dst_id, relation, role."""
    near, _ = _ends(direction)
    cols = [EDGE.c[c] for c in ("id", "src_type", "src_id", "dst_type", "dst_id", "relation", "role")]
    from_starts = sa.select(*cols).where(
        sa.or_(*(sa.and_(EDGE.c[f"{near}_id"] == n.id, EDGE.c[f"{near}_type"] == n.type)
                 for n in starts))
    )
    if depth == 1:
        return from_starts
    # The walk stops one hop short: the last hop's edges are read from its nodes.
    walk = walk_cte(starts, direction, None if depth is None else depth - 1)
    reached = sa.select(walk.c.node_type, walk.c.node_id)
    if depth is not None:
        reached = reached.distinct()
    reached = reached.subquery("reached")
    from_reached = sa.select(*cols).join(
        reached,
        sa.and_(EDGE.c[f"{near}_id"] == reached.c.node_id,
                EDGE.c[f"{near}_type"] == reached.c.node_type),
    )
    return sa.union(from_starts, from_reached)


def walk_edges(
    conn: sa.Connection | Any, starts: Sequence[Node], direction: str, depth: int | None = None
) -> list[sa.Row]:
    """The edges reachable from `starts` (see `walk_query`), executed on a connection or
    session. Depth 0 reaches nothing."""
    if depth == 0 or not starts:
        return []
    _allow_deep_recursion(conn)
    return list(conn.execute(walk_query(starts, direction, depth)))


def _allow_deep_recursion(conn) -> None:
    """MariaDB stops a recursive CTE after 1000 iterations (one per hop) and MySQL fails
    it: lift the limit for this session, since the walk ends anyway (see module doc)."""
    dialect = conn.get_bind().dialect if hasattr(conn, "get_bind") else conn.dialect
    if dialect.name not in ("mysql", "mariadb"):
        return
    variable = "max_recursive_iterations" if dialect.is_mariadb else "cte_max_recursion_depth"
    conn.execute(sa.text(f"SET SESSION {variable} = 4294967295"))


def reaches(conn, source: Node, target: Node) -> bool:
    """Whether data flows from `source` to `target` along recorded edges (any depth)."""
    if source == target:
        return True
    _allow_deep_recursion(conn)
    walk = walk_cte([source], "downstream")
    hit = (
        sa.select(sa.literal_column("1"))
        .where(walk.c.node_id == target.id, walk.c.node_type == target.type)
        .limit(1)
    )
    return conn.execute(hit).first() is not None


def check_no_cycle(conn, upstream: Node, downstream: Node) -> None:
    """Refuse an edge upstream → downstream that would close a cycle."""
    if upstream == downstream:
        raise Conflict("an asset version cannot be derived from itself")
    if reaches(conn, downstream, upstream):
        raise Conflict(
            "this link would make a lineage cycle: the upstream already derives from the"
            " downstream",
            hint="lineage edges point the way data flows; did you swap upstream and downstream?",
        )


# -- graphs -----------------------------------------------------------------------------


def lineage_graph(
    store: Store,
    ref,
    direction: str = "upstream",
    depth: int | None = None,
    experiment: str | None = None,
) -> nx.DiGraph:
    """The lineage around `ref` (a run or asset version, see `metastore.refs`) as a
    networkx.DiGraph whose edges point the way data flows."""
    _check(direction, depth)
    refs = ref if isinstance(ref, list | tuple | set) else [ref]
    roots = [resolve(store, r, experiment) for r in refs]
    directions = ["upstream", "downstream"] if direction == "both" else [direction]
    with store.read() as s:
        rows: dict[int, sa.Row] = {}
        for d in directions:
            for row in walk_edges(s, roots, d, depth):
                rows[row.id] = row
        graph = _build(s, roots, rows.values())
    graph.graph.update(direction=direction, depth=depth)
    _set_depths(graph, directions)
    return graph


def path(store: Store, a, b, experiment: str | None = None) -> nx.DiGraph | None:
    """The shortest lineage path between two nodes, in data-flow order (from `a` to `b`
    when `b` is downstream of `a`, else from `b` to `a`), or None when neither is
    upstream of the other. `list(graph)` gives the nodes in order."""
    na, nb = resolve(store, a, experiment), resolve(store, b, experiment)
    with store.read() as s:
        # Walk upstream from each end: a node's ancestry is small next to what a popular
        # dataset feeds, so this is the cheap way to find a path.
        for first, last in ((na, nb), (nb, na)):
            rows = walk_edges(s, [last], "upstream")
            ancestry = _build(s, [last], rows)
            keys = {ancestry.nodes[k]["id"]: k for k in ancestry}
            if (first.id in keys and last.id in keys
                    # not when the way led only through a deleted run
                    and nx.has_path(ancestry, keys[first.id], keys[last.id])):
                order = nx.shortest_path(ancestry, keys[first.id], keys[last.id])
                result = nx.DiGraph(roots=[order[0]], direction="path", depth=None)
                for key in order:
                    result.add_node(key, **ancestry.nodes[key])
                for u, v in zip(order, order[1:], strict=False):
                    result.add_edge(u, v, **ancestry.edges[u, v])
                for i, key in enumerate(order):
                    result.nodes[key]["depth"] = i
                return result
            if first == last:
                break
    return None


def _build(s, roots: Sequence[Node], rows: Iterable[sa.Row]) -> nx.DiGraph:
    # Plain (type, id) tuples, not Node objects: a large walk makes hundreds of
    # thousands of them.
    rows = list(rows)
    keys = dict.fromkeys((n.type, n.id) for n in roots)  # an ordered set, roots first
    for r in rows:
        keys[(r.src_type, r.src_id)] = None
        keys[(r.dst_type, r.dst_id)] = None
    attrs = _node_attributes(s, keys)
    graph = nx.DiGraph()
    graph.add_nodes_from((attrs[k]["label"], attrs[k]) for k in keys if k in attrs)
    graph.graph["roots"] = [attrs[k]["label"] for k in ((n.type, n.id) for n in roots) if k in attrs]
    edges = []
    for r in sorted(rows, key=lambda r: r.id):
        u, v = attrs.get((r.src_type, r.src_id)), attrs.get((r.dst_type, r.dst_id))
        if u is not None and v is not None:  # else a deleted run, or a purged row
            edges.append((u["label"], v["label"], {"relation": r.relation, "role": r.role}))
    graph.add_edges_from(edges)
    return graph


def _set_depths(graph: nx.DiGraph, directions: list[str]) -> None:
    """Hops from the nearest root; nodes only reachable through a deleted run are dropped."""
    best: dict[str, int] = {}
    for d in directions:
        view = graph if d == "downstream" else graph.reverse(copy=False)
        for root in graph.graph["roots"]:
            for key, hops in nx.single_source_shortest_path_length(view, root).items():
                best[key] = min(hops, best.get(key, hops))
    graph.remove_nodes_from([k for k in list(graph) if k not in best])
    for key, hops in best.items():
        graph.nodes[key]["depth"] = hops


def _node_attributes(s, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    run_ids = sorted(i for t, i in keys if t == RUN)
    version_ids = sorted(i for t, i in keys if t == VERSION)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for chunk in _chunks(run_ids):
        q = (
            sa.select(Run.id, Run.number, Run.name, Run.status, Run.started, Run.git_commit,
                      Experiment.name.label("experiment"))
            .join(Experiment, Experiment.id == Run.experiment_id)
            .where(Run.id.in_(chunk), Run.deleted_at.is_(None))
        )
        for r in s.execute(q):
            out[(RUN, r.id)] = {
                "kind": "run",
                "type": RUN,
                "id": r.id,
                "label": f"{r.experiment}#{r.number}",
                "experiment": r.experiment,
                "number": r.number,
                "name": r.name,
                "status": r.status,
                "started": r.started.isoformat() + "Z" if r.started else None,
                "git_commit": r.git_commit,
            }
    for chunk in _chunks(version_ids):
        q = (
            sa.select(AssetVersion.id, AssetVersion.version, AssetVersion.digest,
                      AssetVersion.size, AssetVersion.uri, AssetVersion.created_by,
                      Asset.kind, Asset.name)
            .join(Asset, Asset.id == AssetVersion.asset_id)
            .where(AssetVersion.id.in_(chunk))
        )
        for v in s.execute(q):
            out[(VERSION, v.id)] = {
                "kind": v.kind,
                "type": VERSION,
                "id": v.id,
                "label": f"{v.kind}:{v.name}@{v.version}",
                "name": v.name,
                "version": v.version,
                "digest": v.digest,
                "size": v.size,
                "uri": v.uri,
                "created_by": v.created_by,
            }
    return out


def _chunks(items: list, n: int = _CHUNK):
    for i in range(0, len(items), n):
        yield items[i : i + n]


# -- writing edges ----------------------------------------------------------------------


def link(store: Store, upstream, downstream, relation: str = "derived_from", role=None):
    """Record after the fact that data flowed from `upstream` to `downstream`.

    derived_from links two asset versions (a fine-tuned model and its base, a cleaned
    dataset and its raw one); used links a version to a run, produced a run to a version.
    An edge that would close a cycle is refused with `Conflict`. Linking twice is a no-op.
    """
    up, down = resolve(store, upstream), resolve(store, downstream)
    expected = {
        "derived_from": (VERSION, VERSION),
        "used": (VERSION, RUN),
        "produced": (RUN, VERSION),
    }
    if relation not in expected:
        raise InvalidValue(
            f"relation must be derived_from, used or produced, not {relation!r}"
        )
    if (up.type, down.type) != expected[relation]:
        want = " → ".join(t.replace("_", " ") for t in expected[relation])
        raise InvalidValue(
            f"a {relation} edge goes {want}, but got"
            f" {up.type.replace('_', ' ')} → {down.type.replace('_', ' ')}",
            hint="lineage edges point the way data flows: upstream first",
        )
    if relation != "derived_from":  # the store checks derived_from edges itself
        with store.read() as s:
            check_no_cycle(s, up, down)
    return store.add_edge(up.type, up.id, down.type, down.id, relation, role)
