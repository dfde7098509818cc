"""AG-166 scenario C: sanctions rejection, and the agent SIGKILLed mid-compensation.

Debit GBP 100,000, convert to EUR, credit the partner bank over TARGET2; the
partner bank rejects on sanctions screening. While the agent process is booking
the FX corrections it is killed with SIGKILL; a second process recovers the saga
from the store and finishes the rollback exactly once. The ledger and FX venue
run in this process and are reached by both children over loopback HTTP.

Run: python examples/payments/ag166c_crash_recovery.py
"""

from __future__ import annotations

import sys
import tempfile

from reversa.core.context import key_prefix
from reversa.demos.payments.crash import run_crash_story


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_crash_story(f"sqlite:///{tmp}/reversa.db", stall_on="fx_corrections")
    world = outcome.world
    print(f"agent exit code: {outcome.agent_returncode} (SIGKILL)")
    print(f"recovery process: {outcome.recover_output['status']}")
    print(f"venue orders: {len(world.venue.orders)} (conversion + one reversal)")
    prefix = key_prefix(outcome.saga_id)
    for t in world.ledger.find_transfers(prefix=prefix):
        print(f"  {t.id.removeprefix(prefix):<28} {t.code:<17} {t.currency} "
              f"{t.amount / 100:>12,.2f}")
    bob = world.ledger.get_account("cust:bob")
    print(f"sender balance: GBP {bob.posted / 100:,.2f} (was 500,000.00)")
    ok = outcome.recover_output["status"] == "compensated" and bob.posted == 500_000_00
    return 0 if ok and len(world.venue.orders) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
