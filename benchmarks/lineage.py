"""Lineage traversal at scale: the recursive CTE on SQLite and PostgreSQL beside networkx.

    python benchmarks/lineage.py                      # 100,000 runs, ~1,000,000 edges
    python benchmarks/lineage.py --runs 10000         # a tenth of that, in seconds
    python benchmarks/lineage.py --backends sqlite --sqlite-path /tmp/big.db --keep

It builds a store of realistic shape with bulk inserts (the per-call API would take
hours): a hundred raw datasets, cleaned versions derived from them and train/test
splits derived from those, popular ones used by many runs (Zipf); every run uses a
split pair, a code version, an environment and a config and produces a model, three plots/logs
and predictions; half the runs fine-tune an earlier run's model, so models derive from
models in chains of up to 50. That is about ten edges per run.

Then, from several start nodes, it times upstream and downstream walks of depth 3, 10 and
unbounded: `sql` is the recursive CTE alone (`metastore.backends.sql_lineage.walk_edges`), `graph`
is `store.lineage()` (the CTE, the nodes' attributes, the networkx graph; timed up to
50,000 edges, "nan" beyond), and `nx` is
the same walk by networkx over every edge loaded into memory beforehand (the loading
time is printed separately: it is what a tool without SQL traversal pays per process).
Times are medians of several repeats, in milliseconds; `sql cpu` is the CPU time the
SQLite query took in this process, which a busy machine does not inflate.

Last, for each start node, the unbounded walk in pages (`Backend.walk(limit=100)`: the
first page, the next, and a page at the walk's farthest hop) and its count
(`count=True`), both walked one hop at a time with a keyset cursor (hop, edge id): a
hub's first page costs its first hops, a page the hops up to it, the count a walk of
everything, printed beside the count as one recursive CTE (`cte ms`/`cte cpu`, as it
was before) with the ratio: of CPU on SQLite (in this process), of wall time on
PostgreSQL (whose work is in its own processes).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import networkx as nx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

import metastore  # noqa: E402
from metastore.backends.sql_lineage import walk_edges  # noqa: E402
from metastore.lineage import lineage_graph  # noqa: E402
from metastore.refs import RUN, VERSION, Node  # noqa: E402

PG_ADMIN = os.environ.get("METASTORE_BENCH_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
NOW = datetime(2026, 1, 1)
MAX_CHAIN = 50
#: How many fine-tuning chains are worked on at once; each grows to a random length.
ACTIVE_CHAINS = 20
#: store.lineage() is timed only up to this many edges in the result.
GRAPH_LIMIT = 50_000
#: Edges per page in the paging part.
PAGE = 100


@dataclass
class Shape:
    """The generated store: rows to insert, and the interesting start nodes."""

    experiments: list[tuple[int, str]] = field(default_factory=list)
    assets: list[tuple[int, str, str]] = field(default_factory=list)  # id, kind, name
    runs: list[tuple] = field(default_factory=list)
    versions: list[tuple] = field(default_factory=list)
    edges: list[tuple] = field(default_factory=list)
    starts: dict[str, tuple[Node, str]] = field(default_factory=dict)


def _popular(rng: random.Random, n: int) -> int:
    """An index in range(n), low ones far more often: the first of 1,000 splits is used
    by about 3% of runs, the median one by 0.03%."""
    return int(n * rng.random() ** 2)


def generate(n_runs: int, seed: int = 7) -> Shape:
    rng = random.Random(seed)
    shape = Shape()
    counters: dict[int, int] = {}
    serial = iter(range(1, 10**9))

    def asset(kind: str, name: str) -> int:
        aid = len(shape.assets) + 1
        shape.assets.append((aid, kind, name))
        return aid

    def version(aid: int) -> str:
        counters[aid] = counters.get(aid, 0) + 1
        vid = f"V{next(serial):025d}"
        shape.versions.append((vid, aid, counters[aid], f"{uuid.uuid4().hex}{vid[-32:]}"[-64:]))
        return vid

    def edge(src_type, src_id, dst_type, dst_id, relation, role=None):
        shape.edges.append((src_type, src_id, dst_type, dst_id, relation, role))

    n_exp = max(1, n_runs // 1000)
    shape.experiments = [(i + 1, f"exp{i:03d}") for i in range(n_exp)]
    raw_asset = asset("dataset", "raw")
    raws = [version(raw_asset) for _ in range(max(2, n_runs // 1000))]
    clean_asset, train_asset, test_asset = (asset("dataset", n) for n in ("clean", "train", "test"))
    splits = []
    for _ in range(max(4, n_runs // 100)):
        raw = raws[_popular(rng, len(raws))]
        clean = version(clean_asset)
        edge(VERSION, raw, VERSION, clean, "derived_from")
        train, test = version(train_asset), version(test_asset)
        edge(VERSION, clean, VERSION, train, "derived_from", "train")
        edge(VERSION, clean, VERSION, test, "derived_from", "test")
        splits.append((clean, train, test))
    code_assets = [asset("code", f"train-{e}") for _, e in shape.experiments]
    env_asset = asset("environment", "python")
    envs = [version(env_asset) for _ in range(max(1, n_runs // 200))]
    config_asset = asset("config", "hyperparameters")
    configs = [version(config_asset) for _ in range(max(1, n_runs // 20))]
    model_assets = [asset("model", f"model-{e}") for _, e in shape.experiments]
    other_assets = [
        [asset(kind, f"{kind}-{e}") for kind in ("plot", "log", "prediction")]
        for _, e in shape.experiments
    ]
    code_versions: list[list[str]] = [[] for _ in shape.experiments]
    open_chains: list[list] = []  # [tip model id, length, target length, head model id]
    deepest: tuple[int, str, str] = (0, "", "")
    numbers = [0] * n_exp
    first_clean_uses = splits[0][0]
    for i in range(n_runs):
        e = rng.randrange(n_exp)
        numbers[e] += 1
        rid = f"R{i:025d}"
        shape.runs.append((rid, e + 1, numbers[e], "finished", NOW))
        # popular splits are used by many runs
        clean, train, test = splits[_popular(rng, len(splits))]
        edge(VERSION, train, RUN, rid, "used", "train")
        edge(VERSION, test, RUN, rid, "used", "test")
        if not code_versions[e] or rng.random() < 0.05:
            code_versions[e].append(version(code_assets[e]))
        edge(VERSION, code_versions[e][-1], RUN, rid, "used")
        edge(VERSION, rng.choice(envs), RUN, rid, "used")
        edge(VERSION, configs[_popular(rng, len(configs))], RUN, rid, "used", "config")
        model = version(model_assets[e])
        edge(RUN, rid, VERSION, model, "produced")
        for aid in other_assets[e]:
            edge(RUN, rid, VERSION, version(aid), "produced")
        if open_chains and rng.random() < 0.5:
            # fine-tune the latest model of a chain being worked on
            k = rng.randrange(len(open_chains))
            chain = open_chains[k]
            edge(VERSION, chain[0], RUN, rid, "used", "base_model")
            edge(VERSION, chain[0], VERSION, model, "derived_from", "base_model")
            chain[0], chain[1] = model, chain[1] + 1
            if chain[1] > deepest[0]:
                deepest = (chain[1], model, chain[3])
            if chain[1] >= chain[2]:
                open_chains[k] = open_chains[-1]
                open_chains.pop()
        elif len(open_chains) < ACTIVE_CHAINS:
            open_chains.append([model, 1, rng.randint(1, MAX_CHAIN), model])
    shape.starts[f"the head of that chain of {deepest[0]}"] = (Node(VERSION, deepest[2]), "downstream")
    shape.starts["the most used raw dataset"] = (Node(VERSION, raws[0]), "downstream")
    shape.starts["a popular clean dataset"] = (Node(VERSION, first_clean_uses), "downstream")
    shape.starts[f"the end of the longest chain ({deepest[0]})"] = (Node(VERSION, deepest[1]), "upstream")
    shape.starts["a late run"] = (Node(RUN, shape.runs[-1][0]), "upstream")
    shape.starts["a late run's model"] = (Node(VERSION, model), "upstream")
    return shape


# -- loading ------------------------------------------------------------------------------


def load(store, shape: Shape) -> float:
    t0 = time.perf_counter()
    with store.backend.write() as s:
        s.execute(sa.text("INSERT INTO project (id, name, created) VALUES (1, 'default', :t)"), {"t": NOW})
        s.execute(
            sa.text("INSERT INTO experiment (id, project_id, name, created, last_number) "
                    "VALUES (:id, 1, :name, :t, 0)"),
            [{"id": i, "name": n, "t": NOW} for i, n in shape.experiments],
        )
        s.execute(
            sa.text("INSERT INTO asset (id, project_id, kind, name, created) VALUES (:id, 1, :kind, :name, :t)"),
            [{"id": i, "kind": k, "name": n, "t": NOW} for i, k, n in shape.assets],
        )
    runs = [(*r,) for r in shape.runs]
    versions = [(v, a, n, d, "blob:", NOW) for v, a, n, d in shape.versions]
    edges = [(*e, NOW) for e in shape.edges]
    if store.dialect == "sqlite":
        conn = sqlite3.connect(store.backend.sa_url.database)
        with conn:
            conn.executemany("INSERT INTO run (id, experiment_id, number, status, started) VALUES (?,?,?,?,?)", runs)
            conn.executemany("INSERT INTO asset_version (id, asset_id, version, digest, uri, created) VALUES (?,?,?,?,?,?)", versions)
            conn.executemany("INSERT INTO lineage_edge (src_type, src_id, dst_type, dst_id, relation, role, created) VALUES (?,?,?,?,?,?,?)", edges)
        conn.execute("ANALYZE")
        conn.close()
    else:
        import psycopg

        url = store.backend.sa_url.set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
            with conn.cursor() as cur:
                for table, cols, rows in (
                    ("run", "id, experiment_id, number, status, started", runs),
                    ("asset_version", "id, asset_id, version, digest, uri, created", versions),
                    ("lineage_edge", "src_type, src_id, dst_type, dst_id, relation, role, created", edges),
                ):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


# -- timing -------------------------------------------------------------------------------


def median_ms(fn, repeats: int, cpu: list | None = None) -> tuple[float, object]:
    """Median wall time in ms; with `cpu`, the median CPU time of this process is
    appended to it (for SQLite, which runs in this process, that is the query's own
    cost, whatever else the machine is doing)."""
    t0 = time.perf_counter()
    result = fn()  # warm the cache once
    if time.perf_counter() - t0 > 2:  # a huge result: one timed run is enough
        repeats = 1
    times, cpu_times = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu_times.append((time.process_time() - c0) * 1000)
    if cpu is not None:
        cpu.append(statistics.median(cpu_times))
    return statistics.median(times), result


def nx_walk(graph: nx.DiGraph, start: str, direction: str, depth: int | None) -> int:
    view = graph.reverse(copy=False) if direction == "upstream" else graph
    if start not in view:
        return 0
    dist = nx.single_source_shortest_path_length(view, start, cutoff=depth)
    return sum(view.out_degree(u) for u, d in dist.items() if depth is None or d < depth)


def load_networkx(store) -> tuple[float, nx.DiGraph]:
    t0 = time.perf_counter()
    graph = nx.DiGraph()
    with store.backend.read() as s:
        result = s.execute(sa.text("SELECT src_id, dst_id FROM lineage_edge")).yield_per(50_000)
        graph.add_edges_from(result)
    return time.perf_counter() - t0, graph


def bench(store, shape: Shape, repeats: int, pages_only: bool = False) -> list[dict]:
    rows: list[dict] = []
    if not pages_only:
        rows = walks_against_networkx(store, shape, repeats)
    return rows + pages(store, shape, repeats)


def walks_against_networkx(store, shape: Shape, repeats: int) -> list[dict]:
    load_s, graph = load_networkx(store)
    print(f"  networkx: loading {graph.number_of_edges():,} edges into memory took {load_s:.1f} s")
    rows = []
    header = (f"  {'start':<36} {'dir':<10} {'depth':>5} {'edges':>8} {'sql ms':>9}"
              f" {'sql cpu':>8} {'graph ms':>9} {'nx ms':>9} {'sql/nx':>7}")
    print(header)
    for label, (node, direction) in shape.starts.items():
        for depth in (3, 10, None):
            cpu: list[float] = []
            with store.backend.read() as s:
                sql_ms, found = median_ms(
                    lambda s=s, n=node, d=direction, k=depth: walk_edges(s, [(n.type, n.id)], d, k), repeats,
                    cpu,
                )
            sql_cpu = cpu[0] if store.dialect == "sqlite" else float("nan")
            graph_ms = float("nan")
            if len(found) <= GRAPH_LIMIT:  # beyond, building Python objects dominates
                graph_ms, _ = median_ms(
                    lambda n=node, d=direction, k=depth: lineage_graph(store.backend, n, d, k),
                    repeats,
                )
            nx_ms, nx_edges = median_ms(
                lambda n=node, d=direction, k=depth: nx_walk(graph, n.id, d, k), repeats
            )
            if nx_edges != len(found):
                print(f"  !! {label}: sql found {len(found)} edges, networkx {nx_edges}")
            row = {"start": label, "direction": direction, "depth": depth, "edges": len(found),
                   "sql_ms": sql_ms, "sql_cpu_ms": sql_cpu, "graph_ms": graph_ms, "nx_ms": nx_ms}
            rows.append(row)
            print(
                f"  {label:<36} {direction:<10} {depth if depth else 'all':>5} {len(found):>8,}"
                f" {sql_ms:>9.1f} {sql_cpu:>8.1f} {graph_ms:>9.1f} {nx_ms:>9.2f}"
                f" {sql_ms / max(nx_ms, 1e-3):>7.1f}",
                flush=True,
            )
    return rows


def pages(store, shape: Shape, repeats: int) -> list[dict]:
    """Pages (the first, the next, and one at the walk's farthest hop: a keyset page
    costs the hops up to it) and the count, which walks one hop at a time
    (`LevelWalk`), beside the count as one recursive CTE (how it was counted before)."""
    from metastore.backends.sql_lineage import LevelWalk, WalkSQL, _cursor

    rows = []
    print("\n  pages and counts (store.backend.walk, unbounded): goal first page < 100 ms,"
          " count < 1 s at ~279k edges")
    print(f"  {'start':<36} {'dir':<10} {'page ms':>8} {'page cpu':>9} {'next ms':>8}"
          f" {'far ms':>8} {'edges':>8} {'nodes':>8} {'count ms':>9} {'count cpu':>10}"
          f" {'cte ms':>8} {'cte cpu':>8} {'cte/count':>9}")

    def cte_count(start, direction):
        with store.backend.read() as s:
            walk = WalkSQL(store.dialect, start, direction)
            return walk.run(s, "SELECT COUNT(*), COUNT(DISTINCT node_id) FROM walk").one()

    def hops(start, direction):
        with store.backend.read() as s:
            levels = LevelWalk(s, start, direction, None)
            levels.counts()
            return levels.hop

    for label, (node, direction) in shape.starts.items():
        start = [(node.type, node.id)]
        cpu: list[float] = []
        page_ms, page = median_ms(
            lambda s=start, d=direction: store.backend.walk(s, d, None, limit=PAGE), repeats, cpu)
        next_ms = float("nan")
        if page.next_cursor:
            next_ms, _ = median_ms(lambda s=start, d=direction, c=page.next_cursor:
                                   store.backend.walk(s, d, None, limit=PAGE, cursor=c), repeats)
        far = _cursor((hops(start, direction) - 1, 10**18))  # past all but the last hop
        far_ms, _ = median_ms(lambda s=start, d=direction, c=far:
                              store.backend.walk(s, d, None, limit=PAGE, cursor=c), repeats)
        count_ms, counted = median_ms(
            lambda s=start, d=direction: store.backend.walk(s, d, None, limit=1, count=True),
            repeats, cpu)
        cte_ms, old = median_ms(lambda s=start, d=direction: cte_count(s, d), repeats, cpu)
        assert tuple(old) == (counted.edge_count, counted.node_count), (old, counted)
        # SQLite works in this process: compare CPU; PostgreSQL in its own: wall time
        ratio = cpu[2] / cpu[1] if store.dialect == "sqlite" else cte_ms / count_ms
        print(f"  {label:<36} {direction:<10} {page_ms:>8.1f} {cpu[0]:>9.1f} {next_ms:>8.1f}"
              f" {far_ms:>8.1f} {counted.edge_count:>8,} {counted.node_count:>8,}"
              f" {count_ms:>9.1f} {cpu[1]:>10.1f} {cte_ms:>8.1f} {cpu[2]:>8.1f} {ratio:>8.1f}x",
              flush=True)
        rows.append({"start": label, "direction": direction, "depth": "page",
                     "page_ms": page_ms, "count_ms": count_ms, "edges": counted.edge_count})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000, help="runs to generate (~10 edges each)")
    ap.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sqlite-path", help="where to build the SQLite store (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    ap.add_argument("--reuse", action="store_true",
                    help="with --sqlite-path: use the store a --keep run left there (same --runs)")
    ap.add_argument("--pages-only", action="store_true",
                    help="only the paged walks and counts, not the comparison with networkx")
    args = ap.parse_args()

    t0 = time.perf_counter()
    shape = generate(args.runs)
    print(
        f"generated {len(shape.runs):,} runs, {len(shape.versions):,} asset versions, "
        f"{len(shape.edges):,} edges in {time.perf_counter() - t0:.1f} s"
    )
    for backend in args.backends.split(","):
        backend = backend.strip()
        tmp = tempfile.mkdtemp(prefix="metastore-bench-")
        drop = None
        if backend == "sqlite":
            path = Path(args.sqlite_path or Path(tmp) / "bench.db")
            reuse = args.reuse and path.exists()
            if path.exists() and not reuse:
                path.unlink()
            url = f"sqlite:///{path}"
        elif backend == "postgres":
            name = f"ms_bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

            def drop(name=name, admin=admin):
                with admin.connect() as c:
                    c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            raise SystemExit(f"unknown backend {backend!r}")
        store = metastore.open(url, blobs=Path(tmp) / "blobs")
        try:
            if backend == "sqlite" and reuse:
                print(f"\n{backend}: reusing {path}", flush=True)
            else:
                print(f"\n{backend}: loading ...", flush=True)
                print(f"  bulk load took {load(store, shape):.1f} s")
            rows = bench(store, shape, args.repeats, args.pages_only)
            depth10 = [r["sql_ms"] for r in rows if r.get("depth") == 10] or [float("nan")]
            print(
                f"  depth 10: median {statistics.median(depth10):.1f} ms, max {max(depth10):.1f} ms"
                f" over {len(depth10)} start nodes (target < 50 ms on SQLite)"
            )
            print(f"  load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
                  f" on {os.cpu_count()} cores")
        finally:
            store.close()
            if drop is not None and not args.keep:
                drop()
            elif drop is not None:
                print(f"  kept {url}")


if __name__ == "__main__":
    main()
