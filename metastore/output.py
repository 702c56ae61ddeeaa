"""The command line's one output layer: every command that prints rows goes through here.

A command describes its rows (plain JSON-ready data) and the columns a table shows of
them; `emit()` prints them as

- `table`: on a terminal, aligned columns that fit its width. Cells wrap at spaces and
  commas when the table is too wide; when even that cannot fit, each row becomes a block
  of `field  value` lines (a vertical layout). Nothing is ever cut short with "…".
  When stdout is not a terminal (a pipe, a file), whole values in aligned columns, no
  wrapping and no colour.
- `json`: the rows through `jsonable()`, the one conversion every JSON output uses.
- `csv`, `markdown`: the table's columns with whole values.

Values read the same everywhere: booleans are `true`/`false`, missing values are empty,
timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

FORMATS = ("table", "json", "csv", "markdown")
GAP = 2  # spaces between table columns


# -- values -------------------------------------------------------------------------------


def iso(t: datetime) -> str:
    """A timestamp as ISO 8601 in UTC with a `Z` (naive datetimes are UTC already)."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t.isoformat() + "Z"


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data: the one conversion behind every `--format json`."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if hasattr(value, "model_dump"):  # pydantic / SQLModel records
        return jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def text(value: Any, whole: bool = True) -> str:
    """One value as a cell. `whole=False` (a terminal table) shortens floats to six
    significant digits and timestamps to seconds; nothing else is ever shortened."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if whole else f"{value:.6g}"
    if isinstance(value, datetime):
        return iso(value) if whole else iso(value)[:19].replace("T", " ")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, Decimal)):
        return str(value)
    data = jsonable(value)
    return data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)


def boolean(value: Any) -> str:
    """`true`/`false` as every output writes them (for text reports)."""
    return text(value)


def value_text(value: Any) -> str:
    """A value inside a sentence of a text report: strings quoted, the rest as cells."""
    if isinstance(value, str):
        return repr(value)
    return text(value, whole=False)


def parse_time(value: str | None) -> datetime | None:
    """An ISO timestamp from a `to_dict()` back as a datetime (for table cells)."""
    if not value:
        return None
    return datetime.fromisoformat(value.removesuffix("Z"))


# -- columns --------------------------------------------------------------------------------


@dataclass
class Column:
    """A table column: its header and how to get its cell from a row (a key of the row,
    or a function of it). `numeric` columns align right and never wrap."""

    header: str
    get: str | Callable[[Any], Any] | None = None
    numeric: bool = False
    style: str | None = None

    def value(self, row: Any) -> Any:
        if callable(self.get):
            return self.get(row)
        return row.get(self.get if self.get is not None else self.header)


def _cells(columns: Sequence[Column], whole: bool) -> Callable[[Any], list[str]]:
    """A function giving a row's cells as `text` writes them (a loop per row, not
    two calls per cell: printing 10,000 rows should cost less than reading them)."""
    keys = [c.get if isinstance(c.get, str) else c.header if c.get is None else None
            for c in columns]
    gets = [None if k is not None else c.get for k, c in zip(keys, columns, strict=True)]
    pairs = list(zip(keys, gets, strict=True))

    def cells(row: Any) -> list[str]:
        out = []
        for key, get in pairs:
            v = row.get(key) if get is None else get(row)
            t = type(v)
            if t is str:
                out.append(v)
            elif v is None:
                out.append("")
            elif t is int:
                out.append(int.__repr__(v))
            else:
                out.append(text(v, whole))
        return out

    return cells


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[Column]:
    """One column per key, in first-seen order; numbers align right."""
    keys: dict[str, bool] = {}
    for r in rows:
        for k, v in r.items():
            num = isinstance(v, (int, float, Decimal)) and not isinstance(v, bool)
            keys[k] = keys.get(k, True) and (num or v is None)
    return [Column(k, k, numeric=n and any(r.get(k) is not None for r in rows))
            for k, n in keys.items()]


# -- wrapping ---------------------------------------------------------------------------


_BREAK = re.compile(r"(\s+|(?<=[,;/_]))")


def tokens(s: str) -> list[str]:
    """The pieces a cell may wrap between: words, and parts after , ; / _."""
    return [t for t in _BREAK.split(s) if t]


def longest_token(s: str) -> int:
    return max((len(t) for line in s.splitlines() for t in tokens(line) if not t.isspace()),
               default=0)


def wrap(s: str, width: int) -> list[str]:
    """`s` in lines of at most `width` characters, broken at spaces or after , ; / _;
    a piece longer than a line is split. Every character stays, except the spaces at a
    break."""
    width = max(width, 1)
    out: list[str] = []
    for para in s.splitlines() or [""]:
        line = ""
        for tok in tokens(para):
            if tok.isspace():
                if line and len(line) + len(tok) < width:
                    line += tok
                elif line:
                    out.append(line)
                    line = ""
                continue
            if len(line) + len(tok) <= width:
                line += tok
                continue
            if line:
                out.append(line.rstrip())
                line = ""
            while len(tok) > width:
                out.append(tok[:width])
                tok = tok[width:]
            line = tok
        out.append(line.rstrip())
    return out


# -- the table layout ------------------------------------------------------------------------


def fit_widths(headers: list[str], cells: list[list[str]], numeric: list[bool],
               width: int) -> list[int] | None:
    """Column widths so the table fits `width`, wrapping only text columns and only
    between words; None when it cannot fit (the caller then prints vertically)."""
    n = len(headers)
    natural = [max([len(line) for c in [headers[i], *(row[i] for row in cells)]
                    for line in (c.splitlines() or [""])]) for i in range(n)]
    gaps = GAP * (n - 1)
    if sum(natural) + gaps <= width:
        return natural
    minimum = []
    for i in range(n):
        if numeric[i] or i == 0:  # numbers and the row's name stay on one line
            minimum.append(natural[i])
        else:
            least = max([longest_token(headers[i]), *(longest_token(row[i]) for row in cells)])
            minimum.append(min(natural[i], max(least, 6)))
    if sum(minimum) + gaps > width:
        return None
    widths = list(minimum)
    spare = width - gaps - sum(widths)
    while spare > 0:
        short = [i for i in range(n) if widths[i] < natural[i]]
        if not short:
            break
        i = max(short, key=lambda j: natural[j] - widths[j])
        widths[i] += 1
        spare -= 1
    return widths


def table_lines(headers: list[str], cells: list[list[str]], numeric: list[bool],
                widths: list[int]) -> list[list[tuple[str, int]]]:
    """Rows of physical lines; each line a list of (padded text, column index)."""
    out = []
    for row_i, row in enumerate([headers, *cells]):
        wrapped = [wrap(c, widths[i]) for i, c in enumerate(row)]
        height = max(len(w) for w in wrapped)
        for k in range(height):
            line = []
            for i, w in enumerate(wrapped):
                piece = w[k] if k < len(w) else ""
                piece = piece.rjust(widths[i]) if numeric[i] and row_i else piece.ljust(widths[i])
                line.append((piece, i))
            out.append(line)
    return out


def vertical_lines(headers: list[str], cells: list[list[str]], width: int) -> list[tuple[str, str]]:
    """Each row as a block: its first cell as a title, then `field  value` lines (empty
    fields left out), values wrapped under themselves. Lines are (kind, text), kind
    being "title", "field" or "blank"."""
    key_width = max(len(h) for h in headers[1:]) if len(headers) > 1 else 0
    indent = 2
    room = max(width - indent - key_width - GAP, 20)
    out: list[tuple[str, str]] = []
    for n, row in enumerate(cells):
        if n:
            out.append(("blank", ""))
        title = f"{headers[0]} {row[0]}" if headers[0] else row[0]
        for line in wrap(title, max(width, 20)):
            out.append(("title", line))
        for h, c in zip(headers[1:], row[1:], strict=True):
            if c == "":
                continue
            lines = wrap(c, room)
            out.append(("field", " " * indent + h.ljust(key_width) + " " * GAP + lines[0]))
            for more in lines[1:]:
                out.append(("field", " " * (indent + key_width + GAP) + more))
    return out


# -- printing ---------------------------------------------------------------------------

#: Rows a streamed table is laid out from: the first CHUNK rows fix the column widths
#: (or the split into panels, or the vertical layout); later rows follow that layout and
#: are printed as they come, CHUNK at a time.
CHUNK = 500

_ANSI = {"bold": "1", "dim": "2", "cyan": "36"}

#: Set while a pager shows the output: stdout is then its pipe, but the rows are laid
#: out for the terminal behind it (its width, colour).
_paged: dict[str, Any] | None = None


@contextmanager
def pager(enabled: bool = True) -> Iterator[None]:
    """What is printed inside goes through a pager when stdout is a terminal, as git
    does: `METASTORE_PAGER`, else `PAGER`, else `less` (with `LESS=FRX` unless `LESS` is
    set: it quits at once when the output fits the screen, and keeps the colours).
    An empty pager or `cat` pages nothing; so do pipes and files, and `enabled=False`
    (`--no-pager`). Quitting the pager early ends the output quietly."""
    global _paged
    command = os.environ.get("METASTORE_PAGER", os.environ.get("PAGER", "less")).strip()
    if not enabled or _paged is not None or command in ("", "cat") or not _isatty():
        yield
        return
    terminal, width, colour = _screen()
    env = {**os.environ}
    env.setdefault("LESS", "FRX")
    env.setdefault("LV", "-c")
    import subprocess  # only when paging: it costs a cold start

    try:
        proc = subprocess.Popen(command, shell=True, stdin=subprocess.PIPE, env=env)
    except OSError:  # no such pager: print straight to the terminal
        yield
        return
    pipe = io.TextIOWrapper(proc.stdin, encoding="utf-8", errors="replace")
    stdout, sys.stdout = sys.stdout, pipe
    _paged = {"width": width, "colour": colour}
    try:
        yield
    except BrokenPipeError:  # the reader quit the pager before the end
        pass
    finally:
        sys.stdout, _paged = stdout, None
        try:
            pipe.close()
        except BrokenPipeError:
            pass
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C is the pager's to handle
                pass


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def console():
    from rich.console import Console

    return Console(highlight=False)


def _screen() -> tuple[bool, int, bool]:
    """(stdout is a terminal, its width, colour on) as rich reads them (COLUMNS,
    NO_COLOR, FORCE_COLOR and TERM included), or the terminal behind the pager."""
    if _paged is not None:
        return True, _paged["width"], _paged["colour"]
    if not _isatty() and not {"FORCE_COLOR", "TTY_COMPATIBLE"} & os.environ.keys():
        # not a terminal, and nothing tells rich to treat it as one: no need to load
        # rich (a cold start's cost) to learn that; the width of a pipe is unused
        return False, 80, False
    c = console()
    return c.is_terminal, c.width, c.is_terminal and c.color_system is not None


def is_terminal() -> bool:
    """Is stdout a terminal? (Pipes and files get whole values, no colour.)"""
    return _screen()[0]


def terminal_width() -> int:
    return _screen()[1]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")


def _chunks(rows: Iterable[Any], n: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def emit(
    rows: Iterable[Any],
    columns: Sequence[Column] | Callable[[list[Any]], Sequence[Column]] | None = None,
    format: str = "table",
    *,
    data: Any = None,
    empty: str | None = None,
    footer: str | Callable[[int], str] | None = None,
    title: str | None = None,
) -> int:
    """Print `rows` (a list, or an iterator read as it goes) in `format`; how many.

    `columns` may be a function of the first chunk of rows (when it depends on the
    values, e.g. which columns are numeric). `data` is what JSON prints, when it is not
    the rows themselves; `empty` is said instead of an empty table; `footer` (or a
    function of the row count) follows a table.

    Every format streams: JSON is written as one array, a row at a time (the same text
    `json.dumps(rows, indent=2)` makes); CSV and Markdown a line per row; a table is laid
    out from its first CHUNK rows and printed CHUNK rows at a time."""
    if format not in FORMATS:
        from metastore.errors import MetastoreError

        raise MetastoreError(f"unknown format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    write = sys.stdout.write
    if format == "json":
        if data is not None:
            print_json(data)
            return 0
        return _json_rows(rows, write)
    chunks = _chunks(rows, CHUNK)
    first = next(chunks, [])
    if callable(columns):
        cols = list(columns(first))
    else:
        cols = list(columns) if columns is not None else columns_of(first)
    headers = [c.header for c in cols]
    count = 0
    if format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        cells = _cells(cols, whole=True)
        for chunk in itertools.chain([first], chunks):
            writer.writerows(map(cells, chunk))
            count += len(chunk)
        return count
    if format == "markdown":
        def md(s: str) -> str:
            return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")

        write("| " + " | ".join(md(h) for h in headers) + " |\n")
        write("|" + "|".join(" ---: " if c.numeric else " --- " for c in cols) + "|\n")
        cells = _cells(cols, whole=True)
        for chunk in itertools.chain([first], chunks):
            write("".join("| " + " | ".join(map(md, cells(r))) + " |\n" for r in chunk))
            count += len(chunk)
        return count
    terminal, width, colour = _screen()
    if not first and empty is not None:
        write(empty + "\n")
        return 0
    paint = _painter(colour)
    if title:
        write(paint(title, "bold" if terminal else None) + "\n")
    layout = None
    cells_of = _cells(cols, whole=not terminal)
    for chunk in itertools.chain([first], chunks):
        cells = list(map(cells_of, chunk))
        if layout is None:
            layout = Layout.of(headers, cells, [c.numeric for c in cols],
                               [c.style for c in cols], terminal=terminal, width=width)
            layout.write(write, paint, cells, first=True)
        else:
            layout.write(write, paint, cells, first=False)
        count += len(chunk)
    if footer:
        words = footer(count) if callable(footer) else footer
        write(paint(words, "dim" if terminal else None) + "\n")
    return count


def _json_rows(rows: Iterable[Any], write) -> int:
    """A JSON array written a row at a time: the text `json.dumps(list, indent=2)`
    makes, so a reader of the whole output sees one valid JSON document."""
    count = 0
    keys: dict[Any, str] = {}
    for chunk in _chunks(rows, CHUNK):
        parts = []
        for r in chunk:
            item = _flat_json(r, keys)
            if item is None:
                item = json.dumps(jsonable(r), indent=2, ensure_ascii=False).replace("\n", "\n  ")
            parts.append(("[\n  " if count == 0 else ",\n  ") + item)
            count += 1
        write("".join(parts))
    write("\n]\n" if count else "[]\n")
    return count


_escape = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses


def _flat_json(row: Any, keys: dict[Any, str]) -> str | None:
    """A row of plain values (text, whole numbers, finite floats, booleans, null) as
    `json.dumps(row, indent=2)` writes it inside an array; None for any other row.
    `json.dumps` with an indent runs its pure-Python encoder, a call per value: this is
    the same text at a fraction of the cost (a query's answer is rows of plain values)."""
    if type(row) is not dict:
        return None
    parts = []
    for k, v in row.items():
        key = keys.get(k)
        if key is None:
            key = keys[k] = _escape(str(k))
        t = type(v)
        if t is str:
            parts.append(f"{key}: {_escape(v)}")
        elif v is None:
            parts.append(f"{key}: null")
        elif t is int:
            parts.append(f"{key}: {int.__repr__(v)}")
        elif t is float and v - v == 0:  # finite
            parts.append(f"{key}: {float.__repr__(v)}")
        elif t is bool:
            parts.append(f"{key}: {'true' if v else 'false'}")
        else:
            return None
    if not parts:
        return "{}"
    return "{\n    " + ",\n    ".join(parts) + "\n  }"


def table(rows: Sequence[Any], columns: Sequence[Column] | None = None, *,
          title: str | None = None) -> None:
    """A table in the terminal's layout (for text views made of several tables)."""
    emit(rows, columns, "table", title=title)


def _painter(colour: bool) -> Callable[[str, str | None], str]:
    def paint(s: str, style: str | None) -> str:
        if not colour or not style or not s:
            return s
        code = ";".join(_ANSI[w] for w in style.split() if w in _ANSI)
        return f"\x1b[{code}m{s}\x1b[0m" if code else s

    return paint


@dataclass
class Layout:
    """How a table's rows are printed, fixed by its first chunk: `plain` (whole values
    in aligned columns: not a terminal), `panels` (the columns in one or more tables that
    fit the terminal, cells wrapped) or `vertical` (a block of `field  value` lines a
    row). Later rows keep the widths; a later value longer than its column wraps (in a
    terminal) or widens its own line (piped), and is never cut."""

    kind: str
    headers: list[str]
    numeric: list[bool]
    styles: list[str | None]
    width: int
    panels: list[tuple[list[int], list[int]]]

    @classmethod
    def of(cls, headers, cells, numeric, styles, *, terminal: bool, width: int) -> Layout:
        if not terminal:
            widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
            return cls("plain", headers, numeric, styles, width, [(list(range(len(headers))), widths)])
        panels = fit_panels(headers, cells, numeric, width)
        if panels is None:
            return cls("vertical", headers, numeric, styles, width, [])
        return cls("panels", headers, numeric, styles, width, panels)

    def write(self, write, paint, cells: list[list[str]], *, first: bool) -> None:
        if self.kind == "plain":
            [(_, widths)] = self.panels
            out = []
            if first:
                out.append((" " * GAP).join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)).rstrip())
                out.append((" " * GAP).join("-" * w for w in widths))
            gap = " " * GAP
            fits = [(str.rjust if n else str.ljust, w) for n, w in zip(self.numeric, widths, strict=True)]
            for row in cells:
                # a line break inside a value becomes a space (the padding has none)
                line = gap.join([just(c, w) for (just, w), c in zip(fits, row, strict=True)])
                out.append(line.replace("\n", " ").rstrip())
            if out:
                write("\n".join(out) + "\n")
            return
        if self.kind == "vertical":
            out = []
            for n, (kind, line) in enumerate(vertical_lines(self.headers, cells, self.width)):
                if n == 0 and not first:
                    out.append("")
                out.append(paint(line, "bold" if kind == "title" else None))
            if out:
                write("\n".join(out) + "\n")
            return
        if not first and len(self.panels) == 1:  # one table: its rows go on under it
            idx, widths = self.panels[0]
            self._panel(write, paint, idx, widths, cells, header=False)
            return
        for n, (idx, widths) in enumerate(self.panels):
            if n or not first:
                write("\n")
            self._panel(write, paint, idx, widths, cells, header=True)

    def _panel(self, write, paint, idx, widths, cells, *, header: bool) -> None:
        headers = [self.headers[i] for i in idx]
        numeric = [self.numeric[i] for i in idx]
        styles = [self.styles[i] for i in idx]
        rows = [[row[i] for i in idx] for row in cells]
        header_height = max(len(wrap(h, widths[i])) for i, h in enumerate(headers)) if header else 0
        lines = table_lines(headers, rows, numeric, widths)
        if not header:
            lines = lines[max(len(wrap(h, widths[i])) for i, h in enumerate(headers)):]
        out = []
        for n, line in enumerate(lines):
            pieces = [(piece, "bold" if n < header_height or i == 0 else styles[i])
                      for piece, i in line]
            out.append(_joined(pieces, paint))
            if n == header_height - 1:
                out.append(paint("\u2500" * min(sum(widths) + GAP * (len(widths) - 1), self.width), "dim"))
        if out:
            write("\n".join(out) + "\n")


