"""``reversa worker`` logs one line per event, text or JSON; ``--once`` fails on leftovers."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reversa import Engine, FakeClock, SagaStatus, Store, Worker
from tests.core.kit import World, chain_saga, transfer_registry
from tests.core.test_watchdog import _stuck
from tests.core.test_watchdog import _worker as _watchdog_worker

ROOT = Path(__file__).resolve().parents[2]


# -- a real orphan: the owner SIGKILLed mid-rollback, its short lease expired ---------------
def _killed_owner(db: str, effects: Path) -> str:
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.chaos.harness", "run", db, str(effects),
         "after:compensation_completed:s3", "compensate", "1", "0.1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    (row,) = Store.open(db).list_sagas()
    assert row["status"] == "compensating" and row["lease_owner"]
    return str(row["id"])


def _worker_once(db: str, effects: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVERSA_CHAOS_EFFECTS": str(effects)}
    return subprocess.run(
        [sys.executable, "-m", "reversa", "worker", "--db", db, "--once", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines()]


def test_once_json_logs_claim_and_finish(db_url: str, tmp_path: Path) -> None:
    saga_id = _killed_owner(db_url, tmp_path / "effects.db")
    proc = _worker_once(db_url, tmp_path / "effects.db", "--log-format", "json",
                        "--app", "tests.chaos.harness:cli_registry")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    events = _events(proc.stderr)  # every line is one JSON object
    assert [e["event"] for e in events] == ["started", "claimed", "finished", "round_done"]
    for e in events:
        assert {"ts", "level", "event", "saga", "message"} <= set(e)
    claimed, finished = events[1], events[2]
    assert claimed["saga"] == finished["saga"] == saga_id
    assert claimed["reason"] == "lease_expired"
    assert finished["status"] == "compensated" and finished["level"] == "info"
    assert events[3]["ended"] == 1 and events[3]["unfinished"] == []
    assert Store.open(db_url).load(saga_id)[0]["status"] == "compensated"


def test_once_exits_1_and_names_the_missing_handler(db_url: str, tmp_path: Path) -> None:
    saga_id = _killed_owner(db_url, tmp_path / "effects.db")
    proc = _worker_once(db_url, tmp_path / "effects.db", "--log-format", "json")  # no --app
    assert proc.returncode == 1, proc.stderr
    events = _events(proc.stderr)
    (skipped,) = [e for e in events if e["event"] == "skipped"]
    assert skipped["saga"] == saga_id and skipped["level"] == "warning"
    assert skipped["reason"] == "missing_handler"
    assert "'do' is not a registered action" in skipped["message"]
    assert "--app" in skipped["message"]
    assert events[-1]["event"] == "round_done" and events[-1]["unfinished"] == [saga_id]
    row, _ = Store.open(db_url).load(saga_id)
    assert row["status"] == "compensating" and row["lease_owner"] is None  # handed back


def test_text_format_is_one_line_per_event(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/reversa.db"
    saga_id = _killed_owner(db, tmp_path / "effects.db")
    proc = _worker_once(db, tmp_path / "effects.db", "--app",
                        "tests.chaos.harness:cli_registry")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 4
    assert f"saga {saga_id} claimed: owner lease expired" in lines[1]
    assert f"saga {saga_id} finished: ended compensated" in lines[2]
    assert all(" info " in line for line in lines)


# -- in process: what repeats, and what must not starve --------------------------------------
class Crash(BaseException):
    """The owner dies inside a call."""


def _orphan(store: Store, clock: FakeClock, world: World, alias: str) -> str:
    """A saga whose owner died inside 'credit' (registered as ``alias``)."""
    reg = transfer_registry(world)
    reg.add("action", alias, lambda ctx: (_ for _ in ()).throw(Crash()))
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": alias}) if s.name == "credit" else s
        for s in saga.steps)})
    engine = Engine(reg, store, clock=clock, owner="agent", lease_s=5, heartbeat=False)
    before = {r["id"] for r in store.list_sagas()}
    with pytest.raises(Crash):
        engine.run(saga)
    (new,) = [r for r in store.list_sagas() if r["id"] not in before]
    assert new["status"] == "running" and new["lease_owner"] == "agent"
    return str(new["id"])


def _skips(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if getattr(r, "event", None) == "skipped" and r.levelno == level]


def test_missing_handler_is_warned_once_across_rounds(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    saga_id = _orphan(store, clock, World(), "credit.gone")
    clock.advance(10)
    worker = Worker(transfer_registry(World()), store, clock=clock, lease_s=5, poll_s=0.01)
    with caplog.at_level(logging.DEBUG, logger="reversa.worker"):
        rounds = [worker.run_round() for _ in range(4)]
    worker.engine.close()
    (warning,) = _skips(caplog, logging.WARNING)
    assert warning.saga == saga_id  # type: ignore[attr-defined]
    assert "'credit.gone' is not a registered action" in warning.getMessage()
    assert all(saga_id in r.unfinished for r in rounds)
    row, _ = store.load(saga_id)
    assert row["status"] == "running" and row["lease_owner"] is None  # recorded as it was


def test_unrunnable_sagas_do_not_starve_the_batch(store: Store, clock: FakeClock) -> None:
    world = World()
    stuck = _orphan(store, clock, world, "credit.gone")  # oldest: claimed first
    clock.advance(1)
    runnable = _orphan(store, clock, world, "credit.retry")
    clock.advance(10)
    reg = transfer_registry(world)
    reg.add("action", "credit.retry", reg.get("action", "credit"))
    worker = Worker(reg, store, clock=clock, lease_s=5, batch=1)
    first = worker.run_round()
    assert list(first.unfinished) == [stuck] and first.ended == []
    second = worker.run_round()
    worker.engine.close()
    assert [r.saga_id for r in second.ended] == [runnable]
    assert store.load(runnable)[0]["status"] == second.ended[0].status.value


def test_escalation_and_claims_are_logged(
    store: Store, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    world = World()
    saga_id = _stuck(store, clock, world, phase="compensation", rollback_window_s=100)
    worker = _watchdog_worker(store, clock, world)
    clock.advance(121)
    with caplog.at_level(logging.INFO, logger="reversa.worker"):
        (result,) = worker.run_once()
    worker.engine.close()
    assert result.status is SagaStatus.ESCALATED
    events = [(r.event, r.saga, r.fields) for r in caplog.records  # type: ignore[attr-defined]
              if r.name == "reversa.worker"]
    assert [(e, s) for e, s, _ in events] == [("claimed", saga_id), ("escalated", saga_id)]
    assert events[0][2]["reason"] == "stalled"
    assert events[1][2]["escalation"] == result.escalation_id


def test_forever_logs_each_finish(store: Store, clock: FakeClock,
                                  caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    saga_id = _orphan(store, clock, world, "credit.retry")
    clock.advance(10)
    reg = transfer_registry(world)
    reg.add("action", "credit.retry", reg.get("action", "credit"))
    worker = Worker(reg, store, clock=clock, lease_s=5, poll_s=0.01)

    def finished() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "event", None) == "finished"]

    with caplog.at_level(logging.INFO, logger="reversa.worker"):
        loop = threading.Thread(target=worker.run_forever)
        loop.start()
        deadline = time.monotonic() + 20
        while not finished() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # a few more polls: the finish is not logged again
        worker.stop()
        loop.join(timeout=20)
    assert [r.saga for r in finished()] == [saga_id]  # type: ignore[attr-defined]
    assert finished()[0].fields["status"] in {"compensated", "completed"}  # type: ignore[attr-defined]
