"""AG-384 scenario A: cross-border payment whose SWIFT MT103 submission times out.

Steps: ``debit`` (a hold on the sender's £142,000), ``convert`` (GBP -> EUR),
``credit_nostro`` (EUR holding -> nostro, ~€161,470), ``mt103`` (SWIFT payment
from the nostro: cancellable until settlement, recall after), ``update_ledger``
(post the sender's hold), ``confirm`` (notice to the sender).

The MT103 gateway times out on every attempt, although the first attempt did
reach the correspondent: the step is in doubt, the probe finds the payment, and
the rollback cancels it before settlement, corrects the nostro credit, reverses
the conversion (cost estimated by the dry-run before, realized cost recorded
after, booked to FX P&L) and voids the hold.

If the reversal would cost more than the policy allows, the dry-run is
infeasible: the declared safe state (cancel every payment still in flight) is
reached and a human decides.
"""

from __future__ import annotations

from typing import Any

from reversa.adapters.payments.consistency import LedgerConsistency, LedgerSnapshot
from reversa.adapters.payments.fx_ops import FxConvert
from reversa.adapters.payments.ledger_ops import LedgerHold, LedgerTransfer, PostHold
from reversa.adapters.payments.payment_ops import CancelInFlightPayments, payment_step
from reversa.adapters.payments.procurement import SendNotice
from reversa.adapters.payments.rails import Rail
from reversa.core.model import CompensationKind, Retry, Saga
from reversa.core.registry import Registry

__all__ = ["GBP_EUR", "INPUT", "WORKFLOW", "register", "saga"]

WORKFLOW = "payments.ag384a.mt103"
GBP_EUR = 1.13783
"""Mid at which GBP 142,000 buys about EUR 161,470 after depth and fees."""
INPUT: dict[str, Any] = {
    "sender": "cust:alice", "amount": "142000.00", "beneficiary": "Kessler Maschinenbau GmbH",
    "reference": "PO-77120",
}

SNAPSHOT = LedgerSnapshot(
    accounts=("hold:GBP", "hold:EUR", "nostro:EUR", "fx:GBP", "fx:EUR", "fx_pnl:GBP",
              "clearing:swift_mt103:EUR"),
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
    mt103_attempts: int = 2,
    app: str | None = None,
    services: str | None = None,
) -> Saga:
    """The saga definition (``registry`` must hold the payments operations)."""
    policy = {} if max_reversal_cost_bps is None else {
        "max_reversal_cost_bps": max_reversal_cost_bps}
    eur = "$results.convert.buy_amount_major"
    steps = [
        registry.step("debit", LedgerHold.name, params={
            "debit": "$input.sender", "credit": "hold:GBP", "amount": "$input.amount",
            "currency": "GBP", "timeout_s": 86_400, "reference": "$input.reference"}),
        registry.step("convert", FxConvert.name, depends_on=("debit",), params={
            "sell_currency": "GBP", "buy_currency": "EUR", "amount": "$input.amount",
            "from_account": "hold:GBP", "to_account": "hold:EUR", **policy}),
        registry.step("credit_nostro", LedgerTransfer.name, depends_on=("convert",), params={
            "debit": "hold:EUR", "credit": "nostro:EUR", "amount": eur, "currency": "EUR",
            "code": "nostro_funding", "reference": "$input.reference"}),
        payment_step(
            registry, "mt103", rail=Rail.SWIFT, depends_on=("credit_nostro",),
            retry=Retry(max_attempts=mt103_attempts),
            params={"debit_account": "nostro:EUR", "amount": eur, "currency": "EUR",
                    "beneficiary": "$input.beneficiary", "reference": "$input.reference"},
        ),
        registry.step("update_ledger", PostHold.name, depends_on=("mt103",),
                      params={"hold": "$results.debit.transfer_id"}),
        registry.step("confirm", SendNotice.name, depends_on=("update_ledger",),
                      compensation_kind=CompensationKind.SEMANTIC,
                      params={"to": "$input.sender",
                              "text": "Your cross-border payment was sent."}),
    ]
    return Saga(
        workflow=WORKFLOW, steps=tuple(steps), snapshot=f"{WORKFLOW}.snapshot",
        predicate=f"{WORKFLOW}.predicate", safe_state=CancelInFlightPayments.name, app=app,
        services=services,
        max_rollback_cost={"GBP": 5_000.0},
    )
