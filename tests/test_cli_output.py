"""The CLI's one output layer (metastore.output): tables that fit an 80-column terminal
without cutting a value short, whole values when piped, and the same --format choices
and JSON conversion on every command that prints rows."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from metastore import output
from metastore.output import Column

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(columns: int, pager: str = "") -> dict[str, str]:
    # no pager unless a test names one: the pseudo terminal below has no one to quit it
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": str(columns), "TERM": "xterm",
           "METASTORE_PAGER": pager}
    for var in ("METASTORE_URL", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(var, None)
    return env


def piped(*args: str, columns: int = 80, check: bool = True,
          pager: str = "") -> subprocess.CompletedProcess:
    """`metastore ARGS > file`: stdout is not a terminal."""
    proc = subprocess.run([sys.executable, "-m", "metastore.cli", *args],
                          env=_env(columns, pager), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def on_terminal(*args: str, columns: int = 80, pager: str = "") -> str:
    """`metastore ARGS` in a real (pseudo) terminal COLUMNS wide; its screen, ANSI removed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "metastore.cli", *args], env=_env(columns, pager),
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode()
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


@pytest.fixture(scope="module")
def url(demo_store_path) -> str:
    return f"sqlite:///{demo_store_path / 'metastore.db'}"


@pytest.fixture(scope="module")
def demo(url):
    import metastore

    with metastore.open(url) as s:
        yield s


# -- the renderer -----------------------------------------------------------------------------


def test_wrap_keeps_every_character():
    text = "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6 and a " + "x" * 30
    for width in (4, 7, 10, 25):
        lines = output.wrap(text, width)
        assert all(len(line) <= width for line in lines)
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_values_read_the_same_everywhere():
    t = datetime(2024, 5, 1, 12, 30, 5, 123456)
    assert output.jsonable({"ok": True, "at": t, "tags": {"b", "a"}}) == {
        "ok": True, "at": "2024-05-01T12:30:05.123456Z", "tags": ["a", "b"]}
    assert output.jsonable(t.replace(tzinfo=UTC)) == "2024-05-01T12:30:05.123456Z"
    assert [output.text(v) for v in (True, False, None, 0.1, [1, "a"])] == [
        "true", "false", "", "0.1", '[1, "a"]']
    assert output.text(t, whole=False) == "2024-05-01 12:30:05"
    assert output.text(2 / 3) == repr(2 / 3) and output.text(2 / 3, whole=False) == "0.666667"


def test_too_wide_tables_split_or_turn_vertical_never_cut():
    headers = ["run", "digest", "features"]
    cells = [["e#1", "ab" * 36, "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"]]
    # a 72-character value fits beside the run on 80 columns, not the rest: two panels
    panels = output.fit_panels(headers, cells, [False] * 3, 80)
    assert [[headers[i] for i in idx] for idx, _ in panels] == [["run", "digest"], ["run", "features"]]
    # on 40 columns it cannot: a block per row, the digest folded but whole
    assert output.fit_panels(headers, cells, [False] * 3, 40) is None
    lines = [line for _, line in output.vertical_lines(headers, cells, 40)]
    assert all(len(line) <= 40 for line in lines)
    joined = "".join(line.strip() for line in lines)
    assert "ab" * 36 in joined.replace(" ", "") and "…" not in joined


def test_csv_and_markdown_print_whole_values(capsys):
    rows = [{"run": "e#1", "ok": True, "rmse": 0.123456789, "features": "a,b|c"}]
    cols = [Column("run"), Column("ok"), Column("rmse", numeric=True), Column("features")]
    output.emit(rows, cols, "csv")
    assert list(csv.reader(io.StringIO(capsys.readouterr().out))) == [
        ["run", "ok", "rmse", "features"], ["e#1", "true", "0.123456789", "a,b|c"]]
    output.emit(rows, cols, "markdown")
    md = capsys.readouterr().out.splitlines()
    assert md[0] == "| run | ok | rmse | features |" and md[2] == "| e#1 | true | 0.123456789 | a,b\\|c |"


