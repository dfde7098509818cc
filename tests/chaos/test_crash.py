"""SIGKILL the agent at every intent/outcome boundary; another process finishes the saga.

AG-166 tests 8.3 and 8.4, on SQLite and on PostgreSQL. Each case runs the saga in a child
process that kills itself (SIGKILL, no cleanup) right before or right after one commit, then
recovers it here, in a different process, through a Worker. Effects are counted by
idempotency key in a separate database standing in for the external services.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
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


def _applied(effects: Path) -> dict[str, list[tuple[str, str]]]:
    conn = sqlite3.connect(effects)
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in STEPS}
    for key, step, kind in conn.execute("SELECT key, step, kind FROM applied"):
        out[step].append((kind, key))
    conn.close()
    return out


def _run_case(db: str, tmp_path: Path, crash: str, policy: str, fail_last: bool) -> tuple[
        SagaStatus | None, dict[str, list[tuple[str, str]]], Store]:
    effects = tmp_path / "effects.db"
    code = _child(db, effects, crash, policy, fail_last)
    assert code == -signal.SIGKILL, f"child did not die at {crash} (exit {code})"
    status = _recover(db, effects)
    return status, _applied(effects), Store.open(db)


def _expected_keys(saga_id: str, step: str, kinds: list[str]) -> list[tuple[str, str]]:
    phase = {"do": "action", "undo": "compensation"}
    return sorted((k, f"rv:{saga_id}:{step}:{phase[k]}") for k in kinds)


def test_crash_before_the_plan_commit_leaves_nothing(db_url: str, tmp_path: Path) -> None:
    status, applied, store = _run_case(db_url, tmp_path, "before:step_started:s1",
                                       "compensate", fail_last=False)
    assert status is None
    assert store.list_sagas() == [] and all(v == [] for v in applied.values())


RECORDED = [c for c in FORWARD if c != "before:step_started:s1"]


@pytest.mark.parametrize("crash", RECORDED)
def test_forward_crash_is_compensated(db_url: str, tmp_path: Path, crash: str) -> None:
    status, applied, store = _run_case(db_url, tmp_path, crash, "compensate", fail_last=False)
    (row,) = store.list_sagas()
    if crash == "after:step_completed:s5":
        # The last outcome and "saga completed" share the final commit: it is done.
        assert status is SagaStatus.COMPLETED
        assert all(sorted(applied[s]) == _expected_keys(row["id"], s, ["do"]) for s in STEPS)
        return
    assert status is SagaStatus.COMPENSATED
    for step in STEPS:
        kinds = [k for k, _ in applied[step]]
        # Exactly once per key, and every effect that happened was undone once.
        assert kinds in ([], ["do", "undo"]) or sorted(kinds) == ["do", "undo"], (step, kinds)
        assert sorted(applied[step]) == _expected_keys(row["id"], step, sorted(kinds))
    assert store.verify_audit().ok


@pytest.mark.parametrize("crash", RECORDED)
def test_forward_crash_resumes_to_completion(db_url: str, tmp_path: Path, crash: str) -> None:
    status, applied, store = _run_case(db_url, tmp_path, crash, "resume", fail_last=False)
    assert status is SagaStatus.COMPLETED
    (row,) = store.list_sagas()
    for step in STEPS:
        assert sorted(applied[step]) == _expected_keys(row["id"], step, ["do"])
    assert store.verify_audit().ok


@pytest.mark.parametrize("crash", COMPENSATION)
def test_crash_during_compensation_is_finished_once(db_url: str, tmp_path: Path,
                                                    crash: str) -> None:
    status, applied, store = _run_case(db_url, tmp_path, crash, "compensate", fail_last=True)
    assert status is SagaStatus.COMPENSATED
    (row,) = store.list_sagas()
    for step in STEPS[:-1]:
        assert sorted(applied[step]) == _expected_keys(row["id"], step, ["do", "undo"])
    assert applied["s5"] == []
    assert store.verify_audit().ok
