"""MLflow filter strings and order-by clauses, translated to the query language."""

import pytest

from metastore.errors import InvalidValue
from metastore.server.mlflow_filter import translate_filter, translate_order_by


@pytest.mark.parametrize(
    ("mlflow", "query"),
    [
        ("metrics.rmse < 55", ["metrics.`rmse` < 55"]),
        ("params.alpha = '0.5'", ["params.`alpha` = 0.5"]),
        ("params.solver = 'adam'", ['params.`solver` = "adam"']),
        ("params.flag = 'True'", ["params.`flag` = true"]),
        ('tags."mlflow.user" LIKE \'ann%\'', ['tags.`mlflow.user` ~ "^ann.*$"']),
        ("tags.mlflow.parentRunId = 'x'", ['tags.`mlflow.parentRunId` = "x"']),
        ("attributes.status = 'FINISHED'", ['status = "finished"']),
        ("run_name ILIKE '%lr_1%'", ['name like "*lr?1*"']),
        ("attributes.run_id IN ('a', 'b')", ['id in ("a", "b")']),
        ("params.n NOT IN ('1', '2')", ["params.`n` not in (1, 2)"]),
        ("metrics.`val loss` >= 1e-3", ["metrics.`val loss` >= 0.001"]),
        ("metrics.a > 1 and tags.b != 'c'", ["metrics.`a` > 1", 'tags.`b` != "c"']),
        ("attributes.start_time > 0", ['started > "1970-01-01 00:00:00.000000"']),
        ("", []),
    ],
)
def test_translate_filter(mlflow, query):
    assert translate_filter(mlflow) == query


@pytest.mark.parametrize(
    "bad",
    ["metrics.a < 1 OR metrics.b > 2", "metrics.a < 'x'", "datasets.name = 'd'",
     "attributes.artifact_uri = 'x'", "metrics.a <", "metrics.a < 1 AND", "foo.bar = 1"],
)
def test_bad_filters_are_refused(bad):
    with pytest.raises(InvalidValue):
        translate_filter(bad)


def test_translate_order_by():
    assert translate_order_by(["metrics.rmse ASC", "attributes.start_time DESC", "params.`a b`"]) == [
        "metrics.`rmse` asc", "started desc", "params.`a b` asc"]
    with pytest.raises(InvalidValue):
        translate_order_by(["metrics.rmse sideways"])
