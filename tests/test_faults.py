"""Several writers at once, and processes killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import metastore

REPO = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent(
    """
    import sys
    import metastore
    url, blobs, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = metastore.open(url, blobs=blobs)
    for i in range(n):
        with store.start_run(experiment="shared", name=f"w{worker}-{i}", capture=False) as run:
            run.log_params({"worker": worker, "i": i})
            run.log_metric("loss", 1.0 / (i + 1), step=0)
            run.log_metric("loss", 0.5 / (i + 1), step=1)
    """
)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_four_processes_logging_at_once(store_url, tmp_path):
    workers, per_worker = 4, 200
    metastore.open(store_url, blobs=tmp_path / "blobs").close()  # schema exists before the race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, str(tmp_path / "blobs"), str(w), str(per_worker)],
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, errors
    with metastore.open(store_url, blobs=tmp_path / "blobs") as store:
        runs = store.runs(experiment="shared")
        assert len(runs) == workers * per_worker
        assert sorted(r.number for r in runs) == list(range(1, workers * per_worker + 1))
        assert {r.status for r in runs} == {"finished"}
        sample = runs[len(runs) // 2]
        assert set(sample.params) == {"worker", "i"}
        assert len(sample.metric_history("loss")) == 2


def test_new_store_opened_by_many_processes_at_once(tmp_path):
    """Schema creation races: every process must find a usable store."""
    url = f"sqlite:///{tmp_path / 'race.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, str(tmp_path / "b"), str(w), "3"],
                         env=_env(), stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with metastore.open(url, blobs=tmp_path / "b") as store:
        assert len(store.runs()) == 12


KILLED = textwrap.dedent(
    """
    import sys, time
    import metastore
    store = metastore.open(sys.argv[1], blobs=sys.argv[2])
    run = store.start_run(experiment="crashy", name="doomed", capture=False)
    run.__enter__()
    run.log_params({"lr": 0.1})
    run.log_metric("loss", 0.9, step=0)
    run.log_metric("loss", 0.7, step=1)
    run.flush()  # what the flusher wrote before a crash is kept (every flush_interval)
    print(run.id, flush=True)
    time.sleep(600)
    """
)


def test_killed_process_leaves_a_crashed_run_with_its_data(store_url, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, store_url, str(tmp_path / "blobs")],
        env=_env(), stdout=subprocess.PIPE, text=True,
    )
    run_id = proc.stdout.readline().strip()
    assert run_id, "the child did not start its run"
    with metastore.open(store_url, blobs=tmp_path / "blobs") as store:
        assert store.get_run(run_id).status == "running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        run = store.get_run(run_id)
        assert run.status == "crashed"
        assert run.ended is not None
        assert run.params == {"lr": 0.1}
        assert [p.value for p in run.metric_history("loss")] == [0.9, 0.7]
        assert any("stopped without ending" in n.text for n in run.notes)


def test_stale_heartbeat_from_another_host_is_crashed(sqlite_store):
    import sqlalchemy as sa

    from metastore.backends.sql import STALE_AFTER
    from metastore.models import Run, utcnow

    run = sqlite_store.start_run(experiment="e", capture=False)
    with sqlite_store.backend.write() as s:
        s.execute(
            sa.update(Run).where(Run.id == run.id).values(
                host="elsewhere", heartbeat=utcnow() - STALE_AFTER - STALE_AFTER
            )
        )
    assert sqlite_store.get_run(run.id).status == "crashed"
    rows = sqlite_store.query('runs where event = "crashed" show id').rows
    assert rows == [{"id": run.id}]  # a lost heartbeat is a queryable event
    run._stop.set()


def test_keyboard_interrupt_marks_killed(sqlite_store):
    with pytest.raises(KeyboardInterrupt):
        with sqlite_store.start_run(experiment="e", capture=False) as run:
            raise KeyboardInterrupt
    assert sqlite_store.get_run(run.id).status == "killed"


def test_unreachable_database_is_a_clear_error():
    from metastore.errors import StoreUnavailable

    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match="cannot open the database"):
        metastore.open("postgresql://nobody@127.0.0.1:1/none")
    assert time.monotonic() - t0 < 60
