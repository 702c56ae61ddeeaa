"""Help texts as a new user reads them, 100 columns wide: paragraphs wrap where the
terminal ends, never mid-sentence where the source line ended, and every argument is
either optional or required."""

from __future__ import annotations

import re

import click
import pytest
import typer
from typer.testing import CliRunner

from metastore.cli import app

WIDTH = 100
BOX = re.compile(r"[│╭╮╰╯─]")


def commands(group: click.Group, path=()):
    for name, cmd in group.commands.items():
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))


ALL = list(commands(typer.main.get_command(app)))


def help_of(path) -> str:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)},
                             terminal_width=WIDTH)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_paragraphs_wrap_at_the_terminal_not_mid_sentence(path):
    lines = [BOX.sub(" ", line).rstrip() for line in help_of(path).splitlines()]
    # the command's description: the lines between the usage line and the first panel
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next(i for i, line in enumerate(help_of(path).splitlines()) if line.startswith("╭"))
    text = [line.strip() for line in lines[start:end]]
    for a, b in zip(text, text[1:], strict=False):
        if a and b:  # b continues a's paragraph: its first word could not have fit on a
            assert len(a) + 1 + len(b.split()[0]) > WIDTH - 4, (a, b)


@pytest.mark.parametrize("path", [(), ("token",)], ids=["metastore", "token"])
def test_command_lists_wrap_at_the_terminal_not_mid_sentence(path):
    out = help_of(path).splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("╭─ Commands"))
    rows = [line.strip("│ ").rstrip() for line in out[start + 1:]
            if line.startswith("│")]
    raw = [line[1:-1].rstrip() for line in out[start + 1:] if line.startswith("│")]
    column = len(raw[0]) - len(raw[0].lstrip()) + len(rows[0].split()[0])
    column = raw[0].index(raw[0].split()[1], column)  # where descriptions start
    room = len(out[start]) - 2 - column - 1
    for a, b in zip(raw, raw[1:], strict=False):
        if b[:column].strip():  # b starts the next command
            continue
        said, more = a[column:].rstrip(), b[column:].split()
        assert len(said) + 1 + len(more[0]) > room - 2, (a, b)


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_an_argument_is_optional_or_required_not_both(path):
    out = help_of(path)
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{[" not in usage, usage
    for line in out.splitlines():
        cells = BOX.sub(" ", line).split()
        if len(cells) > 1 and cells[0] == "*":  # a required argument or option
            assert not cells[1].startswith("["), line


def test_import_says_source_is_optional_and_path_required():
    out = help_of(("import",))
    assert "import [OPTIONS] [SOURCE] PATH" in out
    res = CliRunner().invoke(app, ["import"])
    assert res.exit_code == 2 and "Missing argument 'PATH'" in res.output


def test_version_flag():
    from metastore import __version__

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"metastore {__version__}"
