"""Approvals: held starts, four-eyes resolutions, identities in the chain (every backend)."""

from __future__ import annotations

import json

import pytest

from reversa import (
    Approval,
    ApprovalStatus,
    ConfigError,
    Engine,
    FakeClock,
    FourEyes,
    Inspector,
    SagaResult,
    SagaStatus,
    Store,
    TransientError,
    Worker,
)
from reversa.core.governance import load_policy
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


def _events(store: Store, saga_id: str) -> list[tuple[str, str, dict[str, object]]]:
    return [(e["event"], e["outcome"], json.loads(e["detail_json"]))
            for e in store.rows("audit", saga_id=saga_id)]


def _engine(store: Store, clock: FakeClock, world: World, **kw: object) -> Engine:
    return Engine(transfer_registry(world), store, clock=clock, heartbeat=False, **kw)  # type: ignore[arg-type]


def test_submit_without_reason_runs_and_records_who(store: Store, clock: FakeClock) -> None:
    world = World()
    result = _engine(store, clock, world).submit(chain_saga(), {"amount": 10},
                                                 by="agent:payments-bot")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.COMPLETED
    first = _events(store, result.saga_id)[0]
    assert first[0] == "plan_recorded" and first[2]["requested_by"] == "agent:payments-bot"


def test_held_start_runs_only_after_a_distinct_approver(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = _engine(store, clock, world)
    pending = engine.submit(chain_saga(), {"amount": 5000}, by="agent:bot",
                            approval_reason="amount above the agent's limit of 1000")
    assert isinstance(pending, Approval)
    assert (pending.kind, pending.status, pending.requested_by) == ("start", "pending",
                                                                   "agent:bot")
    saga_id = pending.saga_id
    assert engine.inspect(saga_id).status is SagaStatus.AWAITING_APPROVAL
    # Held: no worker claims it, no watchdog takes it, nothing ran.
    worker = Worker(transfer_registry(world), store, clock=clock, stall_after_s=1)
    clock.advance(10)
    assert worker.run_round().ended == []
    assert world.calls == {} and engine.inspect(saga_id).status is SagaStatus.AWAITING_APPROVAL
    with pytest.raises(ConfigError, match="cannot approve it"):
        engine.approve(pending.id, by="agent:bot")
    decided = engine.approve(pending.id, by="user:alice", note="checked the invoice")
    assert decided.status is ApprovalStatus.APPROVED and decided.approvers == ["user:alice"]
    assert engine.inspect(saga_id).status is SagaStatus.APPROVED
    with pytest.raises(ConfigError, match="already approved"):
        engine.approve(pending.id, by="user:carol")
    (ended,) = worker.run_round().ended
    worker.engine.close()
    assert ended.status is SagaStatus.COMPLETED and world.landed == [
        "do:debit", "do:convert", "do:credit"]
    assert engine.approvals(status="executed")[0].id == pending.id
    events = _events(store, saga_id)
    names = [e[0] for e in events]
    assert names[:3] == ["plan_recorded", "approval_requested", "approval_decided"]
    assert events[1][2]["approval"] == pending.id and events[1][2]["by"] == "agent:bot"
    assert events[2][2]["by"] == "user:alice" and "saga_started" in names
    # The snapshot is the world as it was when the saga started, not when it was asked.
    assert "snapshot_taken" in names and names.index("snapshot_taken") > 2
    assert store.verify_audit().ok


def test_rejected_start_ends_rejected_and_nothing_runs(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = _engine(store, clock, world)
    pending = engine.submit(chain_saga(), {}, by="agent:bot", approval_reason="new payee")
    assert isinstance(pending, Approval)
    with pytest.raises(ConfigError, match="needs a note"):
        engine.reject(pending.id, by="user:alice", note=" ")
    rejected = engine.reject(pending.id, by="user:alice", note="payee is on a watch list")
    assert rejected.status is ApprovalStatus.REJECTED
    view = engine.inspect(pending.saga_id)
    assert view.status is SagaStatus.REJECTED and "watch list" in (view.error or "")
    with pytest.raises(ConfigError, match="already rejected"):
        engine.approve(pending.id, by="user:bob")
    with pytest.raises(ConfigError, match="not approved"):
        engine.run_approved(pending.saga_id)
    assert world.calls == {}
    assert [e[0] for e in _events(store, pending.saga_id)][-2:] == ["approval_decided",
                                                                  "saga_rejected"]


def test_two_approvers_needed_when_required_is_two(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = _engine(store, clock, world)
    pending = engine.submit(chain_saga(), {}, by="agent:bot", approval_reason="large",
                            required=2)
    assert isinstance(pending, Approval)
    first = engine.approve(pending.id, by="user:alice")
    assert first.status is ApprovalStatus.PENDING
    assert engine.inspect(pending.saga_id).status is SagaStatus.AWAITING_APPROVAL
    assert engine.approve(pending.id, by="user:bob").status is ApprovalStatus.APPROVED
    result = engine.run_approved(pending.saga_id)
    assert result.status is SagaStatus.COMPLETED
    assert Inspector(store).approval(pending.id).approvers == ["user:alice", "user:bob"]


def _escalated(store: Store, clock: FakeClock, world: World,
               **kw: object) -> tuple[Engine, str, int]:
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = _engine(store, clock, world, **kw)
    result = engine.run(chain_saga(), {"amount": 12000, "currency": "GBP"})
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    return engine, result.saga_id, result.escalation_id


def test_four_eyes_resolution_needs_a_second_identity(store: Store, clock: FakeClock) -> None:
    world = World()
    policy = {"transfer": FourEyes(min_value={"GBP": 10000})}
    engine, saga_id, esc = _escalated(store, clock, world, governance=policy)
    proposal = engine.resolve(esc, action="retry", author="user:alice", note="FX is back")
    assert isinstance(proposal, Approval) and proposal.kind == "resolution"
    assert "12000 GBP" in proposal.reason and proposal.payload["action"] == "retry"
    # Nothing ran: the saga is still escalated, the escalation still open.
    assert engine.inspect(saga_id).status is SagaStatus.ESCALATED
    assert Inspector(store).escalation(esc).status == "open"
    with pytest.raises(ConfigError, match="waiting for approval"):
        engine.resolve(esc, action="mark_resolved", author="user:bob")
    with pytest.raises(ConfigError, match="cannot approve it"):
        engine.approve(proposal.id, by="user:alice")
    done = engine.approve(proposal.id, by="user:bob", note="agreed")
    assert done.status is ApprovalStatus.EXECUTED
    assert engine.inspect(saga_id).status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    resolved = [e for e in _events(store, saga_id) if e[0] == "escalation_resolved"]
    assert resolved[0][2]["author"] == "user:alice"
    assert resolved[0][2]["approved_by"] == ["user:bob"]
    escalation = Inspector(store).escalation(esc)
    assert (escalation.status, escalation.resolved_by) == ("resolved", "user:alice")
    assert store.verify_audit().ok


def test_below_threshold_resolution_runs_at_once(store: Store, clock: FakeClock) -> None:
    world = World()
    policy = {"*": FourEyes(min_value={"GBP": 50000})}
    engine, _, esc = _escalated(store, clock, world, governance=policy)
    result = engine.resolve(esc, action="mark_resolved", author="user:alice", note="by hand")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.RESOLVED


def test_rejected_resolution_leaves_the_escalation_open(store: Store, clock: FakeClock) -> None:
    world = World()
    engine, saga_id, esc = _escalated(store, clock, world,
                                      governance={"*": FourEyes(always=True)})
    proposal = engine.resolve(esc, action="mark_resolved", author="user:alice")
    assert isinstance(proposal, Approval)
    engine.reject(proposal.id, by="user:bob", note="not fixed yet")
    assert Inspector(store).escalation(esc).status == "open"
    assert engine.inspect(saga_id).status is SagaStatus.ESCALATED
    verdicts = [(e[1], e[2]["by"]) for e in _events(store, saga_id)
                if e[0] == "approval_decided"]
    assert verdicts == [("rejected", "user:bob")]
    # Once rejected, a new resolution may be proposed.
    again = engine.resolve(esc, action="mark_resolved", author="user:carol")
    assert isinstance(again, Approval) and again.id != proposal.id


def test_rollback_cost_threshold() -> None:
    policy = FourEyes(min_rollback_cost={"GBP": 10})
    assert policy.applies({}, {"GBP": 12.5}) is not None
    assert policy.applies({}, {"GBP": 9.0}) is None
    assert policy.applies({}, {"USD": 1e9}) is None
    nested = FourEyes(min_value={"*": 100}, value_field="payment.amount")
    assert nested.applies({"payment": {"amount": "150"}}, {}) is not None
    assert nested.applies({"payment": {"amount": "oops"}}, {}) is None


def test_policy_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "policy.toml"
    path.write_text('[four_eyes.transfer]\nmin_value = { GBP = 10000 }\n'
                    '[four_eyes."*"]\nalways = true\n')
    policy = load_policy(path)
    assert policy["transfer"].min_value == {"GBP": 10000}
    assert policy["*"].always
    path.write_text("[four_eyes.transfer]\nmin_valu = 3\n")
    with pytest.raises(ConfigError, match=r"min_valu"):
        load_policy(path)
    with pytest.raises(ConfigError, match="no policy file"):
        load_policy(path.with_name("missing.toml"))
