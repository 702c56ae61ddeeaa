"""SIGTERM and SIGINT sent to a real process recording a run with `start_run`: an event
on the run, the run ended as failed/killed, and the signal's effect kept (the process
dies of it, or the handler it had before runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REMOTE

SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import metastore
    store = metastore.open(os.environ["URL"], token=os.environ.get("TOKEN") or None)
    seen = []
    if sys.argv[1] == "handler":  # the program's own SIGTERM handler: it carries on
        signal.signal(signal.SIGTERM, lambda s, f: (seen.append(s), print("handled", flush=True)))
    with store.start_run(experiment="signals", capture=False) as run:
        run.log_metric("loss", 0.5)
        print("ready", flush=True)
        if sys.argv[1] == "handler":
            while not seen:  # (not signal.pause(): the signal may come before it)
                time.sleep(0.02)
            print("carried on", flush=True)
        else:
            time.sleep(60)
""")


def _start(store, backend, tmp_path, mode: str) -> subprocess.Popen:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, URL=store.url, PYTHONPATH=os.pathsep.join(sys.path))
    if backend == REMOTE:
        env["TOKEN"] = store.backend.token
    child = subprocess.Popen([sys.executable, str(script), mode], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, "failed"), (signal.SIGINT, "killed")])
def test_signal_is_an_event_and_still_ends_the_process(store, backend, tmp_path, signum, status):
    child = _start(store, backend, tmp_path, "sleep")
    child.send_signal(signum)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signum  # died of the signal, as without metastore
    name = signal.Signals(signum).name
    [run] = store.runs("signals")
    assert run.status == status
    assert run.metrics["loss"] == 0.5  # what was buffered is kept
    assert any(n.kind == "event" and n.text == f"received {name}" for n in run.notes)
    rows = store.query(f'runs where event = "{name.lower()}" show number, status').rows
    assert rows == [{"number": run.number, "status": status}]


def test_previous_handler_still_runs(sqlite_store, tmp_path):
    child = _start(sqlite_store, "sqlite", tmp_path, "handler")
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and out.split() == ["handled", "carried", "on"]
    [run] = sqlite_store.runs("signals")
    assert run.status == "finished"  # the program's handler chose to carry on
    assert [n.text for n in run.notes if n.kind == "event"] == ["received SIGTERM"]


def test_no_handlers_outside_the_main_thread_and_none_left_behind(sqlite_store):
    import threading

    before = signal.getsignal(signal.SIGTERM)
    with sqlite_store.start_run(capture=False):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    seen = []

    def in_thread():
        with sqlite_store.start_run(capture=False):
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert seen == [before]
