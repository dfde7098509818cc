"""AG-166 scenario A: procurement whose payment gateway times out twice.

Reserve 500 units, create a PO, notify the logistics partner (pre-step webhook),
pay GBP 47,500 through a card gateway, confirm shipment. The payment times out
twice; Reversa compensates in reverse dependency order (including a cancellation
webhook to the logistics partner) and the predicate confirms stock and PO are
restored.

Run: python examples/payments/ag166a_procurement.py
"""

from __future__ import annotations

import sys
import tempfile

from reversa import Engine, SagaStatus, Store
from reversa.demos.payments import build_world, procurement, registry
from reversa.simulators.ledger import FaultKind


def main() -> int:
    world = build_world()  # ledger, FX venue, warehouse/ERP/logistics on one fake clock
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=2, latency_s=30)
    reg = registry()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/reversa.db")
        engine = Engine(reg, store, clock=world.clock, services=world.services())
        result = engine.run(procurement.saga(reg), procurement.INPUT)
        order = [c["step"] for c in (result.rollback or {}).get("compensations", [])]
        print(f"saga {result.saga_id}: {result.status} (failed at {result.failed_step})")
        print(f"compensated in order: {order}")
        print(f"stock: {world.counterparties.stock}")
        print(f"POs: { {n: o['status'] for n, o in world.counterparties.orders.items()} }")
        print(f"logistics webhooks: {[w['event'] for w in world.counterparties.webhooks]}")
        print(f"predicate: {(result.rollback or {}).get('predicate', {}).get('reason')}")
        audit_ok = store.verify_audit(result.saga_id).ok
        print(f"audit chain verified: {audit_ok}")
        engine.close()
        store.close()
    return 0 if result.status is SagaStatus.COMPENSATED and audit_ok else 1


if __name__ == "__main__":
    sys.exit(main())
