"""A training job never dies because the tracking server did: idempotency keys on the
server, retries and the spool in the client, `metastore sync` (docs/security.md)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import metastore
from metastore.backends.http import PROBE_EVERY
from metastore.backends.spool import SUFFIX, Entry, SpoolFile
from metastore.errors import InvalidValue, StoreUnavailable
from metastore.server import background_server, create_token

REPO = Path(__file__).resolve().parents[2]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **extra}


class ServerProcess:
    """`metastore server` in a subprocess over one SQLite store: killed with -9 and
    started again on the same port and database."""

    def __init__(self, tmp_path: Path):
        self.db = f"sqlite:///{tmp_path / 'server' / 'metastore.db'}"
        self.blobs = tmp_path / "server-blobs"
        with metastore.open(self.db, blobs=self.blobs) as local:
            self.token = create_token(local, "trainer")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - closed in stop()

    def start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metastore.cli", "server", "--store", self.db,
             "--port", str(self.port), "--blobs", str(self.blobs), "--no-ui"],
            env=_env(), stdout=self.log, stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        for _ in range(600):  # bounded: at most about two minutes on a busy machine
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "the server exited"
            time.sleep(0.2)
        raise AssertionError("the server did not come up")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.log.close()

    def local(self):
        return metastore.open(self.db, blobs=self.blobs)


@pytest.fixture
def server(tmp_path):
    s = ServerProcess(tmp_path)
    s.start()
    yield s
    s.stop()


TRAINING = textwrap.dedent(
    """
    import sys, time
    import metastore
    url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = metastore.open(url, token=token)
    with store.start_run(experiment="outage", capture=False, flush_interval=0.05) as run:
        print(run.id, flush=True)
        for i in range(n):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
            time.sleep(0.006)
            if i % 100 == 0:
                print(i, flush=True)
    print("done", flush=True)
    """
)


def test_training_survives_three_kill_9_restarts_of_its_server(server, tmp_path):
    """The issue's test: 2,000 points logged while the server is killed with -9 three
    times and restarted on the same port and database; every point stored once."""
    script = subprocess.Popen(
        [sys.executable, "-c", TRAINING, server.url, server.token, "2000"],
        env=_env(METASTORE_SPOOL=str(tmp_path / "spool")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        run_id = script.stdout.readline().strip()
        assert run_id, script.stderr.read()
        kills = [200, 700, 1200]
        for line in script.stdout:
            if line.strip() == "done" or not kills:
                break
            if int(line) >= kills[0]:
                kills.pop(0)
                server.kill()
                server.start(wait=False)  # the client retries until it answers
        rest, errors = script.communicate(timeout=300)
    finally:
        if script.poll() is None:
            script.kill()
    assert not kills, "the script ended before the server was killed three times"
    assert script.returncode == 0, errors
    assert "Traceback" not in errors, errors
    assert "done" in rest or line.strip() == "done"
    server.wait_healthy()
    with server.local() as store:
        run = store.get_run(run_id)
        assert run.status == "finished"
        history = run.metric_history("loss")
        assert len(history) == 2000
        assert sorted(p.step for p in history) == list(range(2000))
    assert not list((tmp_path / "spool").glob(f"*{SUFFIX}")), "nothing may stay spooled"


def test_a_repeated_idempotency_key_is_applied_once(live):
    """The same request sent twice (a client that lost the first answer) writes once
    and gets the first answer again, on the server's own database."""
    with live.remote() as remote:
        run = remote.start_run(experiment="keys", capture=False)
        run.end()
    with live.client() as c:
        metrics = {"points": [{"key": "loss", "value": 0.5, "step": 1}]}
        for _ in range(3):
            r = c.post(f"/api/runs/{run.id}/metrics", json=metrics,
                       headers={"Idempotency-Key": "metrics-0001"})
            assert r.status_code == 200, r.text
        answers = [
            c.post(f"/api/runs/{run.id}/notes", json={"text": "seen once"},
                   headers={"Idempotency-Key": "note-0001"}).json()
            for _ in range(2)
        ]
        assert answers[0] == answers[1] and answers[0]["id"] is not None
        reused = c.put(f"/api/runs/{run.id}/status", json={"status": "failed"},
                       headers={"Idempotency-Key": "note-0001"})
        assert reused.status_code == 409 and reused.json()["error"]["type"] == "Conflict"
        bad = c.post(f"/api/runs/{run.id}/metrics", json=metrics,
                     headers={"Idempotency-Key": "../../x"})
        assert bad.status_code == 400
    assert len(live.store.get_run(run.id).metric_history("loss")) == 1
    assert [n.text for n in live.store.get_run(run.id).notes].count("seen once") == 1
    assert live.store.get_run(run.id).status == "finished"