def _joined(pieces: list[tuple[str, str | None]], paint) -> str:
    """Cells joined by the gap, the line's trailing blanks dropped, each cell styled."""
    while pieces and not pieces[-1][0].strip():
        pieces = pieces[:-1]
    if not pieces:
        return ""
    last, style = pieces[-1]
    pieces = [*pieces[:-1], (last.rstrip(), style)]
    return (" " * GAP).join(paint(p, s) for p, s in pieces)
MAX_PANELS = 4


def fit_panels(headers: list[str], cells: list[list[str]], numeric: list[bool],
               width: int) -> list[tuple[list[int], list[int]]] | None:
    """The columns split into at most MAX_PANELS tables that each fit `width`, each
    repeating the first column so rows can be matched: [(column indexes, widths)].
    None when that cannot be done (the caller prints vertically)."""

    def fit(idx: list[int]) -> list[int] | None:
        return fit_widths([headers[i] for i in idx], [[row[i] for i in idx] for row in cells],
                          [numeric[i] for i in idx], width)

    everything = list(range(len(headers)))
    whole = fit(everything)
    if whole is not None:
        return [(everything, whole)]
    natural = [max(len(line) for c in [headers[i], *(row[i] for row in cells)]
                   for line in (c.splitlines() or [""])) for i in everything]

    def unwrapped(idx: list[int]) -> bool:
        return sum(natural[i] for i in idx) + GAP * (len(idx) - 1) <= width

    # First try panels whose cells need no wrapping; then panels packed as tight as
    # wrapping allows.
    for fits in (unwrapped, lambda idx: fit(idx) is not None):
        groups: list[list[int]] = []
        current = [0]
        for i in everything[1:]:
            if fits([*current, i]) or len(current) == 1:
                current.append(i)
            else:
                groups.append(current)
                current = [0, i]
        groups.append(current)
        if len(groups) > MAX_PANELS:
            continue
        panels = [(g, fit(g)) for g in groups]
        if all(w is not None for _, w in panels):
            return panels  # type: ignore[return-value]
    return None
