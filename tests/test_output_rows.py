"""The output layer's fast paths print what the general ones print: a row of plain values
as JSON (`_flat_json`, against `json.dumps`), and a row's cells (`_cells`, against
`text` of each column's value)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from metastore.output import Column, _cells, _flat_json, jsonable, text

plain = st.one_of(st.none(), st.booleans(), st.integers(), st.text(),
                  st.floats(allow_nan=True, allow_infinity=True))
other = st.one_of(st.datetimes(), st.decimals(allow_nan=False, places=3),
                  st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
rows = st.dictionaries(st.one_of(st.text(), st.integers()), st.one_of(plain, other), max_size=6)


@given(rows)
def test_a_flat_row_is_written_as_json_dumps_writes_it(row):
    fast = _flat_json(row, {})
    if fast is not None:
        assert fast == json.dumps(jsonable(row), indent=2, ensure_ascii=False).replace("\n", "\n  ")
        assert json.loads(fast) == json.loads(json.dumps(jsonable(row)))


def test_rows_with_other_values_take_the_general_way():
    for row in ({"a": float("inf")}, {"a": [1]}, {"a": datetime(2026, 1, 1)}, {"a": Decimal("1.5")}):
        assert _flat_json(row, {}) is None
    assert _flat_json({"é\n": "naïve \"q\" \u2028", "n": 10**30, "f": 0.1, "b": False}, {}) == (
        json.dumps({"é\n": "naïve \"q\" \u2028", "n": 10**30, "f": 0.1, "b": False}, indent=2,
                   ensure_ascii=False).replace("\n", "\n  "))


@given(st.lists(st.one_of(plain, other, st.datetimes(timezones=st.just(UTC))), min_size=1, max_size=5),
       st.booleans())
def test_cells_are_what_text_makes(values, whole):
    row = {f"c{i}": v for i, v in enumerate(values)}
    columns = [Column(f"c{i}") if i % 3 == 0 else Column("x", f"c{i}") if i % 3 == 1
               else Column("y", lambda r, i=i: r[f"c{i}"]) for i in range(len(values))]
    columns.append(Column("missing"))
    assert _cells(columns, whole)(row) == [text(c.value(row), whole=whole) for c in columns]
