"""The watchdog (AG-166 4.8): stalled sagas are compensated; stale rollbacks escalate."""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Engine, FakeClock, SagaStatus, Store, Worker
from tests.core.kit import World, chain_saga, transfer_registry


class Hang(BaseException):
    """The agent stops making progress (its process is stuck or gone)."""


def _stuck(store: Store, clock: FakeClock, world: World, *, phase: str, **policy: Any) -> str:
    reg = transfer_registry(world)
    if phase == "forward":
        reg.add("action", "credit.hang", lambda ctx: (_ for _ in ()).throw(Hang()))
        steps = {"credit": {"action": "credit.hang"}}
    else:
        world.fail["do:credit"] = Exception("rejected")
        reg.add("compensation", "convert.hang", lambda ctx: (_ for _ in ()).throw(Hang()))
        steps = {"convert": {"compensation": "convert.hang"}}
    saga = chain_saga(**policy)
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update=steps.get(s.name, {})) for s in saga.steps)})
    # A long lease: the owner looks alive, only the lack of progress gives it away.
    agent = Engine(reg, store, clock=clock, owner="agent", lease_s=3600, heartbeat=False)
    with pytest.raises(Hang):
        agent.run(saga)
    (row,) = store.list_sagas()
    return str(row["id"])


def _worker(store: Store, clock: FakeClock, world: World) -> Worker:
    reg = transfer_registry(world)
    reg.add("action", "credit.hang", reg.get("action", "credit"))
    reg.add("compensation", "convert.hang", reg.get("compensation", "convert.undo"))
    return Worker(reg, store, clock=clock, stall_after_s=120, lease_s=30)


def test_stalled_forward_run_is_compensated(store: Store, clock: FakeClock) -> None:
    world = World()
    saga_id = _stuck(store, clock, world, phase="forward")
    worker = _worker(store, clock, world)
    clock.advance(60)
    assert worker.run_once() == []  # under the threshold: left alone
    clock.advance(61)
    (result,) = worker.run_once()
    assert result.saga_id == saga_id and result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    events = [e["event"] for e in store.rows("audit", saga_id=saga_id)]
    assert "watchdog_stalled" in events
    worker.engine.close()


def test_threshold_is_per_workflow(store: Store, clock: FakeClock) -> None:
    world = World()
    _stuck(store, clock, world, phase="forward", stall_after_s=10)
    worker = _worker(store, clock, world)
    clock.advance(11)
    (result,) = worker.run_once()
    assert result.status is SagaStatus.COMPENSATED
    worker.engine.close()


def test_rollback_stalled_past_its_window_escalates_with_a_snapshot(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    saga_id = _stuck(store, clock, world, phase="compensation", rollback_window_s=100)
    worker = _worker(store, clock, world)
    clock.advance(121)
    (result,) = worker.run_once()
    assert result.status is SagaStatus.ESCALATED
    (esc,) = worker.engine.inspect(saga_id).escalations
    assert "rollback window of 100s elapsed" in esc.reason
    assert esc.report["current_state"] == {"balances": {"a": 90, "b": 10, "c": 0}}
    worker.engine.close()
