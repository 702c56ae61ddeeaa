"""Exports of a lineage graph, and the `metastore lineage` / `metastore link` commands."""

from __future__ import annotations

import json
import shutil
import subprocess

import networkx as nx
import pytest
from typer.testing import CliRunner

from metastore.cli import app
from metastore.graph_formats import from_json, render, to_graphml, to_json, to_mermaid, to_text


@pytest.fixture
def store(sqlite_store, record_pipeline):
    record_pipeline(sqlite_store)
    return sqlite_store


def test_json_round_trip(store):
    g = store.lineage("model:regressor@1")
    data = json.loads(to_json(g))
    assert {n["label"] for n in data["nodes"]} == set(g)
    assert {n["id"] for n in data["nodes"]} == {d["id"] for _, d in g.nodes(data=True)}
    back = from_json(to_json(g))
    assert set(back.edges) == set(g.edges)
    assert back.nodes["exp#2"] == g.nodes["exp#2"]
    assert back.edges["exp#2", "model:regressor@1"]["relation"] == "produced"


def test_graphml_is_readable_by_networkx(store, tmp_path):
    g = store.lineage("model:regressor@1")
    path = tmp_path / "lineage.graphml"
    path.write_text(to_graphml(g))
    back = nx.read_graphml(path)
    assert set(back.edges) == set(g.edges)
    assert back.nodes["model:regressor@1"]["digest"] == g.nodes["model:regressor@1"]["digest"]
    assert back.nodes["exp#2"]["number"] == 2  # typed, not text
    assert "role" not in back.edges["exp#2", "model:regressor@1"]  # None is left out


def test_mermaid_and_dot(store):
    g = store.lineage("model:regressor@1")
    mermaid = to_mermaid(g)
    lines = mermaid.splitlines()
    assert lines[0] == "flowchart LR"
    assert sum("-->" in line for line in lines) == g.number_of_edges()
    assert '{{"model:regressor@1"}}' in mermaid and '[("dataset:clean@1")]' in mermaid
    assert '("exp#2 (train-a)")' in mermaid and '-->|"used (train)"|' in mermaid
    dot = render(g, "dot")
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert '"exp#2" -> "model:regressor@1" [label="produced"];' in dot
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot.encode(), check=True, capture_output=True)


def test_quotes_in_names_cannot_break_the_formats(sqlite_store):
    with sqlite_store.start_run(experiment="e", name='say "hi"', capture=False) as run:
        run.log_asset(b"x", kind="model", name='m"1')
    g = sqlite_store.lineage("e#1", direction="downstream")
    assert '#quot;' in to_mermaid(g) and '\\"' in render(g, "dot")
    assert nx.read_graphml  # and GraphML escapes on its own:
    assert '&quot;' in to_graphml(g) or 'm"1' in to_graphml(g)


def test_text_tree(store):
    text = to_text(store.lineage("model:regressor@1"))
    lines = text.splitlines()
    assert lines[0].startswith("model:regressor@1 ")
    assert lines[1].startswith("└── <- produced: run exp#2 train-a [finished]")
    assert any("<- used (train): dataset:clean@1" in line for line in lines)
    assert any("<- derived_from: dataset:raw@1" in line for line in lines)
    down = to_text(store.lineage("dataset:raw", direction="downstream"))
    assert "-> used: run exp#1 prep" in down
    assert "(see above)" in down  # clean is reached twice: through the run and directly
    both = to_text(store.lineage("exp#2", direction="both"))
    assert "[upstream]" in both and "[downstream]" in both


def test_cli_lineage(store, tmp_path):
    runner = CliRunner()
    url = store.url
    res = runner.invoke(app, ["lineage", "model:regressor@1", "--up", "-s", url])
    assert res.exit_code == 0, res.output
    assert "<- produced: run exp#2" in res.output
    res = runner.invoke(app, ["lineage", "dataset:raw", "--down", "--depth", "1", "-s", url])
    assert "exp#1" in res.output and "regressor" not in res.output
    for fmt, marker in (("mermaid", "flowchart LR"), ("dot", "digraph"), ("json", '"nodes"'),
                        ("graphml", "<graphml")):
        res = runner.invoke(app, ["lineage", "exp#2", "--both", "-f", fmt, "-s", url])
        assert res.exit_code == 0 and marker in res.output, (fmt, res.output)
    out = tmp_path / "g.mmd"
    res = runner.invoke(app, ["lineage", "exp#2", "-f", "mermaid", "-o", str(out), "-s", url])
    assert res.exit_code == 0 and out.read_text().startswith("flowchart LR")
    res = runner.invoke(app, ["lineage", "model:regressor@1", "--to", "dataset:raw", "-s", url])
    assert res.exit_code == 0
    assert res.output.splitlines()[0].startswith("dataset:raw@1")
    assert "model:regressor@1" in res.output.splitlines()[-1]


def test_cli_link_and_errors(store):
    runner = CliRunner()
    url = store.url
    store.put_asset("model", "base", uri="s3://zoo/base.pt", digest="cd" * 32)
    res = runner.invoke(app, ["link", "model:base@1", "model:regressor@1", "--role", "base_model",
                              "-s", url])
    assert res.exit_code == 0, res.output
    assert "linked model:base@1 -> model:regressor@1" in res.output
    assert store.lineage("model:regressor@1").has_edge("model:base@1", "model:regressor@1")
    res = runner.invoke(app, ["link", "model:regressor@1", "model:base@1", "-s", url])
    assert res.exit_code != 0 and "cycle" in str(res.exception)


def test_cli_errors_are_one_line_without_traceback(store, tmp_path, monkeypatch):
    import os
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "lineage", "model:regresor", "-s", store.url],
        capture_output=True, text=True, env=env,
    )
    assert res.returncode == 1
    assert "no model named 'regresor'" in res.stderr and "model:regressor" in res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "metastore.cli", "lineage", "exp#1", "-f", "png", "-s", store.url],
        capture_output=True, text=True, env=env,
    )
    assert res.returncode == 1 and "unknown graph format" in res.stderr


def test_cli_register_external_and_derived(store, tmp_path):
    runner = CliRunner()
    url = store.url
    res = runner.invoke(app, ["register", "model", "bert-base", "--uri", "hf://bert-base-uncased",
                              "--digest", "ef" * 32, "--size", "440000000", "-s", url])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("model:bert-base@1 efefefefefef")
    base = store.get_asset("model", "bert-base")
    assert (base.uri, base.size) == ("hf://bert-base-uncased", 440_000_000)
    local = tmp_path / "tuned.bin"
    local.write_bytes(b"tuned")
    res = runner.invoke(app, ["register", "model", "tuned", str(local), "--derived-from",
                              "model:bert-base", "--role", "base_model", "-s", url])
    assert res.exit_code == 0, res.output
    g = store.lineage("model:tuned@1")
    assert g.edges["model:bert-base@1", "model:tuned@1"] == {
        "relation": "derived_from", "role": "base_model"}
    assert store.get_asset("model", "tuned").read_bytes() == b"tuned"
    res = runner.invoke(app, ["register", "model", "x", "-s", url])
    assert res.exit_code != 0 and "either a PATH" in str(res.exception)
    res = runner.invoke(app, ["register", "model", "y", str(local), "--derived-from", "exp#1",
                              "-s", url])
    assert res.exit_code != 0 and "name a version" in str(res.exception)
