"""SIGKILL the agent at every intent/outcome boundary; another process finishes the saga.

AG-166 tests 8.3 and 8.4, on SQLite and on PostgreSQL. Each case runs the saga in a child
process that kills itself (SIGKILL, no cleanup) right before or right after one commit, then
recovers it here, in a different process, through a Worker. The external services (a
separate database) count every call that reaches them, so these tests see a call made
twice even where the service's deduplication made it harmless.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from reversa import SagaStatus, Store, Worker
from tests.chaos.harness import STEPS, Effects, registry

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 0.3

FORWARD = [f"{when}:{event}:{step}" for step in STEPS
           for event in ("step_started", "step_completed") for when in ("before", "after")]
COMPENSATION = [f"{when}:{event}:{step}" for step in reversed(STEPS[:-1])
                for event in ("compensation_started", "compensation_completed")
                for when in ("before", "after")]


def _child(db: str, effects: Path, crash: str, policy: str, fail_last: bool) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.chaos.harness", "run", db, str(effects), crash, policy,
         "1" if fail_last else "0", str(LEASE_S)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc.returncode


def _recover(db: str, effects: Path) -> SagaStatus | None:
    store = Store.open(db)
    if not store.list_sagas():
        return None  # died before the plan's first commit: nothing exists, nothing ran
    worker = Worker(registry(Effects(str(effects))), store, lease_s=5, stall_after_s=3600)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            worker.run_once()
            (row,) = store.list_sagas()
            if row["status"] not in ("running", "compensating"):
                return SagaStatus(row["status"])
            time.sleep(0.05)
        raise AssertionError("the saga was not recovered within 20 s")
    finally:
        worker.engine.close()


def _service(effects: Path) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """(calls that reached the service, effects it applied), by (step, kind)."""
    conn = sqlite3.connect(effects)
    calls = Counter(conn.execute("SELECT step, kind FROM calls").fetchall())
    applied = Counter(conn.execute("SELECT step, kind FROM applied").fetchall())
    conn.close()
    return Counter({(s, k): n for (s, k), n in calls.items()}), \
        Counter({(s, k): n for (s, k), n in applied.items()})


def _run_case(db: str, tmp_path: Path, crash: str, policy: str, fail_last: bool) -> tuple[
        SagaStatus | None, Counter[tuple[str, str]], Counter[tuple[str, str]], Store]:
    effects = tmp_path / "effects.db"
    code = _child(db, effects, crash, policy, fail_last)
    assert code == -signal.SIGKILL, f"child did not die at {crash} (exit {code})"
    status = _recover(db, effects)
    calls, applied = _service(effects)
    return status, calls, applied, Store.open(db)


def test_crash_before_the_plan_commit_leaves_nothing(db_url: str, tmp_path: Path) -> None:
    status, calls, applied, store = _run_case(db_url, tmp_path, "before:step_started:s1",
                                              "compensate", fail_last=False)
    assert status is None
    assert store.list_sagas() == [] and not calls and not applied


RECORDED = [c for c in FORWARD if c != "before:step_started:s1"]


@pytest.mark.parametrize("crash", RECORDED)
def test_forward_crash_is_compensated(db_url: str, tmp_path: Path, crash: str) -> None:
    status, calls, applied, store = _run_case(db_url, tmp_path, crash, "compensate",
                                              fail_last=False)
    if crash == "after:step_completed:s5":
        # The last outcome and "saga completed" share the final commit: it is done.
        assert status is SagaStatus.COMPLETED
        assert calls == Counter({(s, "do"): 1 for s in STEPS})  # each called exactly once
        return
    assert status is SagaStatus.COMPENSATED
    ran = [s for s in STEPS if calls[(s, "do")]]
    assert ran == STEPS[: len(ran)]  # a prefix of the chain ran (maybe none)...
    for step in STEPS:
        # ...each effect was called at most once, and every one that happened was
        # undone by exactly one call; a step whose intent was recorded but never sent
        # was blocked, not called.
        assert calls[(step, "do")] <= 1, (step, calls)
        assert calls[(step, "undo")] == applied[(step, "do")], (step, calls)
        assert applied[(step, "undo")] == applied[(step, "do")]
    assert store.verify_audit().ok


@pytest.mark.parametrize("crash", RECORDED)
def test_forward_crash_resumes_to_completion(db_url: str, tmp_path: Path, crash: str) -> None:
    status, calls, _, store = _run_case(db_url, tmp_path, crash, "resume", fail_last=False)
    assert status is SagaStatus.COMPLETED
    # Every step was called exactly once: a step that ran before the crash was found by
    # the probe, not called again; one that had not was called by the recovery.
    assert calls == Counter({(s, "do"): 1 for s in STEPS}), calls
    assert store.verify_audit().ok


@pytest.mark.parametrize("crash", COMPENSATION)
def test_crash_during_compensation_is_finished_once(db_url: str, tmp_path: Path,
                                                   crash: str) -> None:
    status, calls, applied, store = _run_case(db_url, tmp_path, crash, "compensate",
                                              fail_last=True)
    assert status is SagaStatus.COMPENSATED
    undone = STEPS[:-1]
    assert all(calls[(s, "do")] == 1 for s in undone) and calls[("s5", "do")] == 0
    assert all(applied[(s, "undo")] == 1 for s in undone)  # each undone exactly once
    # A compensation whose outcome the crash kept from the record is sent again with its
    # key (the service answers the replay); every other one is called exactly once.
    resent = [s for s in undone if calls[(s, "undo")] == 2]
    assert all(calls[(s, "undo")] in (1, 2) for s in undone), calls
    assert len(resent) <= 1
    if crash.startswith(("after:compensation_started", "after:compensation_completed")):
        assert resent == []
    assert store.verify_audit().ok