def test_a_run_s_last_write_is_one_request_applied_once(live):
    """A run's flush and end travel as one request (params, metrics, status): sent
    three times with one key, all of it is applied once; refused (a param another
    writer set), none of it is, and the same key then applies a corrected batch."""
    with live.remote() as remote:
        run = remote.start_run(experiment="keys", capture=False)
    batch = {"params": {"lr": 0.1}, "metrics": [{"key": "loss", "value": 0.5, "step": 1}],
             "status": "finished"}
    with live.client() as c:
        for _ in range(3):
            r = c.post(f"/api/runs/{run.id}/batch", json=batch,
                       headers={"Idempotency-Key": "batch-0001"})
            assert r.status_code == 200, r.text
    got = live.store.get_run(run.id)
    assert got.params == {"lr": 0.1} and got.status == "finished"
    assert len(got.metric_history("loss")) == 1

    with live.remote() as remote:
        other = remote.start_run(experiment="keys", capture=False)
    live.store.backend.log_params(other.id, {"lr": 0.5})
    with live.client() as c:
        refused = c.post(f"/api/runs/{other.id}/batch", json=batch,
                         headers={"Idempotency-Key": "batch-0002"})
        assert refused.status_code == 409 and refused.json()["error"]["type"] == "Conflict"
        got = live.store.get_run(other.id)
        assert got.status == "running" and "loss" not in got.metrics
        fixed = {**batch, "params": {"lr": 0.5}}
        assert c.post(f"/api/runs/{other.id}/batch", json=fixed,
                      headers={"Idempotency-Key": "batch-0002"}).status_code == 200
    got = live.store.get_run(other.id)
    assert got.status == "finished" and len(got.metric_history("loss")) == 1


def test_apply_once_records_the_key_with_the_write(db_store):
    """On every database: a key is applied once, and a write that fails keeps no key
    (so sending it again applies it)."""
    from metastore.errors import Conflict
    from metastore.records import MetricPoint

    backend = db_store.backend
    run = db_store.start_run(experiment="keys", capture=False)
    run.end()
    point = [MetricPoint(key="loss", value=1.0, step=0)]
    for _ in range(2):
        assert backend.apply_once("k-metrics-1", "log_metrics",
                                  lambda: backend.log_metrics(run.id, point)) is None
    assert len(db_store.get_run(run.id).metric_history("loss")) == 1
    backend.log_params(run.id, {"lr": 0.1})
    with pytest.raises(Conflict):
        backend.apply_once("k-params-1", "log_params",
                           lambda: backend.log_params(run.id, {"lr": 0.2}))
    assert backend.apply_once("k-params-1", "log_params",
                              lambda: backend.log_params(run.id, {"momentum": 0.9})) is None
    assert db_store.get_run(run.id).params == {"lr": 0.1, "momentum": 0.9}


