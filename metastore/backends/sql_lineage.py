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


def walk(
    conn,
    starts: Sequence[Node],
    direction: str,
    depth: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
    count: bool = False,
) -> Walk:
    """The edges within `depth` hops of `starts` and the attributes of their end nodes
    (and of the starts); the walk does not pass through a soft-deleted run. With
    `limit`, one page: at most `limit` edges in walk order (nearest first), from
    `cursor` (the previous page's `next_cursor`); the database stops walking once the
    page is full, so a hub's first page costs what the page holds. `count` adds how many
    edges and nodes the whole walk reaches."""
    offset = _offset(cursor)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidValue(f"limit must be a whole number >= 1, not {limit!r}")
    rows = walk_edges(conn, starts, direction, depth,
                      limit=None if limit is None else limit + 1, offset=offset)
    more = limit is not None and len(rows) > limit
    if limit is None:
        rows.sort(key=lambda r: r.id)
    else:
        rows = rows[:limit]
    keys = dict.fromkeys(tuple(n) for n in starts)
    for r in rows:
        keys[(r.src_type, r.src_id)] = None
        keys[(r.dst_type, r.dst_id)] = None
    attrs = node_attributes(conn, keys)
    edges = [
        WalkEdge(src_type=r.src_type, src_id=r.src_id, dst_type=r.dst_type, dst_id=r.dst_id,
                 relation=r.relation, role=r.role)
        for r in rows
        if (r.src_type, r.src_id) in attrs and (r.dst_type, r.dst_id) in attrs
    ]
    nodes = [WalkNode(type=t, id=i, attributes=attrs[(t, i)]) for t, i in keys if (t, i) in attrs]
    out = Walk(nodes=nodes, edges=edges,
               next_cursor=str(offset + limit) if more else None)  # type: ignore[operator]
    if count:
        out.edge_count, out.node_count = walk_counts(conn, starts, direction, depth)
    return out


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not (isinstance(cursor, str) and cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
        raise InvalidValue(f"not a lineage page cursor: {str(cursor)[:40]!r}",
                           hint="pass the next_cursor of the previous page")
    return int(cursor)


def _ends(direction: str) -> tuple[str, str]:
    if direction not in ("upstream", "downstream"):
        raise InvalidValue(f"walk direction is upstream or downstream, not {direction!r}")
    return ("src", "dst") if direction == "downstream" else ("dst", "src")


def _starting(table, near: str, starts: Sequence[Node]):
    return sa.or_(
        *(sa.and_(table.c[f"{near}_id"] == n[1], table.c[f"{near}_type"] == n[0]) for n in starts)
    )


def _live(select: sa.Select, table, end: str, alias: str) -> sa.Select:
    """`select` joined to the run at the `end` of an edge, keeping edges whose end is
    no soft-deleted run: walks never pass through one. A LEFT JOIN, not NOT EXISTS,
    which SQLite turns into a scan of `run` in a recursive term."""
    run = Run.__table__.alias(alias)
    on = sa.and_(table.c[f"{end}_type"] == RUN, run.c.id == table.c[f"{end}_id"])
    return select.outerjoin(run, on).where(run.c.deleted_at.is_(None))


def edge_cte(
    starts: Sequence[Node], direction: str, depth: int | None = None, rows: int | None = None
) -> sa.CTE:
    """The recursive CTE `walk(id, node_type, node_id[, depth])`: one row per lineage
    edge reached from `starts` going `direction`, with the node it leads to. The CTE
    combines with UNION, which discards a row already produced: unbounded, each edge
    comes once, so the walk ends even on a cyclic graph; bounded by `depth`, an edge
    comes at most once per hop count and the walk stops `depth` hops out. Rows come
    nearest first. PostgreSQL produces them only as fast as the outer query reads them,
    so an outer LIMIT stops the walk; SQLite fills the whole CTE first unless the CTE
    itself has a LIMIT: `rows` adds one (the walk stops once that many rows are in)."""
    near, far = _ends(direction)
    e = EDGE.alias("e")
    cols = [e.c.id, e.c[f"{far}_type"].label("node_type"), e.c[f"{far}_id"].label("node_id")]
    if depth is not None:
        # Inline SQL, not a bound parameter: PostgreSQL types a bound int by its value,
        # and a recursive CTE needs the same column type in both of its terms.
        cols.append(sa.literal_column("1").label("depth"))
    anchor = sa.select(*cols).select_from(e).where(_starting(e, near, starts))
    walk = _live(anchor, e, far, "er").cte("walk", recursive=True)
    n = EDGE.alias("n")
    step = sa.select(n.c.id, n.c[f"{far}_type"], n.c[f"{far}_id"]).select_from(
        walk.join(n, sa.and_(n.c[f"{near}_id"] == walk.c.node_id,
                             n.c[f"{near}_type"] == walk.c.node_type))
    )
    step = _live(step, n, far, "nr")
    if depth is not None:
        step = step.add_columns(walk.c.depth + sa.literal_column("1")).where(
            walk.c.depth < depth
        )
    walk = walk.union(step)
    if rows is not None:
        # SQLite reads a LIMIT after the recursive term as the CTE's own bound
        walk.element = walk.element.limit(rows)
    return walk


def walk_cte(starts: Sequence[Node], direction: str) -> sa.CTE:
    """The recursive CTE `walk(node_type, node_id)`: every node reachable from `starts`
    going `direction`, once each (UNION: the walk ends on a cyclic graph too)."""
    near, far = _ends(direction)
    e = EDGE.alias("e")
    cols = [e.c[f"{far}_type"].label("node_type"), e.c[f"{far}_id"].label("node_id")]
    walk = sa.select(*cols).where(_starting(e, near, starts)).cte("walk", recursive=True)
    n = EDGE.alias("n")
    step = sa.select(n.c[f"{far}_type"], n.c[f"{far}_id"]).where(
        n.c[f"{near}_id"] == walk.c.node_id, n.c[f"{near}_type"] == walk.c.node_type
    )
    return walk.union(step)


COLUMNS = ("id", "src_type", "src_id", "dst_type", "dst_id", "relation", "role")


def walk_query(
    starts: Sequence[Node], direction: str, depth: int | None = None,
    limit: int | None = None, offset: int = 0, dialect: str | None = None,
) -> sa.Select:
    """The edges within `depth` hops of `starts` going `direction` (`edge_cte`): a
    SELECT of each edge's columns (id, src_type, src_id, dst_type, dst_id, relation,
    role); with `limit`, a SELECT of the ids of one page of edges, nearest first
    (`walk_edges` reads their columns)."""
    if limit is None:
        walk = edge_cte(starts, direction, depth)
        ids = sa.select(walk.c.id)
        if depth is not None:
            ids = ids.distinct()  # an edge reached at several hop counts
        reached = ids.subquery("reached")
        return sa.select(*(EDGE.c[c] for c in COLUMNS)).select_from(reached).join(
            EDGE, EDGE.c.id == reached.c.id
        )
    # Only SQLite bounds the CTE itself (PostgreSQL does not allow a LIMIT there and
    # stops at the outer one). A depth-bounded walk may reach an edge at several hop
    # counts, so its rows are not its edges: it is walked whole (its depth bounds it)
    # and ordered by the hop count each edge is first reached at.
    if depth is None:
        inner = offset + limit if dialect == "sqlite" else None
        walk = edge_cte(starts, direction, None, rows=inner)
        # no ORDER BY: the CTE's own order is the walk's (nearest first), and sorting
        # would make the database walk everything before the first row
        q = sa.select(walk.c.id)
    else:
        walk = edge_cte(starts, direction, depth)
        q = (sa.select(walk.c.id).group_by(walk.c.id)
             .order_by(sa.func.min(walk.c.depth), walk.c.id))
    return q.limit(limit).offset(offset or None)


def walk_edges(
    conn: sa.Connection | Any, starts: Sequence[Node], direction: str, depth: int | None = None,
    limit: int | None = None, offset: int = 0,
) -> list[sa.Row]:
    """The edges reachable from `starts` (see `walk_query`), executed on a connection or
    session: all of them, or one page in walk order. Depth 0 reaches nothing."""
    if depth == 0 or not starts:
        return []
    _allow_deep_recursion(conn)
    query = walk_query(starts, direction, depth, limit, offset, _dialect(conn).name)
    if limit is None:
        return list(conn.execute(query))
    ids = [r[0] for r in conn.execute(query)]
    rows = {}
    for chunk in _chunks(ids):
        for r in conn.execute(sa.select(*(EDGE.c[c] for c in COLUMNS)).where(EDGE.c.id.in_(chunk))):
            rows[r.id] = r
    return [rows[i] for i in ids if i in rows]


def walk_counts(conn, starts: Sequence[Node], direction: str, depth: int | None = None
                ) -> tuple[int, int]:
    """(edges, nodes) the whole walk reaches, counted in the database."""
    if depth == 0 or not starts:
        return 0, 0
    _allow_deep_recursion(conn)
    walk = edge_cte(starts, direction, depth)
    # unbounded, the CTE holds each edge once; bounded, once per hop count
    edges = sa.func.count() if depth is None else sa.func.count(sa.distinct(walk.c.id))
    q = sa.select(edges, sa.func.count(sa.distinct(walk.c.node_id)))
    edges, nodes = conn.execute(q).one()
    return int(edges), int(nodes)


def _dialect(conn):
    return conn.get_bind().dialect if hasattr(conn, "get_bind") else conn.dialect


def _allow_deep_recursion(conn) -> None:
    """MariaDB stops a recursive CTE after 1000 iterations (one per hop) and MySQL fails
    it: lift the limit for this session, since the walk ends anyway (see module doc)."""
    dialect = _dialect(conn)
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
