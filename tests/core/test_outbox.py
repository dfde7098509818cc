"""The notification outbox: rows written in the same commit as the event they announce."""

from __future__ import annotations

import json

import pytest

from reversa import (
    Approval,
    Engine,
    FakeClock,
    FourEyes,
    Inspector,
    SagaStatus,
    StoreError,
    TransientError,
)
from reversa.core.store import Store, governance
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


def _escalate(store: Store, clock: FakeClock, world: World, **kw: object) -> tuple[Engine, int]:
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False, **kw)  # type: ignore[arg-type]
    result = engine.run(chain_saga(), {"amount": 10})
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    return engine, result.escalation_id


def test_escalation_and_resolution_are_announced(store: Store, clock: FakeClock) -> None:
    engine, esc = _escalate(store, clock, World())
    (opened,) = Inspector(store).outbox(pending=True)
    assert opened.event == "escalation.opened" and opened.workflow == "transfer"
    assert opened.payload["data"]["escalation"] == esc
    assert opened.payload["idempotency_key"] == opened.idempotency_key
    assert opened.idempotency_key == f"rv:{opened.saga_id}:escalation.opened:{esc}"
    engine.resolve(esc, action="mark_resolved", author="user:alice", note="fixed by hand")
    events = [(e.event, e.payload["data"].get("author")) for e in Inspector(store).outbox()]
    assert events == [("escalation.opened", None), ("escalation.resolved", "user:alice")]


def test_approvals_are_announced(store: Store, clock: FakeClock) -> None:
    engine, esc = _escalate(store, clock, World(), governance={"*": FourEyes(always=True)})
    proposal = engine.resolve(esc, action="mark_resolved", author="user:alice")
    assert isinstance(proposal, Approval)
    engine.approve(proposal.id, by="user:bob")
    events = [e.event for e in Inspector(store).outbox()]
    assert events == ["escalation.opened", "approval.requested", "approval.decided",
                      "escalation.resolved"]
    keys = [e.idempotency_key for e in Inspector(store).outbox()]
    assert len(set(keys)) == len(keys)


def test_a_failed_commit_writes_neither_event_nor_notification(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: governance.Notify, cur: object, sqlite: bool, now: float) -> None:
        raise store._writer._dbapi_error("disk full")  # what a failing insert raises

    monkeypatch.setattr(governance.Notify, "apply", broken)
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    with pytest.raises(StoreError, match="disk full"):
        engine.run(chain_saga())
    # The escalation's commit failed as a whole: no escalation row, no entry saying
    # it escalated, no notification -- the saga is left as last recorded.
    (row,) = store.list_sagas()
    assert row["status"] == "compensating"
    assert store.rows("escalations") == [] and store.rows("outbox") == []
    assert "escalated" not in [e["event"] for e in store.rows("audit", saga_id=row["id"])]


def test_outbox_reads_are_read_only(store: Store, clock: FakeClock, db_url: str) -> None:
    _escalate(store, clock, World())
    with Inspector.open(db_url) as inspector:
        (entry,) = inspector.outbox()
        assert entry.delivered_at is None and entry.attempts == 0
        assert json.loads(json.dumps(entry.payload))["event"] == "escalation.opened"
        assert inspector.outbox(pending=False) == []
