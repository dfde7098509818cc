"""AG-384 scenario A: the MT103 times out; FX reversal cost estimated, then realized.

Hold GBP 142,000 -> convert to EUR -> credit the nostro EUR 161,470 -> submit the
MT103 (the SWIFT gateway times out, although the first attempt went through) ->
update the ledger -> confirm. The rollback cancels the MT103 before settlement,
corrects the nostro credit, reverses the conversion at the cost the dry-run
estimated from the venue's order book, and voids the hold.

Run: python examples/payments/ag384a_mt103_fx_cost.py
"""

from __future__ import annotations

import sys
import tempfile

from reversa import Engine, SagaStatus, Store
from reversa.demos.payments import build_world, mt103, registry
from reversa.simulators.ledger import FaultKind


def main() -> int:
    world = build_world(gbp_eur=mt103.GBP_EUR, drift_bps_per_hour=-15.0)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True, times=2,
                               latency_s=30)
    reg = registry()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/reversa.db")
        engine = Engine(reg, store, clock=world.clock, services=world.services())
        result = engine.run(mt103.saga(reg), mt103.INPUT)
        engine.close()
        store.close()
    record = result.rollback or {}
    convert = result.results["convert"]
    print(f"saga {result.saga_id}: {result.status} after {result.failed_step} timed out")
    print(f"conversion: {convert['display']} at {convert['rate']}")
    print(f"reversal cost estimated at execution: "
          f"{convert['reversal_estimate_at_execution']['cost']} GBP")
    for finding in record["dry_run"]["steps"]:
        if finding.get("cost"):
            print(f"dry-run estimate before reversing: {finding['cost']['amount']} GBP "
                  f"({finding['cost']['reason']})")
    for comp in record["compensations"]:
        print(f"  {comp['step']:<14} {comp.get('outcome'):<12} {comp.get('result', {})}"[:150])
    realized = next(c["result"] for c in record["compensations"] if c["step"] == "convert")
    print(f"realized reversal cost: {realized['realized_cost']} GBP, booked to FX P&L")
    print(f"predicate: {record['predicate']['reason']}")
    return 0 if result.status is SagaStatus.COMPENSATED and record["predicate"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
