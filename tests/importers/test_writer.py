"""The one writer's check of runs imported before: by key, in bulk, never read back whole."""

from __future__ import annotations

from datetime import datetime

from metastore.importers import import_path
from metastore.records import MetricPoint, RunRecord

T = datetime(2026, 1, 1)


def test_run_keys_names_what_a_run_holds(store):
    be = store.backend
    _, data = be.put_asset("dataset", "train.csv", b"a,b\n1,2\n")
    [run_id, empty] = be.create_runs([
        RunRecord(experiment="keys", params={"lr": 0.1, "opt": "adam"},
                  metrics=[MetricPoint(key="loss", value=v, step=s, timestamp=T)
                           for s, v in ((0, 1.0), (1, 0.5), (1, 0.4), (7, 0.1))],
                  inputs=[(data.id, "train")]),
        RunRecord(experiment="keys"),
    ])
    keys = {k.id: k for k in be.run_keys([run_id, empty, "no-such-run"])}
    assert set(keys) == {run_id, empty}
    got = keys[run_id]
    assert sorted(got.params) == ["lr", "opt"]
    assert {k: sorted(v) for k, v in got.steps.items()} == {"loss": [0, 1, 7]}
    assert got.links == [("dataset", "train.csv", "used", data.id)]
    assert (keys[empty].params, keys[empty].steps, keys[empty].links) == ([], {}, [])


def test_reimport_checks_present_runs_by_key_without_reading_them_back(sqlite_store, data_dir, monkeypatch):
    """Re-importing a source whose runs are all present used to read every run back whole
    (every metric point, through dump_runs and read_runs) to find what was new."""
    path = data_dir / "csv" / "search_runs.csv"
    first = import_path(sqlite_store.backend, path)
    assert first.imported > 0
    backend = sqlite_store.backend
    calls = []
    for name in ("dump_runs", "read_runs"):
        real = getattr(backend, name)
        monkeypatch.setattr(backend, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    again = import_path(backend, path)
    assert (again.imported, again.already_present, again.enriched) == (0, first.imported, 0)
    assert calls == []
