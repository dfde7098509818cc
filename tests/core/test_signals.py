"""Interrupts and cancellations end the engine's hold on a saga (issue 10).

KeyboardInterrupt or a cancelled task inside a step used to leave the saga in the
engine's held set, so its heartbeat renewed the lease for as long as the process lived
and no worker could ever recover it. A KeyboardInterrupt raised by a compensation
escaped the event loop from a rollback branch while the saga's own task stayed pending,
and resurfaced in the next, unrelated ``engine.run``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reversa import (
    EmergencyStop,
    Engine,
    FakeClock,
    LeaseLost,
    SagaStatus,
    StepContext,
    Store,
    Worker,
)
from tests.core.kit import World, chain_saga, reject, transfer_registry


def _with(saga: Any, step: str, **update: Any) -> Any:
    return saga.model_copy(update={"steps": tuple(
        s.model_copy(update=update) if s.name == step else s for s in saga.steps)})


def test_keyboard_interrupt_in_a_step_stops_the_heartbeat(db_url: str) -> None:
    store = Store.open(db_url)  # database time: the heartbeat thread really renews leases
    world = World()
    reg = transfer_registry(world)

    def interrupted(ctx: StepContext) -> Any:
        raise KeyboardInterrupt

    reg.add("action", "convert.ctrl_c", interrupted)
    engine = Engine(reg, store, owner="owner", lease_s=0.3)  # beats every 0.1 s
    with pytest.raises(KeyboardInterrupt):
        engine.run(_with(chain_saga(), "convert", action="convert.ctrl_c"), saga_id="ctrl-c")
    assert engine.held() == {}
    expires = store.load("ctrl-c")[0]["lease_expires_at"]
    time.sleep(0.4)
    assert store.load("ctrl-c")[0]["lease_expires_at"] == expires  # not renewed any more
    # So the lease lapses and a worker settles the saga.
    worker_reg = transfer_registry(world)
    worker_reg.add("action", "convert.ctrl_c", worker_reg.get("action", "convert"))
    worker = Worker(worker_reg, store, lease_s=5)
    (result,) = worker.run_once()
    worker.engine.close()
    engine.close()
    store.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}


def test_a_cancelled_task_lets_go_of_its_saga(store: Store, clock: FakeClock) -> None:
    world = World()
    reg = transfer_registry(world)
    started = asyncio.Event()

    async def slow(ctx: StepContext) -> Any:
        started.set()
        await asyncio.sleep(3600)

    reg.add("action", "convert.slow", slow)
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)

    async def cancel_mid_step() -> None:
        task = asyncio.create_task(engine.run_async(
            _with(chain_saga(), "convert", action="convert.slow"), saga_id="cancelled"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    engine._sync(cancel_mid_step())
    assert engine.held() == {}
    engine.close()


def test_an_interrupted_compensation_does_not_resurface_in_the_next_run(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)

    def interrupted(ctx: StepContext) -> Any:
        raise KeyboardInterrupt

    reg.add("compensation", "convert.ctrl_c", interrupted)
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(KeyboardInterrupt):
        engine.run(_with(chain_saga(), "convert", compensation="convert.ctrl_c"))
    assert engine.held() == {}
    # An unrelated saga on the same engine runs to its end, untouched by the interrupt.
    result = engine.run(chain_saga(["notify"]))
    engine.close()
    assert result.status is SagaStatus.COMPLETED


@pytest.mark.parametrize("signal", ["shutdown", "emergency_stop"])
def test_a_signal_met_after_the_lease_was_lost_ends_as_a_lease_error(
    store: Store, clock: FakeClock, signal: str
) -> None:
    """Found by the simulator (reversa chaos --seed 2285): a worker paused in a step lost
    its saga's lease, then was told to shut down; recording the hand-over failed on the
    lost lease and StoreAbort (a BaseException) escaped the engine and Worker.run_once."""
    world = World()
    reg = transfer_registry(world)
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)

    def lose_then_signal(ctx: StepContext) -> Any:
        store.claim("thief", 30, saga_id=ctx.saga_id, force=True)  # taken over meanwhile
        if signal == "emergency_stop":
            raise EmergencyStop("operator hit the stop", category=0, source="test")
        engine.shutdown()
        return world.effect(ctx, "do:convert", {"b": 10})

    reg.add("action", "convert.lost", lose_then_signal)
    with pytest.raises(LeaseLost):
        engine.run(_with(chain_saga(), "convert", action="convert.lost"), saga_id="lost")
    engine.close()
    assert engine.held() == {}
    assert store.load("lost")[0]["lease_owner"] == "thief"
