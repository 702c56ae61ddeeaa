"""What differs between the databases a query compiles for, in one place.

The other stages build one dialect-neutral sqlglot tree. The places where the databases
disagree are either standard sqlglot nodes (`StddevSamp`, `RegexpLike`, `Round`, `TRUE`)
or the three nodes below that name a metastore need (seconds between two times, an exact
text comparison, a time value). Each database is a small subclass of sqlglot's own
dialect whose generator writes those nodes its way: adding a database means adding one
class here, not a branch in every stage.
"""

from __future__ import annotations

import sqlite3

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.dialects.mysql import MySQL
from sqlglot.dialects.postgres import Postgres
from sqlglot.dialects.sqlite import SQLite

from metastore import fulltext
from metastore.query.errors import QueryError

# ---- nodes the neutral tree uses ---------------------------------------------------------

# sqlglot 30 split the node base class in two (Expr for the interface, Expression for the
# storage); before it, Func was already a full Expression.
_FUNC = (exp.Func,) if issubclass(exp.Func, exp.Expression) else (exp.Expression, exp.Func)


class Seconds(*_FUNC):
    """Seconds from `this` (a start time) to `expression` (an end time), fractional."""

    arg_types = {"this": True, "expression": True}


class ExactText(*_FUNC):
    """Text that compares case- and space-exactly (MySQL's default collation does not)."""

    arg_types = {"this": True}


class TimeValue(*_FUNC):
    """A 'YYYY-MM-DD HH:MM:SS.ffffff' string, as a value comparable with time columns."""

    arg_types = {"this": True}


class Words(*_FUNC):
    """The text `this` holds every word of `expression`, a query in the syntax of the
    database's word search (`words_search`); `note` is the note's id when the text is a
    note's (SQLite's index is looked up by it). The databases without a word search get
    a regular expression per word from the compiler instead (metastore/fulltext.py)."""

    arg_types = {"this": True, "expression": True, "note": False}


def words_search(dialect: str, store_has_index: bool, is_note: bool):
    """How `dialect` searches words (a function of a pattern's words to its query), or
    None where a regular expression must: PostgreSQL splits any text into a tsvector
    (the GIN index has a note's), SQLite has its FTS5 index of notes only."""
    name = dialect_name(dialect)
    if name == "postgres":
        return fulltext.tsquery
    if name == "sqlite" and store_has_index and is_note:
        return fulltext.fts5_query
    return None


def _plain(self, e: exp.Func) -> str:
    return self.sql(e, "this")


def _epoch_seconds(self, e: Seconds) -> str:
    return self.sql(exp.Extract(this=exp.var("EPOCH"),
                                expression=exp.paren(exp.Sub(this=e.expression, expression=e.this))))


def _timestamp(self, e: TimeValue) -> str:
    return self.sql(exp.cast(e.this, exp.DataType.build("TIMESTAMP")))


def _one_or_zero(self, e: exp.Boolean) -> str:
    # bool columns are 0/1 integers here; SQLite before 3.23 has no TRUE at all
    return "1" if e.this else "0"


_NEUTRAL = {Seconds: _epoch_seconds, ExactText: _plain, TimeValue: _timestamp}


# ---- one class per database ----------------------------------------------------------------


class MetastoreSQLite(SQLite):
    class Generator(SQLite.Generator):
        def _words(self, e: Words) -> str:
            index = fulltext.NOTE_FTS
            return (f"{self.sql(e, 'note')} IN (SELECT rowid FROM {index} "
                    f"WHERE {index} MATCH {self.sql(e, 'expression')})")

        def _seconds(self, e: Seconds) -> str:
            diff = exp.Sub(this=exp.func("JULIANDAY", e.expression), expression=exp.func("JULIANDAY", e.this))
            return self.sql(exp.Mul(this=exp.paren(diff), expression=exp.Literal.number("86400.0")))

        def _stddev(self, e: exp.StddevSamp) -> str:
            # No STDDEV in SQLite: the sample standard deviation from sums (clamped at 0
            # against rounding), NULL for fewer than two values, as elsewhere.
            x = e.this
            n = exp.func("COUNT", x)
            s = exp.func("SUM", x)
            ss = exp.func("SUM", exp.Mul(this=x, expression=x))
            var = exp.Div(
                this=exp.paren(exp.Sub(this=ss, expression=exp.Div(this=exp.Mul(this=s, expression=s),
                                                                    expression=n))),
                expression=exp.paren(exp.Sub(this=n, expression=exp.Literal.number(1))),
            )
            safe = exp.Case(ifs=[exp.If(this=exp.LT(this=var, expression=exp.Literal.number(0)),
                                        true=exp.Literal.number(0))], default=var)
            return self.sql(exp.Case(
                ifs=[exp.If(this=n > exp.Literal.number(1), true=exp.func("SQRT", safe))],
                default=exp.null(),
            ))

        def _group_concat(self, e: exp.GroupConcat) -> str:
            # GROUP_CONCAT(x ORDER BY …) needs SQLite 3.44; before it, in scan order
            this = e.this
            if isinstance(this, exp.Order) and sqlite3.sqlite_version_info < (3, 44):
                this = this.this
            return self.func("GROUP_CONCAT", this, e.args.get("separator"))

        TRANSFORMS = {
            **SQLite.Generator.TRANSFORMS, **_NEUTRAL,
            exp.GroupConcat: _group_concat,
            Seconds: _seconds,
            TimeValue: _plain,  # times are stored as ISO text, which sorts as time
            exp.StddevSamp: _stddev,
            exp.Boolean: _one_or_zero,
            Words: _words,
        }


