"""Long histories: a metric's history in columns, downsampled keeping extremes."""

from __future__ import annotations

import numpy as np
import pytest

from metastore.errors import InvalidValue
from metastore.records import downsample


def test_downsample_keeps_ends_and_extremes_in_step_order():
    steps = list(range(10_000))
    values = [float(np.sin(s / 300)) for s in steps]
    values[4321], values[777] = 50.0, -50.0  # a spike and a dip
    got_steps, got_values = downsample(steps, values, 100)
    assert len(got_steps) <= 100 and got_steps == sorted(got_steps)
    assert got_steps[0] == 0 and got_steps[-1] == 9_999
    assert 4321 in got_steps and 777 in got_steps
    assert max(got_values) == 50.0 and min(got_values) == -50.0
    assert all(values[s] == v for s, v in zip(got_steps, got_values, strict=True))
    assert downsample(steps[:50], values[:50], 100) == (steps[:50], values[:50])
    with pytest.raises(InvalidValue):
        downsample(steps, values, 3)


def test_metric_series_columns_and_downsampling(store):
    with store.start_run(experiment="e", capture=False) as run:
        run.log_series("loss", [1.0 / (s + 1) for s in range(5_000)])
        run.log_metric("loss", 9.0, step=2_500)  # a second point at one step
        series = run.metric_series("loss")  # the running run flushes first
        assert series.count == 5_001 and len(series) == 5_001
    assert series.steps.dtype == np.int64 and series.values.dtype == np.float64
    assert series.steps[0] == 0 and series.values[0] == 1.0
    small = store.get_run(run.id).metric_series("loss", max_points=200)
    assert small.count == 5_001 and len(small) <= 200
    assert 9.0 in small.values and small.steps[-1] == 4_999
    assert np.all(np.diff(small.steps) >= 0)
    assert len(store.get_run(run.id).metric_series("absent")) == 0


def test_the_run_page_draws_a_downsampled_history(tmp_path):
    from fastapi.testclient import TestClient

    import metastore
    from metastore.server import create_app

    store = metastore.open(f"sqlite:///{tmp_path / 's' / 'metastore.db'}")
    with store.start_run(experiment="e", capture=False) as run:
        run.log_series("loss", np.linspace(1.0, 0.0, 100_000))
    with TestClient(create_app(store, auth=False)) as client:
        page = client.get(f"/runs/{run.id}")
    assert page.status_code == 200
    assert len(page.content) < 500_000
    store.close()


def test_series_checks_arrays_and_takes_numpy_numbers(store):
    with store.start_run(experiment="e", capture=False) as run:
        with pytest.raises(InvalidValue, match="finite"):
            run.log_series("loss", np.array([1.0, np.nan]))
        with pytest.raises(InvalidValue, match="number"):
            run.log_series("loss", np.array([True, False]))
        run.log_series("loss", np.arange(3, dtype=np.int32))  # whole numbers are values too
        run.log_metric("loss", np.float32(0.5), step=np.int64(7))
        run.log_metric("loss", 0.25, step=7)  # a second point at one step comes after
        series = run.metric_series("loss")
    assert series.steps.tolist() == [0, 1, 2, 7, 7]
    assert series.values.tolist() == [0.0, 1.0, 2.0, 0.5, 0.25]
    assert store.get_run(run.id).metric_summary("loss").count == 5