def test_a_late_end_resolves_the_crash_mark(db_store):
    """On every database: a run marked crashed whose end arrives later gets its real
    status; the crash note stays, a note resolves it, and the tag event=crashed goes. A
    crash that is not the store's mark (a status set by hand) is left as it is."""
    from metastore.records import RunRecord

    backend = db_store.backend
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = RunRecord(experiment="late", status="running", host=socket.gethostname(),
                       pid=gone.pid)
    run = backend.create_run(record)
    assert backend.reconcile_crashed() == 1
    assert db_store.get_run(run.id).tags["event"] == "crashed"
    backend.set_run_status(run.id, "failed")
    late = db_store.get_run(run.id)
    assert late.status == "failed" and "event" not in late.tags
    texts = [n.text for n in late.notes]
    assert len(texts) == 2 and "stopped without ending the run" in texts[0]
    assert "(failed) arrived after it was marked crashed" in texts[1]
    backend.set_run_status(run.id, "finished")  # nothing more to resolve
    assert len(db_store.get_run(run.id).notes) == 2

    other = backend.create_run(RunRecord(experiment="late", status="crashed"))
    backend.set_tags("run", other.id, {"event": "oom"})
    backend.set_run_status(other.id, "finished")
    assert db_store.get_run(other.id).tags["event"] == "oom"
    assert db_store.get_run(other.id).notes == []


SPOOLING = textwrap.dedent(
    """
    import sys
    import metastore
    url, token = sys.argv[1], sys.argv[2]
    capture = sys.argv[3].split(",") if len(sys.argv) > 3 else False
    store = metastore.open(url, token=token, retry_for=1)
    with store.start_run(experiment="offline", capture=capture) as run:
        run.log_params({"lr": 0.1})
        for i in range(10):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.flush()
        print(run.id, flush=True)
        sys.stdin.readline()  # the server is killed now
        for i in range(10, 25):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.set_tag("phase", "offline")
        run.note("written while the server was away")
    print("done", flush=True)
    """
)


