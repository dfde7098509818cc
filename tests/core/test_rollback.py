"""Rollback semantics: order, idempotency, atomic-or-escalated, windows, predicates."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reversa import (
    Check,
    CostEstimate,
    Engine,
    Escalation,
    FakeClock,
    OutcomeUnknown,
    PermanentError,
    Registry,
    Reversibility,
    Saga,
    SagaStatus,
    Step,
    StepContext,
    StepStatus,
    Store,
    TransientError,
)
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def engine(store: Store, world: World, clock: FakeClock) -> Engine:
    eng = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    yield eng
    eng.close()


def test_happy_path_completes(engine: Engine, world: World) -> None:
    result = engine.run(chain_saga(), {"ref": "T1"})
    assert result.status is SagaStatus.COMPLETED
    assert world.order == ["do:debit", "do:convert", "do:credit"]
    assert result.results["credit"] == {"label": "do:credit", "delta": {"c": 10}}
    assert engine.store.verify_audit().ok


def test_failure_compensates_completed_steps_in_reverse_order(
    engine: Engine, world: World
) -> None:
    world.fail["do:credit"] = reject("sanctions screening")
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
    assert world.order == ["do:debit", "do:convert", "undo:convert", "undo:debit"]
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    view = engine.inspect(result.saga_id)
    assert [s.status for s in view.steps] == [StepStatus.COMPENSATED, StepStatus.COMPENSATED,
                                              StepStatus.FAILED]


def test_rollback_record_holds_everything_ag384_4_5_requires(
    engine: Engine, world: World
) -> None:
    world.fail["do:credit"] = reject("partner bank rejects")
    result = engine.run(chain_saga())
    (record,) = engine.inspect(result.saga_id).rollbacks
    rec = record.record
    assert rec["failed_step"] == "credit"
    assert [c["step"] for c in rec["compensations"]] == ["convert", "debit"]
    assert rec["pre_state"] == {"balances": {"a": 100, "b": 0, "c": 0}}
    assert rec["post_state"] == rec["pre_state"]
    assert rec["predicate"]["ok"] is True
    assert rec["duration_s"] >= 0 and rec["finished_at"] >= rec["detected_at"]
    # The record itself is inside the hash chain, not only in a side table.
    entries = engine.store.rows("audit", saga_id=result.saga_id)
    assert any(e["event"] == "rollback_recorded" for e in entries)


def test_first_step_failure_ends_failed_and_consistent(engine: Engine, world: World) -> None:
    world.fail["do:debit"] = reject()
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.FAILED
    assert world.order == []
    assert result.rollback is not None and result.rollback["predicate"]["ok"] is True


def test_transient_errors_retry_with_backoff_on_the_injected_clock(
    engine: Engine, world: World, clock: FakeClock
) -> None:
    world.fail["do:convert"] = [TransientError("503"), TransientError("503")]
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPLETED
    assert clock.slept == [pytest.approx(0.01), pytest.approx(0.02)]
    view = engine.inspect(result.saga_id)
    attempts = [a for a in view.step("convert").history if a.phase == "action"]
    assert [a.outcome for a in attempts] == ["transient", "transient", "ok"]
    # Every retry carries the same idempotency key: the service can deduplicate.
    assert len(set(world.keys["convert:action"])) == 1


def test_retries_are_bounded(engine: Engine, world: World) -> None:
    world.fail["do:credit"] = TransientError("always down")
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
    assert engine.inspect(result.saga_id).step("credit").attempts == FAST.max_attempts


def test_timeout_is_in_doubt_and_compensated_with_the_same_key(
    store: Store, world: World, clock: FakeClock
) -> None:
    reg = transfer_registry(world)

    def slow_credit(ctx: Any) -> dict[str, Any]:
        result = world.effect(ctx, "do:credit", {"c": 10})  # the effect lands...
        time.sleep(0.3)  # ...but the reply is too late
        return result

    reg.add("action", "credit.slow", slow_credit)
    saga = chain_saga()
    steps = list(saga.steps)
    steps[2] = steps[2].model_copy(update={"action": "credit.slow", "timeout_s": 0.05,
                                           "retry": FAST.model_copy(update={"max_attempts": 1})})
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}  # the late effect was undone too
    assert "undo:credit" in world.order
    view = engine.inspect(result.saga_id)
    assert view.step("credit").status is StepStatus.COMPENSATED
    events = [e["event"] for e in store.rows("audit", saga_id=result.saga_id)]
    assert "in_doubt_resolved" in events


def test_in_doubt_failure_that_never_happened_is_not_compensated(
    engine: Engine, world: World
) -> None:
    world.fail["do:credit"] = OutcomeUnknown("gateway timeout")  # raised before any effect
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
    assert "undo:credit" not in world.order  # the probe said it never happened
    assert engine.inspect(result.saga_id).step("credit").status is StepStatus.SKIPPED


def test_failed_compensation_escalates_with_a_full_state_report(
    engine: Engine, world: World
) -> None:
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = TransientError("FX desk unreachable")
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.ESCALATED
    assert result.escalation_id is not None
    # Atomic or escalated: the rollback stopped at the failure, debit still stands.
    assert "undo:debit" not in world.order
    assert world.calls[f"rv:{result.saga_id}:convert:compensation"] == FAST.max_attempts
    (esc,) = engine.inspect(result.saga_id).escalations
    report = {s["step"]: s for s in esc.report["steps"]}
    assert report["convert"]["status"] == "compensation_failed"
    assert report["convert"]["error"] == "FX desk unreachable"
    assert report["debit"]["effect_remains"] is True
    assert esc.report["pre_state"] == {"balances": {"a": 100, "b": 0, "c": 0}}
    assert esc.report["current_state"] == {"balances": {"a": 90, "b": 10, "c": 0}}


def test_rerunning_a_partial_rollback_never_double_compensates(
    engine: Engine, world: World
) -> None:
    world.fail["do:credit"] = reject()
    world.fail["undo:debit"] = [TransientError("x")] * FAST.max_attempts
    first = engine.run(chain_saga())
    assert first.status is SagaStatus.ESCALATED
    assert world.order.count("undo:convert") == 1
    (esc,) = engine.inspect(first.saga_id).escalations
    retried = engine.resolve(esc.id, action="retry", author="ops@bank", note="FX back up")
    assert retried.status is SagaStatus.COMPENSATED
    assert world.order.count("undo:convert") == 1  # finished compensation skipped
    assert world.order.count("undo:debit") == 1
    assert world.balances == {"a": 100, "b": 0, "c": 0}


def test_infeasible_dry_run_escalates_before_touching_anything(
    store: Store, world: World, clock: FakeClock
) -> None:
    reg = transfer_registry(world)
    reg.add("precondition", "fx.market_open", lambda ctx: Check(False, "FX market closed"))
    saga = chain_saga()
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"preconditions": ("fx.market_open",)})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    assert not [o for o in world.order if o.startswith("undo:")]
    assert "FX market closed" in (engine.inspect(result.saga_id).escalations[0].reason)


def test_cost_over_limit_goes_to_a_human(store: Store, world: World, clock: FakeClock) -> None:
    reg = transfer_registry(world)
    reg.add("cost", "fx.reversal_cost",
            lambda ctx: CostEstimate(3800.0, "GBP", {"spread_bps": 27}))
    saga = chain_saga(max_rollback_cost={"GBP": 1000.0})
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"cost": "fx.reversal_cost"})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    assert result.status is SagaStatus.ESCALATED
    assert "3800 GBP exceeds" in engine.inspect(result.saga_id).escalations[0].reason
    report = engine.dry_run(result.saga_id)
    assert report.costs == {"GBP": 3800.0} and not report.feasible
    engine.close()


def test_rollback_window_stops_compensation_and_escalates(
    store: Store, world: World, clock: FakeClock
) -> None:
    reg = transfer_registry(world)

    def slow_undo(ctx: Any) -> Any:
        clock.advance(45)  # each attempt burns 45 s of the 60 s window
        raise TransientError("counterparty not answering")

    reg.add("compensation", "convert.slow_undo", slow_undo)
    saga = chain_saga(rollback_window_s=60)
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"compensation": "convert.slow_undo",
                                           "compensation_retry": FAST.model_copy(
                                               update={"max_attempts": 10})})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    assert engine.inspect(result.saga_id).step("convert").comp_attempts == 2
    assert "undo:debit" not in world.order  # no stale reversal after the window
    esc = engine.inspect(result.saga_id).escalations[0]
    assert esc.report["current_state"] is not None


def test_predicate_violation_escalates(store: Store, world: World, clock: FakeClock) -> None:
    reg = transfer_registry(world)

    def leaky_undo(ctx: Any) -> Any:
        return world.effect(ctx, "undo:convert", {"b": -9})  # leaves 1 unit behind

    reg.add("compensation", "convert.leaky", leaky_undo)
    saga = chain_saga(predicate="world.balanced")
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"compensation": "convert.leaky"})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    assert result.rollback is not None and result.rollback["predicate"]["ok"] is False


def test_unrecordable_result_is_in_doubt_and_undone(
    store: Store, world: World, clock: FakeClock
) -> None:
    reg = transfer_registry(world)

    def opaque_convert(ctx: Any) -> object:
        world.effect(ctx, "do:convert", {"b": 10})  # the effect happened...
        return object()  # ...but its result cannot be stored as JSON

    reg.add("action", "convert.opaque", opaque_convert)
    saga = chain_saga()
    steps = [s.model_copy(update={"action": "convert.opaque"}) if s.name == "convert" else s
             for s in saga.steps]
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.calls[f"rv:{result.saga_id}:convert:action"] == 1  # not retried blindly
    assert world.balances == {"a": 100, "b": 0, "c": 0}  # and the effect was undone
    assert "cannot be recorded" in (result.error or "")


def test_independent_branches_compensate_concurrently(store: Store, clock: FakeClock) -> None:
    reg = Registry()
    running: set[str] = set()
    overlap: list[set[str]] = []

    async def undo(ctx: Any) -> None:
        running.add(ctx.step)
        await asyncio.sleep(0.01)
        overlap.append(set(running))
        running.discard(ctx.step)

    reg.add("action", "noop", lambda ctx: None)
    reg.add("action", "boom", lambda ctx: (_ for _ in ()).throw(TransientError("x")))
    reg.add("compensation", "undo", undo)
    reg.add("snapshot", "s", lambda ctx: {})
    once = FAST.model_copy(update={"max_attempts": 1})
    saga = Saga(workflow="fanout", snapshot="s", steps=[
        Step(name="root", action="noop", compensation="undo"),
        Step(name="left", action="noop", compensation="undo", depends_on=("root",)),
        Step(name="right", action="noop", compensation="undo", depends_on=("root",)),
        Step(name="join", action="boom", compensation="undo", depends_on=("left", "right"),
             retry=once),
    ])
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga)
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert {"left", "right"} in overlap  # both branch compensations in flight together
    order = [c["step"] for c in result.rollback["compensations"]]  # type: ignore[index]
    assert order[-1] == "root"  # the shared parent is compensated last


def test_irreversible_step_with_escalation_policy(store: Store, world: World,
                                                  clock: FakeClock) -> None:
    reg = transfer_registry(world)
    saga = chain_saga(["debit", "notify", "convert", "credit"])
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={
        "compensation": None, "reversibility": Reversibility.IRREVERSIBLE,
        "escalation": Escalation(reason="customer SMS cannot be recalled")})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    # Everything reversible was still governed back before handing over.
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert "customer SMS cannot be recalled" in engine.inspect(result.saga_id).escalations[0].reason


def test_in_doubt_irreversible_step_that_never_happened_needs_no_human(
    store: Store, world: World, clock: FakeClock
) -> None:
    reg = transfer_registry(world)
    saga = chain_saga(["debit", "credit"])
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={
        "compensation": None, "reversibility": Reversibility.IRREVERSIBLE,
        "escalation": Escalation(reason="CHAPS is final on settlement")})
    world.fail["do:credit"] = OutcomeUnknown("CHAPS gateway timed out")  # before any effect
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED  # the probe said: never happened
    assert engine.inspect(result.saga_id).step("credit").status is StepStatus.SKIPPED
    assert world.balances == {"a": 100, "b": 0, "c": 0}


def test_irreversible_step_with_forward_recovery(store: Store, world: World,
                                                 clock: FakeClock) -> None:
    reg = transfer_registry(world)
    recovered: list[str] = []
    reg.add("action", "notify.send_followup", lambda ctx: recovered.append(ctx.idempotency_key))
    saga = chain_saga(["debit", "notify", "credit"])
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={
        "compensation": None, "reversibility": Reversibility.IRREVERSIBLE,
        "forward_recovery": "notify.send_followup"})
    world.fail["do:credit"] = reject()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert recovered == [f"rv:{result.saga_id}:notify:forward_recovery"]
    assert engine.inspect(result.saga_id).step("notify").outcome == "forward_recovered"


def test_an_attempt_in_doubt_keeps_the_step_in_doubt_after_a_later_rejection(
    store: Store,
) -> None:
    """Found by the simulator (reversa chaos --seed 206): the service booked attempt 1 but
    its answer was lost; attempt 2 was rejected, and the step was recorded as never having
    happened, so the rollback left attempt 1's effect standing."""
    world = World()
    reg = transfer_registry(world)
    attempts = {"n": 0}

    def credit_then_refused(ctx: StepContext) -> Any:
        attempts["n"] += 1
        if attempts["n"] == 1:
            world.effect(ctx, "do:credit", {"c": 10})
            raise OutcomeUnknown("the ledger booked it, then the reply was lost")
        raise PermanentError("the gateway refuses the retry")

    reg.add("action", "credit.flaky", credit_then_refused)
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": "credit.flaky"}) if s.name == "credit" else s
        for s in saga.steps)})
    engine = Engine(reg, store, clock=FakeClock(), heartbeat=False)
    result = engine.run(saga)
    engine.close()
    assert attempts["n"] == 2
    assert result.status is SagaStatus.COMPENSATED
    assert engine.inspect(result.saga_id).step("credit").outcome == "compensated"
    assert world.landed.count("undo:credit") == 1  # the booked credit was undone
    assert world.balances == {"a": 100, "b": 0, "c": 0}
