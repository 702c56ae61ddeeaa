"""Fixtures for the importer tests: stores written by the real tools.

The MLflow stores are written once per session by MLflow's own client, in a subprocess
(tests/importers/make_mlflow.py), so MLflow's global state never touches the tests.
Tests get private copies (`mlruns`, `mlflow_db`) that they may change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DATA = HERE.parent / "data"


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def write_mlflow(uri: str, root: Path, *more: str) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_ALLOW_FILE_STORE="true", PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, str(HERE / "make_mlflow.py"), uri, str(root), *more],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"writing the MLflow store failed:\n{out.decode(errors='replace')}")


@pytest.fixture(scope="session")
def mlflow_sources(tmp_path_factory) -> dict[str, Path]:
    """Both MLflow stores, written concurrently (the SQL one spends its time migrating)."""
    if not have("mlflow"):
        pytest.skip("mlflow is not installed (pip install 'metastore[test]')")
    files = tmp_path_factory.mktemp("mlflow-files")
    sql = tmp_path_factory.mktemp("mlflow-sql")
    procs = [
        write_mlflow(f"file://{files / 'mlruns'}", files),
        write_mlflow(f"sqlite:///{sql / 'mlflow.db'}", sql),
    ]
    for p in procs:
        _wait(p)
    return {"files": files, "sql": sql}


@pytest.fixture
def mlruns(mlflow_sources, tmp_path) -> Path:
    """A private copy of the MLflow file store (its recorded absolute artifact paths
    still point at the original, which stays in place)."""
    target = tmp_path / "project"
    shutil.copytree(mlflow_sources["files"], target)
    return target / "mlruns"


@pytest.fixture
def mlflow_db(mlflow_sources, tmp_path) -> Path:
    """A private copy of the MLflow SQL store: mlflow.db plus its artifact folders."""
    target = tmp_path / "sqlproject"
    shutil.copytree(mlflow_sources["sql"], target)
    return target / "mlflow.db"


@pytest.fixture
def add_mlflow_runs():
    """add_mlflow_runs(mlruns): two more runs, written by MLflow, into a file store."""

    def add(mlruns: Path) -> None:
        _wait(write_mlflow(f"file://{mlruns}", mlruns.parent, "--more"))

    return add


@pytest.fixture
def mlflow_with_model(tmp_path) -> Path:
    """A file store holding one run that logged a scikit-learn model (MLflow 3 layout)."""
    if not have("mlflow"):
        pytest.skip("mlflow is not installed")
    _wait(write_mlflow(f"file://{tmp_path / 'mlruns'}", tmp_path, "--model"))
    return tmp_path / "mlruns"


@pytest.fixture
def mlflow_shared_dataset(tmp_path) -> Path:
    """A file store with two runs that logged the same dataset."""
    if not have("mlflow"):
        pytest.skip("mlflow is not installed")
    _wait(write_mlflow(f"file://{tmp_path / 'mlruns'}", tmp_path, "--shared"))
    return tmp_path / "mlruns"


@pytest.fixture
def data_dir() -> Path:
    return DATA


def dry_run_counts_what_import_writes(backend, path, source: str | None = None, **options):
    """Import `path` with --dry-run, then for real, into the same empty store: a dry run
    must count what the import then writes (runs, params, metric points, asset versions,
    edges, what is left out). Returns the real report."""
    from metastore.importers import import_path

    def counts(r):
        return (r.found, r.imported, r.already_present, len(r.skipped), r.params, r.metrics,
                r.assets, r.edges, r.aliases, r.left_out)

    dry = import_path(backend, path, source, dry_run=True, **options)
    assert backend.read_runs(include_deleted=True) == []  # a dry run writes nothing
    real = import_path(backend, path, source, **options)
    assert counts(dry) == counts(real)
    return real


def bundle_into_postgresql(source_store, tmp_path: Path, check) -> None:
    """Export `source_store` as a bundle, import it into a fresh PostgreSQL store, and
    assert that it holds the same: every live run (id, number, every field, param,
    metric point, tag and note), asset versions (digests) and edges; then `check(backend)`
    on the PostgreSQL store (the fidelity test's comparison with the tool, again)."""
    import metastore
    from tests.conftest import make_database

    bundle = tmp_path / "round-trip.tar.gz"
    source_store.export(bundle)
    url, drop = make_database("postgres", tmp_path)
    try:
        with metastore.open(url, blobs=tmp_path / "pg-blobs") as pg:
            src, dst = source_store.backend, pg.backend
            ids = sorted(v.id for v in src.read_runs())
            report = pg.import_(bundle)
            assert (report.found, report.imported, report.skipped) == (len(ids), len(ids), [])
            assert sorted(v.id for v in dst.read_runs(include_deleted=True)) == ids
            for x, y in zip(src.dump_runs(ids), dst.dump_runs(ids), strict=True):
                assert x.model_dump(exclude={"inputs", "outputs"}) == y.model_dump(
                    exclude={"inputs", "outputs"}), x.id
            versions = lambda be: sorted(  # noqa: E731
                (a.kind, a.name, v.version, v.digest) for a in be.list_assets()
                for _, v in be.list_versions(a.kind, a.name))
            assert versions(dst) == versions(src)
            edges = lambda be: sorted((e.src_type, e.dst_type, e.relation, e.role)  # noqa: E731
                                      for e in be.list_edges())
            assert edges(dst) == edges(src)
            check(dst)
    finally:
        drop()
