"""The command line's commands: the typer app (`metastore.cli.main` runs it).

Every command opens the store (`--store URL`, `METASTORE_URL`, or the nearest
`.metastore/`), calls one public function and prints its result.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperCommand

from metastore import completion, output
from metastore.cli.answer import answer, print_rows  # noqa: F401 - print_rows: benchmarks
from metastore.errors import MetastoreError
from metastore.output import FORMATS, Column, emit, print_json

app = typer.Typer(
    name="metastore",
    help="An experiment metadata store for machine learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # metastore --install-completion: commands, runs, versions
)
console = Console()
err = Console(stderr=True)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        envvar="METASTORE_URL",
        help="Store URL (sqlite:///…, postgresql://…, mysql://…, http://…) or folder.",
    ),
]
ExperimentOption = Annotated[
    str | None, typer.Option("--experiment", "-e", help="Only this experiment.",
                             autocompletion=completion.experiments)
]


def format_option(*choices: str, default: str = "table"):
    """The shared `--format/-f` option of every command that prints rows: `table` (the
    default, fitted to the terminal), `json`, `csv` or `markdown`, through one renderer
    (metastore.output). Commands with a text view of their own add it to `choices`."""

    def check(value: str | None) -> str | None:
        if value is not None and value.lower() not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value.lower() if value is not None else value

    return Annotated[
        str,
        typer.Option(
            "--format", "-f", callback=check, metavar="|".join(choices),
            help=f"Output format: {', '.join(choices)}.",
        ),
    ]


FormatOption = format_option(*FORMATS)
NoPagerOption = Annotated[
    bool,
    typer.Option("--no-pager", help="Print straight to the terminal, not through "
                 "$METASTORE_PAGER / $PAGER / less (pipes and files are never paged)."),
]


def open_store(url: str | None, create: bool = True, lazy: bool = False):
    import metastore

    return metastore.open(url, create=create, lazy=lazy)


def version_callback(value: bool) -> None:
    if value:
        from metastore import __version__

        sys.stdout.write(f"metastore {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """An experiment metadata store for machine learning."""


# --- store -------------------------------------------------------------------------------


@app.command()
def init(
    path: Annotated[str, typer.Argument(help="Folder to create .metastore/ in.")] = ".",
) -> None:
    """Create an embedded store (.metastore/) in a folder."""
    from pathlib import Path

    from metastore.store import STORE_DIR

    folder = Path(path).resolve() / STORE_DIR
    existed = folder.exists()
    store = open_store(str(folder))
    console.print(f"{'Opened existing' if existed else 'Created'} store at {folder} ({store.url})")


@app.command(
    "run",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def run_cmd(
    command: Annotated[list[str], typer.Argument(help="The command, after --: metastore run -- python train.py --lr 0.1")],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    name: Annotated[str | None, typer.Option("--name", help="The run's name.")] = None,
    metric_pattern: Annotated[
        str | None,
        typer.Option("--metric-pattern", help=r"Regex with named groups over output lines, e.g. 'epoch=(?P<step>\d+) loss=(?P<loss>[\d.]+)'."),
    ] = None,
    no_files: Annotated[
        bool, typer.Option("--no-files", help="Do not record the files the command reads and writes.")
    ] = False,
    system_metrics: Annotated[
        float, typer.Option("--system-metrics", help="Seconds between system.* samples of the command (0: off).")
    ] = 10.0,
    cost_per_hour: Annotated[
        float | None, typer.Option("--cost-per-hour", help="Rate per hour: the run gets system.cost (also METASTORE_COST_PER_HOUR).")
    ] = None,
) -> None:
    """Run a command as a recorded run: params from its arguments, its output as a log,
    the files it reads and writes as inputs and outputs, its exit status."""
    from metastore.runner import run_command

    s = open_store(store)
    run, code = run_command(
        s, command, experiment=experiment, name=name, metric_pattern=metric_pattern,
        track_files=not no_files, system_metrics=system_metrics if system_metrics > 0 else False,
        cost_per_hour=cost_per_hour,
    )
    sys.stderr.write(f"metastore: recorded {run.ref} ({run.status})\n")
    raise typer.Exit(code if code >= 0 else 128 - code)


@app.command()
def demo(
    store: StoreOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="The experiment to record into.")
    ] = "diabetes",
) -> None:
    """Train a small grid of scikit-learn regressors and record every run."""
    from metastore.demo import NEXT_STEPS, QUESTIONS, run_demo

    s = open_store(store)
    console.print(f"Recording the demo runs into {s.url} (experiment {experiment!r})")
    runs = run_demo(s, experiment=experiment)
    best = min(runs, key=lambda r: r.metrics["rmse"])
    console.print(
        f"\n{len(runs)} runs recorded. Lowest rmse: {best.ref} ({best.params['algorithm']},"
        f" features {best.params['features']}) rmse={best.metrics['rmse']:.2f}\n"
    )
    # soft_wrap: a command folded at the terminal's edge could not be copied whole
    console.print(
        NEXT_STEPS.format(experiment=experiment, q1=QUESTIONS[1], q9=QUESTIONS[9]),
        markup=False, highlight=False, soft_wrap=True,
    )


@app.command()
def experiments(store: StoreOption = None, format: FormatOption = "table") -> None:
    """List experiments with their run counts."""
    s = open_store(store)
    counts = s.run_counts()
    rows = [
        {"name": e.name, "runs": counts.get(e.name, 0), "created": e.created,
         "description": e.description}
        for e in s.experiments()
    ]
    emit(rows, [Column("experiment", "name"), Column("runs", numeric=True), Column("created"),
                Column("description")], format,
         empty="No experiments yet. Record a run, or try `metastore demo`.")


@app.command()
def runs(
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    wide: Annotated[
        bool, typer.Option("--wide", "-w", help="Also show names and start times.")
    ] = False,
    system: Annotated[
        bool, typer.Option("--system", help="Also show the system.* metrics (wall and CPU time).")
    ] = False,
    format: FormatOption = "table",
    no_pager: NoPagerOption = False,
) -> None:
    """List runs with their last metric values and params (in a terminal, a long list
    goes through a pager)."""
    s = open_store(store)
    # read a page of runs at a time while the first ones print (Store.run_table)
    with s.run_table(experiment=experiment, status=status, system=system) as table, \
            output.pager(not no_pager):
        columns = [Column("run", "ref")]
        if wide or format != "table":
            columns += [Column("name"), Column("started")]
        columns.append(Column("status"))
        columns += [Column(k, lambda d, k=k: d["metrics"].get(k), numeric=True, style="cyan")
                    for k in table.metrics]
        columns += [Column(k, lambda d, k=k: d["params"].get(k), numeric=numeric)
                    for k, numeric in table.params.items()]
        emit(table.rows, columns, format,
             empty="No runs yet. Record some with the Python API, or try `metastore demo`.")


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id, number, experiment#number or name.",
                                       autocompletion=completion.runs)],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    format: format_option("table", "json") = "table",
) -> None:
    """Everything about one run: params, metrics, inputs, outputs, notes, context."""
    s = open_store(store)
    data = s.get_run(run, experiment=experiment).to_dict()
    if format == "json":
        return print_json(data)
    say = output.console().print
    say(f"[bold]{data['experiment']}#{data['number']}[/bold] {data['name'] or ''}  "
        f"[dim]{data['id']}[/dim]", soft_wrap=True)
    say(f"status {data['status']}, started {data['started']}, "
        f"duration {output.text(data['duration'], whole=False) or '-'} s, "
        f"user {data['user'] or '-'}, host {data['host'] or '-'}",
        markup=False, soft_wrap=True)
    if data["git_commit"]:
        dirty = " (dirty)" if data["git_dirty"] else ""
        say(f"git {data['git_commit']} on {data['git_branch']}{dirty}", markup=False, soft_wrap=True)
    if data["command"]:
        say(f"command {data['command']}", markup=False, soft_wrap=True)
    system = data["context"].get("system")
    if system:
        say(f"python {system.get('python')} on {system.get('platform')}, {system.get('cpus')} cpus,"
            f" cwd {system.get('cwd')}", markup=False, soft_wrap=True)
    changed = data["context"].get("git", {}).get("changed_files")
    if changed:
        say(f"uncommitted changes: {', '.join(changed)}", markup=False, soft_wrap=True)
    for title in ("params", "metrics", "tags"):
        values = data[title]
        if values:
            say("")
            output.table([{"key": k, "value": v} for k, v in values.items()],
                         [Column(title, "key"), Column("value")])
    for title in ("inputs", "outputs"):
        if data[title]:
            say("")
            output.table(data[title], [
                Column(title, lambda v: f"{v['kind']}:{v['name']}@{v['version']}"),
                Column("role"), Column("path"), Column("digest"), Column("size", numeric=True)])
    if data["notes"]:
        say("")
        output.table(data["notes"], [Column("time", lambda n: output.parse_time(n["time"])),
                                     Column("kind"), Column("author"), Column("note", "text")])


@app.command()
def assets(
    kind: Annotated[str | None, typer.Argument(help="Only this kind (model, dataset …).",
                                               autocompletion=completion.kinds)] = None,
    store: StoreOption = None,
    format: FormatOption = "table",
) -> None:
    """List assets and their versions."""
    s = open_store(store)
    runs: dict[str, str] = {}

    def run_ref(run_id: str | None) -> str | None:
        # tables name runs as experiment#number, never by their raw id
        if run_id is None:
            return None
        if run_id not in runs:
            try:
                runs[run_id] = s.get_run(run_id).ref
            except MetastoreError:  # a run deleted and purged since
                runs[run_id] = run_id
        return runs[run_id]

    data = []
    for asset in s.assets(kind):
        for v in s.versions(asset.kind, asset.name):
            d = v.to_dict()
            d["ref"] = v.ref
            d["created_by_run"] = run_ref(d["created_by"])
            data.append(d)
    emit(data, [Column("version", "ref"), Column("digest"), Column("size", numeric=True),
                Column("created by", "created_by_run"),
                Column("created", lambda d: output.parse_time(d["created"]))],
         format, empty="No assets yet.")


@app.command()
def delete(
    run: Annotated[str | None, typer.Argument(help="Run to delete.", autocompletion=completion.runs)] = None,
    store: StoreOption = None,
    experiment: ExperimentOption = None,
) -> None:
    """Soft-delete a run, or a whole experiment with --experiment and no run."""
    s = open_store(store)
    if run is not None:
        handle = s.get_run(run, experiment=experiment)
        s.delete_run(handle.id)
        console.print(f"Deleted run {handle.ref} (restorable until `metastore purge`).")
    elif experiment is not None:
        s.delete_experiment(experiment)
        console.print(f"Deleted experiment {experiment!r} (restorable until `metastore purge`).")
    else:
        raise MetastoreError("name a run, or an experiment with --experiment")


@app.command()
def purge(store: StoreOption = None) -> None:
    """Remove deleted runs and experiments for good, and blobs nothing references."""
    s = open_store(store)
    counts = s.purge()
    console.print(
        f"Purged {counts['runs']} runs, {counts['experiments']} experiments, "
        f"{counts['versions']} asset versions, {counts['blobs']} blobs."
    )


# --- query (metastore query) ----------------------------------------------------------


@app.command()
def query(
    text: Annotated[
        str, typer.Argument(help="A query, e.g. 'runs where rmse < 55 show number, r2'.",
                            autocompletion=completion.query)
    ],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    format: FormatOption = "table",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL the query compiles to, and do not run it.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Cancel the query after this many seconds "
                     "(default: 300 on a database, the server's limit through a server)."),
    ] = None,
    no_pager: NoPagerOption = False,
) -> None:
    """Answer a question in the query language (docs/query-language.md). Rows are
    printed as the database returns them; in a terminal, a long answer goes through a
    pager."""
    # `metastore query …` usually comes here without typer: cli.main reads it first
    answer(text, store, experiment, format, sql, timeout, no_pager)


# --- lineage (metastore lineage, diff, audit, link) --------------------------------------


@app.command()
def lineage(
    ref: Annotated[
        str, typer.Argument(help="Run (id, number, experiment#number, name) or asset version (kind:name@N; kind:name = latest).",
                            autocompletion=completion.nodes)
    ],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    up: Annotated[bool, typer.Option("--up", help="What it came from (the default).")] = False,
    down: Annotated[bool, typer.Option("--down", help="What it fed into.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Upstream and downstream.")] = False,
    depth: Annotated[int | None, typer.Option("--depth", "-d", min=0, help="At most this many hops.")] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Show the path between REF and this node instead.")
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format", "-f",
            help="text (a tree), table, csv or markdown (one row per edge), json (node-link),"
            " graphml, dot or mermaid.",
        ),
    ] = "text",
    output: Annotated[str | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="One page: at most N edges (per direction), nearest first.")
    ] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The next page: the cursor the previous page printed.")
    ] = None,
    count: Annotated[
        bool, typer.Option("--count", help="Only count the edges and nodes the walk reaches.")
    ] = False,
) -> None:
    """The lineage graph of a run or asset version: where it came from, what it fed.
    A hub (a dataset thousands of runs used) is best read with --count, then --limit
    pages."""
    from metastore.graph_formats import render
    from metastore.refs import resolve

    s = open_store(store, create=False)
    node = resolve(s.backend, ref, experiment)
    if to is not None:
        graph = s.path(node, resolve(s.backend, to, experiment))
        if graph is None:
            raise MetastoreError(f"no lineage path between {ref} and {to} (in either direction)")
    else:
        chosen = [d for d, on in (("upstream", up), ("downstream", down), ("both", both)) if on]
        if len(chosen) > 1 and not both:
            chosen = ["both"]
        direction = "both" if both else (chosen[0] if chosen else "upstream")
        if count:
            graph = s.lineage(node, direction=direction, depth=depth, limit=1, count=True)
            return emit(
                [{"ref": ref, "direction": direction, "depth": depth,
                  "edges": graph.graph["edge_count"], "nodes": graph.graph["node_count"]}],
                [Column("ref"), Column("direction"), Column("depth"), Column("edges"),
                 Column("nodes")], format if format in ("table", "csv", "markdown", "json") else "table",
            )
        graph = s.lineage(node, direction=direction, depth=depth, limit=limit, cursor=cursor)
    if format in ("table", "csv", "markdown"):
        if output:
            raise MetastoreError(
                f"--output writes the graph formats (text, json, graphml, dot, mermaid), not {format}",
                hint=f"redirect it instead: metastore lineage {ref} --format {format} > FILE",
            )
        emit(
            [{"from": a, "relation": d.get("relation"), "role": d.get("role"), "to": b}
             for a, b, d in graph.edges(data=True)],
            [Column("from"), Column("relation"), Column("role"), Column("to")], format,
            empty=f"{list(graph)[0] if len(graph) else ref}: no lineage edges",
        )
        return _say_more(graph)
    text = render(graph, format)
    if output:
        from pathlib import Path

        Path(output).write_text(text, encoding="utf-8")
        err.print(f"wrote {len(graph)} nodes, {graph.number_of_edges()} edges to {output}")
    else:
        sys.stdout.write(text)
    _say_more(graph)


def _say_more(graph) -> None:
    """After a page of lineage, on standard error: where the next page starts."""
    sys.stdout.flush()
    if graph.graph.get("next_cursor"):
        err.print(f"more edges: the next page is --cursor {graph.graph['next_cursor']}")
    elif graph.graph.get("more"):
        err.print("more edges: page one direction (--up or --down) to get a cursor")


@app.command()
def link(
    upstream: Annotated[str, typer.Argument(help="Where data came from, e.g. model:base@2.",
                                            autocompletion=completion.nodes)],
    downstream: Annotated[str, typer.Argument(help="What was made from it, e.g. model:tuned@1.",
                                              autocompletion=completion.nodes)],
    store: StoreOption = None,
    relation: Annotated[
        str, typer.Option("--relation", "-r", help="derived_from (version → version), used (version → run), produced (run → version) or reproduces (run → its reproduction).")
    ] = "derived_from",
    role: Annotated[str | None, typer.Option("--role", help="How it was used: base_model, train …")] = None,
) -> None:
    """Record after the fact that DOWNSTREAM was made from UPSTREAM."""
    from metastore.refs import resolve

    s = open_store(store, create=False)
    up, down = resolve(s.backend, upstream), resolve(s.backend, downstream)
    s.link(up, down, relation=relation, role=role)
    graph = s.path(up, down)
    labels = list(graph) if graph is not None else [upstream, downstream]
    console.print(f"linked {labels[0]} -> {labels[-1]} ({relation}{', ' + role if role else ''})", markup=False)



@app.command()
def register(
    kind: Annotated[str, typer.Argument(help="Asset kind: model, dataset, code, environment …",
                                        autocompletion=completion.kinds)],
    name: Annotated[str, typer.Argument(help="Asset name, e.g. bert-base.")],
    path: Annotated[str | None, typer.Argument(help="A file or folder to store (omit with --uri).")] = None,
    store: StoreOption = None,
    uri: Annotated[str | None, typer.Option("--uri", help="Where the content lives, when it is not stored (hf://…, s3://…).")] = None,
    digest: Annotated[str | None, typer.Option("--digest", help="The content's sha256 (with --uri).")] = None,
    size: Annotated[int | None, typer.Option("--size", help="Its size in bytes (with --uri).")] = None,
    derived_from: Annotated[
        list[str] | None, typer.Option("--derived-from", help="An upstream version (repeatable).")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="Role of the derivation edges.")] = None,
) -> None:
    """Register an asset version made outside a run — a file, or a public checkpoint by
    URI and digest without its bytes — so lineage can link to it."""
    s = open_store(store, create=False)
    version = s.register(kind, name, path, uri=uri, digest=digest, size=size,
                         derived_from=derived_from or (), role=role)
    console.print(f"{version.ref} {version.digest}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="The run to compare against.", autocompletion=completion.runs)],
    run_b: Annotated[str, typer.Argument(help="The run to compare.", autocompletion=completion.runs)],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    format: format_option("text", *FORMATS, default="text") = "text",
) -> None:
    """What changed between two runs: params, metrics (did it help?), inputs, outputs.
    `--format table|csv|markdown` lists every difference as a row."""
    from metastore.diff import change_rows, format_text

    s = open_store(store, create=False)
    result = s.diff(run_a, run_b, experiment=experiment)
    if format == "text":
        return output.console().print(format_text(result), end="", markup=False,
                                      highlight=False, soft_wrap=True)
    emit(change_rows(result), [Column("section"), Column("item"), Column("a"), Column("b"),
                               Column("change")],
         format, data=result.to_dict(), empty="No differences.")


@app.command()
def audit(
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    format: format_option("text", *FORMATS, default="text") = "text",
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any run misses something (for CI).")
    ] = False,
) -> None:
    """Reproducibility self-check: runs lacking code, data, environment, seed, model or
    a note, and runs that repeat an earlier run's configuration."""
    from metastore.audit import CHECKS, mark, summary_lines

    s = open_store(store, create=False)
    report = s.audit(experiment=experiment)
    rows = [r.to_dict() for r in report.runs]
    columns = [Column("run", "ref"),
               *(Column(c, lambda r, c=c: mark(r["checks"][c])) for c in CHECKS),
               Column("duplicate of", "duplicate_of"),
               Column("reproduce", lambda r: "yes" if r["reproduce"]["can_run"]
                      else "; ".join(r["reproduce"]["missing"]))]
    if format == "text":  # the checklist, then what it adds up to
        if rows:
            output.table(rows, columns)
            output.console().print("")
        output.console().print("\n".join(summary_lines(report)), markup=False, soft_wrap=True)
    else:
        emit(rows, columns, format, data=report.to_dict(), empty="No runs to audit.")
    if strict and not report.ok:
        sys.exit(1)


