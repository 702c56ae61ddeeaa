"""Lineage in SQL: the references a query names, and the recursive walk over edges.

`upstream of REF` / `downstream of REF` (a source) and the lineage conditions (`uses`,
`derived from`, …) all become SQL over `lineage_edge`. A walk is one recursive CTE,
never a loop of queries, so the database does it in one statement; it stops at MAX_DEPTH
hops even in a (forbidden) cycle, and does not pass through deleted runs.
"""

from __future__ import annotations

from sqlglot import exp

from metastore.query import ast
from metastore.query.frames import EntityFrame
from metastore.query.nodes import and_ as _and
from metastore.query.nodes import c as _c
from metastore.query.nodes import eq as _eq
from metastore.query.nodes import join as _join
from metastore.query.nodes import not_ as _not
from metastore.query.nodes import or_ as _or
from metastore.query.nodes import table as _t
from metastore.query.resolve import check_ref

MAX_DEPTH = 100


# -- the one recursive walk over lineage_edge (the compiler's sources and conditions, and
# the SQL backend's `walk`, `walk_counts` and cycle check all recurse through it) --------


def ends(direction: str) -> tuple[str, str]:
    """(near, far) ends of an edge walking `direction`: downstream goes src → dst."""
    if direction not in ("upstream", "downstream"):
        raise ValueError(f"walk direction is upstream or downstream, not {direction!r}")
    return ("src", "dst") if direction == "downstream" else ("dst", "src")


def live_far(select: exp.Select, edge: str, far: str, n: str) -> exp.Select:
    """`select` (reading lineage_edge as `edge`) kept to edges whose `far` end is no
    soft-deleted run nor a run of a deleted experiment: a walk never passes through one.
    LEFT JOINs on the run's key: a NOT IN or NOT EXISTS made SQLite scan `run` in every
    recursive step."""
    run, experiment = f"wr{n}", f"wx{n}"
    on_run = _and(
        exp.EQ(this=exp.column(f"{far}_type", table=edge), expression=exp.Literal.string("run")),
        exp.EQ(this=exp.column("id", table=run), expression=exp.column(f"{far}_id", table=edge)),
    )
    return (
        select.join(_join(_t("run", run), on=on_run, left=True), copy=False)
        .join(_join(_t("experiment", experiment), on=_eq(f"{experiment}.id", f"{run}.experiment_id"),
                    left=True), copy=False)
        .where(_and(exp.Is(this=exp.column("deleted_at", table=run), expression=exp.null()),
                    exp.Is(this=exp.column("deleted_at", table=experiment), expression=exp.null())),
               copy=False)
    )


def dead_runs() -> exp.Select:
    """The ids of the runs `live_far` keeps a walk from passing through (soft-deleted, or
    of a deleted experiment): few, so a walk one hop at a time reads them once and
    leaves them out itself instead of joining `run` for every edge."""
    return (
        exp.select(exp.column("id", table="dr")).from_(_t("run", "dr"), copy=False)
        .join(_join(_t("experiment", "dx"), on=_eq("dx.id", "dr.experiment_id")), copy=False)
        .where(_or(exp.Not(this=exp.Is(this=exp.column("deleted_at", table="dr"), expression=exp.null())),
                   exp.Not(this=exp.Is(this=exp.column("deleted_at", table="dx"), expression=exp.null()))),
               copy=False)
    )


def walk_union(anchor: exp.Select, cte: str, direction: str, *, edges: bool = False,
               depth: int | None = None, live: bool = True) -> exp.Union:
    """The body of the recursive CTE `cte`: `anchor` UNION the recursive term, which
    follows the edges leaving each node reached, going `direction`.

    Rows are (node_type, node_id) — with `edges`, (id, node_type, node_id): the edge and
    the node it leads to — and a last `depth` column when `depth` bounds the walk (the
    anchor's rows carry their own). UNION, not UNION ALL, discards a row already
    produced: that is the cycle protection, so an unbounded walk ends on any graph and a
    bounded one stops `depth` hops out. With `live` the walk does not pass through a
    deleted run (`live_far`). Constant columns are inline SQL: PostgreSQL types a bound
    value by itself, and both terms of a recursive CTE need the same column types."""
    near, far = ends(direction)
    cols: list[exp.Expression] = [exp.column("id", table="le")] if edges else []
    cols += [exp.column(f"{far}_type", table="le"), exp.column(f"{far}_id", table="le")]
    if depth is not None:
        cols.append(exp.column("depth", table=cte) + exp.Literal.number(1))
    on = _and(
        exp.EQ(this=exp.column(f"{near}_type", table="le"), expression=exp.column("node_type", table=cte)),
        exp.EQ(this=exp.column(f"{near}_id", table="le"), expression=exp.column("node_id", table=cte)),
    )
    step = exp.select(*cols).from_(_t(cte), copy=False).join(_join(_t("lineage_edge", "le"), on=on),
                                                             copy=False)
    if depth is not None:
        step = step.where(exp.column("depth", table=cte) < exp.Literal.number(depth), copy=False)
    if live:
        step = live_far(step, "le", far, cte)
    return exp.union(anchor, step, distinct=True)


