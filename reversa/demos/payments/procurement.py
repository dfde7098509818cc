"""AG-166 scenario A: reserve 500 units, create a PO, pay GBP 47,500, confirm shipment.

Steps: ``reserve`` (warehouse) -> ``create_po`` (ERP) -> ``notify_logistics``
(the logistics partner's pre-step capacity webhook) and ``pay`` (card-gateway
payment: authorised, voidable until settlement) -> ``confirm_shipment``.

The payment gateway times out twice. The payment step is in doubt; its probe
asks the ledger whether a payment with that key exists. The rollback runs in
reverse dependency order: the payment (voided if it did go through) and a
cancellation webhook to the logistics partner, then the PO, then the
reservation. The predicate confirms stock, PO and ledger are as before and that
the partner received a cancellation for every notice.
"""

from __future__ import annotations

from typing import Any

from reversa.adapters.payments.consistency import LedgerConsistency, LedgerSnapshot
from reversa.adapters.payments.ledger_api import LedgerAPI
from reversa.adapters.payments.payment_ops import payment_step
from reversa.adapters.payments.procurement import (
    ConfirmShipment,
    CreatePurchaseOrder,
    NotifyLogistics,
    ReserveStock,
)
from reversa.adapters.payments.rails import Rail
from reversa.core.context import (
    Check,
    PredicateContext,
    SnapshotContext,
    key_prefix,
    lookup_service,
)
from reversa.core.model import CompensationKind, Escalation, Retry, Saga
from reversa.core.registry import Registry
from reversa.simulators.counterparties import Counterparties

__all__ = ["INPUT", "WORKFLOW", "register", "saga"]

WORKFLOW = "payments.ag166a.procurement"
INPUT: dict[str, Any] = {
    "sku": "WIDGET-500", "qty": 500, "supplier": "Northwind Components Ltd",
    "amount": "47500.00", "account": "ops:GBP",
}

LEDGER = LedgerSnapshot(accounts=("clearing:card:GBP",), input_accounts=("account",))


def snapshot(ctx: SnapshotContext) -> dict[str, Any]:
    """Ledger balances plus stock, open POs and live logistics bookings."""
    parties = lookup_service(ctx.services, "counterparties", Counterparties,
                             where=f"snapshot of {WORKFLOW!r}")
    state = parties.state(str(ctx.input["sku"]), str(ctx.input["supplier"]))
    return {**LEDGER(ctx), **state}


def predicate(ctx: PredicateContext) -> Check:
    """Stock, PO and ledger restored; every logistics notice has its cancellation."""
    pre, post = ctx.pre_state or {}, ctx.post_state or {}
    problems = []
    for key, what in (("stock", "stock"), ("open_pos", "open purchase orders"),
                      ("logistics_bookings", "logistics capacity bookings")):
        if pre.get(key) != post.get(key):
            problems.append(f"{what} not restored: {pre.get(key)} -> {post.get(key)}")
    parties = lookup_service(ctx.services, "counterparties", Counterparties,
                             where=f"predicate of {WORKFLOW!r}")
    events = [w for w in parties.webhooks if w["key"].startswith(key_prefix(ctx.saga_id))]
    planned = {w["key"] for w in events if w["event"] == "capacity.planned"}
    cancelled = {w["key"] for w in events if w["event"] == "capacity.cancelled"}
    if planned - cancelled:
        problems.append(f"logistics partner never told of cancellation: {sorted(planned)}")
    ledger = LedgerConsistency().evaluate(
        ctx.saga_id, pre, post, lookup_service(ctx.services, "ledger", LedgerAPI,
                                               where=f"predicate of {WORKFLOW!r}"))
    if not ledger.ok:
        problems.append(ledger.reason)
    if problems:
        return Check(False, "; ".join(problems), {"problems": problems})
    return Check(True, "stock, purchase orders and ledger balances restored; the logistics "
                 f"partner received {len(cancelled)} cancellation(s)",
                 {"cancelled_notices": sorted(cancelled)})


def register(registry: Registry) -> None:
    """Register this story's snapshot and predicate."""
    registry.snapshot(f"{WORKFLOW}.snapshot")(snapshot)
    registry.predicate(f"{WORKFLOW}.predicate")(predicate)


def saga(registry: Registry, *, rail: Rail = Rail.CARD, pay_attempts: int = 2,
         app: str | None = None, services: str | None = None) -> Saga:
    """The saga definition (``registry`` must hold the payments operations)."""
    steps = [
        registry.step("reserve", ReserveStock.name,
                      params={"sku": "$input.sku", "qty": "$input.qty"}),
        registry.step("create_po", CreatePurchaseOrder.name, depends_on=("reserve",), params={
            "supplier": "$input.supplier", "sku": "$input.sku", "qty": "$input.qty",
            "amount": "$input.amount"}),
        registry.step("notify_logistics", NotifyLogistics.name, depends_on=("create_po",),
                      compensation_kind=CompensationKind.SEMANTIC,
                      params={"po": "$results.create_po.po", "qty": "$input.qty"}),
        payment_step(
            registry, "pay", rail=rail, depends_on=("create_po",),
            retry=Retry(max_attempts=pay_attempts),
            escalation=Escalation(reason="supplier payment is final; recall it by hand")
            if rail not in (Rail.CARD, Rail.INTERNAL, Rail.SWIFT) else None,
            params={"debit_account": "$input.account", "amount": "$input.amount",
                    "currency": "GBP", "beneficiary": "$input.supplier",
                    "reference": "$results.create_po.po"},
        ),
        registry.step("confirm_shipment", ConfirmShipment.name,
                      depends_on=("pay", "notify_logistics"),
                      compensation_kind=CompensationKind.SEMANTIC,
                      params={"po": "$results.create_po.po"}),
    ]
    return Saga(workflow=WORKFLOW, steps=tuple(steps), snapshot=f"{WORKFLOW}.snapshot",
                predicate=f"{WORKFLOW}.predicate", app=app, services=services)
