"""Scenario C after the market moved past the rollback bound: escalate, don't trade at any price.

A whale dumps B into pool 1 right after the agent's A->B swap. Reversing now
would return ~10% less A than went in; the saga allows 1%. The dry-run finds
the reverse swap's cost estimate unacceptable, the safe state revokes the
standing approval, and the saga is escalated to a human with a state report.

Run: python examples/evm/market_moved.py
"""

from __future__ import annotations

import os
import tempfile

from reversa import Engine, SagaStatus, Store, SystemClock
from reversa.demos.evm.rig import inprocess_rig
from reversa.simulators.evm import UNIT


def main() -> int:
    # The record goes in a folder removed on exit (also on error) unless REVERSA_DB is set.
    with tempfile.TemporaryDirectory(prefix="reversa-evm-") as workdir:
        return run(os.environ.get("REVERSA_DB", f"sqlite:///{workdir}/reversa.db"))


def run(db_url: str) -> int:
    """Run the scenario, recording it at ``db_url``."""
    rig = inprocess_rig(poll_interval_s=0.01)
    try:
        rig.whale_after_first_swap(50_000 * UNIT)
        saga, data = rig.scenario_c(max_loss_bps=100)
        store = Store.open(db_url)
        engine = Engine(rig.registry, store, clock=SystemClock(), services=rig.services())
        result = engine.run(saga, data)
        engine.close()
        record = result.rollback or {}
        swap = next(f for f in record["dry_run"]["steps"] if f["step"] == "swap_ab")
        print(f"saga {result.saga_id}: {result.status}")
        print(f"  dry-run: {swap['cost']['reason']}")
        print(f"  safe state revoked: {record['safe_state']['result']['revoked']}")
        print(f"  escalation #{result.escalation_id}: "
              f"{store.rows('escalations', id=result.escalation_id)[0]['reason'][:120]}…")
        print(f"  holdings now: {rig.holdings()}")
        store.close()
        return 0 if result.status is SagaStatus.ESCALATED else 1
    finally:
        rig.close()


if __name__ == "__main__":
    raise SystemExit(main())
