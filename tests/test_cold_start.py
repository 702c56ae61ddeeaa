"""Cold start: `import metastore` and the command line load only what they use.
(Not timed here: benchmarks/cold_start.py prints the times.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["fastapi", "uvicorn", "starlette", "pandas", "networkx", "numpy", "pyarrow",
         "metastore.server", "metastore.importers", "metastore.exporters", "metastore.demo"]


def _loaded(code: str, cwd: Path) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "METASTORE_CACHE_DIR": str(cwd / "cache")},
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_metastore_loads_no_server_dataframes_graphs_or_database(tmp_path):
    loaded = _loaded("import metastore", tmp_path)
    assert not loaded & {*HEAVY, "sqlalchemy", "sqlmodel", "sqlglot", "lark", "rich"}


def test_a_query_on_the_command_line_loads_no_server_dataframes_or_graphs(demo_store, tmp_path):
    cli = (
        "import sys\nfrom metastore.cli import main\n"
        "sys.argv = ['metastore', 'query', 'runs where rmse < 55 show number, r2']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded(cli, tmp_path)  # the demo store is tmp_path/.metastore
    assert "metastore.query" in loaded  # it did run the query
    assert not loaded & set(HEAVY)
    assert "sqlglot.dialects.duckdb" not in loaded
    # a SQLite store is queried on Python's sqlite3 module (backends/sqlite_reader.py):
    # neither SQLAlchemy nor the tables load, nor the migrations
    assert not loaded & {"sqlalchemy", "sqlmodel", "metastore.models", "metastore.database",
                         "alembic", "metastore.backends.sql"}
    # nor the command-line framework: a plain `metastore query` is read without the
    # typer app (metastore/cli/answer.py), and a pipe needs no rich
    assert not loaded & {"typer", "click", "pydantic", "rich", "metastore.cli.commands"}
    # asked again, the compiled query comes from the cache folder (query/cache.py):
    # neither the parser nor the compiler loads
    again = _loaded(cli, tmp_path)
    assert "metastore.query.cache" in again
    assert not again & {"lark", "sqlglot", "metastore.query.parse", "metastore.query.compile",
                        "re2", "typer", "pydantic", "rich",
                        "tempfile", "subprocess"}  # for writing the cache, for the pager
