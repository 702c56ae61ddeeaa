"""The command line: a thin layer over the Python API.

Every command opens the store (`--store URL`, `METASTORE_URL`, or the nearest
`.metastore/`), calls one public function and prints its result. A `MetastoreError`
is printed in a line or two and exits 1; never a traceback.

`main` is the entry point. The commands are a typer app (`cli.commands`), loaded only
when one is needed: a plain `metastore query …` is answered without it
(`cli.answer`), because loading the app costs more than answering a query. The app's
names (`app`, `print_rows` …) are reachable from here as before.
"""

from __future__ import annotations

import os
import sys

from metastore.errors import MetastoreError


def main() -> None:
    args = sys.argv[1:]
    quick = None
    if args[:1] == ["query"]:
        from metastore.cli.answer import read_args

        quick = read_args(args[1:])
    try:
        if quick is not None:
            _answer(quick)
        else:
            from metastore.cli.commands import app

            # Standalone mode lets click turn usage errors, `typer.Exit(n)` and Ctrl-C
            # into messages and exit codes; what is left to us is the errors users cause.
            app(prog_name="metastore")  # `python -m metastore` too, and completion's _METASTORE_COMPLETE
    except BrokenPipeError:
        # the reader went away (`metastore runs | head`): stop quietly, as a program
        # killed by SIGPIPE would
        _drop_stdout()
        sys.exit(141)
    except MetastoreError as e:
        from metastore.cli.answer import stderr_console

        err = stderr_console()
        err.print(f"[red]error:[/red] {e.message}", highlight=False, markup=True)
        if e.hint:
            err.print(f"  {e.hint}", highlight=False, markup=False)
        sys.exit(1)


def _answer(params: dict) -> None:
    """`metastore query` without the app, ending as the app's standalone mode ends a
    command: Ctrl-C exits 130, a reader gone away (EPIPE) exits 1 quietly."""
    from metastore.cli.answer import answer

    try:
        answer(**params)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _drop_stdout()
        sys.exit(1)


def _drop_stdout() -> None:
    """Point stdout at /dev/null: no traceback when Python flushes it at exit to a
    reader that went away."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def __getattr__(name: str):
    # `from metastore.cli import app` (tests, plugins): the typer app, loaded on first use
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    if name in ("commands", "answer"):  # a submodule not imported yet
        return importlib.import_module(f"metastore.cli.{name}")
    commands = importlib.import_module("metastore.cli.commands")
    try:
        return getattr(commands, name)
    except AttributeError:
        raise AttributeError(f"module 'metastore.cli' has no attribute {name!r}") from None
