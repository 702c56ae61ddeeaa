"""References in the query language: the compact form the CLI and Python write
(`model:regressor@6`, `diabetes#4`) next to the spelled-out one, and the `ref` field."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metastore.models import ASSET_KINDS
from metastore.query import QueryError, ast
from metastore.query.compile import compile_query
from metastore.query.parse import parse

# ---- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compact", "spelled"),
    [
        ("model:regressor@6", 'model "regressor" version 6'),
        ("model:regressor@latest", 'model "regressor" version latest'),
        ("model:regressor", 'model "regressor" version latest'),  # latest, as in the CLI
        ("dataset:diabetes-train@1", 'dataset "diabetes-train" version 1'),
        ("feature_set:f.v2@3", 'feature_set "f.v2" version 3'),
        ("diabetes#4", 'run "diabetes#4"'),
        ("run diabetes#4", 'run "diabetes#4"'),
        ("run:diabetes#4", 'run "diabetes#4"'),
        ("run:4", "run 4"),
        ("run:lr-3f-norm", 'run "lr-3f-norm"'),
        ("MODEL:regressor@6", 'model "regressor" version 6'),
    ],
)
def test_compact_and_spelled_out_references_parse_alike(compact, spelled):
    for template in ("upstream of {}", "downstream of {} depth 2"):
        assert parse(template.format(compact)) == parse(template.format(spelled))
    condition = parse(f"runs where uses {compact} and not produced by {compact}").stages[0].condition
    assert condition == parse(f"runs where uses {spelled} and not produced by {spelled}").stages[0].condition


def test_compact_reference_positions_and_neighbours():
    q = parse("runs where uses dataset:diabetes@1 and rmse < 55 -- a comment")
    uses, rmse = q.stages[0].condition.items
    assert uses.ref.pos.column == 17 and uses.ref.pos.end - uses.ref.pos.start == len("dataset:diabetes@1")
    assert rmse.op == "<"
    assert parse("upstream of diabetes#4 where kind = \"model\"").source.ref == ast.Ref("run", "diabetes#4")
    q = parse("runs where (uses model:m@1) or used by diabetes#2")
    assert [i.ref.text for i in q.stages[0].condition.items] == ["model:m@1", "diabetes#2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstream of model:regressor@v3", "'v3' is not a version"),
        ("upstream of run:4@2", "a run has no versions"),
        ("upstream of modle:regressor@1", "unknown lineage reference 'modle'"),
    ],
)
def test_malformed_compact_references(text, message):
    with pytest.raises(QueryError, match=message) as e:
        compile_query(parse(text))
    assert e.value.column == 13


def test_references_print_in_compact_form():
    assert ast.Ref("model", "regressor", 6).text == "model:regressor@6"
    assert ast.Ref("environment", "python", "latest").text == "environment:python@latest"
    assert ast.Ref("run", "diabetes#4").text == "diabetes#4"
    assert ast.Ref("run", 4).text == "run:4"
    # where the compact form would mean something else, or cannot be written
    assert ast.Ref("model", "regressor").text == 'model "regressor"'  # every version
    assert ast.Ref("model", "my model", 2).text == 'model "my model" version 2'
    assert ast.Ref("run", "4").text == 'run "4"'
    for odd in (ast.Ref("run", "²"), ast.Ref("run", "d#²"), ast.Ref("model", "²", 2)):  # not ASCII digits
        assert parse(f"upstream of {odd.text}").source.ref == odd
        try:
            compile_query(parse(f"upstream of {odd.text}"))
        except QueryError:  # refused in words, never a crash
            pass
    q = parse('runs show uses dataset "diabetes" version 1, derived from model:base@2 depth 2')
    assert [ast.render(i.expr) for i in q.stages[0].items] == [
        "uses dataset:diabetes@1", "downstream of model:base@2 depth 2"]


# ---- properties --------------------------------------------------------------------------------

NAME_CHARS = string.ascii_letters + string.digits + "-_.#/:+"
names = st.text(NAME_CHARS, min_size=1, max_size=12)
awkward_names = st.text(string.ascii_letters + " @,()'\"`-", min_size=1, max_size=10)
versions = st.one_of(st.integers(0, 10**6), st.just("latest"))
experiments = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=10)

asset_refs = st.builds(ast.Ref, st.sampled_from(ASSET_KINDS), st.one_of(names, awkward_names),
                       st.one_of(versions, st.none()))
run_refs = st.one_of(
    st.builds(lambda e, n: ast.Ref("run", f"{e}#{n}"), experiments, st.integers(0, 10**6)),
    st.builds(lambda n: ast.Ref("run", n), st.integers(0, 10**6)),
    st.builds(lambda v: ast.Ref("run", v), st.one_of(names, awkward_names)),
)
refs = st.one_of(asset_refs, run_refs)


def spelled_out(ref: ast.Ref) -> str:
    value = ref.value if isinstance(ref.value, int) else ast._quote(ref.value)
    version = "" if ref.version is None else f" version {ref.version}"
    return f"{ref.kind} {value}{version}"


@settings(max_examples=300, deadline=None)
@given(ref=refs)
def test_printed_references_read_back(ref):
    """Whatever the language prints for a reference parses to that reference again."""
    assert parse(f"upstream of {ref.text}").source.ref == ref
    assert parse(f"runs where uses {ref.text} and rmse < 1").stages[0].condition.items[0].ref == ref
    assert parse(f"upstream of {spelled_out(ref)}").source.ref == ref


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(ASSET_KINDS), name=names, version=versions,
       experiment=experiments, number=st.integers(1, 99), dialect=st.sampled_from(["sqlite", "postgres", "mysql", "duckdb"]))
def test_both_forms_compile_to_the_same_sql(kind, name, version, experiment, number, dialect):
    pairs = [
        (f"upstream of {kind}:{name}@{version}", f"upstream of {kind} {ast._quote(name)} version {version}"),
        (f"downstream of {experiment}#{number} depth 2", f'downstream of run "{experiment}#{number}" depth 2'),
        (f"runs where produced {kind}:{name}@{version} or used by {experiment}#{number}",
         f'runs where produced {kind} {ast._quote(name)} version {version} or used by run "{experiment}#{number}"'),
    ]
    for compact, spelled in pairs:
        a, b = compile_query(parse(compact), dialect), compile_query(parse(spelled), dialect)
        assert a.sql() == b.sql() and a.params == b.params


# ---- on the demo, every backend ------------------------------------------------------------------


def rows(store, text, **kw):
    return [tuple(r.values()) for r in store.query(text, **kw)]


def test_compact_references_answer_as_the_spelled_out_ones(demo_db):
    same = [
        ("upstream of model:regressor@4 depth 3", 'upstream of model "regressor" version 4 depth 3'),
        ("downstream of diabetes#4", 'downstream of run "diabetes#4"'),
        ("upstream of run diabetes#4", 'upstream of run "diabetes#4"'),
        ("upstream of model:regressor", 'upstream of model "regressor" version latest'),
        ("runs where uses dataset:diabetes@1 and rmse < 55 show number",
         'runs where uses dataset "diabetes" version 1 and rmse < 55 show number'),
        ("models where produced by diabetes#5 show version", 'models where produced by run "diabetes#5" show version'),
    ]
    for compact, spelled in same:
        assert rows(demo_db, compact) == rows(demo_db, spelled), compact
    assert rows(demo_db, "downstream of run:4", experiment="diabetes") == rows(demo_db, "downstream of diabetes#4")


def test_lineage_rows_print_references_as_they_are_typed(demo_db):
    result = demo_db.query("upstream of model:regressor@4 depth 3")
    refs = result.column("ref")
    assert refs[0] == "diabetes#4"
    assert "environment:python@1" in refs and "dataset:diabetes@1" in refs
    for ref in refs:  # each can be typed back as a reference
        assert len(demo_db.query(f"downstream of {ref}")) > 0


def test_the_ref_field(demo_db):
    assert rows(demo_db, 'runs where ref = "diabetes#4" show ref, number') == [("diabetes#4", 4)]
    assert rows(demo_db, "runs order by ref desc limit 3 show ref") == [
        ("diabetes#12",), ("diabetes#11",), ("diabetes#10",)]  # by number, not as text
    assert rows(demo_db, "models order by ref limit 3 show ref, created_by") == [
        ("model:regressor@1", "diabetes#1"), ("model:regressor@2", "diabetes#2"), ("model:regressor@3", "diabetes#3")]
    assert rows(demo_db, 'models where ref = "model:regressor@6" show version') == [(6,)]
    assert rows(demo_db, 'assets where ref like "dataset:*" order by ref show ref') == [
        ("dataset:diabetes@1",), ("dataset:diabetes-test@1",), ("dataset:diabetes-train@1",)]
    assert rows(demo_db, "runs group by ref order by ref desc limit 1 show ref, count()") == [("diabetes#12", 1)]
    assert rows(demo_db, 'upstream of diabetes#4 where ref = "environment:python@1" show ref') == [
        ("environment:python@1",)]


def test_errors_name_references_compactly(demo_db):
    with pytest.raises(QueryError, match="model:regressor has no version 99"):
        demo_db.query("upstream of model:regressor@99")
    with pytest.raises(QueryError, match="no model named 'regresor'") as e:
        demo_db.query("upstream of model:regresor@1")
    assert e.value.suggestion == "did you mean 'regressor'?"
    with pytest.raises(QueryError, match="no run diabetes#99"):
        demo_db.query("downstream of diabetes#99")