def test_writes_wait_in_the_spool_for_metastore_sync(server, tmp_path):
    """The server stays away longer than retry_for: the script ends normally (one
    warning), its writes and its end wait in the spool, and `metastore sync` sends them
    once the server is back; a second sync has nothing to send."""
    spool = tmp_path / "spool"
    script = subprocess.Popen(
        [sys.executable, "-c", SPOOLING, server.url, server.token],
        env=_env(METASTORE_SPOOL=str(spool)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run_id = script.stdout.readline().strip()
    assert run_id, script.stderr.read()
    server.kill()
    out, errors = script.communicate("go\n", timeout=120)
    assert script.returncode == 0 and "done" in out, errors
    assert "Traceback" not in errors, errors
    assert errors.count("is unreachable") == 1, errors
    assert "metastore sync" in errors, errors
    [kept] = list(spool.glob(f"*{SUFFIX}"))
    routes = [json.loads(line)["route"] for line in kept.read_text().splitlines()]
    # the flushes carry params and metrics, the last one the run's end too
    assert set(routes) == {"log_batch", "set_tags", "add_note"}, routes
    last = json.loads(kept.read_text().splitlines()[-1])
    assert last["route"] == "log_batch" and json.loads(last["body"])["status"] == "finished"

    server.start()
    with server.local() as store:
        # its end waits in the spool: until then the run looks crashed (process gone)
        assert store.get_run(run_id).status != "finished"
    env = _env(METASTORE_SPOOL=str(spool), METASTORE_TOKEN=server.token)
    sync = [sys.executable, "-m", "metastore.cli", "sync"]
    first = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"{len(routes)} sent" in first.stdout and "0 pending" in first.stdout, first.stdout
    assert "log_batch" in first.stdout
    with server.local() as store:
        run = store.get_run(run_id)
        assert run.status == "finished"
        assert [p.step for p in run.metric_history("loss")] == list(range(25))
        assert run.tags["phase"] == "offline"
        assert [n.text for n in run.notes].count("written while the server was away") == 1
    assert not list(spool.iterdir())
    again = subprocess.run(sync, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing" in again.stdout.lower(), again.stdout


def _spool_a_run(server: ServerProcess, spool: Path) -> str:
    """A script records a run (with its host and pid, so the server can tell it has
    exited), its server is killed midway, and it ends with the rest of the run and its
    end in the spool: its run id."""
    script = subprocess.Popen(
        [sys.executable, "-c", SPOOLING, server.url, server.token, "system"],
        env=_env(METASTORE_SPOOL=str(spool)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run_id = script.stdout.readline().strip()
    assert run_id, script.stderr.read()
    server.kill()
    out, errors = script.communicate("go\n", timeout=120)
    assert script.returncode == 0 and "done" in out, errors
    assert len(list(spool.glob(f"*{SUFFIX}"))) == 1
    return run_id


def _complete(store, run_id: str) -> None:
    """The run as the script recorded it, its end included, every value once."""
    run = store.get_run(run_id)
    assert run.status == "finished"
    assert [p.step for p in run.metric_history("loss")] == list(range(25))
    assert run.tags["phase"] == "offline"
    assert [n.text for n in run.notes].count("written while the server was away") == 1


def test_the_next_client_of_the_server_sends_what_a_gone_process_kept(server, tmp_path):
    """A script that ended during an outage left its writes in the spool: the next
    process that opens the same server sends them (no `metastore sync`), and the run,
    marked crashed meanwhile, ends with its real status and a note that resolves the
    crash."""
    spool = tmp_path / "spool"
    run_id = _spool_a_run(server, spool)
    server.start()
    with server.local() as store:
        crashed = store.get_run(run_id)  # its process is gone, its end still spooled
        assert crashed.status == "crashed" and crashed.tags["event"] == "crashed"
    with metastore.open(server.url, token=server.token, spool=spool):
        pass  # opening picks the file up; closing waits until it is sent
    with server.local() as store:
        _complete(store, run_id)
        run = store.get_run(run_id)
        assert "event" not in run.tags  # `runs where event = "crashed"` no longer finds it
        events = [n.text for n in run.notes if n.kind == "event"]
        assert any("stopped without ending the run" in t for t in events), events
        assert any("(finished) arrived after it was marked crashed" in t for t in events)
    assert not list(spool.iterdir())


OFFLINE_START = textwrap.dedent(
    """
    import sys
    import metastore
    url, token = sys.argv[1], sys.argv[2]
    store = metastore.open(url, token=token, retry_for=1)
    print("open", flush=True)
    sys.stdin.readline()  # the server is killed now
    with store.start_run(experiment="started-away", capture=["system", "packages"]) as run:
        run.log_params({"lr": 0.1})
        for i in range(5):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        print(run.id, flush=True)
    print("done", flush=True)
    """
)


def test_a_run_started_while_the_server_is_away_waits_in_the_spool(server, tmp_path):
    """start_run past retry_for: the run gets the id the client gave it and the script
    goes on; its creation, values and end wait in the spool, and the run is created as
    it was when they are sent. The environment asset (an upload) is not recorded, and
    an event note says so."""
    spool = tmp_path / "spool"
    script = subprocess.Popen(
        [sys.executable, "-c", OFFLINE_START, server.url, server.token],
        env=_env(METASTORE_SPOOL=str(spool)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert script.stdout.readline().strip() == "open", script.stderr.read()
    server.kill()
    out, errors = script.communicate("go\n", timeout=300)
    assert script.returncode == 0 and "done" in out, errors
    assert "Traceback" not in errors, errors
    run_id = out.split()[0]
    server.start()
    with metastore.open(server.url, token=server.token, spool=spool):
        pass  # sends what the script kept
    with server.local() as store:
        run = store.get_run(run_id)
        assert (run.experiment, run.status, run.number) == ("started-away", "finished", 1)
        assert run.params == {"lr": 0.1}
        assert [p.step for p in run.metric_history("loss")] == list(range(5))
        assert any("environment (python packages) not recorded" in n.text for n in run.notes)
        assert run.started < run.ended
    assert not list(spool.iterdir())


def test_a_spool_file_another_process_is_sending_is_left_to_it(server, tmp_path):
    """Two processes never send one file at once: a file locked by its sender is
    skipped, and sent by the next client once the lock is gone."""
    import fcntl

    spool = tmp_path / "spool"
    run_id = _spool_a_run(server, spool)
    server.start()
    [kept] = spool.glob(f"*{SUFFIX}")
    fd = os.open(kept, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as `deliver` in another process holds it
        with metastore.open(server.url, token=server.token, spool=spool):
            pass
        assert kept.exists()
        with server.local() as store:
            assert store.get_run(run_id).status != "finished"
    finally:
        os.close(fd)
    with metastore.open(server.url, token=server.token, spool=spool):
        pass
    with server.local() as store:
        _complete(store, run_id)
    assert not kept.exists()


def test_only_spool_files_of_gone_processes_on_this_host_are_orphans(tmp_path):
    import psutil

    from metastore.backends.spool import orphaned

    me = f"{os.getpid()}.{int(psutil.Process().create_time())}"
    here = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        f"{here}-{me}-0a1b2c3d": False,  # this process: alive
        f"{here}-{os.getpid()}-0a1b2c3d": False,  # the older name, a live pid
        f"{here}-{os.getpid()}.12345-0a1b2c3d": True,  # the pid is another process's now
        f"{here}-{dead.pid}.{int(time.time())}-0a1b2c3d": True,  # gone
        f"{here}-{dead.pid}-0a1b2c3d": True,
        f"elsewhere.example-{dead.pid}.1-0a1b2c3d": False,  # another host: cannot tell
        "not-a-spool-name": False,
    }
    for name, expected in names.items():
        assert orphaned(tmp_path / f"{name}{SUFFIX}") is expected, name
    assert not orphaned(SpoolFile(tmp_path).path)


def test_a_process_whose_start_time_cannot_be_read_names_its_spool_by_pid(tmp_path,
                                                                          monkeypatch):
    """Without its own start time (psutil refused), a process names its file by pid
    alone: another process, which may read the start time, must not take it for the
    file of a gone process while that pid lives."""
    from metastore.backends import spool
    from metastore.backends.spool import orphaned

    monkeypatch.setattr(spool, "_started", lambda pid: -1)
    kept = SpoolFile(tmp_path)
    monkeypatch.undo()
    assert f"-{os.getpid()}-" in kept.path.name
    assert not orphaned(kept.path)


def test_an_open_store_leaves_a_live_process_spool_alone(live, tmp_path):
    """A spool file whose process is still running (here: this one) is its own to
    send; opening the server beside it sends nothing."""
    with live.remote() as remote, remote.start_run(experiment="spool", capture=False) as run:
        pass
    folder = tmp_path / "spool"
    kept = SpoolFile(folder)
    kept.append(_entry(live.url, run.id, 0))
    with metastore.open(live.url, token=live.token, spool=folder):
        pass
    assert kept.path.exists()
    assert live.store.get_run(run.id).metric_history("loss") == []


def _entry(url: str, run_id: str, step: int) -> Entry:
    body = json.dumps({"points": [{"key": "loss", "value": float(step), "step": step}]})
    return Entry(key=f"spooled-{step:04d}", url=url, route="log_metrics", method="POST",
                 path=f"/api/runs/{run_id}/metrics", body=body,
                 time="2026-12-01T12:00:00+00:00")


def test_a_corrupt_spool_line_is_reported_and_the_others_sent(live, tmp_path):
    from metastore.backends.http import sync

    with live.remote() as remote, remote.start_run(experiment="spool", capture=False) as run:
        pass
    folder = tmp_path / "spool"
    kept = SpoolFile(folder)
    kept.append(_entry(live.url, run.id, 0))
    kept.append(_entry(live.url, run.id, 1))
    with open(kept.path, "ab") as f:
        f.write(b'{"key": "torn-write", "url": "http://\xff\n')  # a crash mid-append
        f.write(b'[1, 2, 3]\n')
    kept.append(_entry(live.url, run.id, 2))
    kept.append(_entry(live.url, run.id, 1))  # the same key twice: one entry

    done = sync(spool=folder, token=live.token)
    assert [e.key for e in done.sent] == ["spooled-0000", "spooled-0001", "spooled-0002"]
    assert not done.pending and not done.refused
    assert len(done.problems) == 2
    assert "line 3 of" in done.problems[0] and "not a spool entry" in done.problems[0]
    assert "line 4 of" in done.problems[1]
    assert [p.step for p in live.store.get_run(run.id).metric_history("loss")] == [0, 1, 2]
    # the file is kept for a person to read, and never sent again
    assert [p.name for p in folder.iterdir()] == [kept.path.name + ".corrupt"]
    assert not sync(spool=folder, token=live.token).sent


def test_a_refused_spooled_write_is_reported_and_not_retried(live, tmp_path):
    from metastore.backends.http import sync

    folder = tmp_path / "spool"
    kept = SpoolFile(folder)
    kept.append(_entry(live.url, "NO-SUCH-RUN", 0))
    done = sync(spool=folder, token="not-a-token")
    assert not done.sent and len(done.pending) == 1 and "token" in done.stopped[0]
    done = sync(spool=folder, token=live.token)
    assert len(done.refused) == 1 and not done.pending
    assert not list(folder.iterdir())


def test_a_read_is_retried_for_retry_for_then_raises(tmp_path):
    """Reads are retried for retry_for, then raise; they are never spooled."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="cannot reach the metastore server"):
        metastore.open(f"http://127.0.0.1:{port}", token="t", retry_for=0.3,
                       spool=tmp_path / "spool")
    assert not (tmp_path / "spool").exists()


def test_retry_for_is_checked(tmp_path, monkeypatch):
    with pytest.raises(InvalidValue, match="applies to a server"):
        metastore.open(f"sqlite:///{tmp_path / 'm.db'}", retry_for=5)
    monkeypatch.setenv("METASTORE_RETRY_FOR", "soon")
    with pytest.raises(InvalidValue, match="METASTORE_RETRY_FOR"):
        metastore.open("http://127.0.0.1:9", token="t")
    monkeypatch.delenv("METASTORE_RETRY_FOR")
    with pytest.raises(InvalidValue, match="retry_for"):
        metastore.open("http://127.0.0.1:9", token="t", retry_for=-1)


def test_writes_spooled_in_process_go_out_in_order_when_the_server_returns(tmp_path, caplog):
    """In one process: writes made while the server is gone are kept, later ones queue
    behind them, and the first write after its return sends them all, in order; one
    warning for the outage."""
    local = metastore.open(f"sqlite:///{tmp_path / 'db' / 'm.db'}", blobs=tmp_path / "b")
    token = create_token(local, "w")
    caplog.set_level(logging.INFO, logger="metastore.client")
    with background_server(local) as url:
        remote = metastore.open(url, token=token, retry_for=0.2, spool=tmp_path / "spool")
        run = remote.start_run(experiment="e", capture=False, flush_interval=0)
        run.log_metric("loss", 0.0)
    port = int(url.rsplit(":", 1)[1])
    for value in (1.0, 2.0, 3.0):  # no step: the order they arrive in decides each step
        run.log_metric("loss", value)
    assert len(list((tmp_path / "spool").glob(f"*{SUFFIX}"))) == 1
    with background_server(local, port=port):
        time.sleep(PROBE_EVERY + 0.1)  # past the pace at which a write probes
        run.end()
        history = local.get_run(run.id).metric_history("loss")
        assert [(p.step, p.value) for p in history] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0)]
        assert local.get_run(run.id).status == "finished"
        assert not list((tmp_path / "spool").glob(f"*{SUFFIX}"))
        remote.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    local.close()
