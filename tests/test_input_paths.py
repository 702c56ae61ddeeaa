"""A run keeps where it read each input (relative to its working folder), so
`metastore reproduce` can put the input back where the command looks for it."""

from __future__ import annotations

import sys


def test_use_asset_keeps_the_path_read_relative_to_the_working_folder(store, tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "train.csv").write_text("x,y\n1,2\n")
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_text("a\n1\n")
    monkeypatch.chdir(work)
    with store.start_run(experiment="e", capture={"command"}) as run:
        run.use_asset("data/train.csv", kind="dataset", name="train")
        run.use_asset(elsewhere, kind="dataset", name="elsewhere", copy=False)
        run.use_asset(b"bytes", kind="config", name="cfg")
        run.log_asset(work / "data" / "train.csv", kind="dataset", name="copy")
    [view] = store.backend.read_runs(run_ids=[run.id])
    paths = {v.name: v.path for v in view.inputs}
    assert paths == {"train": "data/train.csv", "elsewhere": str(elsewhere), "cfg": None}
    assert [v.path for v in view.outputs] == ["data/train.csv"]
    detail = store.get_run(run.id).to_dict()  # what `metastore show` prints
    assert {v["name"]: v["path"] for v in detail["inputs"]} == paths
    inv = store.get_run(run.id).context["invocation"]
    assert inv["cwd"] == str(work) and inv["argv"] == sys.argv and inv["executable"] == sys.executable


def test_a_bundle_keeps_input_paths_and_reproduces_edges(sqlite_store, tmp_path, monkeypatch):
    import metastore

    (tmp_path / "train.csv").write_text("x\n1\n")
    monkeypatch.chdir(tmp_path)
    with sqlite_store.start_run(experiment="e", capture=False) as a:
        a.use_asset("train.csv", kind="dataset", name="train")
    with sqlite_store.start_run(experiment="e", capture=False) as b:
        b.use_asset("train.csv", kind="dataset", name="train")
    sqlite_store.link(a.id, b.id, "reproduces")
    sqlite_store.export(tmp_path / "bundle")
    other = metastore.open(f"sqlite:///{tmp_path / 'other.db'}")
    other.import_(tmp_path / "bundle")
    views = {v.id: v for v in other.backend.read_runs(experiment="e")}
    assert [v.path for v in views[a.id].inputs] == ["train.csv"]
    assert [(e.src_id, e.dst_id) for e in other.backend.list_edges() if e.relation == "reproduces"] \
        == [(a.id, b.id)]
    other.close()