class LineageSQL:
    """Lineage sources and conditions; a mixin of the compiler."""

    def live_runs(self, experiment: str | None = None, dead: bool = False) -> exp.Select:
        cond = _and(exp.Is(this=self.col("lr", "deleted_at"), expression=exp.null()),
                        exp.Is(this=self.col("le2", "deleted_at"), expression=exp.null()))
        if dead:
            cond = _not(exp.paren(cond))
        sel = (
            exp.select(_c("lr.id")).from_(_t("run", "lr"), copy=False)
            .join(_join(_t("experiment", "le2"), on=_eq("le2.id", "lr.experiment_id"), left=False), copy=False)
            .where(cond, copy=False)
        )
        if experiment is not None:
            sel = sel.where(exp.EQ(this=self.col("le2", "name"), expression=self.lit(experiment)), copy=False)
        return sel

    def lineage_frame(self, src: ast.LineageSource) -> EntityFrame:
        reach = self.reach(src.ref, src.direction, src.depth)
        nodes = (
            exp.select(
                exp.column("node_type").as_("type"),
                exp.column("node_id").as_("id"),
                exp.func("MIN", exp.column("depth")).as_("depth"),
            )
            .from_(reach, copy=False)
            .group_by("node_type", "node_id", copy=False)
            .having(exp.func("MIN", exp.column("depth")) > exp.Literal.number(0), copy=False)
        )
        sel = (
            exp.select()
            .from_(nodes.subquery("n"), copy=False)
            .join(_join(_t("run", "r"),
                  on=_and(exp.EQ(this=self.col("n", "type"), expression=exp.Literal.string("run")),
                              exp.EQ(this=self.col("r", "id"), expression=self.col("n", "id"))),
                  left=True), copy=False)
            .join(_join(_t("experiment", "e"), on=_eq("e.id", "r.experiment_id"), left=True), copy=False)
            .join(_join(_t("asset_version", "v"),
                  on=_and(exp.EQ(this=self.col("n", "type"), expression=exp.Literal.string("asset_version")),
                              exp.EQ(this=self.col("v", "id"), expression=self.col("n", "id"))),
                  left=True), copy=False)
            .join(_join(_t("asset", "a"), on=_eq("a.id", "v.asset_id"), left=True), copy=False)
        )
        where = [
            _or(
                exp.NEQ(this=self.col("n", "type"), expression=exp.Literal.string("run")),
                _and(exp.Is(this=self.col("r", "deleted_at"), expression=exp.null()),
                         exp.Is(this=self.col("e", "deleted_at"), expression=exp.null())),
            )
        ]
        run_id = exp.func("COALESCE", self.col("r", "id"), self.col("v", "created_by"))
        return EntityFrame(self, "node", sel, where, id_sql=self.col("n", "id"), run_id=run_id)
    def seeds(self, ref: ast.Ref) -> tuple[str, exp.Select]:
        """(node type, SELECT of the ids a reference names)."""
        if ref.kind == "run":
            sel = (
                exp.select(_c("sr.id")).from_(_t("run", "sr"), copy=False)
                .join(_join(_t("experiment", "se"), on=_eq("se.id", "sr.experiment_id"), left=False), copy=False)
                .where(exp.Is(this=self.col("sr", "deleted_at"), expression=exp.null()), copy=False)
                .where(exp.Is(this=self.col("se", "deleted_at"), expression=exp.null()), copy=False)
            )
            value = ref.value
            experiment = self.experiment
            if isinstance(value, str) and "#" in value:
                experiment, _, number = value.rpartition("#")
                if not (number.isascii() and number.isdigit()):
                    raise self.err(f"{value!r} is not experiment#number", ref)
                value = int(number)
            if isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()):
                sel = sel.where(exp.EQ(this=self.col("sr", "number"), expression=self.lit(int(value))), copy=False)
            else:
                sel = sel.where(_or(exp.EQ(this=self.col("sr", "id"), expression=self.lit(value.upper())),
                                        exp.EQ(this=self.col("sr", "name"), expression=self.lit(value))), copy=False)
            if experiment is not None:
                sel = sel.where(exp.EQ(this=self.col("se", "name"), expression=self.lit(experiment)), copy=False)
            self.ref_checks.append((ref, sel))
            return "run", sel
        sel = (
            exp.select(_c("sv.id")).from_(_t("asset_version", "sv"), copy=False)
            .join(_join(_t("asset", "sa"), on=_eq("sa.id", "sv.asset_id"), left=False), copy=False)
            .where(exp.EQ(this=self.col("sa", "kind"), expression=self.lit(ref.kind)), copy=False)
            .where(exp.EQ(this=self.col("sa", "name"), expression=self.lit(str(ref.value))), copy=False)
        )
        if ref.version == "latest":
            latest = (
                exp.select(exp.func("MAX", exp.column("version", table="sv2")))
                .from_(_t("asset_version", "sv2"), copy=False)
                .where(_eq("sv2.asset_id", "sa.id"), copy=False)
            )
            sel = sel.where(exp.EQ(this=self.col("sv", "version"), expression=latest.subquery()), copy=False)
        elif isinstance(ref.version, str):  # an alias: the version it points at now
            aliased = (
                exp.select(exp.column("version_id", table="sal"))
                .from_(_t("asset_alias", "sal"), copy=False)
                .where(_eq("sal.asset_id", "sa.id"), copy=False)
                .where(exp.EQ(this=self.col("sal", "alias"), expression=self.lit(ref.version)), copy=False)
            )
            sel = sel.where(self.col("sv", "id").isin(query=aliased), copy=False)
        elif ref.version is not None:
            sel = sel.where(exp.EQ(this=self.col("sv", "version"), expression=self.lit(int(ref.version))), copy=False)
        self.ref_checks.append((ref, sel))
        return "asset_version", sel

    def reach(self, ref: ast.Ref, direction: str, depth: int | None) -> exp.Table:
        """A recursive CTE of every (node_type, node_id, depth) reachable from `ref`."""
        node_type, seeds = self.seeds(ref)
        name = self.alias("reach")
        varchar = lambda n: exp.DataType.build(f"VARCHAR({n})")  # noqa: E731
        anchor = exp.select(
            exp.cast(exp.Literal.string(node_type), varchar(16)).as_("node_type"),
            exp.cast(exp.column("id", table="s0"), varchar(26)).as_("node_id"),
            exp.Literal.number(0).as_("depth"),
        ).from_(seeds.subquery("s0"), copy=False)
        body = walk_union(anchor, name, direction, depth=min(depth or MAX_DEPTH, MAX_DEPTH))
        self.ctes.append((f"{name}(node_type, node_id, depth)", body))
        return _t(name)

    def lineage_predicate(self, node: ast.Lineage, frame: EntityFrame) -> exp.Expression:
        check_ref(node.ref, self.text)
        if frame.rows == "experiment":
            raise self.err("lineage predicates apply to runs, assets and lineage rows", node)
        row_id = frame.id_sql
        if node.relation in ("upstream", "downstream"):
            # rows upstream of REF are found walking up from REF, and vice versa
            walk = "upstream" if node.relation == "upstream" else "downstream"
            reach = self.reach(node.ref, walk, node.depth)
            ids = (
                exp.select(_c("rc.node_id")).from_(reach.as_("rc"), copy=False)
                .where(exp.column("depth", table="rc") > exp.Literal.number(0), copy=False)
            )
            return row_id.isin(query=ids)
        node_type, seeds = self.seeds(node.ref)
        relation = "used" if node.relation in ("uses", "used_by") else "produced"
        # uses / produced by: REF → row;  used by / produced: row → REF
        ref_is_src = node.relation in ("uses", "produced_by")
        ref_end, row_end = ("src", "dst") if ref_is_src else ("dst", "src")
        ids = (
            exp.select(exp.column(f"{row_end}_id", table="le"))
            .from_(_t("lineage_edge", "le"), copy=False)
            .where(exp.EQ(this=exp.column("relation", table="le"), expression=self.lit(relation)), copy=False)
            .where(exp.EQ(this=exp.column(f"{ref_end}_type", table="le"), expression=self.lit(node_type)), copy=False)
            .where(exp.column(f"{ref_end}_id", table="le").isin(query=seeds), copy=False)
        )
        return row_id.isin(query=ids)
