"""AG-166 scenario C / test 8.4: the agent is SIGKILLed mid-compensation; another process
finishes the rollback from the durable record, and every effect happens exactly once.

The bank (ledger + FX venue) runs in this process over loopback HTTP; the agent and
the recovering worker are separate Python processes that only share the store.
"""

from __future__ import annotations

import signal

import pytest

from reversa import Store
from reversa.adapters.payments import UNDO_CODES
from reversa.core.context import key_prefix
from reversa.core.engine.inspect import audit_entries
from reversa.demos.payments.crash import run_crash_story

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize(
    ("stall_on", "applied"),
    [("fx_corrections", False), ("recredit", True)],
    ids=["killed-after-venue-reversal-before-ledger", "killed-after-recredit-was-booked"],
)
def test_agent_killed_mid_compensation_is_finished_exactly_once(
    db_url: str, stall_on: str, applied: bool
) -> None:
    out = run_crash_story(db_url, stall_on=stall_on, applied=applied)
    assert out.agent_returncode == -signal.SIGKILL
    assert out.recover_output["status"] == "compensated"

    world, sid = out.world, out.saga_id
    # The venue traded the conversion and exactly one reversal.
    assert len(world.venue.orders) == 2
    # Each original entry is corrected exactly once, for its full amount.
    originals = [t for t in world.ledger.find_transfers(prefix=key_prefix(sid))
                 if t.code not in UNDO_CODES]
    assert [t.id.removeprefix(key_prefix(sid)) for t in originals] == [
        "debit:action", "convert:action/give", "convert:action/get"]
    for t in originals:
        fixes = world.ledger.find_transfers(corrects=t.id)
        assert sum(f.amount for f in fixes) == t.amount
        assert len({f.id for f in fixes}) == len(fixes)
    assert world.ledger.get_account("cust:bob").posted == 500_000_00
    assert world.ledger.get_account("hold:GBP").posted == 0
    assert world.ledger.get_account("hold:EUR").posted == 0

    store = Store.open(db_url)
    try:
        events = [(e["event"], e["step"]) for e in audit_entries(store, sid)]
        assert ("recovered", None) in events
        assert events.count(("compensation_started", "convert" if stall_on == "fx_corrections"
                             else "debit")) == 2  # once by the agent, once by the worker
        assert events.count(("compensation_completed", "convert")) == 1
        assert events.count(("compensation_completed", "debit")) == 1
        assert store.verify_audit(sid).ok
    finally:
        store.close()