class MetastorePostgres(Postgres):
    class Generator(Postgres.Generator):
        def _words(self, e: Words) -> str:
            # spelled as the GIN index is (fulltext.WORDS_TSVECTOR), so the planner uses it
            words = fulltext.WORDS_TSVECTOR.replace("lower(text)", f"lower({self.sql(e, 'this')})")
            return f"{words} @@ CAST({self.sql(e, 'expression')} AS TSQUERY)"

        def _round(self, e: exp.Round) -> str:
            # PostgreSQL rounds to n digits only NUMERIC, and a metric is double precision
            return self.func("ROUND", exp.cast(e.this, exp.DataType.build("DECIMAL")), e.args.get("decimals"))

        TRANSFORMS = {**Postgres.Generator.TRANSFORMS, **_NEUTRAL, exp.Round: _round,
                      Words: _words}


class MetastoreMySQL(MySQL):
    """MySQL and MariaDB."""

    class Generator(MySQL.Generator):
        def _seconds(self, e: Seconds) -> str:
            micro = exp.Anonymous(this="TIMESTAMPDIFF", expressions=[exp.var("MICROSECOND"), e.this, e.expression])
            return self.sql(exp.Div(this=micro, expression=exp.Literal.number("1000000.0")))

        def _exact(self, e: ExactText) -> str:
            return self.sql(exp.Collate(this=e.this, expression=exp.var("utf8mb4_bin")))

        def _time(self, e: TimeValue) -> str:
            # a plain DATETIME would drop the microseconds
            return self.sql(exp.cast(e.this, exp.DataType.build("DATETIME(6)", dialect="mysql")))

        def _regex(self, e: exp.RegexpLike) -> str:
            # REGEXP is case-insensitive under the default collation; `~` is not
            found = exp.func("REGEXP_INSTR", ExactText(this=e.this), e.expression)
            return self.sql(found > exp.Literal.number(0))

        TRANSFORMS = {
            **MySQL.Generator.TRANSFORMS, **_NEUTRAL,
            Seconds: _seconds,
            ExactText: _exact,
            TimeValue: _time,
            exp.RegexpLike: _regex,
            exp.Boolean: _one_or_zero,
        }


def _duckdb() -> Dialect:
    """Built on first use: sqlglot's DuckDB generator takes longer to import than the
    other three dialects together, and only `metastore compile --dialect duckdb` asks."""
    from sqlglot.dialects.duckdb import DuckDB

    class MetastoreDuckDB(DuckDB):
        class Generator(DuckDB.Generator):
            TRANSFORMS = {**DuckDB.Generator.TRANSFORMS, **_NEUTRAL}

    return MetastoreDuckDB()


# The names a caller may use, and the one each is known by afterwards (Compiled.dialect).
NAMES = {"sqlite": "sqlite", "postgres": "postgres", "postgresql": "postgres", "mysql": "mysql",
         "mariadb": "mysql", "duckdb": "duckdb"}
_DIALECTS: dict[str, Dialect] = {
    "sqlite": MetastoreSQLite(),
    "postgres": MetastorePostgres(),
    "mysql": MetastoreMySQL(),
}


def grouped_concat(rows: exp.Select, dialect: str, separator: str) -> exp.Select:
    """`SELECT id, value FROM (rows) GROUP BY id`, where value joins the `value` column of
    each id's rows in order, by `separator`: the databases spell an ordered GROUP_CONCAT
    differently, and SQLite before 3.44 has none (it joins a subquery's rows in the
    subquery's order)."""
    g = "gc"
    value = exp.column("value", table=g)
    if dialect_name(dialect) == "sqlite" and sqlite3.sqlite_version_info < (3, 44):
        rows = rows.order_by(exp.column("id"), exp.column("value"), copy=True)
        agg = exp.GroupConcat(this=value, separator=exp.Literal.string(separator))
    else:
        agg = exp.GroupConcat(this=exp.Order(this=value.copy(), expressions=[exp.Ordered(this=value.copy())]),
                              separator=exp.Literal.string(separator))
    return (
        exp.select(exp.column("id", table=g).as_("id"), agg.as_("value"))
        .from_(rows.subquery(g), copy=False)
        .group_by(exp.column("id", table=g), copy=False)
    )


def dialect_name(dialect: str) -> str:
    try:
        return NAMES[dialect.lower()]
    except KeyError:
        raise QueryError(
            f"unknown SQL dialect {dialect!r}", suggestion="use sqlite, postgres, mysql or duckdb"
        ) from None


def dialect(name: str) -> Dialect:
    """The sqlglot dialect that writes the neutral tree for `name` (any spelling in NAMES)."""
    name = dialect_name(name)
    if name not in _DIALECTS:
        _DIALECTS[name] = _duckdb()
    return _DIALECTS[name]


def to_sql(node: exp.Expression, name: str, pretty: bool = False) -> str:
    return node.sql(dialect=dialect(name), pretty=pretty)
