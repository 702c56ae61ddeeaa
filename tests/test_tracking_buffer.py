"""Buffered recording: params and metrics wait in the run and are written by the
flusher, flush(), reads of the run, the end of the run and the interpreter's exit;
errors a buffered write meets reach the user."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from metastore.errors import Conflict, InvalidValue

LONG = 3600.0  # a flush interval no test waits for


def _until(check, seconds: float = 30.0):
    """Poll until check() is true (a background thread's work), failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("the background flusher never wrote")
        time.sleep(0.02)


def test_values_wait_for_flush_and_reads_flush_first(store):
    with store.start_run(experiment="e", capture=False, flush_interval=LONG) as run:
        run.log_param("lr", 0.1)
        run.log_metric("loss", 1.0)
        run.log_metrics({"loss": 0.5, "acc": 0.7})
        other = store.get_run(run.id)
        assert other.params == {} and other.metrics == {}  # still in the buffer
        assert run.metrics == {"loss": 0.5, "acc": 0.7}  # the run's own read flushes
        assert [m.step for m in run.metric_history("loss")] == [0, 1]
        assert store.get_run(run.id).params == {"lr": 0.1}
        run.log_metric("loss", 0.25)
        run.flush()
        assert store.get_run(run.id).metrics["loss"] == 0.25
        run.log_metric("late", 3.0)
    done = store.get_run(run.id)
    assert done.status == "finished" and done.metrics["late"] == 3.0
    assert {"system.wall_time", "system.cpu_time"} <= set(done.metrics)


def test_background_flusher_writes_and_unbuffered_writes_at_once(store):
    with store.start_run(experiment="e", capture=False, flush_interval=0.01) as run:
        run.log_metric("x", 1.0)
        _until(lambda: "x" in store.get_run(run.id).metrics)
    with store.start_run(experiment="e", capture=False, flush_interval=0) as run:
        run.log_param("p", "a")
        run.log_metric("y", 2.0)
        assert store.get_run(run.id).params == {"p": "a"}
        assert store.get_run(run.id).metrics["y"] == 2.0


def test_log_series(store):
    with store.start_run(experiment="e", capture=False, flush_interval=LONG) as run:
        run.log_series("loss", np.linspace(1.0, 0.1, 50), steps=np.arange(0, 100, 2))
        run.log_series("acc", [0.1, 0.2, 0.3])
        run.log_series("acc", (0.4, 0.5))  # follows the metric's last step
        with pytest.raises(InvalidValue, match="as many"):
            run.log_series("bad", [1.0, 2.0], steps=[1])
        with pytest.raises(InvalidValue):
            run.log_series("bad", [1.0, float("nan")])
        with pytest.raises(InvalidValue, match="whole number"):
            run.log_series("bad", [1.0], steps=[1.5])
    history = store.get_run(run.id).metric_history("loss")
    assert [m.step for m in history] == list(range(0, 100, 2))
    assert history[-1].value == pytest.approx(0.1)
    assert [(m.step, m.value) for m in store.get_run(run.id).metric_history("acc")] == [
        (0, 0.1), (1, 0.2), (2, 0.3), (3, 0.4), (4, 0.5)
    ]
    assert "bad" not in store.get_run(run.id).metrics


def test_bad_values_raise_at_the_call(store):
    with store.start_run(experiment="e", capture=False, flush_interval=LONG) as run:
        with pytest.raises(InvalidValue):
            run.log_metric("x", float("nan"))
        with pytest.raises(InvalidValue):
            run.log_metric("x", 1.0, step="three")
        with pytest.raises(InvalidValue):
            run.log_metrics({"ok": 1.0, "": 2.0})
        run.log_param("lr", 0.1)
        with pytest.raises(Conflict):  # the buffered value is known to the run
            run.log_param("lr", 0.2)
    got = store.get_run(run.id)
    assert got.params == {"lr": 0.1} and "x" not in got.metrics and "ok" not in got.metrics


def test_a_write_error_reaches_the_next_call_flush_and_end(store):
    with store.start_run(experiment="e", capture=False, flush_interval=LONG) as run:
        store.backend.log_params(run.id, {"lr": 0.5})  # another writer
        run.log_param("lr", 0.1)
        run.log_metric("x", 1.0)
        with pytest.raises(Conflict):
            run.flush()
        run.flush()  # reported once; the metrics of that flush were written
        assert store.get_run(run.id).metrics["x"] == 1.0
        run.log_param("lr", 0.5)  # the refused value is forgotten: the store decides
    assert store.get_run(run.id).params == {"lr": 0.5}

    run = store.start_run(experiment="e", capture=False, flush_interval=LONG)
    store.backend.log_params(run.id, {"lr": 0.5})
    run.log_param("lr", 0.1)
    with pytest.raises(Conflict):
        run.end()
    assert store.get_run(run.id).status == "finished"  # ended all the same


def test_a_background_error_is_raised_by_the_next_call(store):
    with pytest.raises(Conflict):
        with store.start_run(experiment="e", capture=False, flush_interval=0.01) as run:
            store.backend.log_params(run.id, {"lr": 0.5})
            run.log_param("lr", 0.1)
            run.log_metric("x", 1.0)  # written by the same flush, after the params
            _until(lambda: "x" in store.get_run(run.id).metrics)
            run.log_metric("y", 2.0)
    assert store.get_run(run.id).status == "failed"


def test_a_flush_error_at_a_failing_exit_is_kept_as_an_event(store):
    with pytest.raises(RuntimeError):
        with store.start_run(experiment="e", capture=False, flush_interval=LONG) as run:
            store.backend.log_params(run.id, {"lr": 0.5})
            run.log_param("lr", 0.1)
            raise RuntimeError("boom")
    got = store.get_run(run.id)
    assert got.status == "failed"
    assert any("values not written" in n.text and "Conflict" in n.text for n in got.notes)


def test_a_crash_loses_only_what_was_not_flushed_and_exit_flushes(tmp_path):
    url = f"sqlite:///{tmp_path / 'store' / 'metastore.db'}"
    script = textwrap.dedent(f"""
        import os, metastore
        store = metastore.open({url!r})
        run = store.start_run(experiment="e", capture=False, flush_interval=3600)
        run.log_metric("kept", 1.0)
        run.flush()
        run.log_metric("lost", 2.0)
        if os.environ["HOW"] == "kill":
            os._exit(0)
        # a normal exit without ending the run: atexit writes what is pending
    """)
    import os

    for how in ("kill", "exit"):
        subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "HOW": how})
    import metastore

    store = metastore.open(url)
    killed, exited = (store.get_run(n, experiment="e") for n in (1, 2))
    assert set(killed.metrics) == {"kept"}
    assert set(exited.metrics) == {"kept", "lost"}
    store.close()