def test_rows_are_printed_as_they_come_in_every_format(monkeypatch):
    """A generator of rows is printed a chunk at a time: the first rows are out before
    the last are read; the table keeps the layout its first chunk set; JSON stays one
    document."""
    monkeypatch.setattr(output, "CHUNK", 10)
    cols = [Column("run"), Column("rmse", numeric=True), Column("features")]
    for fmt in output.FORMATS:
        out = io.StringIO()
        monkeypatch.setattr(sys, "stdout", out)
        seen = []

        def rows(out=out, seen=seen):
            for i in range(35):
                if i == 30:
                    seen.append(out.getvalue())
                yield {"run": f"e#{i}", "rmse": i / 7, "features": "a,b" * (1 + (i == 33) * 20)}

        assert output.emit(rows(), cols, fmt, footer=lambda n: f"{n} rows") == 35
        text = out.getvalue()
        assert "e#0" in seen[0] and "e#29" in seen[0] and "e#30" not in seen[0], fmt
        if fmt == "json":
            assert json.loads(text) == json.loads(json.dumps(
                [{"run": f"e#{i}", "rmse": i / 7, "features": "a,b" * (1 + (i == 33) * 20)}
                 for i in range(35)], indent=2))
            assert text == json.dumps(json.loads(text), indent=2) + "\n"
        elif fmt == "table":  # piped: whole values, the first chunk's alignment
            lines = text.splitlines()
            assert lines[0].split() == ["run", "rmse", "features"] and lines[-1] == "35 rows"
            assert "a,b" * 21 in text and "…" not in text
            assert len({line.index("a,b") for line in lines[2:12]}) == 1  # the first chunk
            assert all(line.split()[1] == repr(int(line.split()[0][2:]) / 7) for line in lines[2:-1])
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    assert json.loads(_captured(lambda: output.emit(iter([]), cols, "json"))) == []


def _captured(fn) -> str:
    out, sys.stdout = sys.stdout, io.StringIO()
    try:
        fn()
        return sys.stdout.getvalue()
    finally:
        sys.stdout = out


# -- commands at 80 columns, and piped ---------------------------------------------------------


def test_runs_fit_80_columns_without_cutting(url, demo):
    screen = on_terminal("runs", "--wide", "--store", url)
    lines = screen.splitlines()
    assert max(len(line) for line in lines) <= 80, screen
    assert "…" not in screen
    for run in demo.runs():
        assert run.ref in screen and run.row.name in screen
        assert f"{run.row.started:%Y-%m-%d %H:%M:%S}" in screen
    assert "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6" in screen  # the longest feature list, whole
    assert "system.wall_time" not in screen  # shown with --system


def test_assets_show_digests_and_runs_whole_on_80_columns(url, demo):
    screen = on_terminal("assets", "model", "--store", url)
    assert max(len(line) for line in screen.splitlines()) <= 80 and "…" not in screen
    for v in demo.versions("model", "regressor"):
        assert v.digest in screen
    assert "diabetes#12" in screen
    assert demo.get_run("diabetes#12").id not in screen  # runs by reference, never by id


def test_piped_output_has_whole_values_and_no_colour(url, demo):
    out = piped("runs", "--wide", "--system", "--store", url).stdout
    assert "\x1b[" not in out and "…" not in out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run", "name", "started", "status"]
    first = demo.get_run("diabetes#5")
    row = next(line for line in lines if line.startswith("diabetes#5 "))
    assert "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6" in row
    assert output.iso(first.row.started) in row  # the whole timestamp
    assert repr(first.metrics["system.wall_time"]) in row
    assert len(lines) == 2 + 12


@pytest.mark.parametrize("command", [
    ["runs"], ["experiments"], ["assets"], ["audit"], ["diff", "diabetes#1", "diabetes#7"],
    ["lineage", "model:regressor@3"], ["query", "runs where rmse < 55 show number, features"],
])
def test_every_row_command_speaks_every_format(url, command):
    data = json.loads(piped(*command, "--format", "json", "--store", url).stdout)
    assert data
    rows = list(csv.reader(io.StringIO(piped(*command, "-f", "csv", "--store", url).stdout)))
    assert len(rows) >= 2 and len({len(r) for r in rows}) == 1
    md = piped(*command, "-f", "markdown", "--store", url).stdout.splitlines()
    assert md[0].startswith("| ") and set(md[1]) <= set("|-: ")
    table = piped(*command, "-f", "table", "--store", url).stdout
    assert "\x1b[" not in table and len(table.splitlines()) >= 2


def test_json_uses_one_conversion(url, demo):
    runs = json.loads(piped("runs", "-f", "json", "--store", url).stdout)
    assert runs[0]["started"] == output.iso(demo.get_run(runs[0]["id"]).row.started)
    assert runs[0]["params"]["normalize"] is False
    experiments = json.loads(piped("experiments", "-f", "json", "--store", url).stdout)
    assert experiments == [{"name": "diabetes", "runs": 12,
                            "created": output.iso(demo.get_experiment("diabetes").created),
                            "description": None}]


