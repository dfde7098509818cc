"""Three workers on one PostgreSQL recover the same crashed sagas at once.

Claims use FOR UPDATE SKIP LOCKED and fencing tokens, so each compensation effect is
*called* once — not merely deduplicated by the service.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reversa import Store
from tests.chaos.harness import STEPS
from tests.support.pg import PgServer

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]
SAGAS = 6


def test_three_workers_race_for_the_same_crashed_sagas(
    pg_server: PgServer, tmp_path: Path
) -> None:
    db = pg_server.create_database("race")
    effects = tmp_path / "effects.db"
    for _ in range(SAGAS):
        # Each agent dies right after recording its first compensation's intent.
        proc = subprocess.run(
            [sys.executable, "-m", "tests.chaos.harness", "run", db, str(effects),
             "after:compensation_started:s4", "compensate", "1", "0.5"],
            cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = Store.open(db)
    assert len(store.list_sagas(status=["compensating"])) == SAGAS
    env = {**os.environ, "REVERSA_CHAOS_UNDO_DELAY": "0.1"}
    workers = [subprocess.Popen([sys.executable, "-m", "tests.chaos.harness", "worker", db,
                                 str(effects), "60"], cwd=ROOT, env=env)
               for _ in range(3)]
    for w in workers:
        assert w.wait(timeout=120) == 0
    rows = store.list_sagas()
    assert {r["status"] for r in rows} == {"compensated"}
    conn = sqlite3.connect(effects)
    calls = conn.execute("SELECT key, COUNT(*) FROM calls WHERE kind = 'undo' GROUP BY key"
                         ).fetchall()
    conn.close()
    assert len(calls) == SAGAS * (len(STEPS) - 1)
    assert {n for _, n in calls} == {1}, "a compensation was called more than once"
    owners = {r["lease_owner"] for r in store.rows("sagas")}
    assert owners == {None}  # every lease given back at the end
    recoverers = {e["detail_json"] for e in store.rows("audit") if e["event"] == "recovered"}
    assert len({json.loads(d)["owner"] for d in recoverers}) >= 2  # they really raced
    assert store.verify_audit().ok
    store.close()
