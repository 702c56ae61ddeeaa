"""Errors people can cause, injection attempts, compilation for every dialect, and
property tests: random well-formed queries run, random junk gives QueryError only."""

from __future__ import annotations

import string

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metastore
from metastore.backends.sql_query import read_catalog
from metastore.demo import QUESTIONS
from metastore.query import QueryError, compile_text
from metastore.query.parse import parse


def error(store, text) -> QueryError:
    with pytest.raises(QueryError) as e:
        store.query(text)
    return e.value


# ---- errors ------------------------------------------------------------------------------


def test_unknown_field_points_at_it_and_suggests(demo_store):
    e = error(demo_store, "runs where rsme < 55 show number")
    assert e.message == "unknown field 'rsme'"
    assert (e.line, e.column, e.length) == (1, 12, 4)
    assert e.caret == "runs where rsme < 55 show number\n           ^^^^"
    assert e.suggestion == "did you mean 'rmse'?"
    assert "^^^^" in str(e) and "did you mean 'rmse'?" in str(e)
    assert e.to_dict()["column"] == 12


def test_bare_word_where_a_string_was_meant(demo_store):
    e = error(demo_store, "runs where algorithm = linear")
    assert e.suggestion == 'did you mean the string "linear"?'
    assert e.column == 24


def test_syntax_errors_say_what_was_expected(demo_store):
    e = error(demo_store, "runs wher rmse < 3")
    assert "unexpected name 'wher'" in e.message and e.column == 6
    assert "where" in e.suggestion
    e = error(demo_store, "runs order rmse")
    assert "expected by" in e.message
    e = error(demo_store, 'runs where name = "abc')
    assert "never closed" in e.suggestion
    e = error(demo_store, "runs where rmse <")
    assert e.message.startswith("the query ends too early")
    e = error(demo_store, "")
    assert e.message == "empty query"
    e = error(demo_store, "runs where rmse < 55\n  show number,, r2")
    assert e.line == 2 and e.column == 15


def test_type_errors(demo_store):
    assert "is a number" in error(demo_store, 'runs where rmse < "55"').message
    assert error(demo_store, 'runs where rmse < "55"').suggestion == "did you mean 55?"
    assert "is text" in error(demo_store, "runs where status = 3").message
    assert "not a date" in error(demo_store, 'runs where started > "yesterday"').message
    assert "not true/false" in error(demo_store, "runs where rmse").message
    assert "like matches text" in error(demo_store, 'runs where rmse like "5*"').message
    assert "regular expression" in error(demo_store, 'runs where name ~ "("').message


def test_misplaced_aggregates_and_groups(demo_store):
    e = error(demo_store, "runs where min(loss) < 60")
    assert "after group by" in e.message and "loss.min" in e.suggestion
    e = error(demo_store, "runs group by algorithm show rmse")
    assert e.message == "'rmse' is not a group key" and "mean(rmse)" in e.suggestion
    assert "unknown function" in error(demo_store, "runs show mediann(rmse)").message
    assert "is not a group key" not in str(error(demo_store, "runs group by mean(rmse)"))


def test_unknown_source_and_refs(demo_store):
    e = error(demo_store, "rusn where rmse < 3")
    assert e.message == "unknown source 'rusn'" and "runs" in e.suggestion
    assert "no run 99" in error(demo_store, "downstream of run 99").message
    assert "unknown lineage reference" in error(demo_store, 'downstream of modle "regressor"').message
    assert "no model named" in error(demo_store, 'upstream of model "regresor"').message


def test_ambiguous_run_number_across_experiments(demo_store):
    with demo_store.start_run(experiment="other", capture=False) as run:
        run.log_metric("rmse", 1.0)
    e = error(demo_store, "downstream of run 1")
    assert "2 experiments" in e.message and "#1" in e.suggestion
    assert len(demo_store.query("downstream of run 1", experiment="diabetes")) > 0
    assert len(demo_store.query('downstream of run "diabetes#1"')) > 0


