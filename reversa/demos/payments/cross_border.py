"""AG-166 scenario C: debit GBP 100,000, convert to EUR, credit a partner bank that
rejects on sanctions screening; the rollback must survive the agent dying.

Steps: ``debit`` (posted transfer sender -> GBP holding), ``convert`` (GBP -> EUR
at the venue, legs into the EUR holding), ``credit_partner`` (TARGET2 payment:
final on execution, so irreversible with an escalation policy). The partner
bank's screening rejects the credit (a definite refusal: nothing to undo
there); the conversion is reversed at the cost the dry-run estimated and the
debit is corrected, exactly once even when a second process finishes it.
"""

from __future__ import annotations

from typing import Any

from reversa.adapters.payments.consistency import LedgerConsistency, LedgerSnapshot
from reversa.adapters.payments.fx_ops import FxConvert
from reversa.adapters.payments.ledger_ops import LedgerTransfer
from reversa.adapters.payments.payment_ops import payment_step
from reversa.adapters.payments.rails import Rail
from reversa.core.model import Escalation, Saga
from reversa.core.registry import Registry

__all__ = ["GBP_EUR", "INPUT", "SANCTIONED", "WORKFLOW", "register", "saga"]

WORKFLOW = "payments.ag166c.cross_border"
GBP_EUR = 1.16466
"""Mid at which GBP 100,000 buys about EUR 116,400 after depth and fees."""
SANCTIONED = "Oblast Trading LLC"
INPUT: dict[str, Any] = {
    "sender": "cust:bob", "amount": "100000.00", "beneficiary": SANCTIONED,
    "reference": "INV-2291",
}

SNAPSHOT = LedgerSnapshot(
    accounts=("hold:GBP", "hold:EUR", "fx:GBP", "fx:EUR", "fx_pnl:GBP"),
    input_accounts=("sender",),
)


def register(registry: Registry) -> None:
    """Register this story's snapshot and predicate."""
    registry.snapshot(f"{WORKFLOW}.snapshot")(SNAPSHOT)
    registry.predicate(f"{WORKFLOW}.predicate")(LedgerConsistency())


def saga(
    registry: Registry,
    *,
    max_reversal_cost_bps: float | None = None,
    app: str | None = None,
    services: str | None = None,
) -> Saga:
    """The saga definition (``registry`` must hold the payments operations)."""
    policy = {} if max_reversal_cost_bps is None else {
        "max_reversal_cost_bps": max_reversal_cost_bps}
    steps = [
        registry.step("debit", LedgerTransfer.name, params={
            "debit": "$input.sender", "credit": "hold:GBP", "amount": "$input.amount",
            "currency": "GBP", "code": "debit", "reference": "$input.reference"}),
        registry.step("convert", FxConvert.name, depends_on=("debit",), params={
            "sell_currency": "GBP", "buy_currency": "EUR", "amount": "$input.amount",
            "from_account": "hold:GBP", "to_account": "hold:EUR", **policy}),
        payment_step(
            registry, "credit_partner", rail=Rail.TARGET2, depends_on=("convert",),
            escalation=Escalation(reason=(
                "TARGET2 settles final: once credited, only a recall the partner bank may "
                "refuse can bring the euros back")),
            params={"debit_account": "hold:EUR", "amount": "$results.convert.buy_amount_major",
                    "currency": "EUR", "beneficiary": "$input.beneficiary",
                    "reference": "$input.reference"},
        ),
    ]
    return Saga(
        workflow=WORKFLOW, steps=tuple(steps), snapshot=f"{WORKFLOW}.snapshot",
        predicate=f"{WORKFLOW}.predicate", app=app, services=services,
        max_rollback_cost={"GBP": 2_000.0},
    )
