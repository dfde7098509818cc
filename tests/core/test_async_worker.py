"""Workers and heartbeats driven from an event loop you run (as the simulator does)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reversa import Engine, FakeClock, SagaStatus, StepContext, Store, Worker
from tests.core.kit import World, chain_saga, reject, transfer_registry


class Crash(BaseException):
    """The owner dies inside a call."""


def _orphans(store: Store, clock: FakeClock, world: World, n: int) -> list[str]:
    world.fail["do:credit"] = reject()
    reg = _registry(world)

    def die(ctx: StepContext) -> Any:
        raise Crash()

    reg.add("compensation", "convert.die", die)
    # Sagas share one world: each checks its own effects, not a whole-world snapshot.
    saga = chain_saga(snapshot=None, predicate="own.effects.undone")
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"compensation": "convert.die"}) if s.name == "convert" else s
        for s in saga.steps)})
    agent = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    for i in range(n):
        with pytest.raises(Crash):
            agent.run(saga, saga_id=f"o{i}")
    return [f"o{i}" for i in range(n)]


def test_two_workers_share_one_event_loop(store: Store, clock: FakeClock) -> None:
    world = World(balances={"a": 1000, "b": 0, "c": 0})
    ids = _orphans(store, clock, world, 4)
    clock.advance(10)
    reg = _registry(world)
    reg.add("compensation", "convert.die", reg.get("compensation", "convert.undo"))
    workers = [Worker(reg, store, clock=clock, lease_s=5, batch=1, owner=f"w{i}")
               for i in range(2)]

    async def rounds() -> list[Any]:
        done: list[Any] = []
        for _ in range(3):
            for batch in await asyncio.gather(*(w.run_once_async() for w in workers)):
                done.extend(batch)
        return done

    finished = workers[0].engine._sync(rounds())
    assert sorted(r.saga_id for r in finished) == ids
    assert {r.status for r in finished} == {SagaStatus.COMPENSATED}
    assert all(world.calls[f"rv:{sid}:convert:compensation"] == 1 for sid in ids)
    owners = {r["lease_owner"] for r in store.rows("sagas")}
    assert owners == {None}


def test_beat_extends_held_leases_and_reports_the_lost(store: Store, clock: FakeClock) -> None:
    world = World()
    reg = transfer_registry(world)
    started = asyncio.Event()

    async def wait(ctx: StepContext) -> Any:
        started.set()
        await asyncio.sleep(3600)

    reg.add("action", "credit.wait", wait)
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": "credit.wait"}) if s.name == "credit" else s
        for s in saga.steps)})
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)

    async def scenario() -> Any:
        task = asyncio.create_task(engine.run_async(saga, saga_id="beaten"))
        await started.wait()
        clock.advance(4)
        assert engine.beat() == []
        assert store.load("beaten")[0]["lease_expires_at"] == clock.now() + 5
        store.claim("thief", 30, saga_id="beaten", force=True)
        assert engine.beat() == ["beaten"]
        return await asyncio.gather(task, return_exceptions=True)

    (outcome,) = engine._sync(scenario())
    engine.close()
    assert "taken over" in str(outcome)
    assert engine.held() == {}


def _registry(world: World) -> Any:
    reg = transfer_registry(world)
    reg.predicate("own.effects.undone")(
        lambda ctx: all(r is None for r in ctx.results.values()))
    return reg
