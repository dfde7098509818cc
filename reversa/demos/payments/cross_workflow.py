"""Two workflows on the same money (issue 15): A's FX conversion funds B's payout.

Saga A (:data:`FUNDING`) debits a customer's pounds into the GBP holding account,
converts them to euros into the EUR holding account, then credits a partner bank
that screens the beneficiary. While the partner bank screens, saga B
(:data:`PAYOUT`) pays part of those euros out of the EUR holding account to the
nostro. The partner bank rejects the credit: A must roll back, and its euros
are gone. A's workflow cascades: B is assessed (the dry-run of its rollback),
rolled back first, then A's conversion is reversed and the debit corrected;
both sagas' predicates hold.

The link is found from resources: ``payments.fx_convert`` *produces* into its
``to_account`` and ``payments.transfer`` *consumes* its ``debit`` account.

:func:`drifting_payout` is the reconciliation story's saga: a transfer that
completes, after which someone books it back by hand.
"""

from __future__ import annotations

from typing import Any

from reversa.adapters.payments.consistency import LedgerConsistency, LedgerSnapshot
from reversa.adapters.payments.fx_ops import FxConvert
from reversa.adapters.payments.ledger_ops import LedgerTransfer
from reversa.adapters.payments.payment_ops import payment_step
from reversa.adapters.payments.rails import Rail
from reversa.core.model import Escalation, OnDependents, Saga
from reversa.core.registry import Registry

from .cross_border import SANCTIONED

__all__ = ["FUNDING", "FUNDING_INPUT", "PAYOUT", "PAYOUT_INPUT", "funding", "payout",
           "register"]

FUNDING = "payments.xwf.funding"
PAYOUT = "payments.xwf.payout"
FUNDING_INPUT: dict[str, Any] = {"sender": "cust:alice", "amount": "10000.00",
                                 "beneficiary": SANCTIONED, "reference": "XWF-1"}
PAYOUT_INPUT: dict[str, Any] = {"amount": "5000.00", "reference": "XWF-PAYOUT"}

_FUNDING_SNAPSHOT = LedgerSnapshot(
    accounts=("hold:GBP", "hold:EUR", "fx:GBP", "fx:EUR", "fx_pnl:GBP"),
    input_accounts=("sender",))
_PAYOUT_SNAPSHOT = LedgerSnapshot(accounts=("hold:EUR", "nostro:EUR"))


def register(registry: Registry) -> None:
    """Register both workflows' snapshots and predicates."""
    registry.snapshot(f"{FUNDING}.snapshot")(_FUNDING_SNAPSHOT)
    registry.predicate(f"{FUNDING}.predicate")(LedgerConsistency())
    registry.snapshot(f"{PAYOUT}.snapshot")(_PAYOUT_SNAPSHOT)
    registry.predicate(f"{PAYOUT}.predicate")(LedgerConsistency())


def funding(registry: Registry, *, policy: OnDependents = OnDependents.CASCADE,
            app: str | None = None, services: str | None = None) -> Saga:
    """Saga A: debit, convert to EUR, credit the partner bank (which screens)."""
    steps = [
        registry.step("debit", LedgerTransfer.name, params={
            "debit": "$input.sender", "credit": "hold:GBP", "amount": "$input.amount",
            "currency": "GBP", "code": "debit", "reference": "$input.reference"}),
        registry.step("convert", FxConvert.name, depends_on=("debit",), params={
            "sell_currency": "GBP", "buy_currency": "EUR", "amount": "$input.amount",
            "from_account": "hold:GBP", "to_account": "hold:EUR"}),
        payment_step(
            registry, "credit_partner", rail=Rail.TARGET2, depends_on=("convert",),
            escalation=Escalation(reason="TARGET2 settles final"),
            params={"debit_account": "hold:EUR", "amount": "$results.convert.buy_amount_major",
                    "currency": "EUR", "beneficiary": "$input.beneficiary",
                    "reference": "$input.reference"}),
    ]
    return Saga(workflow=FUNDING, steps=tuple(steps), snapshot=f"{FUNDING}.snapshot",
                predicate=f"{FUNDING}.predicate", app=app, services=services,
                max_rollback_cost={"GBP": 2_000.0}, on_dependents=policy)


def payout(registry: Registry, *, app: str | None = None, services: str | None = None,
           hold_wait_s: float = 0.0) -> Saga:
    """Saga B: pay euros out of the EUR holding account to the nostro."""
    step = registry.step("payout", LedgerTransfer.name, params={
        "debit": "hold:EUR", "credit": "nostro:EUR", "amount": "$input.amount",
        "currency": "EUR", "code": "payout", "reference": "$input.reference"})
    return Saga(workflow=PAYOUT, steps=(step,), snapshot=f"{PAYOUT}.snapshot",
                predicate=f"{PAYOUT}.predicate", app=app, services=services,
                hold_wait_s=hold_wait_s)