def test_cli_prints_the_caret_and_exits_non_zero(demo_store):
    from typer.testing import CliRunner

    from metastore.cli import app

    runner = CliRunner()
    url = demo_store.url
    bad = runner.invoke(app, ["query", "runs where rsme < 55", "--store", url])
    assert bad.exit_code == 1
    assert "unknown field 'rsme'" in bad.output and "^^^^" in bad.output and "Traceback" not in bad.output
    ok = runner.invoke(app, ["query", QUESTIONS[9], "--store", url, "--format", "json"])
    assert ok.exit_code == 0
    import json

    rows = json.loads(ok.stdout)
    assert [r["number"] for r in rows] == [r["number"] for r in demo_store.query(QUESTIONS[9])]
    csv = runner.invoke(app, ["query", QUESTIONS[1], "--store", url, "-f", "csv"])
    assert csv.stdout.splitlines()[0] == "number,rmse"
    md = runner.invoke(app, ["query", QUESTIONS[1], "--store", url, "-f", "markdown"])
    assert md.stdout.startswith("| number | rmse |")
    table = runner.invoke(app, ["query", QUESTIONS[1], "--store", url])
    assert "rmse" in table.stdout and "1 row" in table.stdout
    sql = runner.invoke(app, ["query", QUESTIONS[9], "--store", url, "--sql"])
    assert sql.stdout.startswith("SELECT") and "'linear'" in sql.stdout
    scoped = runner.invoke(app, ["query", "runs", "--store", url, "-e", "diabets", "-f", "json"])
    assert scoped.exit_code == 1 and "no experiment named 'diabets'" in scoped.output
    assert "did you mean 'diabetes'?" in scoped.output


# ---- safety ------------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE run; --",
    '"; DROP TABLE run; --',
    "x' OR '1'='1",
    "\\'; DELETE FROM run; --",
    "a\\",
    ":p1",
    "%(p1)s",
    "`; DROP TABLE run",
    "run'); DROP TABLE param; --",
]


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def test_injection_in_every_literal_position(demo_db):
    before = len(demo_db.query("runs"))
    for bad in INJECTIONS:
        lit = f'"{_escape(bad)}"'
        name = "`" + bad.replace("`", "``") + "`"
        queries = [
            f"runs where name = {lit}",
            f"runs where algorithm = {lit}",
            f"runs where name in ({lit}, {lit})",
            f"runs where features like {lit}",
            f"runs where name != {lit} and status = {lit}",
            f"runs show number, name = {lit} as same",
            f"experiments where name = {lit}",
            f"models where name = {lit}",
        ]
        for text in queries:
            got = demo_db.query(text)
            if "show number" in text:
                assert len(got) == before and not any(r["same"] for r in got)
            else:
                assert len(got) == 0, text
        assert len(demo_db.query(f"runs where name != {lit}")) == before
        for text in (f"runs where {name} > 1", f"downstream of run {lit}", f"runs where uses dataset {lit}"):
            with pytest.raises(QueryError):
                demo_db.query(text)
        try:  # as a regular expression: matches nothing, or is refused as invalid
            assert len(demo_db.query(f"runs where name ~ {lit}")) == 0
        except QueryError as e:
            assert "regular expression" in e.message
        got = demo_db.query(f"runs show number as {name}")
        assert got.columns == [bad]
    # the string round-trips exactly: stored, then found by equality
    assert len(demo_db.query("runs")) == before


def test_injected_values_are_found_exactly(store):
    for bad in INJECTIONS:
        with store.start_run(experiment="inj", name=bad, capture=False) as run:
            run.log_params({"algorithm": bad})
    for bad in INJECTIONS:
        lit = f'"{_escape(bad)}"'
        got = store.query(f"runs where name = {lit} and algorithm = {lit} show name, algorithm").rows
        assert got == [{"name": bad, "algorithm": bad}]
    assert len(store.query("runs")) == len(INJECTIONS)


# ---- dialects ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", ["sqlite", "postgres", "mysql", "duckdb"])
def test_compiles_for_every_dialect(dialect):
    for text in QUESTIONS.values():
        sql = compile_text(text, dialect=dialect)
        assert sql.startswith(("SELECT", "WITH"))
    sql = compile_text('runs where algorithm = "linear" and rmse < 55 show number, r2', dialect=dialect)
    assert "'linear'" in sql and "55" in sql


def test_compile_with_a_store_uses_its_catalog(demo_store):
    open_sql = compile_text(QUESTIONS[9])
    bound = demo_store.query_sql(QUESTIONS[9])
    assert bound.count("JOIN") < open_sql.count("JOIN")  # no guessing metric/param/tag
    assert metastore.compile(QUESTIONS[9], dialect="postgres") == compile_text(QUESTIONS[9], "postgres")
    with pytest.raises(QueryError, match="unknown SQL dialect"):
        compile_text(QUESTIONS[1], dialect="oracle")