def test_a_wrong_format_is_a_usage_error(url):
    proc = piped("runs", "--format", "xml", "--store", url, check=False)
    said = " ".join(re.sub("[│╭╮╰╯─]", " ", proc.stderr).split())
    assert proc.returncode == 2 and "'xml' is not one of table, json, csv, markdown" in said
    assert "Traceback" not in proc.stderr


def test_diff_prints_booleans_as_everywhere_else(url):
    out = piped("diff", "diabetes#1", "diabetes#2", "--store", url).stdout
    assert "~ normalize: false -> true" in out and "False" not in out
    rows = list(csv.DictReader(io.StringIO(
        piped("diff", "diabetes#1", "diabetes#2", "-f", "csv", "--store", url).stdout)))
    assert {"section": "params", "item": "normalize", "a": "false", "b": "true",
            "change": "changed"} in rows


def test_version():
    from metastore import __version__

    assert piped("--version").stdout.strip() == f"metastore {__version__}"


def test_the_same_doors_through_a_server(demo_store, tmp_path):
    """run counts, run summaries and register are Store methods, so the CLI gives the
    same answers through a metastore server."""
    from typer.testing import CliRunner

    from metastore.cli import app
    from metastore.server.app import background_server

    runner = CliRunner()
    with background_server(demo_store, auth=False) as server:
        res = runner.invoke(app, ["experiments", "-f", "json", "-s", server])
        assert res.exit_code == 0, res.output
        assert [(e["name"], e["runs"]) for e in json.loads(res.stdout)] == [("diabetes", 12)]
        res = runner.invoke(app, ["runs", "-f", "json", "-s", server])
        runs = json.loads(res.stdout)
        assert len(runs) == 12 and not any(k.startswith("system.") for k in runs[0]["metrics"])
        local = tmp_path / "weights.bin"
        local.write_bytes(b"tuned")
        res = runner.invoke(app, ["register", "model", "tuned", str(local), "--derived-from",
                                  "model:regressor@3", "-s", server])
        assert res.exit_code == 0, res.output
        assert res.stdout.split()[0] == "model:tuned@1" and len(res.stdout.split()[1]) == 64
        res = runner.invoke(app, ["register", "model", "x", "--derived-from", "diabetes#1",
                                  "--uri", "hf://x", "--digest", "ab" * 32, "-s", server])
        assert res.exit_code == 1 and "name a version" in str(res.exception)
    assert demo_store.run_counts() == {"diabetes": 12}
    assert [v.ref for v in demo_store.get_run("diabetes#3").outputs] == ["model:regressor@3"]
    assert demo_store.lineage("model:tuned@1").has_node("model:regressor@3")


# -- the pager ---------------------------------------------------------------------------------


def _recording_pager(tmp_path: Path) -> tuple[str, Path]:
    """A pager that writes what it is given to a file (and whether it was told LESS)."""
    out = tmp_path / "paged.txt"
    script = tmp_path / "pager.py"
    script.write_text(
        "import os, sys\n"
        f"open({str(out)!r}, 'w').write(os.environ.get('LESS', '') + '\\n' + sys.stdin.read())\n")
    return f"{sys.executable} {script}", out


def test_a_terminal_answer_goes_through_the_pager_laid_out_for_the_terminal(url, demo, tmp_path):
    pager, out = _recording_pager(tmp_path)
    screen = on_terminal("query", "runs show number, features, algorithm", "--store", url,
                         columns=40, pager=pager)
    less, *paged = ANSI.sub("", out.read_text()).splitlines()
    assert less == "FRX"  # quits when it fits one screen, keeps colours
    assert "12 rows" in paged and "12 rows" not in screen
    assert max(len(line) for line in paged) <= 40  # the terminal's width, not the pipe's
    assert "\x1b[" in out.read_text()  # colour, as on the terminal


def test_no_pager_and_pipes_print_straight(url, demo, tmp_path):
    pager, out = _recording_pager(tmp_path)
    screen = on_terminal("runs", "--store", url, "--no-pager", pager=pager)
    assert "diabetes#12" in screen and not out.exists()
    assert "diabetes#12" in piped("runs", "--store", url, pager=pager).stdout
    assert not out.exists()


def test_a_reader_that_stops_early_ends_the_output_quietly(url, demo):
    proc = subprocess.run(
        f"{sys.executable} -m metastore.cli query 'runs show number' --store {url} -f json | head -c 1",
        shell=True, env=_env(80), capture_output=True, text=True, timeout=300)
    assert proc.stdout == "[" and "Traceback" not in proc.stderr