# --- import and export (metastore import, export) ----------------------------------------


def _progress_bar(enabled: bool):
    """A rich progress bar on stderr and the ImportOptions.progress callback driving it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err, transient=True, disable=not enabled,
    )
    task = bar.add_task("import", total=None)

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)

    return bar, progress


def _print_report(report, format: str) -> None:
    if format == "json":
        return print_json(report.to_dict())
    if format in ("csv", "markdown"):  # the skipped runs are the rows
        return emit([{"skipped": w, "reason": r} for w, r in report.skipped],
                    [Column("skipped"), Column("reason")], format)
    console.print(report.summary(), highlight=False, markup=False, soft_wrap=True)
    if report.skipped:
        # the file names what to fix: the renderer never cuts it short
        output.table([{"skipped": w, "reason": r} for w, r in report.skipped],
                     [Column("skipped"), Column("reason")],
                     title=f"{len(report.skipped)} runs skipped")
    other = [w for w in report.warnings if not w.startswith("skipped ")]
    for w in other[:20]:
        err.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    if len(other) > 20:
        err.print(f"… and {len(other) - 20} more warnings (--format json lists them all)")


class _ImportCommand(TyperCommand):
    """`import [SOURCE] PATH`: SOURCE is optional (click's variadic argument, at most
    one), PATH required; the usage line says just that."""

    def collect_usage_pieces(self, ctx):
        return [self.options_metavar, "[SOURCE]", "PATH"]


@app.command("import", cls=_ImportCommand)
def import_(
    source: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SOURCE",
            help="The tool that wrote PATH (mlflow, csv, bundle, …); detected when left out.",
            show_default=False,
        ),
    ] = None,
    path: Annotated[
        str,
        typer.Argument(metavar="PATH", help="File, folder or database URL to import.",
                       show_default=False),
    ] = ...,
    store: StoreOption = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Put every run into this experiment.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Read and count; write nothing.")] = False,
    copy: Annotated[
        bool, typer.Option("--copy/--no-copy", help="Copy artifacts into the blob store, or reference them by URI.")
    ] = True,
    params: Annotated[
        list[str] | None, typer.Option("--params", help="csv: columns that are params (comma-separated, globs).")
    ] = None,
    metrics: Annotated[
        list[str] | None, typer.Option("--metrics", help="csv: columns that are metrics (comma-separated, globs).")
    ] = None,
    format: FormatOption = "table",
) -> None:
    """Import runs from MLflow, DVC, W&B, TensorBoard, Neptune, OpenLineage, CSV/JSON Lines
    or a metastore bundle. Exits 0 when every run is imported or already present, 2 when
    some were skipped (listed with the reason), 1 on an error."""
    from metastore.importers import import_path, registry

    if source and len(source) > 1:
        raise typer.BadParameter(f"one SOURCE, then PATH; got {' '.join([*source, path])}")
    source, target = (source[0] if source else None), path
    if source is not None and source not in registry():
        raise MetastoreError(
            f"unknown import source {source!r}", hint=f"one of: {', '.join(registry())}"
        )
    extra = {}
    if params:
        extra["params"] = params
    if metrics:
        extra["metrics"] = metrics
    with _store_for_import(store, dry_run) as s:
        bar, progress = _progress_bar(enabled=format != "json" and err.is_terminal)
        with bar:
            report = import_path(
                s.backend, target, source, experiment=experiment, dry_run=dry_run, copy=copy,
                progress=progress, **extra,
            )
    if dry_run and format != "json":
        console.print("[dim]dry run: nothing was written[/dim]")
    _print_report(report, format)
    if report.skipped:
        raise typer.Exit(2)


def _local_store_missing(url: str | None) -> bool:
    """Whether `url` (or the default store) names a local store that does not exist yet."""
    import os
    from pathlib import Path

    from metastore.store import find_store_dir

    url = url or os.environ.get("METASTORE_URL") or None
    if url is None:
        return find_store_dir() is None
    if url.startswith("sqlite:"):
        path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
        return bool(path) and not path.startswith(":memory:") and not Path(path).exists()
    return "://" not in url and not Path(url).exists()


@contextmanager
def _store_for_import(url: str | None, dry_run: bool):
    """The store to import into. A dry run writes nothing, not even a new store: where
    there is none yet, it counts against an empty throwaway one."""
    if not (dry_run and _local_store_missing(url)):
        yield open_store(url, create=not dry_run)
        return
    import tempfile

    import metastore

    with tempfile.TemporaryDirectory(prefix="metastore-dry-run-") as tmp:
        yield metastore.open(f"sqlite:///{tmp}/dry-run.db", blobs=f"{tmp}/blobs")


@app.command("export")
def export_(
    out: Annotated[str, typer.Argument(help="Directory or .tar.gz (bundle), .csv, .parquet, or .jsonl (OpenLineage).")],
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    run: Annotated[
        str | None, typer.Option("--run", "-r", help="openlineage: only this run (id, number, experiment#number).")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--format", "-f", help="bundle, csv, parquet or openlineage (default: from OUT's name)."),
    ] = None,
) -> None:
    """Export runs: a portable bundle (JSON + blobs) that `metastore import` reads into any
    store, a CSV/Parquet table with one row per run, or OpenLineage run events."""
    from metastore.exporters import export, guess_format

    s = open_store(store, create=False)
    fmt = to or guess_format(out)
    counts = export(s.backend, out, format=fmt, experiment=experiment, run=run)
    what = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    console.print(f"Wrote {fmt} {out}: {what}", highlight=False, markup=False)


# --- server (metastore server, token) ---------------------------------------------------


DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        "--store",
        "-s",
        envvar="METASTORE_URL",
        help="Database URL (sqlite:///…, postgresql://…, mysql://…) or folder.",
    ),
]


def _database_store(url: str | None, blobs: str | None = None):
    import metastore

    if url and url.startswith(("http://", "https://")):
        raise MetastoreError(
            "the server and its tokens need the database itself, not another server",
            hint="pass the database URL, e.g. --url postgresql://user@host/metastore",
        )
    return metastore.open(url, blobs=blobs)


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    url: DatabaseOption = None,
    blobs: Annotated[
        str | None,
        typer.Option(envvar="METASTORE_BLOBS", help="Blob root: a folder or an fsspec URL (s3://…)."),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without tokens (loopback addresses only).")
    ] = False,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Serve the REST API only.")] = False,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Server processes sharing the port (use PostgreSQL or MySQL for several).")
    ] = 1,
) -> None:
    """Serve a store to a team: REST API under /api/ (and the web UI), with API tokens."""
    from metastore.server import run_server
    from metastore.server.auth import check_no_auth_allowed

    if no_auth:
        check_no_auth_allowed(host)
    s = _database_store(url, blobs)
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"metastore server on http://{shown}:{port}/ (API docs at /api/docs), store {s.url},"
        f" blobs {s.backend.blob_root}, " + ("no authentication" if no_auth else "tokens required")
        + (f", {workers} workers" if workers > 1 else ""),
        highlight=False,
        soft_wrap=True,
    )
    run_server(s, host, port, auth=not no_auth, ui=not no_ui, workers=workers)


@app.command()
def sync(
    spool: Annotated[str | None, typer.Option(
        envvar="METASTORE_SPOOL",
        help="The spool folder (default: spool/ in the user's cache folder).")] = None,
    token: Annotated[str | None, typer.Option(
        envvar="METASTORE_TOKEN", help="A token that may write, for the server.")] = None,
    format: FormatOption = "table",
) -> None:
    """Send the writes a client kept in its spool while its metastore server was away,
    in the order they were made; show what was sent, refused and is still pending."""
    import metastore

    done = metastore.sync(spool, token=token)
    rows = [_spooled_row("sent", e) for e in done.sent]
    rows += [_spooled_row("refused", e, error) for e, error in done.refused]
    rows += [_spooled_row("pending", e) for e in done.pending]
    emit(rows, [Column("state"), Column("write"), Column("path"), Column("server"),
                Column("kept"), Column("detail")], format,
         data={"sent": len(done.sent), "refused": len(done.refused),
               "pending": len(done.pending), "writes": rows, "problems": done.problems,
               "stopped": done.stopped},
         empty="Nothing was waiting in the spool.",
         footer=f"{len(done.sent)} sent, {len(done.refused)} refused, "
                f"{len(done.pending)} pending")
    for line in [*done.stopped, *done.problems]:
        err.print(line, markup=False, highlight=False, soft_wrap=True)
    if done.pending or done.refused or done.problems:
        raise typer.Exit(1)


def _spooled_row(state: str, entry, detail: str | None = None) -> dict:
    return {"state": state, "write": entry.route, "path": entry.path, "server": entry.url,
            "kept": entry.time, "detail": detail or ""}


@app.command()
def reproduce(
    run: Annotated[str, typer.Argument(help="The run: id, number, experiment#number or name.",
                                       autocompletion=completion.runs)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and what is missing; run nothing.")] = False,
    into: Annotated[str | None, typer.Option("--into", help="A new or empty folder to rebuild the run in (default: a new temporary folder, kept).")] = None,
    here: Annotated[bool, typer.Option("--here", help="Use the current interpreter instead of a fresh virtual environment; list the packages that differ.")] = False,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance: a metric within it is 'within tolerance'.")] = 0.0,
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance: a metric within it is 'within tolerance'.")] = 0.0,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds the command may take.")] = None,
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    format: format_option("text", *FORMATS, default="text") = "text",
) -> None:
    """Rebuild a run and run it again: its code at the recorded commit with the recorded
    uncommitted change, its inputs where it read them (verified by digest), a fresh
    virtual environment from its package list (or --here), and its command, recorded as
    a new run linked to the original by a `reproduces` edge. Prints a verdict per metric
    (identical, within tolerance, different) and, for a difference, what differed in
    inputs, code and environment. Exit status: 0 identical or within tolerance, 1
    different (or, with --dry-run, something missing), 2 the command failed or recorded
    no run."""
    s = open_store(store, create=False)
    if dry_run:
        from metastore import reproduce as planner

        p = s.reproduce_plan(run, experiment, here=here)
        if format == "json":
            print_json(p.to_dict())
        elif format == "text":
            sys.stdout.write(planner.format_text(p))
        else:
            emit([st.to_dict() for st in p.steps],
                 [Column("part", "part"), Column("action", "action"), Column("missing", "missing")],
                 format)
        if not p.can_run:
            sys.exit(1)
        return
    from metastore.reproduction import format_text

    # the command's own output goes to stderr when stdout carries data (json, csv …)
    r = s.reproduce(run, experiment, into=into, here=here, rtol=rtol, atol=atol,
                    timeout=timeout, stdout=None if format in ("text", "table") else 2)
    if format == "text":
        sys.stdout.write(format_text(r))
    else:
        emit([m.to_dict() for m in r.metrics],
             [Column("metric", "key"), Column("original", "original", numeric=True),
              Column("reproduced", "reproduced", numeric=True), Column("verdict", "verdict")],
             format, data=r.to_dict(), empty="The original recorded no metrics.",
             footer="\n".join([*(f"differs: {d['section']} {d['item']}: {d['a']} -> {d['b']}"
                                  for d in r.differences),
                                f"verdict: {r.verdict}" + (f": {r.reason}" if r.reason else "")]))
    if r.verdict == "failed":
        sys.exit(2)
    if not r.ok:
        sys.exit(1)


@app.command()
def fields(
    store: StoreOption = None,
    experiment: ExperimentOption = None,
    kind: Annotated[str | None, typer.Option("--kind", "-k", help="Only this kind: param, metric, tag, attribute, …")] = None,
    format: FormatOption = "table",
) -> None:
    """Every name a query can use: params, metrics and tags with how many runs have each,
    attributes, history suffixes, lineage conditions, sources."""
    rows = open_store(store, create=False).fields(experiment)
    if kind is not None:
        rows = [r for r in rows if r["kind"] == kind.lower() or r["kind"].startswith(kind.lower())]
    emit(rows, [Column("name"), Column("kind"), Column("type"), Column("runs", numeric=True),
                Column("about")], format, empty="No such fields.")


alias_app = typer.Typer(
    help="Movable names for asset versions: `model:regressor@production`.", no_args_is_help=True
)
app.add_typer(alias_app, name="alias")
NoteOption = Annotated[str | None, typer.Option("--note", "-m", help="Why (kept in the history).")]


def _alias_rows(records) -> list[dict]:
    return [r.model_dump(mode="json") | {"ref": r.ref, "asset": f"{r.kind}:{r.name}"}
            for r in records]


@alias_app.command("set")
def alias_set(
    ref: Annotated[str, typer.Argument(help="The asset version: kind:name@N (or @another-alias).",
                                       autocompletion=completion.versions)],
    alias: Annotated[str, typer.Argument(help="The alias, e.g. production.")],
    note: NoteOption = None,
    store: StoreOption = None,
    format: FormatOption = "table",
) -> None:
    """Point an alias at an asset version (moving it if it pointed elsewhere)."""
    record = open_store(store, create=False).set_alias(ref, alias, note=note)
    if format != "table":
        return emit(_alias_rows([record]), None, format, data=_alias_rows([record])[0])
    moved = f" (moved from version {record.previous})" if record.previous is not None else ""
    console.print(f"{record.ref} → {record.kind}:{record.name}@{record.version}{moved}",
                  highlight=False, markup=False)


@alias_app.command("unset")
def alias_unset(
    ref: Annotated[str, typer.Argument(help="kind:name@alias, or kind:name with ALIAS.",
                                       autocompletion=completion.versions)],
    alias: Annotated[str | None, typer.Argument(help="The alias, when REF is kind:name.")] = None,
    note: NoteOption = None,
    store: StoreOption = None,
) -> None:
    """Remove an alias (the removal is kept in its history)."""
    record = open_store(store, create=False).unset_alias(ref, alias, note=note)
    console.print(f"removed {record.ref} (was version {record.previous})",
                  highlight=False, markup=False)


@alias_app.command("list")
def alias_list(
    asset: Annotated[str | None, typer.Argument(help="Only this asset: kind:name.",
                                                autocompletion=completion.versions)] = None,
    store: StoreOption = None,
    format: FormatOption = "table",
) -> None:
    """The aliases set now, and the versions they point at."""
    rows = _alias_rows(open_store(store, create=False).aliases(asset))
    emit(rows, [Column("alias", "ref"), Column("version", lambda r: f"{r['asset']}@{r['version']}"),
                Column("moved", lambda r: output.parse_time(r["time"])), Column("by", "author"),
                Column("note")],
         format, empty="No aliases. Set one with `metastore alias set model:NAME@N production`.")


@alias_app.command("history")
def alias_history(
    asset: Annotated[str | None, typer.Argument(help="Only this asset: kind:name or kind:name@alias.",
                                                autocompletion=completion.versions)] = None,
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    store: StoreOption = None,
    format: FormatOption = "table",
) -> None:
    """Every move of aliases, oldest first: to which version, from which, who, when, why."""
    rows = _alias_rows(open_store(store, create=False).alias_history(asset, alias))
    emit(rows, [Column("when", lambda r: output.parse_time(r["time"])), Column("alias", "ref"),
                Column("to", lambda r: "(removed)" if r["version"] is None else r["version"]),
                Column("from", "previous"), Column("by", "author"), Column("note")],
         format, empty="No alias has been set.")


db_app = typer.Typer(help="The store's database schema: its revision, and upgrading it.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("status")
def db_status(url: DatabaseOption = None, format: FormatOption = "table") -> None:
    """The schema revision of the store and of this metastore, and what to do."""
    from metastore.backends.schema import schema_status
    from metastore.store import database_url

    status = schema_status(database_url(url))
    advice = {
        "new": "no schema yet: opening the store creates it",
        "current": "up to date",
        "older": "older: run `metastore db upgrade` (a SQLite store upgrades itself on open, "
                 "after a backup)",
        "newer": "newer than this metastore: upgrade metastore to open it",
    }
    emit([{**status, "advice": advice[status["state"]]}],
         [Column("store"), Column("package"), Column("state"), Column("advice")], format)


@db_app.command("upgrade")
def db_upgrade(
    url: DatabaseOption = None,
    backup: Annotated[bool, typer.Option(
        "--backup/--no-backup", help="Copy a SQLite store beside itself first.")] = True,
) -> None:
    """Upgrade the store's schema to this metastore's revision (a backup first for
    SQLite; on PostgreSQL/MariaDB take a database backup of your own first)."""
    from metastore.backends.schema import upgrade_schema
    from metastore.store import database_url

    done = upgrade_schema(database_url(url), backup=backup)
    if done["from"] == done["to"]:
        console.print(f"The store is already at revision {done['to']}.", highlight=False)
        return
    console.print(f"Upgraded the store from {done['from'] or 'nothing'} to {done['to']}.",
                  highlight=False)
    if done["backup"]:
        console.print(f"Backup: {done['backup']}", highlight=False)


config_app = typer.Typer(
    help="The store's settings, shared by everyone recording into it: "
    "`metastore config set cost.per_hour.HOST 2.5`.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="cost.per_hour (every host), cost.per_hour.HOST or cost.per_hour.RESOURCE, …")],
    value: Annotated[str, typer.Argument(help="The value, e.g. 2.5 (money per hour).")],
    store: StoreOption = None,
) -> None:
    """Set a store setting (a cost per hour: runs recorded on that host or resource get
    system.cost from it)."""
    stored = open_store(store, create=False).set_config(key, value)
    console.print(f"{key} = {stored}", highlight=False, markup=False)


@config_app.command("unset")
def config_unset(
    key: Annotated[str, typer.Argument(help="The setting to remove.")],
    store: StoreOption = None,
) -> None:
    """Remove a store setting."""
    open_store(store, create=False).unset_config(key)
    console.print(f"removed {key}", highlight=False, markup=False)


@config_app.command("list")
def config_list(
    prefix: Annotated[str | None, typer.Argument(help="Only keys starting with this, e.g. cost.")] = None,
    store: StoreOption = None,
    format: FormatOption = "table",
) -> None:
    """The store's settings."""
    rows = [{"key": k, "value": v} for k, v in open_store(store, create=False).config(prefix).items()]
    emit(rows, [Column("key"), Column("value")], format,
         empty="No settings. Set one with `metastore config set cost.per_hour.HOST 2.5`.")


