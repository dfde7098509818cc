"""Jepsen-style: real worker processes on PostgreSQL while the database is restarted and their
connections are killed; the effect log at the service is checked afterwards.

Owners (child processes) start sagas and SIGKILL themselves at commit boundaries, leaving
work for three ``reversa worker`` processes. Meanwhile the test restarts the PostgreSQL
server (``pg_ctl restart``) under load, twice, and terminates every backend of the
database (``pg_terminate_backend``) several times. The workers must survive all of it
and finish every saga; the services' own log (every call, every applied effect) must
show each effect that happened undone exactly once in each compensated saga, and done
exactly once in each completed one.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reversa import Store
from reversa.testing import pg

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]

CRASHES = [
    ("after:step_started:s3", "compensate", "0"),
    ("before:step_completed:s2", "compensate", "0"),
    ("after:step_completed:s4", "resume", "0"),
    ("before:step_started:s4", "resume", "0"),
    ("after:compensation_started:s3", "compensate", "1"),
    ("before:compensation_completed:s2", "compensate", "1"),
]


@pytest.fixture(scope="module")
def server(reversa_pg_server: pg.PgServer) -> Iterator[pg.PgServer]:
    """A server of its own: this test restarts it, which no other test should see."""
    del reversa_pg_server  # only to skip (or fail under CI) the same way when absent
    own = pg.start()
    yield own
    own.stop()


def _owner(db: str, effects: Path, crash: str, policy: str, fail_last: str) -> None:
    # The owner dies at its boundary, or earlier when the database is down: either way
    # the saga is left to the workers.
    subprocess.run([sys.executable, "-m", "tests.chaos.harness", "run", db, str(effects),
                    crash, policy, fail_last, "1.0"], cwd=ROOT, capture_output=True,
                   timeout=120, check=False)


def _assert_alive(workers: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for worker, log in zip(workers, logs, strict=True):
        if worker.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"a worker died (exit {worker.returncode}); its log ends:\n{tail}")


def test_workers_survive_restarts_and_killed_connections(server: pg.PgServer,
                                                         tmp_path: Path) -> None:
    db = server.create_database("jepsen")
    effects = tmp_path / "effects.db"
    env = {**os.environ, "REVERSA_CHAOS_EFFECTS": str(effects)}
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = [subprocess.Popen(
        [sys.executable, "-m", "reversa", "worker", "--db", db, "--app",
         "tests.chaos.harness:cli_registry", "--lease-s", "2", "--poll-s", "0.1",
         "--stall-after-s", "3600"], cwd=ROOT, env=env, stdout=log.open("w"),
        stderr=subprocess.STDOUT) for log in logs]
    owners_done = threading.Event()

    def owners() -> None:
        for crash, policy, fail_last in itertools.islice(itertools.cycle(CRASHES), 18):
            _owner(db, effects, crash, policy, fail_last)
        owners_done.set()

    load = threading.Thread(target=owners)
    load.start()
    terminated = 0
    try:
        # The faults, while owners keep starting sagas and workers keep recovering them.
        for round_ in range(6):
            time.sleep(1.5)
            if round_ in (1, 4):
                server.restart()
            else:
                terminated += server.terminate_backends("jepsen")
            _assert_alive(workers, logs)
        load.join(300)
        assert owners_done.is_set()
        store = Store.open(db)
        deadline = time.monotonic() + 120
        while store.list_sagas(status=["running", "compensating"], limit=1):
            assert time.monotonic() < deadline, "the workers did not finish every saga"
            _assert_alive(workers, logs)
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(30) for w in workers]
    assert codes == [0, 0, 0]
    assert terminated > 0  # connections really were killed under the workers
    outage = "".join(log.read_text() for log in logs)
    assert "database error" in outage or "heartbeat skipped" in outage  # they saw it

    sagas = store.list_sagas(limit=1000)
    assert len(sagas) >= 12
    assert {r["status"] for r in sagas} <= {"compensated", "completed"}
    conn = sqlite3.connect(effects)
    calls = Counter(conn.execute("SELECT key FROM calls").fetchall())
    applied = conn.execute("SELECT key, saga, step, kind FROM applied").fetchall()
    conn.close()
    for row in sagas:
        done = {step for _, saga, step, kind in applied if saga == row["id"] and kind == "do"}
        undone = Counter(step for _, saga, step, kind in applied
                         if saga == row["id"] and kind == "undo")
        if row["status"] == "completed":
            assert done == {"s1", "s2", "s3", "s4", "s5"} and not undone, row["id"]
        else:
            # Every effect that happened was undone exactly once; nothing else was.
            assert undone == Counter(done), (row["id"], done, undone)
    # Requests may be re-sent after an outage hid their outcome (the services answer the
    # replay), but every effect the services applied came from a call the engine made.
    assert all(calls[(key,)] >= 1 for key, *_ in applied)
    assert store.verify_audit().ok
    store.close()


def _worker(db: str, *args: str, effects: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "REVERSA_CHAOS_EFFECTS": str(effects)}
    return subprocess.Popen([sys.executable, "-m", "reversa", "worker", "--db", db, "--app",
                             "tests.chaos.harness:cli_registry", "--poll-s", "0.1", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_a_starting_worker_waits_for_a_database_that_is_down(server: pg.PgServer,
                                                           tmp_path: Path) -> None:
    db = server.create_database("waiting")
    worker = _waits_while_down(
        server, lambda: _worker(db, "--wait-db", "120", effects=tmp_path / "effects.db"),
        lambda line: " worker " in line and f"{server.port}/waiting" in line)
    assert worker.wait(30) == 0


def _waits_while_down(server: pg.PgServer, start: Callable[[], subprocess.Popen[str]],
                      ready: Callable[[str], bool]) -> subprocess.Popen[str]:
    """Start a process with the server down: it says it waits and stays alive; once the
    server is back it says ``ready``. Returns it SIGTERMed (the caller awaits its exit)."""
    server.shut_down()
    lines: list[str] = []
    try:
        proc = start()
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()))
        reader.start()
        # However long its start takes on a loaded machine, it meets the server down,
        # says so, and stays alive.
        deadline = time.monotonic() + 60
        while not any("database unreachable for now, retrying for up to 120s" in line
                      for line in lines):
            assert proc.poll() is None, lines
            assert time.monotonic() < deadline, ("it never said it waits", lines)
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None, lines  # still waiting, not dead
    finally:
        server.start_again()
    deadline = time.monotonic() + 60
    while not any(ready(line) for line in lines):
        assert proc.poll() is None, lines
        assert time.monotonic() < deadline, ("it never started", lines)
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    reader.join(10)
    return proc


def test_a_worker_gives_up_waiting_with_one_line(server: pg.PgServer, tmp_path: Path) -> None:
    closed = f"postgresql://reversa:hunter2@127.0.0.1:{pg.free_port()}/nothing"
    started = time.monotonic()
    out = _worker(closed, "--wait-db", "1", effects=tmp_path / "e.db").communicate(timeout=60)[0]
    assert time.monotonic() - started >= 1.0
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "connection" in errors[0].lower(), out
    assert "hunter2" not in out


def test_a_wrong_database_name_fails_at_once(server: pg.PgServer, tmp_path: Path) -> None:
    worker = _worker(server.url_for("no_such_database"), "--wait-db", "600",
                     effects=tmp_path / "e.db")
    out = worker.communicate(timeout=60)[0]
    assert worker.returncode == 3, out
    assert "does not exist" in out and "retrying" not in out


def _console(db: str, *args: str) -> subprocess.Popen[str]:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    pytest.importorskip("argon2")
    # Unbuffered: the line saying it serves must reach the pipe while it runs.
    return subprocess.Popen([sys.executable, "-m", "reversa", "console", "--db", db,
                             "--port", "0", *args], cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_starting_console_waits_for_a_database_that_is_down(server: pg.PgServer) -> None:
    db = server.create_database("console_waiting")
    _waits_while_down(
        server, lambda: _console(db, "--wait-db", "120"),
        lambda line: "reversa console on http://" in line
        and f"{server.port}/console_waiting" in line)


def test_a_console_gives_up_waiting_with_one_line() -> None:
    closed = f"postgresql://reversa:hunter2@127.0.0.1:{pg.free_port()}/nothing"
    started = time.monotonic()
    served = _console(closed, "--wait-db", "1")
    out = served.communicate(timeout=60)[0]
    assert time.monotonic() - started >= 1.0
    assert served.returncode == 3, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "connection" in errors[0].lower(), out
    assert len(out.splitlines()) == 2, out  # the wait said once, then the error
    assert "hunter2" not in out


def test_a_console_on_a_wrong_database_name_fails_at_once(server: pg.PgServer) -> None:
    served = _console(server.url_for("no_such_database"), "--wait-db", "600")
    out = served.communicate(timeout=60)[0]
    assert served.returncode == 3, out
    assert "does not exist" in out and "retrying" not in out