def test_open_catalog_sql_gives_the_same_answers(demo_store):
    """SQL compiled without a store (names looked up at run time) answers the same."""
    with demo_store.backend.read() as s:
        conn = s.connection()
        for n, text in QUESTIONS.items():
            sql = compile_text(text, "sqlite")
            raw = conn.execute(sa.text(sql.replace(":", "\\:"))).all()
            assert len(raw) == len(demo_store.query(text)), n


def test_duckdb_runs_the_ten_questions(demo_store):
    duckdb = pytest.importorskip("duckdb")
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from metastore.models import SQLModel

    con = duckdb.connect()
    with demo_store.backend.read() as s:
        conn = s.connection()
        for table in SQLModel.metadata.sorted_tables:
            ddl = str(CreateTable(table).compile(dialect=postgresql.dialect()))
            con.execute(ddl.replace("DOUBLE PRECISION", "DOUBLE").replace("BIGSERIAL", "BIGINT").replace("SERIAL", "INTEGER"))
            rows = [tuple(r) for r in conn.execute(table.select())]
            if rows:
                marks = ", ".join("?" for _ in table.columns)
                con.executemany(f"INSERT INTO {table.name} VALUES ({marks})", rows)
    with demo_store.backend.read() as s:
        catalog = read_catalog(s.connection())
    for n, text in QUESTIONS.items():
        want = demo_store.query(text)
        got = con.execute(compile_text(text, "duckdb", catalog=catalog)).fetchall()
        assert len(got) == len(want), n
        flat = [v for r in want.rows for v in r.values() if not isinstance(v, bool)]
        flat_got = [v for r in got for v in r]
        for v in flat:
            assert v in flat_got, (n, v)


# ---- properties ------------------------------------------------------------------------------

FIELDS = ["rmse", "r2", "mae", "number", "seed", "alpha", "n_estimators", "loss.min", "duration",
          "normalize", "algorithm", "features", "status", "name", "`system.wall_time`", "ref"]
NUMERIC = ["rmse", "r2", "mae", "number", "seed", "alpha", "n_estimators", "loss.min", "duration",
           "`system.wall_time`"]
TEXTUAL = ["algorithm", "features", "status", "name", "ref"]

num = st.one_of(st.integers(-5, 100), st.floats(-10, 100, allow_nan=False).map(lambda x: round(x, 3)))
word = st.text(string.ascii_letters + string.digits + "'\"%_*?-\\ ", max_size=8)


def _str(s: str) -> str:
    return '"' + _escape(s) + '"'


predicate = st.one_of(
    st.tuples(st.sampled_from(NUMERIC), st.sampled_from(["<", "<=", ">", ">=", "=", "!="]), num).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"),
    st.tuples(st.sampled_from(TEXTUAL), st.sampled_from(["=", "!=", "like"]), word).map(
        lambda t: f"{t[0]} {t[1]} {_str(t[2])}"),
    st.tuples(st.sampled_from(NUMERIC), num, num).map(lambda t: f"{t[0]} between {t[1]} and {t[2]}"),
    st.tuples(st.sampled_from(FIELDS), st.booleans()).map(lambda t: f"{t[0]} is {'not ' if t[1] else ''}null"),
    st.sampled_from(["normalize", "not normalize", "normalize = true", 'uses dataset "diabetes"',
                     'produced model "regressor" version 2', "number in (1, 4, 7)",
                     "uses dataset:diabetes@1", "produced model:regressor@2", "produced by diabetes#2",
                     "upstream of model:regressor within 2 hops", 'ref = "diabetes#3"']),
)
condition = st.recursive(
    predicate,
    lambda inner: st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})") | inner.map(lambda x: f"not ({x})"),
    max_leaves=4,
)
def stages(fields, numeric, textual):
    num_cmp = st.tuples(st.sampled_from(numeric), st.sampled_from(["<", "<=", ">", ">=", "=", "!="]), num).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}")
    text_cmp = st.tuples(st.sampled_from(textual), st.sampled_from(["=", "!=", "like"]), word).map(
        lambda t: f"{t[0]} {t[1]} {_str(t[2])}")
    pred = st.one_of(
        num_cmp, text_cmp,
        st.tuples(st.sampled_from(numeric), num, num).map(lambda t: f"{t[0]} between {t[1]} and {t[2]}"),
        st.tuples(st.sampled_from(fields), st.booleans()).map(lambda t: f"{t[0]} is {'not ' if t[1] else ''}null"),
        st.sampled_from(["normalize", "not normalize", "normalize = true", 'uses dataset "diabetes"',
                         'produced by run 2', "seed in (1, 4, 7)", "uses dataset:diabetes", "produced by diabetes#2",
                         "used by run diabetes#3", "downstream of dataset:diabetes-train@1 depth 1"]),
    )
    cond = st.recursive(
        pred,
        lambda inner: st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})") | inner.map(lambda x: f"not ({x})"),
        max_leaves=4,
    )
    return st.one_of(
        cond.map(lambda c: f"where {c}"),
        st.tuples(st.sampled_from(fields), st.booleans()).map(lambda t: f"order by {t[0]}{' desc' if t[1] else ''}"),
        st.integers(0, 5).map(lambda n: f"limit {n}"),
        st.tuples(st.integers(1, 3), st.sampled_from(["algorithm", "normalize", "features"])).map(
            lambda t: f"limit {t[0]} per {t[1]}"),
        st.lists(st.sampled_from(fields), min_size=1, max_size=3).map(lambda fs: "show " + ", ".join(fs)),
    )


