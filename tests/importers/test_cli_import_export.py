"""`metastore import` and `metastore export` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from metastore.cli import app

DATA = Path(__file__).parent.parent / "data"
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_import_detects_and_summarises(tmp_path):
    url = f"sqlite:///{tmp_path / 's' / 'm.db'}"
    result = cli("import", str(DATA / "csv" / "spreadsheet.csv"), "--store", url, "--metrics", "acc,loss")
    assert result.exit_code == 0, result.output
    assert "csv: 3 runs found, 3 imported, 0 already present, 0 skipped" in result.output
    again = cli("import", "csv", str(DATA / "csv" / "spreadsheet.csv"), "--store", url, "--format", "json")
    report = json.loads(again.output)
    assert (report["found"], report["imported"], report["already_present"]) == (3, 0, 3)


def test_skips_exit_2_and_are_listed(tmp_path):
    url = f"sqlite:///{tmp_path / 's' / 'm.db'}"
    result = cli("import", "mlflow", str(DATA / "mlflow" / "broken" / "mlruns"), "--store", url)
    assert result.exit_code == 2
    assert "8 runs found, 4 imported" in result.output
    assert "4 runs skipped" in result.output and "empty or not a mapping" in result.output


def test_dry_run_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's' / 'm.db'}"
    result = cli("import", str(DATA / "csv" / "broken.csv"), "--store", url, "--dry-run")
    assert result.exit_code == 2 and "dry run" in result.output
    listed = cli("runs", "--store", url, "--format", "json")
    assert json.loads(listed.output) == []


def test_dry_run_without_a_store_creates_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METASTORE_URL", raising=False)
    monkeypatch.delenv("METASTORE_BLOBS", raising=False)
    csv = str(DATA / "csv" / "spreadsheet.csv")
    result = cli("import", csv, "--metrics", "acc,loss", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "3 runs found, 3 imported" in result.output and "dry run" in result.output
    named = tmp_path / "named"
    result = cli("import", csv, "--metrics", "acc,loss", "--dry-run", "--store", str(named))
    assert result.exit_code == 0, result.output
    db = tmp_path / "s" / "m.db"
    result = cli("import", csv, "--metrics", "acc,loss", "--dry-run", "--store", f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_unknown_source_is_an_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    proc = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "import", "nosuch", str(tmp_path),
         "--store", f"sqlite:///{tmp_path / 'm.db'}"],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 1
    assert "unknown import source 'nosuch'" in proc.stderr and "Traceback" not in proc.stderr


def test_export_bundle_then_import_elsewhere(demo_store_path, tmp_path):
    src = f"sqlite:///{demo_store_path / 'metastore.db'}"
    out = tmp_path / "diabetes.tar.gz"
    result = cli("export", str(out), "--store", src, "--experiment", "diabetes")
    assert result.exit_code == 0, result.output
    assert "12 runs" in result.output and out.is_file()
    dst = f"sqlite:///{tmp_path / 'dst' / 'm.db'}"
    result = cli("import", str(out), "--store", dst)
    assert result.exit_code == 0 and "bundle: 12 runs found, 12 imported" in result.output
    for name, fmt in (("runs.csv", None), ("runs.parquet", None), ("table.out", "csv")):
        args = ["export", str(tmp_path / name), "--store", src] + (["--format", fmt] if fmt else [])
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).stat().st_size > 0
