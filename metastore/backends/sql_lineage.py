"""Lineage walks in SQL: the SQL backend's half of `metastore.lineage`.

The walk is one recursive CTE over `lineage_edge` (SQLite, PostgreSQL, MySQL/MariaDB):
each row is a node reached. The CTE combines with UNION, not UNION ALL, which discards a
row already produced; that is the cycle protection: an unbounded walk yields and expands
each node once, so it ends even on a cyclic graph, and a depth-bounded walk yields each
node at most once per hop count and stops at the bound. The same query then reads the
edges leaving the nodes reached; only those edges and their end nodes leave the database.

Nodes are plain (type, id) tuples: a large walk makes hundreds of thousands of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from metastore.errors import Conflict, InvalidValue
from metastore.models import Asset, AssetVersion, Experiment, LineageEdge, Run
from metastore.records import Walk, WalkEdge, WalkNode

RUN, VERSION = "run", "asset_version"
_CHUNK = 900  # ids per IN list, below every dialect's limit on parameters
EDGE = LineageEdge.__table__
Node = tuple[str, str]


def walk(conn, starts: Sequence[Node], direction: str, depth: int | None = None) -> Walk:
    """The edges within `depth` hops of `starts` and the attributes of their end nodes
    (and of the starts); edges touching a soft-deleted run are left out."""
    rows = walk_edges(conn, starts, direction, depth)
    keys = dict.fromkeys(tuple(n) for n in starts)
    for r in rows:
        keys[(r.src_type, r.src_id)] = None
        keys[(r.dst_type, r.dst_id)] = None
    attrs = node_attributes(conn, keys)
    edges = [
        WalkEdge(src_type=r.src_type, src_id=r.src_id, dst_type=r.dst_type, dst_id=r.dst_id,
                 relation=r.relation, role=r.role)
        for r in sorted(rows, key=lambda r: r.id)
        if (r.src_type, r.src_id) in attrs and (r.dst_type, r.dst_id) in attrs
    ]
    nodes = [WalkNode(type=t, id=i, attributes=attrs[(t, i)]) for t, i in keys if (t, i) in attrs]
    return Walk(nodes=nodes, edges=edges)


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
        *(sa.and_(e.c[f"{near}_id"] == n[1], e.c[f"{near}_type"] == n[0]) for n in starts)
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
        sa.or_(*(sa.and_(EDGE.c[f"{near}_id"] == n[1], EDGE.c[f"{near}_type"] == n[0])
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
        .where(walk.c.node_id == target[1], walk.c.node_type == target[0])
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


def node_attributes(s, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
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
