"""Reviewing without the workflow's code, atomic resolutions, and the recorded origin."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reversa import (
    Engine,
    FakeClock,
    Inspector,
    LeaseLost,
    PlanError,
    Registry,
    SagaStatus,
    Store,
    StoreError,
    TransientError,
)
from reversa.core.engine.recovery import load_live
from reversa.core.plan import Plan, validate
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

APP = "tests.core.kit:transfer_registry"


def _escalated(
    store: Store, clock: FakeClock, world: World | None = None, **origin: str
) -> tuple[str, int]:
    world = world or World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(chain_saga(**origin))
    engine.close()
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    return result.saga_id, result.escalation_id


def test_mark_resolved_needs_no_handler(store: Store) -> None:
    clock = FakeClock()
    saga_id, esc_id = _escalated(store, clock)
    reviewer = Engine(Registry(), store, clock=clock, heartbeat=False)  # none of the code
    result = reviewer.resolve(esc_id, action="mark_resolved", author="alice", note="by hand")
    assert result.status is SagaStatus.RESOLVED
    esc = Inspector(store).escalation(esc_id)
    assert (esc.status, esc.resolution, esc.resolved_by) == ("resolved", "mark_resolved",
                                                             "alice")
    assert Inspector(store).audit(saga_id)[-1].event == "escalation_resolved"
    assert store.verify_audit().ok


def test_retry_without_the_handlers_changes_nothing(store: Store) -> None:
    clock, world = FakeClock(), World()
    _, esc_id = _escalated(store, clock, world)
    reviewer = Engine(Registry(), store, clock=clock, heartbeat=False)
    with pytest.raises(PlanError, match="not a registered"):
        reviewer.resolve(esc_id, action="retry", author="bob")
    assert Inspector(store).escalation(esc_id).status == "open"
    # The lease was handed straight back: a reviewer with the code can proceed.
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    assert engine.resolve(esc_id, action="retry", author="bob").status is SagaStatus.COMPENSATED


def test_a_resolution_that_cannot_be_committed_leaves_the_escalation_open(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    saga_id, esc_id = _escalated(store, clock)
    before = len(Inspector(store).audit(saga_id))
    real = store.write_batch

    def failing(*args: object, **kwargs: object) -> object:
        raise StoreError("disk full")

    monkeypatch.setattr(store, "write_batch", failing)
    engine = Engine(Registry(), store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(StoreError, match="disk full"):
        engine.resolve(esc_id, action="mark_resolved", author="carol")
    monkeypatch.setattr(store, "write_batch", real)
    # The escalation row, its audit entry and the saga's state moved together: none did.
    assert Inspector(store).escalation(esc_id).status == "open"
    assert len(Inspector(store).audit(saga_id)) == before
    assert Inspector(store).record(saga_id).status is SagaStatus.ESCALATED
    clock.advance(6)  # the failed reviewer's lease lapses; another one can resolve
    again = Engine(Registry(), store, clock=clock, heartbeat=False)
    assert again.resolve(esc_id, action="mark_resolved", author="carol").status == "resolved"
    assert store.verify_audit().ok


def test_a_resolution_of_an_escalation_no_longer_open_records_nothing(store: Store) -> None:
    clock = FakeClock()
    saga_id, esc_id = _escalated(store, clock)
    engine = Engine(Registry(), store, clock=clock, heartbeat=False)
    (claimed,) = store.claim("w", 30, saga_id=saga_id, force=True)
    live = load_live(engine._rt, saga_id, claimed[1], handlers=False)
    live.resolution = {"escalation": esc_id + 1, "resolution": "mark_resolved",
                       "author": "dave", "note": ""}
    live.log("escalation_resolved", "mark_resolved", escalation=esc_id + 1)
    with pytest.raises(LeaseLost, match="no longer open"):
        store.flush(live, clock.now())
    assert "escalation_resolved" not in [e.event for e in Inspector(store).audit(saga_id)]


def test_a_saga_records_its_registry_and_services(store: Store) -> None:
    saga_id, _ = _escalated(store, FakeClock(), app=APP, services="tests.core.kit:services")
    record = Inspector(store).record(saga_id)
    assert (record.app, record.services) == (APP, "tests.core.kit:services")
    assert record.plan["saga"]["services"] == "tests.core.kit:services"
    assert Inspector(store).saga(saga_id).services == "tests.core.kit:services"


def test_plans_without_services_keep_their_hash() -> None:
    plan = validate(chain_saga(app=APP), transfer_registry(World()))
    assert '"services"' not in plan.canonical  # as every plan stored before the field
    assert Plan.from_json(plan.canonical).hash == plan.hash
    with_services = validate(chain_saga(app=APP, services="pkg.mod:make"),
                             transfer_registry(World()))
    assert with_services.hash != plan.hash
    assert Plan.from_json(with_services.canonical).saga.services == "pkg.mod:make"


def test_a_malformed_services_path_is_rejected_at_definition() -> None:
    with pytest.raises(ValidationError, match="services"):
        chain_saga(services="not a path")
