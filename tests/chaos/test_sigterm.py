"""SIGTERM: a worker hands its saga over at the next step boundary and exits."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reversa import SagaStatus, Store, Worker
from tests.chaos.harness import Effects, registry

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]


def _undo_calls(effects: Path) -> int:
    conn = sqlite3.connect(effects, timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM calls WHERE kind='undo'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_sigterm_releases_the_lease_and_another_worker_finishes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/reversa.db"
    effects = tmp_path / "effects.db"
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.chaos.harness", "run", db, str(effects),
         "after:compensation_started:s4", "compensate", "1", "0.2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL
    env = {**os.environ, "REVERSA_CHAOS_EFFECTS": str(effects),
           "REVERSA_CHAOS_UNDO_DELAY": "0.4"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "reversa", "worker", "--db", db, "--app",
         "tests.chaos.harness:cli_registry", "--lease-s", "30", "--poll-s", "0.05",
         "--log-format", "json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while _undo_calls(effects) < 1:  # it is inside its first compensation
        assert time.monotonic() < deadline, "the worker never started compensating"
        time.sleep(0.02)
    worker.send_signal(signal.SIGTERM)
    _, logged = worker.communicate(timeout=10)
    assert worker.returncode == 0
    store = Store.open(db)
    (row,) = store.list_sagas()
    events = [(e["event"], e["saga"]) for e in map(json.loads, logged.splitlines())]
    assert events == [("started", None), ("claimed", row["id"]), ("handed_over", row["id"]),
                      ("stopped", None)]
    assert row["status"] == "compensating"  # handed over mid-rollback, not abandoned
    assert row["lease_owner"] is None  # released at once, no lease expiry to wait for
    events = [e["event"] for e in store.rows("audit", saga_id=row["id"])]
    assert "handed_over" in events
    assert _undo_calls(effects) < 4  # it stopped at a boundary, not after finishing
    rescuer = Worker(registry(Effects(str(effects))), store, lease_s=30)
    (result,) = rescuer.run_once()
    rescuer.engine.close()
    assert result.status is SagaStatus.COMPENSATED
    conn = sqlite3.connect(effects)
    applied = conn.execute("SELECT step, COUNT(*) FROM applied WHERE kind='undo' "
                           "GROUP BY step").fetchall()
    conn.close()
    assert sorted(applied) == [("s1", 1), ("s2", 1), ("s3", 1), ("s4", 1)]
    assert store.verify_audit().ok
