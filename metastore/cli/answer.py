"""`metastore query`: answering a question on the command line, and reading its
arguments without the command-line framework.

A query is the command people run most and want back at once, and building the typer
app (typer, click, pydantic, rich) costs more than answering it. So `metastore.cli.main`
reads a plain `metastore query` command line here (`read_args`) and calls `answer`
directly; anything this reader does not know for sure (`--help`, a short option with its
value attached, an unknown or repeated option, a missing argument, shell completion)
goes to the typer app, which gives its usual help and errors. The typer command
(`commands.query`) calls the same `answer`, so both ways print the same.
"""

from __future__ import annotations

import os
import sys

from metastore.output import FORMATS, Column, emit

#: The command's options: name → (parameter, takes a value).
OPTIONS = {
    "--store": ("store", True), "-s": ("store", True),
    "--experiment": ("experiment", True), "-e": ("experiment", True),
    "--format": ("format", True), "-f": ("format", True),
    "--timeout": ("timeout", True),
    "--sql": ("sql", False),
    "--no-pager": ("no_pager", False),
}


def read_args(args: list[str]) -> dict | None:
    """The parameters of `metastore query ARGS` when the command line is plainly valid;
    None for anything else (the typer app then reads it, errors and help included)."""
    if "_METASTORE_COMPLETE" in os.environ:
        return None
    found: dict = {}
    texts: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            texts.append(arg)
            continue
        name, eq, attached = arg.partition("=")
        if name not in OPTIONS or (eq and not name.startswith("--")):
            return None  # --help, -fjson, an unknown option, --: the app's to read
        param, takes_value = OPTIONS[name]
        if param in found:
            return None
        if not takes_value:
            if eq:
                return None
            found[param] = True
            continue
        if eq:
            value = attached
        else:
            if i >= len(args) or args[i].startswith("-"):
                return None
            value = args[i]
            i += 1
        found[param] = value
    if len(texts) != 1:
        return None
    fmt = found.get("format", "table").lower()
    if fmt not in FORMATS:
        return None
    timeout = found.get("timeout")
    if timeout is not None:
        try:
            timeout = float(timeout)
        except ValueError:
            return None
    return {
        "text": texts[0],
        # as click reads the option's environment variable: an empty value is no value
        "store": found.get("store", os.environ.get("METASTORE_URL") or None),
        "experiment": found.get("experiment"),
        "format": fmt,
        "sql": found.get("sql", False),
        "timeout": timeout,
        "no_pager": found.get("no_pager", False),
    }


def answer(text: str, store: str | None = None, experiment: str | None = None,
           format: str = "table", sql: bool = False, timeout: float | None = None,
           no_pager: bool = False) -> None:
    """Run the query and print its rows as they come (through a pager in a terminal),
    or with `sql` its SQL; a query error is printed whole and exits 1."""
    import metastore
    from metastore import output
    from metastore.query import QueryError

    s = metastore.open(store, lazy=True)  # a SQLite store is queried without SQLAlchemy
    try:
        if sql:
            # through the Store interface, so --sql works against a server too
            sys.stdout.write(s.query_sql(text, experiment=experiment) + "\n")
            return
        with s.query_stream(text, experiment=experiment, timeout=timeout) as result, \
                output.pager(not no_pager):
            print_rows(result.columns, result.rows, format)
    except QueryError as e:
        # the whole error, caret line included; the CLI's generic handler prints one line
        err = stderr_console()
        err.print("[red]error:[/red] ", end="", highlight=False)
        err.print(str(e), highlight=False, markup=False)
        sys.exit(1)


def print_rows(names: list[str], rows, format: str = "table") -> None:
    """Print a query's rows (an iterator, read as it goes) in one of the output formats;
    a column is numeric when its values in the first chunk are numbers."""
    from metastore.query.run import jsonable

    def columns(first: list[dict]) -> list[Column]:
        return [Column(c, c, numeric=bool(first) and all(
            isinstance(r[c], (int, float, type(None))) and not isinstance(r[c], bool)
            for r in first)) for c in names]

    def plain(row: dict) -> dict:
        # most rows hold only text, whole numbers and finite floats: pass them as they are
        for v in row.values():
            t = type(v)
            if t not in _PLAIN and not (t is float and v - v == 0):
                return {k: jsonable(x) for k, x in row.items()}
        return row

    emit(map(plain, rows), columns, format,
         empty=f"No rows. (columns: {', '.join(names)})",
         footer=lambda n: f"{n} row{'s' if n != 1 else ''}")


_PLAIN = frozenset({str, int, bool, type(None)})


def stderr_console():
    """rich's console on stderr, for errors (loaded only when there is one to print)."""
    from rich.console import Console

    return Console(stderr=True)
