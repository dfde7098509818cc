"""The consistency predicate catches each kind of inconsistency, and passes a clean undo."""

from __future__ import annotations

from reversa.adapters.payments import LedgerConsistency, LedgerSnapshot, TransferRequest
from reversa.demos.payments import PaymentsWorld

SCOPE = LedgerSnapshot(accounts=("cust:alice", "hold:GBP", "fx:GBP", "fx_pnl:GBP"))
SAGA = "s1"


def key(step: str, suffix: str = "") -> str:
    return f"rv:{SAGA}:{step}:action{suffix}"


def check(world: PaymentsWorld, pre: dict[str, object], **kw: object) -> tuple[bool, str]:
    post = {"ledger": SCOPE.capture(world.ledger, SCOPE.accounts)}
    verdict = LedgerConsistency().evaluate(SAGA, pre, post, world.ledger, **kw)  # type: ignore[arg-type]
    return verdict.ok, verdict.reason


def snap(world: PaymentsWorld) -> dict[str, object]:
    return {"ledger": SCOPE.capture(world.ledger, SCOPE.accounts)}


def test_a_clean_correction_passes(world: PaymentsWorld) -> None:
    pre = snap(world)
    world.ledger.create_transfer(TransferRequest(key("debit"), "cust:alice", "hold:GBP", 500,
                                                 "GBP"))
    world.ledger.create_transfer(TransferRequest(f"rv:{SAGA}:debit:compensation", "hold:GBP",
                                                 "cust:alice", 500, "GBP",
                                                 corrects=key("debit")))
    assert check(world, pre)[0]


def test_an_uncorrected_transfer_fails(world: PaymentsWorld) -> None:
    pre = snap(world)
    world.ledger.create_transfer(TransferRequest(key("debit"), "cust:alice", "hold:GBP", 500,
                                                 "GBP"))
    ok, reason = check(world, pre)
    assert not ok
    assert "cust:alice (customer) is not restored" in reason
    assert "hold:GBP (holding) does not net to zero" in reason
    assert "is corrected by GBP 0.00 only" in reason
    # ...unless a checkpoint rollback leaves that step in effect on purpose.
    ok, reason = check(world, pre, steps_in_effect={"debit"})
    assert "corrected by" not in reason


def test_a_hold_left_pending_fails(world: PaymentsWorld) -> None:
    pre = snap(world)
    world.ledger.create_transfer(TransferRequest(key("hold"), "cust:alice", "hold:GBP", 500,
                                                 "GBP", pending=True))
    ok, reason = check(world, pre)
    assert not ok and "still pending" in reason and "pending -GBP 5.00" in reason


def test_money_leaving_the_absorbing_accounts_fails(world: PaymentsWorld) -> None:
    pre = snap(world)
    world.ledger.create_transfer(TransferRequest("leak", "fx_pnl:GBP", "ops:GBP", 100, "GBP"))
    ok, reason = check(world, pre)
    assert not ok and "money left the scope" in reason


def test_fx_cost_moving_between_pnl_and_liquidity_is_the_safe_state(world: PaymentsWorld
                                                                     ) -> None:
    pre = snap(world)
    world.ledger.create_transfer(TransferRequest("cost", "fx_pnl:GBP", "fx:GBP", 100, "GBP"))
    assert check(world, pre)[0]
