"""Four-eyes by rollback cost (every backend): a resolution judged on the cost its
escalated rollback recorded, an operator rollback on a cost estimated now; both
identities end up in the saga's chain."""

from __future__ import annotations

import json
from typing import Any

from reversa import (
    Approval,
    ApprovalStatus,
    CostEstimate,
    Engine,
    FakeClock,
    FourEyes,
    Registry,
    SagaResult,
    SagaStatus,
    Store,
    TransientError,
)
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

POLICY = {"transfer": FourEyes(min_value={"GBP": 10000}, min_rollback_cost={"GBP": 1000})}


def _events(store: Store, saga_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e["event"], e["outcome"], json.loads(e["detail_json"]))
            for e in store.rows("audit", saga_id=saga_id)]


def _costly(world: World, gbp: float) -> tuple[Registry, Any]:
    """The transfer saga whose ``convert`` step costs ``gbp`` GBP to reverse."""
    reg = transfer_registry(world)
    reg.add("cost", "fx.reversal_cost", lambda ctx: CostEstimate(gbp, "GBP"))
    saga = chain_saga()
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"cost": "fx.reversal_cost"})
    return reg, saga.model_copy(update={"steps": tuple(steps)})


def _engine(store: Store, clock: FakeClock, reg: Registry, **kw: Any) -> Engine:
    return Engine(reg, store, clock=clock, heartbeat=False, **kw)


def test_resolution_of_a_costly_rollback_needs_a_second_identity(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("FX venue down")] * FAST.max_attempts
    reg, saga = _costly(world, 3800.0)
    engine = _engine(store, clock, reg, governance=POLICY)
    # The value (50 GBP) is far below its threshold: only the recorded cost applies.
    escalated = engine.run(saga, {"amount": 50, "currency": "GBP"})
    assert escalated.status is SagaStatus.ESCALATED and escalated.escalation_id is not None
    proposal = engine.resolve(escalated.escalation_id, action="retry", author="user:alice",
                              note="venue is back")
    assert isinstance(proposal, Approval)
    assert "rollback cost 3800 GBP" in proposal.reason
    assert engine.inspect(escalated.saga_id).status is SagaStatus.ESCALATED
    done = engine.approve(proposal.id, by="user:bob", note="checked the spread")
    assert done.status is ApprovalStatus.EXECUTED
    assert engine.inspect(escalated.saga_id).status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    # Both identities are in the chain, with the resolution's time, in order.
    chain = _events(store, escalated.saga_id)
    asked = next(d for e, _, d in chain if e == "approval_requested")
    decided = next(d for e, _, d in chain if e == "approval_decided")
    resolved = next(d for e, _, d in chain if e == "escalation_resolved")
    assert (asked["by"], asked["approval"]) == ("user:alice", proposal.id)
    assert (decided["by"], decided["approval"]) == ("user:bob", proposal.id)
    assert resolved["author"] == "user:alice" and resolved["approved_by"] == ["user:bob"]
    assert resolved["resolved_at"] == engine.inspect(escalated.saga_id).escalations[0].resolved_at
    assert store.verify_audit(escalated.saga_id).ok
    engine.close()


def test_cheap_recorded_rollback_resolves_at_once(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("FX venue down")] * FAST.max_attempts
    reg, saga = _costly(world, 40.0)
    engine = _engine(store, clock, reg, governance=POLICY)
    escalated = engine.run(saga, {"amount": 50, "currency": "GBP"})
    assert escalated.escalation_id is not None
    result = engine.resolve(escalated.escalation_id, action="retry", author="user:alice")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.COMPENSATED
    engine.close()


def test_operator_rollback_of_a_completed_saga_is_judged_on_its_cost_now(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    reg, saga = _costly(world, 3800.0)
    agent = _engine(store, clock, reg)
    done = agent.run(saga, {"amount": 50, "currency": "GBP"})
    assert done.status is SagaStatus.COMPLETED and not store.rows("rollbacks")
    console = _engine(store, clock, reg, governance=POLICY, owner="console")
    pending = console.request_rollback(done.saga_id, by="user:olga", reason="duplicate order")
    assert isinstance(pending, Approval) and pending.kind == "rollback"
    assert "rollback cost 3800 GBP" in pending.reason
    # The estimate ran no compensation: the money is still where the saga put it.
    assert world.balances == {"a": 90, "b": 10, "c": 10}
    assert store.load(done.saga_id)[0]["status"] == "completed"
    console.approve(pending.id, by="user:bob", note="agreed")
    assert store.load(done.saga_id)[0]["status"] == "compensated"
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    chain = _events(store, done.saga_id)
    requested = [d for e, _, d in chain if e == "rollback_requested"]
    assert requested and requested[0]["by"] == "user:olga"
    assert [d["by"] for e, _, d in chain if e == "approval_decided"] == ["user:bob"]
    assert store.verify_audit(done.saga_id).ok
    agent.close()
    console.close()


def test_cheap_operator_rollback_runs_at_once(store: Store, clock: FakeClock) -> None:
    world = World()
    reg, saga = _costly(world, 40.0)
    done = _engine(store, clock, reg).run(saga, {"amount": 50, "currency": "GBP"})
    console = _engine(store, clock, reg, governance=POLICY, owner="console")
    result = console.request_rollback(done.saga_id, by="user:olga", reason="duplicate order")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.COMPENSATED
    console.close()


def test_a_cost_that_cannot_be_estimated_needs_a_second_identity(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    reg, saga = _costly(world, 40.0)
    done = _engine(store, clock, reg).run(saga, {"amount": 50, "currency": "GBP"})
    # A console without the workflow's code cannot estimate what undoing it costs.
    console = _engine(store, clock, Registry(), governance=POLICY, owner="console")
    pending = console.request_rollback(done.saga_id, by="user:olga", reason="duplicate order")
    assert isinstance(pending, Approval)
    assert "could not be estimated" in pending.reason
    assert store.load(done.saga_id)[0]["status"] == "completed"
    console.close()