SHARED = ["rmse", "r2", "mae", "seed", "alpha", "n_estimators", "normalize", "algorithm", "features", "name", "ref"]
grouped_tail = st.sampled_from([
    "", "where count() >= 2", "show algorithm, count(), mean(rmse), std(r2)",
    "order by mean(rmse) desc limit 1", "where max(rmse) > 50 show algorithm, min(mae)",
])
run_query = st.tuples(
    st.lists(stages(FIELDS, NUMERIC, TEXTUAL), max_size=4),
    st.one_of(st.just(""), grouped_tail.map(lambda t: f" group by algorithm {t}")),
).map(lambda t: " ".join(["runs", *t[0]]) + t[1])
other_query = st.tuples(
    st.sampled_from(["models", "datasets", 'downstream of dataset "diabetes"', "downstream of dataset:diabetes@1",
                     "upstream of model:regressor@3", "upstream of diabetes#5 depth 1"]),
    st.lists(stages(SHARED, ["rmse", "r2", "mae", "seed", "alpha"], ["algorithm", "features", "name", "ref"]), max_size=3),
).map(lambda t: " ".join([t[0], *t[1]]))
query = st.one_of(run_query, run_query, other_query)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=query)
def test_random_well_formed_queries_compile_and_run(demo_store, text):
    try:
        result = demo_store.query(text)
    except QueryError as e:
        # allowed only for type errors a person could make (e.g. text compared with a number)
        assert any(w in e.message for w in ("is a number", "is text", "not true/false", "like matches",
                                            "is true/false", "is not a group key", "have no")), (text, str(e))
        return
    assert isinstance(result.rows, list)
    for dialect in ("postgres", "mysql", "duckdb"):
        compile_text(text, dialect)


junk = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["runs", "where", "order", "by", "limit", "show", "group", "(", ")", ",",
                              "rmse", "=", "<", "and", "or", "not", '"x"', "3", "`a`", "per", "in",
                              "upstream", "of", "model", "version", "depth", "-", "*", "count()", "~",
                              "model:regressor@2", "diabetes#4", "run:4", "@", "#", ":", "model:x@y", "ref"]),
             max_size=10).map(" ".join),
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=junk)
def test_junk_gives_query_error_never_another_exception(demo_store, text):
    try:
        demo_store.query(text)
    except QueryError as e:
        assert e.message
        str(e)


@given(text=st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_parser_never_crashes(text):
    try:
        parse(text)
    except QueryError:
        pass


def test_huge_or_deep_queries_are_refused_plainly(demo_store):
    numbers = ", ".join(str(i % 13) for i in range(3000))
    assert len(demo_store.query(f"runs where number in ({numbers})")) == 12  # one SQL IN
    names = ", ".join(f'"lr-{i}f"' for i in range(2000))
    assert len(demo_store.query(f"runs where name in ({names})")) == 3  # lr-3f, lr-4f, lr-10f
    for text, message in [
        ("runs where " + "(" * 60 + "rmse < 1" + ")" * 60, "nests too deeply"),
        ("runs where " + "not " * 60 + "normalize", "nests too deeply"),
        ("runs where " + " or ".join(["rmse < 1"] * 500), "conditions joined by and/or"),
    ]:
        with pytest.raises(QueryError, match=message):
            demo_store.query(text)
    assert len(demo_store.query("runs where " + "not " * 20 + "normalize")) == 6
