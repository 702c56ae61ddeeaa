"""Each stage of the pipeline on its own: parse → AST, resolve → bindings, compile → SQL."""

from __future__ import annotations

import pytest

from metastore.backends.sql_query import read_catalog
from metastore.query import ast
from metastore.query.compile import compile_query
from metastore.query.errors import QueryError
from metastore.query.parse import parse
from metastore.query.resolve import Catalog, MetricRef, ParamRef, TagRef, bind


def test_parse_builds_the_typed_tree():
    q = parse('runs where algorithm = "linear" and rmse < 55 order by r2 desc limit 2 per features '
              "show number, r2 as score")
    assert q.source == ast.EntitySource("runs")
    where, order, limit, show = q.stages
    assert isinstance(where, ast.Where) and isinstance(where.condition, ast.And)
    first, second = where.condition.items
    assert first == ast.Compare("=", ast.Field(("algorithm",), (False,)), ast.Literal("linear"))
    assert second.op == "<" and second.right == ast.Literal(55)
    assert order.items == (ast.OrderItem(ast.Field(("r2",), (False,)), desc=True),)
    assert limit.count == 2 and limit.per == (ast.Field(("features",), (False,)),)
    assert [i.alias for i in show.items] == [None, "score"]
    assert where.condition.items[1].pos.column == 37


def test_parse_lineage_and_quoting():
    q = parse('upstream of model "regressor" version 4 depth 3')
    assert q.source == ast.LineageSource("upstream", ast.Ref("model", "regressor", 4), 3)
    q = parse('runs where uses dataset "d" and `train/loss`.min < .5 and x not in [1, -2]')
    uses, loss, notin = q.stages[0].condition.items
    assert uses == ast.Lineage("uses", ast.Ref("dataset", "d"))
    assert loss.left == ast.Field(("train/loss", "min"), (True, False)) and loss.right.value == 0.5
    assert notin.negated and [i.value for i in notin.items] == [1, -2]
    assert parse("RUNS WHERE notes = 'it''s'" .replace("''", "\\'")).stages[0].condition.right.value == "it's"


def test_render_gives_column_names():
    q = parse("runs show mean(rmse), (rmse - mae) / rmse, count(*), `a.b`")
    assert [ast.render(i.expr) for i in q.stages[0].items] == ["mean(rmse)", "(rmse - mae) / rmse", "count(*)", "`a.b`"]


CATALOG = Catalog(metrics=frozenset({"rmse", "loss", "system.wall_time", "dup"}),
                  params=frozenset({"alpha", "dup"}), tags={"run": frozenset({"stage"})})


def f(*parts, quoted=None):
    return ast.Field(parts, quoted or (False,) * len(parts))


def test_resolve_names():
    assert bind(f("rmse"), "run", CATALOG, "") == MetricRef("rmse")
    assert bind(f("loss", "min"), "run", CATALOG, "") == MetricRef("loss", "min")
    assert bind(f("system", "wall_time"), "run", CATALOG, "") == MetricRef("system.wall_time")
    assert bind(f("system.wall_time", quoted=(True,)), "run", CATALOG, "") == MetricRef("system.wall_time")
    assert bind(f("alpha"), "run", CATALOG, "") == ParamRef("alpha")
    assert bind(f("stage"), "run", CATALOG, "") == TagRef("stage")
    assert bind(f("params", "dup"), "run", CATALOG, "") == ParamRef("dup")
    assert bind(f("number"), "run", CATALOG, "").name == "number"
    with pytest.raises(QueryError, match="both a metric and a param"):
        bind(f("dup"), "run", CATALOG, "")
    with pytest.raises(QueryError, match="unknown field 'rmsee'") as e:
        bind(f("rmsee"), "run", CATALOG, "")
    assert e.value.suggestion == "did you mean 'rmse'?"
    with pytest.raises(QueryError, match="no metric named 'los'"):
        bind(f("los", "min"), "run", CATALOG, "")


def test_read_catalog(demo_store):
    with demo_store.backend.read() as s:
        catalog = read_catalog(s.connection())
    assert {"rmse", "r2", "mae", "loss"} <= catalog.metrics
    assert {"algorithm", "features", "normalize", "seed"} <= catalog.params


def test_compile_uses_bound_parameters_and_inline_literals():
    q = parse('runs where algorithm = "x\' OR 1=1" show number')
    bound = compile_query(q, "postgres", catalog=Catalog(params=frozenset({"algorithm"})))
    assert "OR 1=1" not in bound.sql() and "x' OR 1=1" in bound.params.values()
    shown = compile_query(q, "postgres", catalog=Catalog(params=frozenset({"algorithm"})), inline=True).sql()
    assert "'x'' OR 1=1'" in shown


def test_result_sql_shows_the_values(demo_store):
    r = demo_store.query('runs where algorithm = "linear" and rmse < 55 show number, r2')
    assert "'linear'" in r.sql and "55" in r.sql and ":p" not in r.sql
    assert r.to_dict()["columns"] == ["number", "r2"]
    assert list(r.to_pandas().columns) == ["number", "r2"]
    assert demo_store.query("runs show number, number").columns == ["number", "number_2"]


@pytest.mark.parametrize(
    "text",
    [
        'runs where algorithm = "linear" and rmse < 55.5 show number, r2',
        'runs where normalize = true and name like "lr-*" and started > "2020-01-01" show number',
        "runs where number in (1, 4) and seed != -1 order by mae desc limit 1 show number, mae",
        'downstream of run "diabetes#4" where kind = "model" show name, version',
    ],
)
def test_result_sql_is_what_compile_prints(demo_store, text):
    """The server shows `Result.sql` and `query_sql` side by side: they must agree."""

    assert demo_store.query(text).sql == demo_store.query_sql(text)
