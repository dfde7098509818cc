"""Another process finishes the job: in-doubt resolution, resume, checkpoints."""

from __future__ import annotations

from typing import Any

import pytest

from reversa import (
    Engine,
    FakeClock,
    LeaseLost,
    OnCrash,
    OnFailure,
    PlanError,
    Registry,
    SagaStatus,
    StepStatus,
    Store,
)
from tests.core.kit import World, chain_saga, reject, transfer_registry


class Crash(BaseException):
    """Stands in for the process dying inside a call (real SIGKILLs: tests/chaos)."""


def _crashing(world: World, step: str, *, after_effect: bool) -> Registry:
    reg = transfer_registry(world)
    original = reg.get("action", step)

    def die(ctx: Any) -> Any:
        if after_effect:
            original(ctx)
        raise Crash()

    reg.add("action", f"{step}.crash", die)
    return reg


def _same_names(world: World, alias: str, kind: str = "action") -> Registry:
    """The worker's registry: the same handler names, minus the crash."""
    reg = transfer_registry(world)
    reg.add(kind, alias, reg.get(kind, alias.removesuffix(".crash")))
    return reg


def _crash_run(store: Store, clock: FakeClock, world: World, step: str, *,
               after_effect: bool, **policy: Any) -> str:
    saga = chain_saga(**policy)
    steps = [s.model_copy(update={"action": f"{s.name}.crash"}) if s.name == step else s
             for s in saga.steps]
    engine = Engine(_crashing(world, step, after_effect=after_effect), store, clock=clock,
                    owner="agent", lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    (row,) = store.list_sagas()
    return str(row["id"])


@pytest.mark.parametrize("after_effect", [True, False], ids=["effect-landed", "no-effect"])
def test_in_doubt_step_is_probed_then_compensated(
    store: Store, clock: FakeClock, after_effect: bool
) -> None:
    world = World()
    saga_id = _crash_run(store, clock, world, "convert", after_effect=after_effect)
    assert store.load(saga_id)[1][1]["status"] == "running"  # visibly in doubt
    worker = Engine(_same_names(world, "convert.crash"), store, clock=clock, owner="worker",
                    lease_s=5, heartbeat=False)
    with pytest.raises(LeaseLost, match="leased by agent"):
        worker.recover(saga_id)
    clock.advance(6)
    result = worker.recover(saga_id)
    worker.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    resolution = [e for e in store.rows("audit", saga_id=saga_id)
                  if e["event"] == "in_doubt_resolved"]
    assert len(resolution) == 1
    assert resolution[0]["outcome"] == ("happened" if after_effect else "not_happened")
    convert = worker.inspect(saga_id).step("convert")
    assert convert.status is (StepStatus.COMPENSATED if after_effect else StepStatus.SKIPPED)


def test_resume_policy_finishes_forward_without_repeating_effects(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    saga_id = _crash_run(store, clock, world, "convert", after_effect=True,
                         on_crash=OnCrash.RESUME)
    clock.advance(6)
    worker = Engine(_same_names(world, "convert.crash"), store, clock=clock, owner="worker",
                    heartbeat=False)
    result = worker.recover(saga_id)
    worker.close()
    assert result.status is SagaStatus.COMPLETED
    assert world.order == ["do:debit", "do:convert", "do:credit"]  # convert once


def test_crash_during_compensation_is_finished_exactly_once(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = reject("sanctions screening")
    reg = transfer_registry(world)
    undo_convert = reg.get("compensation", "convert.undo")

    def die_midway(ctx: Any) -> Any:
        undo_convert(ctx)  # the reverse conversion lands, then the agent dies
        raise Crash()

    reg.add("compensation", "convert.undo.crash", die_midway)
    saga = chain_saga()
    steps = [s.model_copy(update={"compensation": "convert.undo.crash"})
             if s.name == "convert" else s for s in saga.steps]
    agent = Engine(reg, store, clock=clock, owner="agent", lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        agent.run(saga.model_copy(update={"steps": tuple(steps)}))
    (row,) = store.list_sagas()
    assert row["status"] == "compensating"
    clock.advance(6)
    worker = Engine(_same_names(world, "convert.undo.crash", "compensation"), store,
                    clock=clock, owner="worker", heartbeat=False)
    result = worker.recover(row["id"])
    worker.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.order.count("undo:convert") == 1 and world.order.count("undo:debit") == 1
    key = f"rv:{row['id']}:convert:compensation"
    assert world.calls[key] == 2  # re-sent with the same key, applied once
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert store.verify_audit().ok


def test_retry_from_checkpoint_reruns_with_fresh_keys(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = [reject("first try")]
    saga = chain_saga(on_failure=OnFailure.RETRY_FROM_CHECKPOINT, checkpoint_retries=1)
    steps = [s.model_copy(update={"checkpoint": s.name == "debit"}) for s in saga.steps]
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPLETED
    assert world.order == ["do:debit", "do:convert", "undo:convert", "do:convert", "do:credit"]
    keys = world.keys["convert:action"]
    assert keys[0] != keys[1] and keys[1].endswith("#1")  # a new generation of effects


def test_rollback_to_checkpoint_keeps_the_consistent_prefix(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)
    reg.add("predicate", "debit.stands",
            lambda ctx: ctx.post_state["balances"]["a"] == 90 and ctx.checkpoint == "debit")
    saga = chain_saga(on_failure=OnFailure.ROLLBACK_TO_CHECKPOINT, predicate="debit.stands")
    steps = [s.model_copy(update={"checkpoint": s.name == "debit"}) for s in saga.steps]
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.order == ["do:debit", "do:convert", "undo:convert"]
    view = engine.inspect(result.saga_id)
    assert view.checkpoint == "debit" and view.rollbacks[0].scope == "checkpoint:debit"
    assert view.step("debit").status is StepStatus.COMPLETED


def test_recovering_worker_without_the_handlers_is_told_what_is_missing(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    saga_id = _crash_run(store, clock, world, "convert", after_effect=False)
    clock.advance(6)
    empty = Engine(Registry(), store, clock=clock, heartbeat=False)
    with pytest.raises(PlanError, match="action 'debit' is not a registered action"):
        empty.recover(saga_id)
    # The failed takeover gives the lease back at once: a capable worker proceeds.
    capable = Engine(_same_names(world, "convert.crash"), store, clock=clock, heartbeat=False)
    assert capable.recover(saga_id).status is SagaStatus.COMPENSATED
