"""Every failure point of each payments workflow, forward and in compensation (AG-384 4.8).

Besides the saga status, each run is checked in the domain: after a failed action
nothing the saga did is left standing (balances, holds, payments, stock, POs,
bookings, notices); after a failed compensation the failing step's effect is
still there for the human, named in the escalation report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reversa import Registry, SagaStatus, Store
from reversa.adapters.payments import UNDO_CODES, PaymentStatus, PendingState, TransferKind
from reversa.core.context import key_prefix
from reversa.demos.payments import (
    PaymentsWorld,
    build_world,
    cross_border,
    mt103,
    procurement,
    registry,
)
from reversa.testing import FailurePoint, expected_status, failure_points, run_failure_point

from .helpers import make_engine, restored


def step_of(saga_id: str, key: str) -> str:
    """The step whose key ``key`` is (or extends), found by each step's key prefix."""
    steps = ("reserve", "create_po", "notify_logistics", "pay", "confirm_shipment", "debit",
             "convert", "credit_partner", "credit_nostro", "mt103", "update_ledger", "confirm")
    return next(s for s in steps if key.startswith(key_prefix(saga_id, s)))


def ledger_residue(world: PaymentsWorld, saga_id: str) -> set[str]:
    """Steps whose ledger effect still stands (not voided, not fully corrected)."""
    ledger = world.ledger
    prefix = key_prefix(saga_id)
    out: set[str] = set()
    for t in ledger.find_transfers(prefix=prefix):
        if t.corrects or t.code in UNDO_CODES or t.kind in (TransferKind.POST,
                                                            TransferKind.VOID):
            continue
        posted = t.amount
        owner = step_of(saga_id, t.id)
        if t.kind == TransferKind.PENDING:
            if t.state == PendingState.PENDING:
                out.add(owner)
                continue
            posts = [p for p in ledger.find_transfers(pending_id=t.id)
                     if p.kind == TransferKind.POST]
            posted = sum(p.amount for p in posts)
            owner = step_of(saga_id, posts[0].id) if posts else owner
        if sum(c.amount for c in ledger.find_transfers(corrects=t.id)) != posted:
            out.add(owner)
    for pay in ledger.payments():
        if pay.id.startswith(prefix) and pay.status in (
                PaymentStatus.ACCEPTED, PaymentStatus.SETTLED):
            out.add(step_of(saga_id, pay.id))
    notices = [n for n in world.counterparties.outbox if n["key"].startswith(prefix)]
    if [n["kind"] for n in notices] == ["confirmation"]:
        out.add(step_of(saga_id, notices[0]["key"]))
    return out


def procurement_residue(world: PaymentsWorld, saga_id: str) -> set[str]:
    parties = world.counterparties
    out = ledger_residue(world, saga_id)
    if parties.stock["WIDGET-500"]["reserved"]:
        out.add("reserve")
    if any(o["status"] == "open" for o in parties.orders.values()):
        out.add("create_po")
    if any(b["status"] == "planned" for b in parties.bookings.values()):
        out.add("notify_logistics")
    events = [w["event"] for w in parties.webhooks]
    if "shipment.confirmed" in events and "shipment.cancelled" not in events:
        out.add("confirm_shipment")
    return out


STORIES: dict[str, tuple[Callable[[Registry], Any], dict[str, Any],
                         Callable[[], PaymentsWorld],
                         Callable[[PaymentsWorld, str], set[str]]]] = {
    "ag166a": (procurement.saga, procurement.INPUT, build_world, procurement_residue),
    "ag166c": (cross_border.saga, {**cross_border.INPUT, "beneficiary": "Partner Bank AG"},
               lambda: build_world(gbp_eur=cross_border.GBP_EUR), ledger_residue),
    "ag384a": (mt103.saga, mt103.INPUT, lambda: build_world(gbp_eur=mt103.GBP_EUR),
               ledger_residue),
}

# A posted hold is corrected by its *posting's* compensation; when the hold's own
# compensation then fails, nothing of it is left standing (the saga still escalates).
NEUTRALISED_BY_LATER_UNDO = {("ag384a", "debit")}

CASES = [
    pytest.param(story, point, id=f"{story}-{point}")
    for story, (make, *_rest) in STORIES.items()
    for point in failure_points(make(registry()))
]


@pytest.mark.parametrize(("story", "point"), CASES)
def test_failure_point(story: str, point: FailurePoint, sqlite_store: Store) -> None:
    make, saga_input, new_world, residue = STORIES[story]
    reg = registry()
    saga = make(reg)
    world = new_world()
    before = world.balances()
    before_parties = world.counterparties.state("WIDGET-500", procurement.INPUT["supplier"])
    engine = make_engine(reg, sqlite_store, world)
    result = run_failure_point(engine, saga, point, input=saga_input)
    assert result.status is expected_status(saga, point)
    left = residue(world, result.saga_id)
    if point.phase == "action":
        assert left == set(), f"effects left standing after {point}: {left}"
        assert restored(world, before) == {}
        assert world.counterparties.state("WIDGET-500", procurement.INPUT["supplier"]) == \
            before_parties
        if result.status is SagaStatus.COMPENSATED:
            assert (result.rollback or {})["predicate"]["ok"]
        return
    if (story, point.step) in NEUTRALISED_BY_LATER_UNDO:
        assert point.step not in left
    else:
        assert point.step in left, f"{point.step} looks undone although its compensation failed"
    view = engine.inspect(result.saga_id)
    report = view.escalations[-1].report
    standing = {s["step"] for s in report["steps"] if s["effect_remains"]}
    assert left <= standing | {point.trigger}, (left, standing)
    assert sqlite_store.verify_audit(result.saga_id).ok
