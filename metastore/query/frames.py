"""Frames: the rows a query has so far, and how each stage changes them.

- an entity frame (runs, experiments, asset versions, lineage nodes) is one SELECT over
  the entity's table; every name a stage mentions becomes a LEFT JOIN made on first use
  (a metric joins `metric_summary`, a param `param`, a tag `tag`), so a row that lacks a
  field sees NULL, which no comparison keeps and `order by` puts last;
- `where`, `order by`, `limit` and `show` fuse into that SELECT. A stage that must see the
  result of an earlier `limit` (a `where` after a `limit`, `limit N per F`) seals the frame:
  the SELECT so far becomes a subquery of row ids and the frame continues on those ids;
- `group by` turns the frame into groups (GroupedFrame); a `where` on groups becomes
  HAVING, and a stage after a `limit` on groups continues on the grouped rows as a derived
  table (ColumnsFrame).

`Sources` makes the entity frames the `runs`, `experiments` and asset sources start from;
lineage_sql.py makes the ones `upstream of` / `downstream of` start from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from metastore.query import ast
from metastore.query.dialects import Seconds, grouped_concat, to_sql
from metastore.query.errors import QueryError, closest
from metastore.query.expressions import has_aggregate
from metastore.query.nodes import and_ as _and
from metastore.query.nodes import as_text, concat
from metastore.query.nodes import c as _c
from metastore.query.nodes import eq as _eq
from metastore.query.nodes import join as _join
from metastore.query.nodes import not_ as _not
from metastore.query.nodes import table as _t
from metastore.query.resolve import AnyRef, Attr, MetricRef, ParamRef, SourceKind, TagRef, bind
from metastore.query.values import Column, Val, column_name

if TYPE_CHECKING:
    from metastore.query.compile import Compiler


def project(select: exp.Select, projection: list[tuple[str, Val]]) -> tuple[exp.Select, list[Column]]:
    """Select the SQL parts of each shown value as c0, c1, …: no text of the query
    becomes an identifier in the SQL."""
    exprs, columns, i = [], [], 0
    for name, v in projection:
        parts = v.columns()
        for p in parts:
            exprs.append(p.copy().as_(f"c{i}"))
            i += 1
        columns.append(Column(name, v.type, len(parts)))
    return select.select(*exprs, append=False, copy=False), columns


class Sources:
    """The entity sources; a mixin of the compiler."""

    def entity_frame(self, kind: SourceKind) -> EntityFrame:
        live_run = lambda r, e: _and(  # noqa: E731
            exp.Is(this=exp.column("deleted_at", table=r), expression=exp.null()),
            exp.Is(this=exp.column("deleted_at", table=e), expression=exp.null()),
        )
        if kind.rows == "run":
            sel = (
                exp.select()
                .from_(_t("run", "r"), copy=False)
                .join(_join(_t("experiment", "e"), on=_eq("e.id", "r.experiment_id"), left=False), copy=False)
            )
            where = [live_run("r", "e")]
            if self.experiment is not None:
                where.append(exp.EQ(this=self.col("e", "name"), expression=self.lit(self.experiment)))
            return EntityFrame(self, "run", sel, where, id_sql=self.col("r", "id"),
                               run_id=self.col("r", "id"))
        if kind.rows == "experiment":
            sel = exp.select().from_(_t("experiment", "e"), copy=False)
            where = [exp.Is(this=self.col("e", "deleted_at"), expression=exp.null())]
            if self.experiment is not None:
                where.append(exp.EQ(this=self.col("e", "name"), expression=self.lit(self.experiment)))
            return EntityFrame(self, "experiment", sel, where, id_sql=self.col("e", "id"))
        if kind.rows == "note":
            sel = (
                exp.select()
                .from_(_t("note", "nt"), copy=False)
                .join(_join(_t("run", "r"), on=_eq("r.id", "nt.run_id"), left=False), copy=False)
                .join(_join(_t("experiment", "e"), on=_eq("e.id", "r.experiment_id"), left=False), copy=False)
            )
            where = [live_run("r", "e")]
            if self.experiment is not None:
                where.append(exp.EQ(this=self.col("e", "name"), expression=self.lit(self.experiment)))
            return EntityFrame(self, "note", sel, where, id_sql=self.col("nt", "id"),
                               run_id=self.col("r", "id"))
        sel = (
            exp.select()
            .from_(_t("asset_version", "v"), copy=False)
            .join(_join(_t("asset", "a"), on=_eq("a.id", "v.asset_id"), left=False), copy=False)
        )
        where = []
        if kind.asset_kind:
            where.append(exp.EQ(this=self.col("a", "kind"), expression=self.lit(kind.asset_kind)))
        if self.experiment is not None:
            where.append(self.col("v", "id").isin(query=self.versions_of_experiment()))
        frame = EntityFrame(self, "version", sel, where, id_sql=self.col("v", "id"),
                            run_id=self.col("v", "created_by"))
        return frame

    def versions_of_experiment(self) -> exp.Select:
        """Ids of asset versions a live run of the scoped experiment used or produced."""
        runs = self.live_runs(self.experiment)
        used = (
            exp.select(_c("le.src_id")).from_(_t("lineage_edge", "le"), copy=False)
            .where(_and(exp.EQ(this=self.col("le", "src_type"), expression=self.lit("asset_version")),
                            exp.EQ(this=self.col("le", "dst_type"), expression=self.lit("run")),
                            self.col("le", "dst_id").isin(query=runs)), copy=False)
        )
        made = (
            exp.select(_c("le.dst_id")).from_(_t("lineage_edge", "le"), copy=False)
            .where(_and(exp.EQ(this=self.col("le", "dst_type"), expression=self.lit("asset_version")),
                            exp.EQ(this=self.col("le", "src_type"), expression=self.lit("run")),
                            self.col("le", "src_id").isin(query=self.live_runs(self.experiment))), copy=False)
        )
        return exp.select(_c("u.src_id")).from_(exp.union(used, made, distinct=True).subquery("u"), copy=False)


class EntityFrame:
    """Rows of one entity (runs, experiments, asset versions, lineage nodes)."""

    stage = "rows"

    def __init__(self, c: Compiler, rows: str, select: exp.Select, where: list,
                 id_sql: exp.Expression, run_id: exp.Expression | None = None):
        self.c = c
        self.rows = rows
        self.select = select
        self.where = list(where)
        self.id_sql = id_sql
        self.run_id = run_id
        self.joins: dict[tuple, str] = {}
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.aliases: dict[str, Val] = {}
        self.projection: list[tuple[str, Val]] | None = None
        self.mentioned: list[tuple[str, Val]] = []

    # -- stages
    def apply(self, stage) -> Any:
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    self.seal()
                v = self.expr(cond)
                self.where.append(self.c.condition(v, cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    self.seal()
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per:
                    self.seal_per(n, per)
                elif self.limit is not None:
                    self.limit = min(self.limit, n)
                else:
                    self.limit = n
            case ast.GroupBy(keys=keys):
                if self.limit is not None:
                    self.seal()
                return GroupedFrame(self, keys)
            case ast.Show(items=items):
                if any(has_aggregate(i.expr) for i in items):
                    if self.limit is not None:
                        self.seal()
                    return GroupedFrame(self, ()).apply(stage)
                self.projection = []
                for item in items:
                    v = self.expr(item.expr)
                    name = item.alias or column_name(item.expr)
                    self.projection.append((name, v))
                self.aliases.update({n: v for n, v in self.projection})
        return self

    def seal(self) -> None:
        """Freeze the rows so far (filters, order, limit) into a subquery of ids."""
        inner = self.build(ids_only=True)
        s = self.c.alias("s")
        ids = exp.select(exp.column("id", table=s)).from_(inner.subquery(s), copy=False)
        self.where = [self.id_sql.isin(query=ids)]
        self.limit = None

    def seal_per(self, n: int, per: tuple) -> None:
        keys = [k for e in per for k in self.expr(e).group_keys()]
        order = self.order_sql()
        rn = exp.Window(this=exp.func("ROW_NUMBER"), partition_by=keys, order=exp.Order(expressions=order))
        inner = self.build(ids_only=True, extra=[rn.as_("rn")])
        s = self.c.alias("s")
        ids = (
            exp.select(exp.column("id", table=s)).from_(inner.subquery(s), copy=False)
            .where(exp.column("rn", table=s) <= exp.Literal.number(n), copy=False)
        )
        self.where = [self.id_sql.isin(query=ids)]
        self.limit = None

    def order_sql(self) -> list[exp.Ordered]:
        if not self.order:
            # no order asked for: the rows' natural order, so answers are stable
            return [exp.Ordered(this=k) for k in self.natural_order()]
        out = []
        for v, desc in self.order:
            for k in v.sort_keys():
                out.append(exp.Ordered(this=k, desc=desc, nulls_first=False))
        if out:
            out.append(exp.Ordered(this=self.id_sql))  # ties break the same on every database
        return out

    def natural_order(self) -> list[exp.Expression]:
        col = self.c.col
        return {
            "run": [col("e", "id"), col("r", "number")],
            "experiment": [col("e", "id")],
            "version": [col("a", "kind"), col("a", "name"), col("v", "version")],
            "node": [col("n", "depth"), col("n", "type"), col("n", "id")],
            "note": [col("nt", "time"), col("nt", "id")],
        }[self.rows]

    def build(self, ids_only: bool = False, extra=(), final: bool = False) -> exp.Select:
        sel = self.select if final else self.select.copy()
        if ids_only:
            sel = sel.select(self.id_sql.copy().as_("id"), *extra, append=False, copy=False)
        if self.where:
            sel = sel.where(_and(*self.where), append=False, copy=False)
        if not extra:
            order = self.order_sql()
            if order and (self.limit is not None or not ids_only):
                sel = sel.order_by(*order, append=False, copy=False)
            if self.limit is not None:
                sel = sel.limit(self.limit, copy=False)
        return sel

    def finish(self) -> tuple[exp.Select, list[Column]]:
        projection = self.projection or self.default_projection()
        select, columns = project(self.build(final=True), projection)
        self.shortcut = self.top_rows_shortcut(select)
        return select, columns

    shortcut: tuple[exp.Select, int] | None = None

    def top_rows_shortcut(self, select: exp.Select) -> tuple[exp.Select, int] | None:
        """`order by rmse limit k`: nulls sort last, so when at least k rows have an rmse
        the answer is the first k of the rows that have one. That query can INNER JOIN
        the metric and walk its (key, last) index instead of reading every run; if it
        returns fewer than k rows the runner falls back to the full statement."""
        if self.limit is None or not self.order:
            return None
        first = self.order[0][0]
        if first.type not in ("number", "int") or not isinstance(first.sql, exp.Column):
            return None
        alias = first.sql.table
        if not alias or alias not in self.joins.values():
            return None
        fast = select.copy()
        for join in fast.args.get("joins") or []:
            if join.alias_or_name == alias and join.side == "LEFT":
                join.set("side", None)
                return fast, self.limit
        return None

    def default_projection(self) -> list[tuple[str, Val]]:
        names = {
            "run": ["experiment", "number", "name", "status"],
            "experiment": ["name", "runs", "created", "description"],
            "version": ["kind", "name", "version", "digest", "size", "created_by"],
            "node": ["depth", "type", "ref", "kind", "name", "version"],
            "note": ["run", "time", "kind", "author", "text"],
        }[self.rows]
        out = [(n, self.field(ast.Field(parts=(n,), quoted=(False,)))) for n in names]
        seen = set(names)
        for name, v in self.mentioned:
            if name not in seen:
                seen.add(name)
                out.append((name, v))
        return out

    # -- names
    def expr(self, node: ast.Expr) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        if len(f.parts) == 1 and name in self.aliases:
            return self.aliases[name]
        try:
            b = bind(f, self.rows, self.c.catalog, self.c.text)
        except QueryError as e:
            if as_value and len(f.parts) == 1 and e.message.startswith("unknown field"):
                # `algorithm = linear`: a bare word where a string was meant
                e.suggestion = e.hint = f'did you mean the string "{name}"?'
            raise
        v = self.binding(b)
        v.node = f
        if not isinstance(b, Attr):
            self.mentioned.append((name, v))
        return v

    def join(self, key: tuple, table: str, prefix: str, on) -> str:
        if key not in self.joins:
            a = self.c.alias(prefix)
            self.joins[key] = a
            self.select = self.select.join(_join(_t(table, a), on=on(a), left=True), copy=False)
        return self.joins[key]

    def binding(self, b) -> Val:
        c = self.c
        if isinstance(b, Attr):
            note_id = self.c.col("nt", "id") if self.rows == "note" and b.name == "text" else None
            return Val(b.type, sql=self.attribute(b.name), order=self.ref_order() if b.name == "ref" else None,
                       note_id=note_id)
        if isinstance(b, MetricRef):
            if b.agg == "mean":
                sub = (
                    exp.select(exp.func("AVG", exp.column("value", table="mh")))
                    .from_(_t("metric", "mh"), copy=False)
                    .where(exp.EQ(this=exp.column("run_id", table="mh"), expression=self.run_id), copy=False)
                    .where(exp.EQ(this=exp.column("key", table="mh"), expression=c.lit(b.key)), copy=False)
                )
                return Val("number", sql=sub.subquery())
            a = self.metric_join(b.key)
            column = {"count": "count", "last_step": "last_step"}.get(b.agg, b.agg)
            return Val("int" if b.agg in ("count", "last_step") else "number",
                       sql=exp.column(column, table=a))
        if isinstance(b, ParamRef):
            a = self.param_join(b.key)
            return Val("param", num=exp.column("num", table=a), text=exp.column("text", table=a),
                       ptype=exp.column("type", table=a), key=b.key)
        if isinstance(b, TagRef):
            return Val("text", sql=exp.column("value", table=self.tag_join(b.key)))
        if isinstance(b, AnyRef):
            m, p, t = self.metric_join(b.key), self.param_join(b.key), self.tag_join(b.key)
            return Val("any", metric=exp.column("last", table=m), num=exp.column("num", table=p),
                       text=exp.column("text", table=p), ptype=exp.column("type", table=p),
                       tag=exp.column("value", table=t))
        raise AssertionError(b)

    def metric_join(self, key: str) -> str:
        c = self.c
        return self.join(("m", key), "metric_summary", "m", lambda a: _and(
            exp.EQ(this=exp.column("run_id", table=a), expression=self.run_id.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def param_join(self, key: str) -> str:
        c = self.c
        return self.join(("p", key), "param", "p", lambda a: _and(
            exp.EQ(this=exp.column("run_id", table=a), expression=self.run_id.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def tag_join(self, key: str) -> str:
        c = self.c
        if self.rows == "node":
            entity = self.c.col("n", "type")
        elif self.rows == "note":  # a note's tags are its run's
            return self.join(("t", key), "tag", "t", lambda a: _and(
                exp.EQ(this=exp.column("entity_type", table=a), expression=c.lit("run")),
                exp.EQ(this=exp.column("entity_id", table=a), expression=self.run_id.copy()),
                exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))
        else:
            entity = c.lit({"run": "run", "experiment": "experiment", "version": "asset_version"}[self.rows])
        return self.join(("t", key), "tag", "t", lambda a: _and(
            exp.EQ(this=exp.column("entity_type", table=a), expression=entity),
            exp.EQ(this=exp.column("entity_id", table=a), expression=as_text(self.id_sql.copy()) if self.rows == "experiment" else self.id_sql.copy()),
            exp.EQ(this=exp.column("key", table=a), expression=c.lit(key))))

    def attribute(self, name: str) -> exp.Expression:
        c = self.c
        col = c.col
        if self.rows == "run":
            simple = {"id": "id", "number": "number", "name": "name", "status": "status",
                      "started": "started", "ended": "ended", "user": "user", "host": "host",
                      "commit": "git_commit", "branch": "git_branch", "dirty": "git_dirty",
                      "command": "command", "parent": "parent_id", "source": "source"}
            if name in simple:
                return col("r", simple[name])
            if name == "experiment":
                return col("e", "name")
            if name == "duration":
                return Seconds(this=col("r", "started"), expression=col("r", "ended"))
            if name == "ref":
                return concat(col("e", "name"), exp.Literal.string("#"), as_text(col("r", "number")))
            if name == "project":
                return self.project_name("e")
            if name == "note":  # the latest; a condition on note asks of every note (note_match)
                latest = (
                    exp.select(exp.column("text", table="ln")).from_(_t("note", "ln"), copy=False)
                    .where(exp.EQ(this=exp.column("run_id", table="ln"), expression=col("r", "id")), copy=False)
                    .order_by(exp.Ordered(this=exp.column("time", table="ln"), desc=True),
                              exp.Ordered(this=exp.column("id", table="ln"), desc=True), copy=False)
                    .limit(1, copy=False)
                )
                return latest.subquery()
        if self.rows == "note":
            if name in ("id", "kind", "author", "text"):
                return col("nt", name)
            if name in ("time", "created"):
                return col("nt", "time")
            if name == "run":
                return concat(col("e", "name"), exp.Literal.string("#"), as_text(col("r", "number")))
            if name == "experiment":
                return col("e", "name")
            if name == "number":
                return col("r", "number")
        if self.rows == "experiment":
            if name in ("id", "name", "description", "created"):
                return col("e", name)
            if name == "project":
                return self.project_name("e")
            if name == "runs":
                return (
                    exp.select(exp.func("COUNT", exp.Star())).from_(_t("run", "rc"), copy=False)
                    .where(_eq("rc.experiment_id", "e.id"), copy=False).where(exp.Is(this=exp.column("deleted_at", table="rc"), expression=exp.null()), copy=False)
                ).subquery()
        if self.rows in ("version", "node"):
            simple = {"digest": "digest", "size": "size", "uri": "uri", "media_type": "media_type",
                      "created": "created", "version": "version"}
            if name in simple:
                return col("v", simple[name])
            if name == "asset":
                return concat(col("a", "kind"), exp.Literal.string(":"), col("a", "name"))
            if name == "created_by":
                return self.run_ref(col("v", "created_by"))
            if name == "latest":
                latest = (
                    exp.select(exp.func("MAX", exp.column("version", table="lv")))
                    .from_(_t("asset_version", "lv"), copy=False).where(_eq("lv.asset_id", "v.asset_id"), copy=False)
                )
                return exp.paren(exp.EQ(this=col("v", "version"), expression=latest.subquery()))
            if name == "project":
                return self.project_name("a")
            if name == "alias":
                return self.alias_names()
        if self.rows == "version":
            if name in ("id", "kind"):
                return col("v", "id") if name == "id" else col("a", "kind")
            if name == "name":
                return col("a", "name")
            if name == "ref":
                return self.version_ref()
        if self.rows == "node":
            if name in ("type", "id", "depth"):
                return col("n", name)
            if name == "kind":
                return exp.func("COALESCE", col("a", "kind"), exp.Literal.string("run"))
            if name == "name":
                return exp.func("COALESCE", col("a", "name"), col("r", "name"))
            if name in ("number", "status", "started", "ended"):
                return col("r", name)
            if name == "experiment":
                return col("e", "name")
            if name == "ref":
                return exp.func(
                    "COALESCE",
                    concat(col("e", "name"), exp.Literal.string("#"), as_text(col("r", "number"))),
                    self.version_ref(),
                )
        raise AssertionError(f"attribute {name} of {self.rows}")

    def config_value(self, node: ast.Config) -> Val:
        """A run's configuration as text: its params but the excluded ones (`k=v; …`,
        by key), then its input versions (`| dataset:d@1, …`), then its commit: what
        `audit` compares to find duplicate runs."""
        c = self.c
        if self.rows != "run":
            raise c.err("config is a run's params and inputs: group runs by it", node)
        for name in node.excluded:
            if not c.catalog.open and name not in c.catalog.params:
                found = closest(name, sorted(c.catalog.params))
                raise c.err(f"config except {name}: no param named {name!r}", node,
                            ("did you mean " + " or ".join(repr(x) for x in found) + "?") if found
                            else "name params to leave out of the configuration, e.g. except seed")
        p = c.alias("cfp")
        params = (
            exp.select(exp.column("run_id", table=p).as_("id"),
                       concat(exp.column("key", table=p), exp.Literal.string("="),
                              exp.func("COALESCE", exp.column("text", table=p), exp.Literal.string(""))).as_("value"))
            .from_(_t("param", p), copy=False)
        )
        if node.excluded:
            params = params.where(_not(exp.column("key", table=p).isin(*[c.lit(n) for n in node.excluded])), copy=False)
        e, v, a = c.alias("cfe"), c.alias("cfv"), c.alias("cfa")
        inputs = (
            exp.select(exp.column("dst_id", table=e).as_("id"),
                       concat(exp.column("kind", table=a), exp.Literal.string(":"), exp.column("name", table=a),
                              exp.Literal.string("@"), as_text(exp.column("version", table=v))).as_("value"))
            .from_(_t("lineage_edge", e), copy=False)
            .join(_join(_t("asset_version", v), on=exp.EQ(this=exp.column("id", table=v), expression=exp.column("src_id", table=e))), copy=False)
            .join(_join(_t("asset", a), on=exp.EQ(this=exp.column("id", table=a), expression=exp.column("asset_id", table=v))), copy=False)
            .where(_and(exp.EQ(this=exp.column("relation", table=e), expression=exp.Literal.string("used")),
                        exp.EQ(this=exp.column("src_type", table=e), expression=exp.Literal.string("asset_version")),
                        exp.EQ(this=exp.column("dst_type", table=e), expression=exp.Literal.string("run"))), copy=False)
        )
        parts = []
        for rows, sep in ((params, "; "), (inputs, ", ")):
            j = c.alias("cfg")
            self.select = self.select.join(_join(
                grouped_concat(rows, c.dialect, sep).subquery(j),
                on=exp.EQ(this=exp.column("id", table=j), expression=c.col("r", "id")), left=True), copy=False)
            parts.append(exp.column("value", table=j))
        empty = exp.Literal.string("")
        text = concat(
            exp.func("COALESCE", parts[0], empty),
            exp.func("COALESCE", concat(exp.Literal.string(" | "), parts[1]), empty),
            exp.func("COALESCE", concat(exp.Literal.string(" | commit "), c.col("r", "git_commit")), empty),
        )
        return Val("text", sql=text)

    def note_match(self, condition) -> exp.Expression:
        """One of the run's notes satisfies `condition(text value)`."""
        a = self.c.alias("nm")
        cond = condition(Val("text", sql=exp.column("text", table=a), note_id=exp.column("id", table=a)))
        sub = (
            exp.select(exp.Literal.number(1)).from_(_t("note", a), copy=False)
            .where(exp.EQ(this=exp.column("run_id", table=a), expression=self.c.col("r", "id")), copy=False)
            .where(cond, copy=False)
        )
        return exp.Exists(this=sub)

    def alias_names(self) -> exp.Expression:
        """The aliases pointing at the row's version now, in order, joined by ", "
        (null when none); `alias = "x"` asks whether one of them is x (alias_match)."""
        names = exp.column("alias", table="aln")
        sub = (
            exp.select(exp.GroupConcat(this=exp.Order(this=names.copy(), expressions=[exp.Ordered(this=names.copy())]),
                                       separator=exp.Literal.string(", ")))
            .from_(_t("asset_alias", "aln"), copy=False)
            .where(exp.EQ(this=exp.column("version_id", table="aln"), expression=self.c.col("v", "id")), copy=False)
        )
        return sub.subquery()

    def alias_match(self, values: list[exp.Expression]) -> exp.Expression:
        """One of the aliases of the row's version is among `values`."""
        sub = (
            exp.select(exp.Literal.number(1)).from_(_t("asset_alias", "alm"), copy=False)
            .where(exp.EQ(this=exp.column("version_id", table="alm"), expression=self.c.col("v", "id")), copy=False)
            .where(exp.In(this=exp.column("alias", table="alm"), expressions=values), copy=False)
        )
        return exp.Exists(this=sub)

    def version_ref(self) -> exp.Expression:
        """kind:name@version, as the CLI and Python write it."""
        c = self.c
        return concat(c.col("a", "kind"), exp.Literal.string(":"), c.col("a", "name"),
                      exp.Literal.string("@"), as_text(c.col("v", "version")))

    def ref_order(self) -> list[exp.Expression]:
        col = self.c.col
        if self.rows == "run":
            return [col("e", "name"), col("r", "number")]
        if self.rows == "version":
            return [col("a", "kind"), col("a", "name"), col("v", "version")]
        # a lineage row is a run (e, r) or an asset version (a, v); the others are null
        return [
            exp.func("COALESCE", col("e", "name"), concat(col("a", "kind"), exp.Literal.string(":"), col("a", "name"))),
            exp.func("COALESCE", col("r", "number"), col("v", "version")),
        ]

    def run_ref(self, run_id: exp.Expression) -> exp.Expression:
        sub = (
            exp.select(concat(exp.column("name", table="ce"), exp.Literal.string("#"),
                                     as_text(exp.column("number", table="cr"))))
            .from_(_t("run", "cr"), copy=False)
            .join(_join(_t("experiment", "ce"), on=_eq("ce.id", "cr.experiment_id"), left=False), copy=False)
            .where(exp.EQ(this=exp.column("id", table="cr"), expression=run_id), copy=False)
        )
        return sub.subquery()

    def project_name(self, table: str) -> exp.Expression:
        sub = (
            exp.select(exp.column("name", table="pj")).from_(_t("project", "pj"), copy=False)
            .where(exp.EQ(this=exp.column("id", table="pj"), expression=exp.column("project_id", table=table)), copy=False)
        )
        return sub.subquery()


