"""Write your own payment saga with the payments adapter, against a ledger over HTTP.

A two-step workflow: hold a customer's funds, then pay a supplier over CHAPS. CHAPS
is final on execution, so ``payment_step`` classes the step irreversible and the
plan must say who handles it (an escalation policy). Here the supplier is on a
sanctions list: the payment is rejected, and the hold is voided.

Run: python examples/payments/own_payment_saga.py
"""

from __future__ import annotations

import sys
import tempfile

from reversa import Engine, Escalation, Saga, SagaStatus, Store
from reversa.adapters.payments import (
    LedgerConsistency,
    LedgerHold,
    LedgerSnapshot,
    Rail,
    payment_step,
    payments_registry,
    to_minor,
)
from reversa.simulators.ledger import MockLedger
from reversa.simulators.ledger.http import HttpLedgerClient, start_server


def main() -> int:
    ledger = MockLedger(sanctioned=["Shady Supplies Ltd"])
    ledger.open_account("cust:carol", "GBP", balance=to_minor("20000.00", "GBP"))
    ledger.open_account("hold:GBP", "GBP", "holding")

    reg = payments_registry()
    reg.snapshot("carol.snapshot")(LedgerSnapshot(accounts=["cust:carol", "hold:GBP"]))
    reg.predicate("carol.predicate")(LedgerConsistency())
    saga = Saga.chain("carol.pay_supplier", [
        reg.step("hold", LedgerHold.name, params={
            "debit": "cust:carol", "credit": "hold:GBP", "amount": "$input.amount",
            "currency": "GBP", "timeout_s": 3600}),
        payment_step(reg, "pay", rail=Rail.CHAPS,
                     escalation=Escalation(reason="CHAPS is final: recall by hand"),
                     params={"debit_account": "hold:GBP", "amount": "$input.amount",
                             "currency": "GBP", "beneficiary": "$input.supplier"}),
    ], snapshot="carol.snapshot", predicate="carol.predicate")
    print(f"step 'pay' is {saga.steps[1].reversibility} (rail {saga.steps[1].params['rail']})")

    with tempfile.TemporaryDirectory() as tmp, start_server(ledger) as server, \
            HttpLedgerClient(server.url) as client:
        store = Store.open(f"sqlite:///{tmp}/reversa.db")
        engine = Engine(reg, store, services={"ledger": client})
        result = engine.run(saga, {"amount": "12500.00", "supplier": "Shady Supplies Ltd"})
        engine.close()
        store.close()
    print(f"{result.status}: {result.error}")
    carol = ledger.get_account("cust:carol")
    print(f"carol: posted GBP {carol.posted / 100:,.2f}, pending {carol.pending / 100:,.2f}")
    return 0 if result.status is SagaStatus.COMPENSATED and carol.pending == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
