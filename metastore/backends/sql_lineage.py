"""Lineage walks in SQL: the SQL backend's half of `metastore.lineage`.

The walk is one recursive CTE over `lineage_edge` (SQLite, PostgreSQL, MySQL/MariaDB),
built by `metastore.query.lineage_sql.walk_union`, the same recursion the query
language's `upstream of` / `downstream of` use. Here each row is an edge reached and the
node it leads to. The CTE combines with UNION, not UNION ALL, which discards a row
already produced; that is the cycle protection: an unbounded walk yields each edge once,
so it ends even on a cyclic graph, and a depth-bounded walk yields each edge at most once
per hop count and stops at the bound. A walk never passes through a soft-deleted run.
Only the edges reached and their end nodes leave the database; a page of them
(`limit`, `cursor`) costs what the page holds on SQLite and PostgreSQL.

Nodes are plain (type, id) tuples: a large walk makes hundreds of thousands of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlglot import exp

from metastore.errors import Conflict, InvalidValue
from metastore.models import Asset, AssetVersion, Experiment, LineageEdge, Run
from metastore.query.dialects import to_sql
from metastore.query.lineage_sql import ends, live_far, walk_union
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
    return ends(direction)


class WalkSQL:
    """The statement text of a walk over `lineage_edge` from `starts`: one recursive CTE
    `walk`, built by the compiler's `walk_union` (the query language's `upstream of` and
    lineage conditions recurse through the same code), and the bound values of the
    starts. `edges`: rows are (id, node_type, node_id), an edge and the node it leads to,
    nearest first; else (node_type, node_id). `depth` adds a depth column and bounds the
    walk; `rows` puts a LIMIT inside the CTE (SQLite fills a CTE whole unless it has
    one; PostgreSQL produces rows only as fast as the outer query reads them, so there an
    outer LIMIT stops the walk); `live=False` also walks through deleted runs."""

    def __init__(self, dialect: str, starts: Sequence[Node], direction: str, *,
                 edges: bool = True, depth: int | None = None, rows: int | None = None,
                 live: bool = True):
        near, far = _ends(direction)
        self.dialect, self.params = dialect, {}
        cols: list[exp.Expression] = [exp.column("id", table="e")] if edges else []
        cols += [exp.column(f"{far}_type", table="e").as_("node_type"),
                 exp.column(f"{far}_id", table="e").as_("node_id")]
        if depth is not None:
            cols.append(exp.Literal.number(1).as_("depth"))
        start = exp.or_(*(
            exp.and_(exp.EQ(this=exp.column(f"{near}_id", table="e"), expression=self._bind(i)),
                     exp.EQ(this=exp.column(f"{near}_type", table="e"), expression=self._bind(t)))
            for t, i in starts
        ))
        anchor = exp.select(*cols).from_(exp.to_table("lineage_edge").as_("e")).where(start)
        if live:
            anchor = live_far(anchor, "e", far, "0")
        body = walk_union(anchor, "walk", direction, edges=edges, depth=depth, live=live)
        if rows is not None:
            body = body.limit(exp.Literal.number(rows))
        names = ["id"] * edges + ["node_type", "node_id"] + ["depth"] * (depth is not None)
        self.cte = f"WITH RECURSIVE walk({', '.join(names)}) AS ({to_sql(body, dialect)})"

    def _bind(self, value: str) -> exp.Expression:
        name = f"w{len(self.params)}"
        self.params[name] = value
        return exp.var(f":{name}")

    def run(self, conn, select: str, **params) -> sa.CursorResult:
        """`select` (reading `walk`) after the CTE, executed with the starts bound."""
        return conn.execute(sa.text(f"{self.cte} {select}"), {**self.params, **params})


COLUMNS = ("id", "src_type", "src_id", "dst_type", "dst_id", "relation", "role")
_EDGE_COLUMNS = ", ".join(f"le.{c}" for c in COLUMNS)


def walk_edges(
    conn: sa.Connection | Any, starts: Sequence[Node], direction: str, depth: int | None = None,
    limit: int | None = None, offset: int = 0,
) -> list[sa.Row]:
    """The edges within `depth` hops of `starts` going `direction` (columns id,
    src_type, src_id, dst_type, dst_id, relation, role), executed on a connection or
    session: all of them, or with `limit` one page of them in walk order (nearest
    first). Depth 0 reaches nothing."""
    if depth == 0 or not starts:
        return []
    _allow_deep_recursion(conn)
    dialect = _dialect(conn).name
    if limit is None:
        walk = WalkSQL(dialect, starts, direction, depth=depth)
        ids = "SELECT DISTINCT id FROM walk" if depth is not None else "SELECT id FROM walk"
        return list(walk.run(conn, f"SELECT {_EDGE_COLUMNS} FROM ({ids}) r"
                                   f" JOIN lineage_edge le ON le.id = r.id"))
    if depth is None:
        # no ORDER BY: the CTE's own order is the walk's (nearest first), and sorting
        # would make the database walk everything before the first row
        walk = WalkSQL(dialect, starts, direction,
                       rows=offset + limit if dialect == "sqlite" else None)
        page = "SELECT id FROM walk"
    else:
        # a bounded walk may reach an edge at several hop counts, so its rows are not
        # its edges: it is walked whole (its depth bounds it), ordered by the hop count
        # each edge is first reached at
        walk = WalkSQL(dialect, starts, direction, depth=depth)
        page = "SELECT id FROM walk GROUP BY id ORDER BY MIN(depth), id"
    ids = [r[0] for r in walk.run(conn, f"{page} LIMIT :limit OFFSET :offset",
                                  limit=limit, offset=offset)]
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
    walk = WalkSQL(_dialect(conn).name, starts, direction, depth=depth)
    # unbounded, the CTE holds each edge once; bounded, once per hop count
    edges = "COUNT(*)" if depth is None else "COUNT(DISTINCT id)"
    edges, nodes = walk.run(conn, f"SELECT {edges}, COUNT(DISTINCT node_id) FROM walk").one()
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
    # through deleted runs too: a restored run brings its edges back
    walk = WalkSQL(_dialect(conn).name, [source], "downstream", edges=False, live=False)
    hit = walk.run(conn, "SELECT 1 FROM walk WHERE node_id = :tid AND node_type = :ttype LIMIT 1",
                   tid=target[1], ttype=target[0])
    return hit.first() is not None


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