token_app = typer.Typer(help="Manage the API tokens of `metastore server`.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses it, e.g. ci.")],
    read_only: Annotated[
        bool, typer.Option("--read-only", help="May read everything and write nothing.")
    ] = False,
    url: DatabaseOption = None,
) -> None:
    """Create a token; it is printed once (last word of the output) and stored hashed."""
    from metastore.server import create_token

    token = create_token(_database_store(url), name, read_only=read_only)
    kind = "read-only token" if read_only else "token"
    console.print(f"Created {kind} {name!r}. Copy it now, it is not shown again:", highlight=False)
    sys.stdout.write(f"{token}\n")


@token_app.command("list")
def token_list(url: DatabaseOption = None, format: FormatOption = "table") -> None:
    """List active tokens (names and rights; the tokens themselves are not stored)."""
    from metastore.server import list_tokens

    rows = [{"name": t.name, "read_only": t.read_only, "created": t.created}
            for t in list_tokens(_database_store(url))]
    emit(rows, [Column("name"),
                Column("access", lambda r: "read-only" if r["read_only"] else "read-write"),
                Column("created")],
         format, empty="No tokens. Create one with `metastore token create --name NAME`.")


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="Name of the token to revoke.")],
    url: DatabaseOption = None,
) -> None:
    """Revoke a token; the server refuses it from the next request on."""
    from metastore.server import revoke_token

    revoke_token(_database_store(url), name)
    console.print(f"Revoked token {name!r}.")



# --- web UI (metastore ui) ---------------------------------------------------------------


@app.command()
def ui(
    store: StoreOption = None,
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1.")] = 5000,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser tab.")
    ] = False,
) -> None:
    """Browse, query and compare runs in the web UI (on this machine only, no login)."""
    from metastore.server.local import serve_ui

    serve_ui(open_store(store), port=port, open_browser=not no_browser)


def _one_paragraph_help(group: typer.Typer) -> None:
    """Help texts from docstrings, with the source's line breaks taken out of each
    paragraph so the terminal wraps them at its own width, never mid-sentence."""
    import inspect
    import re

    for info in group.registered_commands:
        doc = info.help or inspect.getdoc(info.callback) or ""
        info.help = "\n\n".join(re.sub(r"\s*\n\s*", " ", p.strip()) for p in doc.split("\n\n"))
    for sub in group.registered_groups:
        _one_paragraph_help(sub.typer_instance)


_one_paragraph_help(app)
