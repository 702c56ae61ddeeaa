"""Lineage graphs: traversal in SQL, results as networkx graphs.

Edges run in the direction data flows: a dataset version is *used* by a run, the run
*produced* a model version, and a fine-tuned model version is *derived_from* its base
(upstream version → downstream version). "Upstream" walks edges backwards (what made
this?), "downstream" forwards (what did this feed?).

The walk itself is the backend's `walk` primitive (a recursive CTE in the SQL
backend, `metastore.backends.sql_lineage`; one request through a server): it returns
only the edges reached and their end nodes' attributes, which become a
`networkx.DiGraph` here.

Node keys are the human labels: `diabetes#4` for a run (experiment#number) and
`model:regressor@3` for an asset version. Each node carries `kind` ("run" or the asset
kind), `type` ("run" / "asset_version"), `id`, `label`, `depth` (hops from the start) and
the entity's key fields; each edge carries `relation` and `role`.

Soft-deleted runs are left out, together with whatever was reachable only through them
(the walk does not pass through them).

A hub (a dataset a hundred thousand runs used) is read in pages: `limit` edges, nearest
first, then the next page from the previous one's `next_cursor`; `count` says how many
edges and nodes the whole walk reaches.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from metastore.backends.base import Backend
from metastore.errors import InvalidValue
from metastore.records import Walk
from metastore.refs import RUN, VERSION, Node, resolve

DIRECTIONS = ("upstream", "downstream", "both")


def _check(direction: str, depth: int | None) -> None:
    if direction not in DIRECTIONS:
        raise InvalidValue(
            f"direction must be upstream, downstream or both, not {direction!r}"
        )
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise InvalidValue(f"depth must be a whole number >= 0 (or None for no limit), not {depth!r}")


# -- graphs -----------------------------------------------------------------------------


def lineage_graph(
    store: Backend,
    ref,
    direction: str = "upstream",
    depth: int | None = None,
    experiment: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    count: bool = False,
) -> nx.DiGraph:
    """The lineage around `ref` (a run or asset version, see `metastore.refs`) as a
    networkx.DiGraph whose edges point the way data flows.

    With `limit`, one page of at most `limit` edges per direction, nearest first; the
    graph's `next_cursor` (one direction only) fetches the next page as `cursor`, and
    `more` says whether any direction has more. `count` sets `edge_count` and
    `node_count` to what the whole walk reaches (a full walk in the database)."""
    _check(direction, depth)
    if cursor is not None and direction == "both":
        raise InvalidValue("a cursor pages one direction: pass upstream or downstream")
    refs = ref if isinstance(ref, list | tuple | set) else [ref]
    roots = [resolve(store, r, experiment) for r in refs]
    directions = ["upstream", "downstream"] if direction == "both" else [direction]
    starts = [(n.type, n.id) for n in roots]
    walks = [store.walk(starts, d, depth, limit=limit, cursor=cursor, count=count)
             for d in directions]
    graph = _build(roots, walks)
    graph.graph.update(direction=direction, depth=depth)
    if limit is not None or cursor is not None:
        graph.graph.update(
            more=any(w.next_cursor for w in walks),
            next_cursor=walks[0].next_cursor if len(walks) == 1 else None,
        )
    if count:
        graph.graph.update(edge_count=sum(w.edge_count or 0 for w in walks),
                           node_count=sum(w.node_count or 0 for w in walks))
    _set_depths(graph, directions)
    return graph


def path(store: Backend, a, b, experiment: str | None = None) -> nx.DiGraph | None:
    """The shortest lineage path between two nodes, in data-flow order (from `a` to `b`
    when `b` is downstream of `a`, else from `b` to `a`), or None when neither is
    upstream of the other. `list(graph)` gives the nodes in order."""
    na, nb = resolve(store, a, experiment), resolve(store, b, experiment)
    # Walk upstream from each end: a node's ancestry is small next to what a popular
    # dataset feeds, so this is the cheap way to find a path.
    for first, last in ((na, nb), (nb, na)):
        ancestry = _build([last], [store.walk([(last.type, last.id)], "upstream")])
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


def _build(roots: Sequence[Node], walks: Sequence[Walk]) -> nx.DiGraph:
    attrs = {}
    for w in walks:
        for n in w.nodes:
            attrs[(n.type, n.id)] = n.attributes
    graph = nx.DiGraph()
    graph.add_nodes_from((a["label"], a) for a in attrs.values())
    graph.graph["roots"] = [
        attrs[k]["label"] for k in ((n.type, n.id) for n in roots) if k in attrs
    ]
    for w in walks:
        graph.add_edges_from(
            (attrs[(e.src_type, e.src_id)]["label"], attrs[(e.dst_type, e.dst_id)]["label"],
             {"relation": e.relation, "role": e.role})
            for e in w.edges
        )
    return graph


def _set_depths(graph: nx.DiGraph, directions: list[str]) -> None:
    """Hops from the nearest root. A page of a walk may hold nodes whose way back to a
    root is on an earlier page: their depth is None."""
    best: dict[str, int] = {}
    for d in directions:
        view = graph if d == "downstream" else graph.reverse(copy=False)
        for root in graph.graph["roots"]:
            for key, hops in nx.single_source_shortest_path_length(view, root).items():
                best[key] = min(hops, best.get(key, hops))
    for key in graph:
        graph.nodes[key]["depth"] = best.get(key)


# -- writing edges ----------------------------------------------------------------------


def link(store: Backend, upstream, downstream, relation: str = "derived_from", role=None):
    """Record after the fact that data flowed from `upstream` to `downstream`.

    derived_from links two asset versions (a fine-tuned model and its base, a cleaned
    dataset and its raw one); used links a version to a run, produced a run to a version,
    reproduces a run to its reproduction (what `metastore reproduce` records).
    An edge that would close a cycle is refused with `Conflict`. Linking twice is a no-op.
    """
    up, down = resolve(store, upstream), resolve(store, downstream)
    expected = {
        "derived_from": (VERSION, VERSION),
        "used": (VERSION, RUN),
        "produced": (RUN, VERSION),
        "reproduces": (RUN, RUN),
    }
    if relation not in expected:
        raise InvalidValue(
            f"relation must be derived_from, used, produced or reproduces, not {relation!r}"
        )
    if (up.type, down.type) != expected[relation]:
        want = " → ".join(t.replace("_", " ") for t in expected[relation])
        raise InvalidValue(
            f"a {relation} edge goes {want}, but got"
            f" {up.type.replace('_', ' ')} → {down.type.replace('_', ' ')}",
            hint="lineage edges point the way data flows: upstream first",
        )
    return store.add_edge(up.type, up.id, down.type, down.id, relation, role)
