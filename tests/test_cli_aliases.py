"""`metastore alias set/unset/list/history`, and aliases in the other commands' refs."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.test_cli import cli, demo_dir  # noqa: F401 - the module's demo store fixture


@pytest.fixture
def folder(demo_dir, tmp_path):  # noqa: F811
    target = tmp_path / "demo"
    shutil.copytree(demo_dir, target)
    return target


def test_alias_commands(folder):
    out = cli("alias", "set", "model:regressor@6", "production", "--note", "best rmse", cwd=folder)
    assert "model:regressor@production → model:regressor@6" in out.stdout
    out = cli("alias", "set", "model:regressor@7", "production", cwd=folder)
    assert "moved from version 6" in out.stdout
    listed = json.loads(cli("alias", "list", "--format", "json", cwd=folder).stdout)
    assert [(a["ref"], a["version"]) for a in listed] == [("model:regressor@production", 7)]
    assert "production" in cli("alias", "list", "model:regressor", cwd=folder).stdout

    # the alias is a reference in every command
    up = cli("lineage", "model:regressor@production", "--up", "--format", "csv", cwd=folder)
    assert "diabetes#7,produced,,model:regressor@7" in up.stdout
    assert "dataset:diabetes@1,used" in up.stdout
    q = cli("query", "runs where produced model:regressor@production show ref", "-f", "json",
            cwd=folder)
    assert json.loads(q.stdout) == [{"ref": "diabetes#7"}]
    q = cli("query", 'models where alias = "production" show ref, alias', "-f", "json", cwd=folder)
    assert json.loads(q.stdout) == [{"ref": "model:regressor@7", "alias": "production"}]

    cli("alias", "unset", "model:regressor@production", "-m", "rolled back", cwd=folder)
    history = json.loads(cli("alias", "history", "model:regressor", "-f", "json", cwd=folder).stdout)
    assert [(h["version"], h["previous"], h["note"]) for h in history] == [
        (6, None, "best rmse"), (7, 6, None), (None, 7, "rolled back")]
    assert "(removed)" in cli("alias", "history", cwd=folder).stdout


def test_alias_errors_are_one_line(folder):
    bad = cli("alias", "set", "model:regressor@6", "latest", cwd=folder, check=False)
    assert bad.returncode == 1 and "cannot be an alias" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = cli("lineage", "model:regressor@production", cwd=folder, check=False)
    assert missing.returncode == 1 and "no version or alias 'production'" in missing.stderr
    assert "metastore alias set" in missing.stderr


def test_fields_command(folder):
    out = cli("fields", "--kind", "metric", cwd=folder).stdout
    assert "rmse" in out and "metric" in out and "param" not in out
    import json as _json

    rows = _json.loads(cli("fields", "-f", "json", cwd=folder).stdout)
    kinds = {r["kind"] for r in rows}
    assert {"param", "metric", "attribute", "history suffix", "lineage condition"} <= kinds
    assert next(r for r in rows if r["name"] == "rmse")["runs"] == 12
