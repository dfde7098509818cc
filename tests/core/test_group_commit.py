"""Group commit: sagas in flight share commits; one lost lease spoils only its own part."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text

from reversa import Engine, FakeClock, LeaseLost, SagaStatus, Store, StoreError
from reversa.core.engine.recovery import load_live
from reversa.core.store.writer import Written
from tests.core.kit import World, chain_saga, reject, transfer_registry


class CountingStore(Store):
    batches: list[int]

    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        self.batches.append(len(items))
        return super().write_batch(items, **kwargs)


def test_sagas_in_flight_share_commits(store: Store) -> None:
    counting = CountingStore(store.engine, clock=store.clock)
    counting.batches = []
    world = World(balances={"a": 10_000, "b": 0, "c": 0})
    world.fail["do:credit"] = reject()
    registry = transfer_registry(world)
    # Twenty sagas share one world: a whole-world snapshot cannot tell one saga's
    # rollback from another's steps in flight, so each checks its own effects.
    registry.predicate("own.effects.undone")(
        lambda ctx: all(r is None for r in ctx.results.values()))
    engine = Engine(registry, counting, clock=FakeClock(), heartbeat=False)

    async def many() -> list[SagaStatus]:
        results = await asyncio.gather(*(
            engine.run_async(chain_saga(snapshot=None, predicate="own.effects.undone"))
            for _ in range(20)))
        return [r.status for r in results]

    statuses = engine._sync(many())
    engine.close()
    assert statuses == [SagaStatus.COMPENSATED] * 20
    assert world.balances == {"a": 10_000, "b": 0, "c": 0}
    assert sum(counting.batches) > len(counting.batches) * 5  # far fewer commits than flushes
    assert max(counting.batches) == 20
    report = store.verify_audit()
    assert report.ok and report.sagas == 20


@pytest.mark.edits_records  # sets a status out of band, which no chain records
def test_a_lost_lease_rolls_back_only_that_sagas_part(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()

    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    ids = [engine.run(chain_saga()).saga_id for _ in range(2)]
    engine.close()
    lives = []
    for sid in ids:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE reversa_sagas SET status='compensating' WHERE id=:s"),
                         {"s": sid})
        ((_, token),) = store.claim("me", 30, saga_id=sid)
        lives.append(load_live(engine._rt, sid, token))
    store.claim("thief", 30, saga_id=ids[0], force=True)  # steals the first
    for live in lives:
        live.log("probe", "ok")
    results = store.write_batch([(live, clock.now(), None, None) for live in lives])
    assert isinstance(results[0], LeaseLost) and isinstance(results[1], Written)
    events = {sid: [e["event"] for e in store.rows("audit", saga_id=sid)] for sid in ids}
    assert "probe" not in events[ids[0]] and events[ids[1]][-1] == "probe"
    # Both chains hold; the one thing that does not verify is this test's own
    # out-of-band status edit of the saga whose write was rolled back (the other
    # saga's write recorded its status in its chain).
    report = store.verify_audit()
    assert [(p.saga_id, p.kind) for p in report.problems] == [(ids[0], "saga_edited")]


def test_one_callers_duplicate_id_spoils_nobody_elses_commit(store: Store) -> None:
    counting = CountingStore(store.engine, clock=store.clock)
    counting.batches = []
    world = World(balances={"a": 10_000, "b": 0, "c": 0})
    registry = transfer_registry(world)
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(  # async steps: sagas interleave
        s.model_copy(update={"action": f"{s.name}.async"}) for s in saga.steps)})
    engine = Engine(registry, counting, clock=FakeClock(), heartbeat=False)
    engine.run(chain_saga(["notify"]), saga_id="taken")

    async def late_duplicate() -> Any:
        for _ in range(3):  # join a batch in which the others record their outcomes
            await asyncio.sleep(0)
        return await engine.run_async(saga, saga_id="taken")

    async def many() -> list[Any]:
        return await asyncio.gather(
            *(engine.run_async(saga, saga_id=f"s{i}") for i in range(10)), late_duplicate(),
            return_exceptions=True)

    *results, duplicate = engine._sync(many())
    engine.close()
    assert [getattr(r, "status", r) for r in results] == [SagaStatus.COMPLETED] * 10
    assert isinstance(duplicate, StoreError) and "already exists" in duplicate.message
    assert not duplicate.retryable  # retrying the same id can never succeed
    # Each saga's effects were called once at the service, and every outcome recorded.
    assert all(world.calls[f"rv:s{i}:{step}:action"] == 1 for i in range(10)
               for step in ("debit", "convert", "credit"))
    assert world.calls["rv:taken:debit:action"] == 0  # the duplicate never ran a step
    assert any(n > 1 for n in counting.batches)  # they really shared commits
    assert store.load("taken")[0]["workflow"] == "transfer"
    report = store.verify_audit()
    assert report.ok and report.sagas == 11


def test_two_new_sagas_with_one_id_in_one_batch_are_not_merged(store: Store) -> None:
    world = World(balances={"a": 10_000, "b": 0, "c": 0})
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)

    async def both() -> list[Any]:
        return await asyncio.gather(*(engine.run_async(chain_saga(), saga_id="twin")
                                      for _ in range(2)), return_exceptions=True)

    outcomes = engine._sync(both())
    engine.close()
    errors = [o for o in outcomes if isinstance(o, StoreError)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(errors) == 1 and len(done) == 1
    assert "already exists" in errors[0].message and not errors[0].retryable
    assert done[0].status is SagaStatus.COMPLETED
    assert engine.held() == {}
    assert world.calls["rv:twin:debit:action"] == 1  # the twin never called the service
    assert store.verify_audit().ok


def test_a_duplicate_saga_id_is_not_retryable(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    engine.run(chain_saga(), saga_id="once")
    with pytest.raises(StoreError, match="already exists") as caught:
        engine.run(chain_saga(), saga_id="once")
    engine.close()
    assert not caught.value.retryable
    assert world.calls["rv:once:debit:action"] == 1



# Hand-built sagas written below the engine: no step is dirty in their first commit,
# so the log cannot rebuild their step rows (the engine marks every step in that commit).
@pytest.mark.edits_records
def test_the_committer_never_merges_two_sagas_sharing_an_id(store: Store) -> None:
    from reversa.core.engine.committer import GroupCommitter
    from reversa.core.live import LiveSaga, LiveStep

    engine = Engine(transfer_registry(World()), store, clock=FakeClock(), heartbeat=False)
    plan = engine._plan(chain_saga())

    def new_live() -> LiveSaga:
        return LiveSaga(id="same", plan=plan, input={}, status=SagaStatus.RUNNING,
                        steps={n: LiveStep(n, i) for i, n in enumerate(plan.order)}, token=1,
                        seq=0, head=plan.hash, created_at=0.0, updated_at=0.0)

    committer = GroupCommitter(store, FakeClock(), 30)
    first, second = new_live(), new_live()
    first.log("plan_recorded", "first")
    second.log("plan_recorded", "second")

    async def both() -> list[Any]:
        return await asyncio.gather(committer.flush(first), committer.flush(second),
                                    return_exceptions=True)

    outcomes = engine._sync(both())
    engine.close()
    assert outcomes[0] is None and first.created
    assert "already exists" in str(outcomes[1]) and not second.created
    (entry,) = store.rows("audit", saga_id="same")
    assert entry["outcome"] == "first"


# Hand-built sagas written below the engine: no step is dirty in their first commit,
# so the log cannot rebuild their step rows (the engine marks every step in that commit).
@pytest.mark.edits_records
def test_a_cancelled_waiter_does_not_hang_the_rest_of_its_batch(store: Store) -> None:
    """Found by the simulator: a saga whose task was cancelled while its flush waited (a
    lost lease, a process shutting down) made the shared commit's callback raise
    InvalidStateError on its future, and every later waiter of the batch hung forever."""
    from reversa.core.engine.committer import GroupCommitter
    from reversa.core.live import LiveSaga, LiveStep

    engine = Engine(transfer_registry(World()), store, clock=FakeClock(), heartbeat=False)
    plan = engine._plan(chain_saga())
    committer = GroupCommitter(store, FakeClock(), 30)
    errors: list[Any] = []

    def live(sid: str) -> LiveSaga:
        saga = LiveSaga(id=sid, plan=plan, input={}, status=SagaStatus.RUNNING,
                        steps={n: LiveStep(n, i) for i, n in enumerate(plan.order)}, token=1,
                        seq=0, head=plan.hash, created_at=0.0, updated_at=0.0)
        saga.log("plan_recorded", "ok")
        return saga

    async def scenario() -> Any:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        cancelled = asyncio.ensure_future(committer.flush(live("gone")))
        waiting = asyncio.ensure_future(committer.flush(live("kept")))
        await asyncio.sleep(0)  # both are queued in one batch...
        cancelled.cancel()  # ...and one waiter goes away before it commits
        return await asyncio.wait_for(waiting, 5)

    assert engine._sync(scenario()) is None
    engine.close()
    assert errors == []
    assert {r["id"] for r in store.rows("sagas")} == {"gone", "kept"}
