"""`metastore.open()` and the `Store` it returns: the one API object.

The Store is what users hold, and what every door (the CLI, the server's routes and
the web UI) calls: recording, reading back, query, lineage, diff, audit, export and
import. It holds a backend (`metastore.backends`) and adds no storage of its own:
each method is a service from the layer below called on that backend, so a feature
written once works on every backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metastore.backends import Backend, open_backend
from metastore.errors import InvalidValue, NotFound

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    import networkx as nx

    from metastore.audit import AuditReport
    from metastore.backends.base import QueryStream, RunTable
    from metastore.diff import RunDiff
    from metastore.handles import RunHandle, VersionHandle
    from metastore.models import Asset, Experiment
    from metastore.query import Result
    from metastore.records import AliasRecord, RunView
    from metastore.tracking import ActiveRun

STORE_DIR = ".metastore"


class Store:
    """A metastore: what `metastore.open()` returns. `store.backend` is the store
    interface beneath (`metastore.backends.base.Backend`), for tools that need its
    primitives."""

    def __init__(self, backend: Backend):
        self.backend = backend

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def __repr__(self) -> str:
        return f"<metastore.Store {self.backend!r}>"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- recording ------------------------------------------------------------------------
    def start_run(
        self,
        experiment: str | None = None,
        name: str | None = None,
        *,
        parent: str | RunHandle | None = None,
        tags: Mapping[str, str] | None = None,
        capture: bool | Iterable[str] = True,
        system_metrics: float | bool | None = None,
        cost_per_hour: float | None = None,
        flush_interval: float | None = None,
    ) -> ActiveRun:
        """Begin a run; use it as a context manager. `capture` switches automatic context
        capture: True (all), False (none), or names among git, command, system, packages.
        `system_metrics` samples system.* metrics: on by default (every 10 s, or
        METASTORE_SYSTEM_METRICS seconds), a number of seconds, or False (off; also
        METASTORE_SYSTEM_METRICS=off for every run); `cost_per_hour` (or METASTORE_COST_PER_HOUR) gives the
        run its system.cost. Params and metrics are buffered and written every
        `flush_interval` seconds (default 1.0 or METASTORE_FLUSH_INTERVAL; 0 writes each
        call at once), on `run.flush()` and at the end of the run (see metastore.tracking)."""
        from metastore.tracking import ActiveRun

        return ActiveRun.start(
            self.backend, experiment=experiment, name=name, parent=parent, tags=tags,
            capture=capture, system_metrics=system_metrics, cost_per_hour=cost_per_hour,
            flush_interval=flush_interval,
        )

    def put_asset(self, kind: str, name: str, content=None, **options) -> VersionHandle:
        """Store content (a file or directory path, or bytes) as a version of the asset
        kind/name, or register external content by `uri=` and `digest=` without its bytes
        (see `Backend.put_asset` for the options)."""
        from metastore.handles import VersionHandle

        asset, version = self.backend.put_asset(kind, name, content, **options)
        return VersionHandle(self.backend, asset, version)

    def register(
        self,
        kind: str,
        name: str,
        path: str | os.PathLike | None = None,
        *,
        uri: str | None = None,
        digest: str | None = None,
        size: int | None = None,
        derived_from: Iterable[Any] = (),
        role: str | None = None,
    ) -> VersionHandle:
        """Register an asset version made outside a run: a file or folder (`path`, stored),
        or content that lives elsewhere (`uri` and `digest`, not stored). `derived_from`
        names upstream versions (references such as "model:base@2", or handles)."""
        from metastore.refs import VERSION, resolve

        if (path is None) == (uri is None):
            raise InvalidValue("give either a PATH to store, or a URI and its digest")
        upstream = []
        for ref in derived_from:
            node = resolve(self.backend, ref)
            if node.type != VERSION:
                raise InvalidValue(f"derived from {ref}: a run cannot be derived from; name a version")
            upstream.append(node.id)
        if path is not None:
            return self.put_asset(kind, name, path, derived_from=upstream, role=role)
        return self.put_asset(kind, name, uri=uri, digest=digest, size=size,
                              derived_from=upstream, role=role)

    def link(self, upstream, downstream, relation: str = "derived_from", role: str | None = None):
        """Record after the fact that data flowed from `upstream` to `downstream` (e.g. a
        model fine-tuned from another team's model). Refuses an edge that makes a cycle."""
        from metastore.lineage import link

        return link(self.backend, upstream, downstream, relation=relation, role=role)

    # -- experiments ----------------------------------------------------------------------
    def experiments(self, include_deleted: bool = False) -> list[Experiment]:
        return self.backend.experiments(include_deleted)

    def run_counts(self) -> dict[str, int]:
        """Live runs per experiment name, every live experiment included (with 0)."""
        counts = self.backend.run_counts()
        return {e.name: counts.get(e.name, 0) for e in self.backend.experiments()}

    def create_experiment(self, name: str, description: str | None = None) -> Experiment:
        return self.backend.create_experiment(name, description)

    def get_experiment(self, name: str) -> Experiment:
        return self.backend.get_experiment(name)

    def delete_experiment(self, name: str) -> None:
        """Soft-delete an experiment and its runs; `purge` removes them for good."""
        self.backend.delete_experiment(name)

    # -- runs -----------------------------------------------------------------------------
    def get_run(self, ref: str | int, experiment: str | None = None) -> RunHandle:
        """A run by id, by number (`4` within `experiment` or the only experiment,
        `"diabetes#4"`), or by name."""
        from metastore.handles import RunHandle

        return RunHandle(self.backend, self.backend.resolve_run(ref, experiment))

    def runs(
        self,
        experiment: str | None = None,
        status: str | None = None,
        include_deleted: bool = False,
    ) -> list[RunHandle]:
        from metastore.handles import RunHandle

        return [
            RunHandle(self.backend, r)
            for r in self.backend.list_runs(experiment, status, include_deleted)
        ]

    def run_views(
        self, experiment: str | None = None, include_deleted: bool = False
    ) -> list[RunView]:
        """Every run with its params, last metric values, tags, inputs and outputs, read
        in one call (not one per run)."""
        return self.backend.read_runs(experiment=experiment, include_deleted=include_deleted)

    def run_summaries(
        self, experiment: str | None = None, status: str | None = None, *, system: bool = False
    ) -> list[dict[str, Any]]:
        """Each run as {ref, id, name, status, started, ended, params, metrics} (the last
        value of each metric): what `metastore runs` lists. Metrics named `system.…` (wall
        and CPU time, recorded for every run) are left out unless `system` is true."""
        with self.run_table(experiment, status, system=system) as table:
            return list(table.rows)

    def run_table(
        self, experiment: str | None = None, status: str | None = None, *, system: bool = False
    ) -> AbstractContextManager[RunTable]:
        """`run_summaries` read as they come, for a listing too long to hold: a context
        manager giving the metric keys, the param keys (with whether each holds only
        numbers) and then the rows, read inside the `with` block (`metastore runs`
        prints them so)."""
        return self.backend.run_table(experiment, status, system)

    def delete_run(self, ref: str | int, experiment: str | None = None) -> None:
        """Soft-delete a run: hidden everywhere until restored; `purge` removes it."""
        self.backend.delete_run(ref, experiment)

    def restore_run(self, ref: str | int) -> None:
        """Bring back a soft-deleted run (by id)."""
        self.backend.restore_run(str(ref))

    # -- assets ---------------------------------------------------------------------------
    def assets(self, kind: str | None = None) -> list[Asset]:
        """Assets (kind, name), optionally of one kind."""
        return self.backend.list_assets(kind)

    def get_asset(self, kind: str, name: str, version: int | str | None = None) -> VersionHandle:
        """A version of an asset (the latest when `version` is None; an alias such as
        "production" names the version it points at)."""
        from metastore.handles import VersionHandle

        if isinstance(version, str) and not version.lstrip("v").isdigit():
            from metastore.refs import resolve

            asset, av = self.backend.get_version_by_id(
                resolve(self.backend, f"{kind}:{name}@{version}").id)
            return VersionHandle(self.backend, asset, av)
        asset, av = self.backend.get_asset_version(kind, name, version)
        return VersionHandle(self.backend, asset, av)

    def reproduce_plan(self, ref, experiment: str | None = None, *, here: bool = False):
        """What `metastore reproduce RUN` would rebuild, and what is missing for it
        (`metastore.reproduce.Plan`); nothing is run. `here`: planned for the current
        interpreter instead of a fresh virtual environment."""
        from metastore import reproduce

        run = self.get_run(ref, experiment)
        [view] = self.backend.read_runs(run_ids=[run.id])
        return reproduce.plan(view, self.backend, here=here, context=run.context)

    def reproduce(
        self,
        ref,
        experiment: str | None = None,
        *,
        into: str | os.PathLike | None = None,
        here: bool = False,
        rtol: float = 0.0,
        atol: float = 0.0,
        timeout: float | None = None,
        stdout=None,
    ):
        """Rebuild a run and run it again (`metastore.reproduction.Reproduction`): its code
        at the recorded commit with the recorded uncommitted change, its inputs where it
        read them (verified), a fresh virtual environment from its package list (or the
        current interpreter with `here`), its command re-run in `into` (a new temporary
        folder by default), recorded as a new run linked to the original by a
        `reproduces` edge. `.verdict` is identical, within tolerance (`rtol`, `atol`),
        different (`.differences` says what differed) or failed. Raises NotReproducible
        when something it needs is missing. The command's output goes to this process's
        stdout, or to `stdout` (a file or descriptor, as subprocess takes it)."""
        from metastore.reproduction import reproduce_run

        return reproduce_run(self.backend, ref, experiment=experiment, into=into, here=here,
                             rtol=rtol, atol=atol, timeout=timeout, stdout=stdout)

    def fields(self, experiment: str | None = None) -> list[dict]:
        """Every name a query can use: params, metrics and tags (with how many runs have
        each), attributes, history suffixes, lineage conditions, sources."""
        from metastore.fields import fields

        return fields(self.backend, experiment)

    # -- aliases: which version is where -----------------------------------------------
    def set_alias(self, ref, alias: str, note: str | None = None) -> AliasRecord:
        """Point `alias` at an asset version: `store.set_alias("model:regressor@6",
        "production")`; then `model:regressor@production` names it everywhere."""
        from metastore import aliases

        return aliases.set_alias(self.backend, ref, alias, note=note)

    def unset_alias(self, ref: str, alias: str | None = None, note: str | None = None) -> AliasRecord:
        """Remove an alias: `"model:regressor@production"` or `("model:regressor", "production")`."""
        from metastore import aliases

        return aliases.unset_alias(self.backend, ref, alias, note=note)

    def aliases(self, asset: str | None = None) -> list[AliasRecord]:
        """Aliases set now (of every asset, or of `kind:name`)."""
        from metastore import aliases

        return aliases.list_aliases(self.backend, asset)

    def config(self, prefix: str | None = None) -> dict[str, str]:
        """The store's settings (key → text), shared by everyone recording into it, e.g.
        `cost.per_hour.<host>` (see metastore.settings)."""
        return self.backend.get_config(prefix)

    def set_config(self, key: str, value) -> str:
        """Set a store setting; a known key's value is checked (`cost.per_hour…` is a
        number of 0 or more). Returns the text stored."""
        from metastore import settings

        return settings.set_setting(self.backend, key, value)

    def unset_config(self, key: str) -> None:
        self.backend.set_config(key, None)

    def alias_history(self, asset: str | None = None, alias: str | None = None) -> list[AliasRecord]:
        """Every move of aliases, oldest first, with who moved them, when and why."""
        from metastore import aliases

        return aliases.alias_history(self.backend, asset, alias)

    def versions(self, kind: str, name: str) -> list[VersionHandle]:
        from metastore.handles import VersionHandle

        return [VersionHandle(self.backend, a, v) for a, v in self.backend.list_versions(kind, name)]

    # -- questions ------------------------------------------------------------------------
    def query(
        self, text: str, experiment: str | None = None, timeout: float | None = None
    ) -> Result:
        """Answer a query in metastore's query language (docs/query-language.md).

        The database cancels it after `timeout` seconds with a QueryError (None: the
        backend's default, 300 s on a database, the server's limit through a server)."""
        from metastore.query import execute

        return execute(self.backend, text, experiment=experiment, timeout=timeout)

    def query_stream(
        self, text: str, experiment: str | None = None, timeout: float | None = None
    ) -> AbstractContextManager[QueryStream]:
        """`query` for answers too big to hold: a context manager giving the columns and
        then the rows one at a time, read from the database as they are iterated (inside
        the `with` block). Rows are dicts as in `query`'s Result; through a server the
        answer comes in one response.

            with store.query_stream("runs where rmse < 60") as answer:
                for row in answer.rows:
                    print(row["number"])
        """
        from metastore.query import stream

        return stream(self.backend, text, experiment=experiment, timeout=timeout)

    def query_sql(self, text: str, experiment: str | None = None) -> str:
        """The SQL a query compiles to on this store, without running it (what
        `metastore query --sql` prints); names are resolved as `query` resolves them."""
        return self.backend.compile_query(text, experiment)

    def lineage(
        self,
        ref,
        direction: str = "upstream",
        depth: int | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        count: bool = False,
    ) -> nx.DiGraph:
        """The lineage graph around a run or asset version, as a networkx.DiGraph. With
        `limit`, one page of at most that many edges (per direction), nearest first:
        `graph.graph["next_cursor"]` is the `cursor` of the next page (None on the
        last). `count=True` sets `graph.graph["edge_count"]` and `["node_count"]` to
        what the whole walk reaches."""
        from metastore.lineage import lineage_graph

        return lineage_graph(self.backend, ref, direction=direction, depth=depth,
                             limit=limit, cursor=cursor, count=count)

    def path(self, a, b) -> nx.DiGraph | None:
        """The shortest lineage path between two nodes as a networkx.DiGraph in data-flow
        order (`list(graph)`), or None when neither is upstream of the other."""
        from metastore.lineage import path

        return path(self.backend, a, b)

    def diff(self, a, b, experiment: str | None = None) -> RunDiff:
        """What changed between two runs: params, metrics, inputs, outputs."""
        from metastore.diff import diff_runs

        return diff_runs(self.backend, a, b, experiment=experiment)

    def audit(self, experiment: str | None = None) -> AuditReport:
        """The reproducibility self-check of every run (or one experiment's runs)."""
        from metastore.audit import audit

        return audit(self.backend, experiment=experiment)

    # -- moving runs in and out -----------------------------------------------------------
    def export(self, out, format: str | None = None, experiment: str | None = None) -> dict:
        """Write runs out: a bundle (.tar.gz or folder), CSV, Parquet or OpenLineage
        events, by `format` or the file name (see docs/importing.md)."""
        from metastore.exporters import export

        return export(self.backend, out, format=format, experiment=experiment)

    def import_(self, path, source: str | None = None, **options):
        """Bring runs in from another tool's files (MLflow, DVC, W&B, TensorBoard,
        Neptune, OpenLineage, CSV/JSON, a bundle) or an MLflow database URL; `source`
        names the tool when it cannot be told from the files. The import report."""
        from metastore.importers import import_path

        return import_path(self.backend, path, source, **options)

    # -- maintenance ----------------------------------------------------------------------
    def purge(self) -> dict[str, int]:
        """Remove soft-deleted runs and experiments for good, then what only they used."""
        return self.backend.purge()


def find_store_dir(start: Path | None = None) -> Path | None:
    """The nearest `.metastore/` at or above `start`, the way git finds `.git`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_DIR).is_dir():
            return folder / STORE_DIR
    return None


def open(  # noqa: A001 - metastore.open is the public name
    url: str | os.PathLike | None = None,
    blobs: str | os.PathLike | None = None,
    *,
    token: str | None = None,
    create: bool = True,
    retry_for: float | None = None,
    spool: str | os.PathLike | None = None,
    lazy: bool = False,
) -> Store:
    """Open a store.

    - no URL: `METASTORE_URL`, else the nearest `.metastore/` above the current folder,
      else a new `.metastore/` here;
    - a database URL (sqlite:///…, postgresql://…, mysql://…), a path to a directory or
      to a SQLite file;
    - an http(s):// URL: a metastore server. `retry_for` (seconds, default
      METASTORE_RETRY_FOR or 60) is how long a request is retried while the server is
      away, after which a run's writes are kept in the `spool` folder (default
      METASTORE_SPOOL or the user's cache folder) until it is back; see
      docs/security.md.

    Blobs default to `METASTORE_BLOBS`, else `blobs/` beside a SQLite file, else
    `.metastore/blobs` in the current project folder.

    `lazy=True` opens a SQLite store without loading the database layer until a call
    needs it: `query`, `query_stream` and `query_sql` run on Python's sqlite3 module
    (what `metastore query` does, to start fast); anything else loads it then.
    """
    url = url if url is not None else os.environ.get("METASTORE_URL") or None
    blobs = blobs if blobs is not None else os.environ.get("METASTORE_BLOBS") or None
    if url is not None:
        url = str(url)
        if "://" not in url and not url.startswith("sqlite:"):
            # a store's folder, or its database file (`.metastore/metastore.db`)
            path = Path(url)
            url = f"sqlite:///{path.resolve()}" if path.is_file() else _directory_url(path, create)
        options = {k: v for k, v in (("retry_for", retry_for), ("spool", spool)) if v is not None}
        if options and not url.startswith(("http://", "https://")):
            raise InvalidValue(f"{', '.join(options)} applies to a server's URL (http://…), "
                               f"not to {url.split('://', 1)[0]}://")
        if blobs is None:
            blobs = _default_blobs(url)
        return Store(open_backend(url, blobs=blobs, token=token, create=create, lazy=lazy,
                                  **options))
    folder = find_store_dir()
    if folder is None:
        if not create:
            raise NotFound(
                "no metastore here or in any parent folder", hint="run `metastore init`"
            )
        folder = Path.cwd() / STORE_DIR
    return open(_directory_url(folder, create), blobs, create=create, lazy=lazy)


def database_url(url: str | os.PathLike | None = None) -> str:
    """The database URL `open(url)` would open (METASTORE_URL, else the nearest
    `.metastore/`), without opening it: for `metastore db status` and `db upgrade`."""
    url = url if url is not None else os.environ.get("METASTORE_URL") or None
    if url is None:
        folder = find_store_dir()
        if folder is None:
            raise NotFound("no metastore here or in any parent folder",
                           hint="pass --store URL, or run `metastore init`")
        return _directory_url(folder, False)
    url = str(url)
    if url.startswith(("http://", "https://")):
        raise InvalidValue(
            "a store's schema is upgraded on its database, not through a server",
            hint="pass the server's database URL, e.g. --store postgresql://user@host/metastore",
        )
    if "://" not in url and not url.startswith("sqlite:"):
        url = _directory_url(Path(url), False)
    return url


def _default_blobs(url: str) -> Path:
    if url.startswith("sqlite:"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith(":memory:"):
            return Path(path.split("?", 1)[0]).resolve().parent / "blobs"
    return (find_store_dir() or Path.cwd() / STORE_DIR) / "blobs"


def _directory_url(folder: Path, create: bool) -> str:
    folder = folder.resolve()
    if folder.name != STORE_DIR and (folder / STORE_DIR).is_dir():
        folder = folder / STORE_DIR
    if create:
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if folder.name == STORE_DIR and not ignore.exists():
            # The store is data, not source: keep it out of the project's git status
            # (or every run would be recorded as made from a dirty tree).
            ignore.write_text("# created by metastore\n*\n")
    return f"sqlite:///{folder / 'metastore.db'}"