class GroupedFrame:
    """Groups of an entity frame's rows: `group by` keys, aggregates, HAVING."""

    stage = "groups"

    def __init__(self, inner: EntityFrame, keys: tuple):
        self.inner = inner
        self.c = inner.c
        self.keys: list[tuple[str, Val, ast.Expr]] = []
        for k in keys:
            v = inner.expr(k)
            if v.agg:
                raise self.c.err("cannot group by an aggregate", k)
            self.keys.append((column_name(k), v, k))
        self.having: list = []
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.aliases: dict[str, Val] = {}
        self.projection: list[tuple[str, Val]] | None = None

    def apply(self, stage):
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    return self.sealed().apply(stage)
                self.having.append(self.c.condition(self.expr(cond), cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    return self.sealed().apply(stage)
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per or self.limit is not None:
                    return self.sealed().apply(stage)
                self.limit = n
            case ast.GroupBy():
                return self.sealed().apply(stage)
            case ast.Show(items=items):
                self.projection = []
                for item in items:
                    self.projection.append((item.alias or column_name(item.expr), self.expr(item.expr)))
                self.aliases.update({n: v for n, v in self.projection})
        return self

    def expr(self, node) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        for key_name, v, _ in self.keys:
            if key_name == name:
                return v
        if len(f.parts) == 1 and name in self.aliases:
            return self.aliases[name]
        # a name that is a key under another spelling (metrics.rmse vs rmse)
        v = self.inner.field(f, as_value)
        for _, kv, _ in self.keys:
            if [to_sql(x, self.c.dialect) for x in kv.group_keys()] == [to_sql(x, self.c.dialect) for x in v.group_keys()]:
                return kv
        raise self.c.err(
            f"{name!r} is not a group key",
            f,
            f"use an aggregate such as mean({name}) or count(), or add it to group by",
        )

    def build(self) -> exp.Select:
        sel = self.inner.build()
        sel.set("order", None)
        sel.set("limit", None)
        group = [k for _, v, _ in self.keys for k in v.group_keys()]
        if group:
            sel = sel.group_by(*group, copy=False)
        if self.having:
            sel = sel.having(_and(*self.having), copy=False)
        order = []
        for v, desc in self.order:
            order += [exp.Ordered(this=k, desc=desc, nulls_first=False) for k in v.sort_keys()]
        # ties between groups break by the keys, the same on every database
        order += [exp.Ordered(this=k, nulls_first=False) for k in group]
        if order:
            sel = sel.order_by(*order, copy=False)
        if self.limit is not None:
            sel = sel.limit(self.limit, copy=False)
        return sel

    def output(self) -> list[tuple[str, Val]]:
        if self.projection is not None:
            return self.projection
        out = [(n, v) for n, v, _ in self.keys]
        return out + [("count()", Val("int", sql=exp.func("COUNT", exp.Star()), agg=True))]

    def finish(self):
        return project(self.build(), self.output())

    def sealed(self) -> ColumnsFrame:
        select, columns = self.finish()
        names = [n for n, _ in self.output()]
        vals = [v for _, v in self.output()]
        return ColumnsFrame(self.c, select, columns, names, vals)


class ColumnsFrame:
    """Rows of an earlier result (grouped rows after a limit), by column name."""

    stage = "columns"

    def __init__(self, c: Compiler, select, columns: list[Column], names, vals):
        self.c = c
        self.alias = c.alias("g")
        self.select = exp.select().from_(select.subquery(self.alias), copy=False)
        self.vals: dict[str, Val] = {}
        i = 0
        for name, col, v in zip(names, columns, vals, strict=True):
            parts = [exp.column(f"c{i + j}", table=self.alias) for j in range(col.width)]
            i += col.width
            if v.type == "param":
                nv = Val("param", ptype=parts[0], text=parts[1], num=exp.cast(parts[1], "DOUBLE"))
            elif v.type == "any":
                nv = Val("any", metric=parts[0], ptype=parts[1], text=parts[2], tag=parts[3],
                         num=exp.cast(parts[2], "DOUBLE"))
            else:
                nv = Val(v.type, sql=parts[0])
            self.vals[name] = nv
        self.where: list = []
        self.order: list[tuple[Val, bool]] = []
        self.limit: int | None = None
        self.projection: list[tuple[str, Val]] | None = None

    def apply(self, stage):
        match stage:
            case ast.Where(condition=cond):
                if self.limit is not None:
                    return self.resealed().apply(stage)
                self.where.append(self.c.condition(self.expr(cond), cond))
            case ast.OrderBy(items=items):
                if self.limit is not None:
                    return self.resealed().apply(stage)
                self.order = [(self.expr(i.expr), i.desc) for i in items]
            case ast.Limit(count=n, per=per):
                if per:
                    raise self.c.err("limit … per works on runs and assets, before group by", stage)
                self.limit = n if self.limit is None else min(n, self.limit)
            case ast.GroupBy():
                raise self.c.err("group by a second time is not supported", stage)
            case ast.Show(items=items):
                self.projection = [(i.alias or column_name(i.expr), self.expr(i.expr)) for i in items]
        return self

    def expr(self, node) -> Val:
        return self.c.expr(node, self)

    def field(self, f: ast.Field, as_value: bool = False) -> Val:
        name = ".".join(f.parts)
        if name in self.vals:
            return self.vals[name]
        raise self.c.err(
            f"{name!r} is not a column here", f,
            f"after a limit on groups the columns are: {', '.join(self.vals)}",
        )

    def build(self) -> exp.Select:
        sel = self.select.copy()
        if self.where:
            sel = sel.where(_and(*self.where), copy=False)
        order = []
        for v, desc in self.order:
            order += [exp.Ordered(this=k, desc=desc, nulls_first=False) for k in v.sort_keys()]
        if order:
            sel = sel.order_by(*order, copy=False)
        if self.limit is not None:
            sel = sel.limit(self.limit, copy=False)
        return sel

    def finish(self):
        proj = self.projection or list(self.vals.items())
        return project(self.build(), proj)

    def resealed(self) -> ColumnsFrame:
        select, columns = self.finish()
        proj = self.projection or list(self.vals.items())
        return ColumnsFrame(self.c, select, columns, [n for n, _ in proj], [v for _, v in proj])

