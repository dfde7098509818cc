"""``reversa demo cross-workflow`` and ``reversa demo reconcile-drift`` (issue 15).

- cross-workflow: saga A's FX conversion funds saga B's payout; A's partner
  credit is rejected; B is assessed and rolled back first, then A; both end
  consistent (their predicates hold) and both chains record the link.
- reconcile-drift: a payout completes; someone books it back on the ledger by
  hand; the worker's reconciliation finds the drift and opens an escalation.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console

from reversa.adapters.payments.ledger_api import TransferRequest
from reversa.core.context import key_prefix
from reversa.core.engine import Engine
from reversa.core.jobs import Reconcile
from reversa.core.states import SagaStatus
from reversa.core.store import Store
from reversa.core.views import SagaResult
from reversa.demos.narrate import tell
from reversa.demos.outcome import Demo, DemoRun
from reversa.simulators.ledger import FaultKind

from . import APP, SERVICES, build_world, cross_workflow, registry
from .cross_border import SANCTIONED

__all__ = ["DEMOS"]

SCREENING_S = 5.0
"""How long (simulated) the partner bank screens A's credit; B runs meanwhile."""


def demo_cross_workflow(db_url: str, console: Console) -> DemoRun:
    """Cross-workflow: A's FX conversion funds B's payout; A fails; B is rolled back first."""
    world = build_world(sanctioned=(SANCTIONED,))
    store = Store.open(db_url)
    engine_a = Engine(registry(), store, clock=world.clock, services=world.services())
    engine_b = Engine(registry(), store, clock=world.clock, services=world.services())
    payout: dict[str, SagaResult] = {}

    def run_payout() -> None:
        payout["b"] = engine_b.run(cross_workflow.payout(engine_b.registry, app=APP,
                                                         services=SERVICES),
                                   cross_workflow.PAYOUT_INPUT)

    def screening(seconds: float) -> None:
        # While the partner bank screens A's credit, another agent pays euros out.
        world.clock.advance(seconds)
        worker = threading.Thread(target=run_payout, name="payout-agent")
        worker.start()
        worker.join()

    world.ledger.faults.sleep = screening
    world.ledger.faults.inject("submit_payment", FaultKind.LATENCY, latency_s=SCREENING_S)
    console.print("[bold]Saga A[/] (funding): debit GBP 10,000 -> convert to EUR into hold:EUR "
                  "-> credit the partner bank (which screens the beneficiary)")
    console.print("[bold]Saga B[/] (payout), started while A's credit is screened: pay EUR "
                  "5,000 out of hold:EUR to the nostro")
    console.print("the partner bank rejects A's credit: A's euros were partly spent by B\n")
    try:
        a = engine_a.run(cross_workflow.funding(engine_a.registry, app=APP, services=SERVICES),
                         cross_workflow.FUNDING_INPUT)
        b = payout.get("b")
        verified = tell(engine_a, a, console)
        ok_b = b is not None and tell(engine_b, b, console)
        record = a.rollback or {}
        dependents = record.get("dependents") or {}
        console.print(f"\nassessment of A's dependents: policy {dependents.get('policy')}, "
                      f"outcome {dependents.get('outcome')}, order {dependents.get('order')}")
        for dep in dependents.get("dependents", []):
            console.print(f"  saga {dep['saga']} ({dep['workflow']}): its rollback dry-run "
                          f"was {'feasible' if dep['feasible'] else 'INFEASIBLE'}")
        b_view = engine_a.inspect(b.saga_id) if b is not None else None
        console.print(f"A ended {a.status}; B ended "
                      f"{b_view.status if b_view is not None else 'never ran'}")
        ok = (a.status is SagaStatus.COMPENSATED and b_view is not None
              and b_view.status is SagaStatus.COMPENSATED
              and dependents.get("outcome") == "cascaded" and verified and ok_b)
    finally:
        engine_a.close()
        engine_b.close()
        store.close()
    ids = [a.saga_id] + ([b.saga_id] if b is not None else [])
    return DemoRun.of(ok, *ids)


def demo_reconcile_drift(db_url: str, console: Console) -> DemoRun:
    """Reconcile-drift: a completed payout is booked back by hand; reconciliation notices."""
    world = build_world()
    store = Store.open(db_url)
    engine = Engine(registry(), store, clock=world.clock, services=world.services())
    console.print("[bold]Payout[/]: EUR 5,000 from hold:EUR to the nostro, completed; then an "
                  "operator books it back on the ledger by hand, outside Reversa\n")
    try:
        world.ledger.create_transfer(TransferRequest(
            id="ops:fund-hold", debit_account="nostro:EUR", credit_account="hold:EUR",
            amount=500_000, currency="EUR", code="funding", reference="demo funding"))
        done = engine.run(cross_workflow.payout(engine.registry, app=APP, services=SERVICES),
                          cross_workflow.PAYOUT_INPUT)
        original = world.ledger.find_transfers(prefix=key_prefix(done.saga_id))[0]
        world.ledger.create_transfer(TransferRequest(
            id="ops:manual-reversal", debit_account=original.credit_account,
            credit_account=original.debit_account, amount=original.amount,
            currency=original.currency, code="correction", reference="booked back by hand",
            corrects=original.id))
        found = Reconcile(engine).run()
        mine = [f for f in found if f["saga_id"] == done.saga_id]
        drift: list[dict[str, Any]] = mine[0]["drift"] if mine else []
        for d in drift:
            console.print(f"[red]drift[/] at step {d['step']!r}: recorded {d['recorded']}; "
                          f"observed: {d['observed']}")
        escalation = mine[0].get("escalation") if mine else None
        console.print(f"drift escalation #{escalation} opened (kind drift): "
                      "`reversa escalations show` it, close it with --action mark_resolved")
        ok = done.status is SagaStatus.COMPLETED and bool(drift) and escalation is not None
    finally:
        engine.close()
        store.close()
    return DemoRun.of(ok, done.saga_id)


DEMOS: dict[str, Demo] = {
    "cross-workflow": demo_cross_workflow,
    "reconcile-drift": demo_reconcile_drift,
}
