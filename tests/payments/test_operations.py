"""Each operation on its own: execute, compensate, probe, preconditions, cost."""

from __future__ import annotations

import pytest

from reversa import (
    OutcomeUnknown,
    PermanentError,
    Phase,
    PreconditionFailed,
    Probe,
    TransientError,
)
from reversa.adapters.payments import (
    CancelInFlightPayments,
    FxConvert,
    LedgerHold,
    LedgerTimeout,
    LedgerTransfer,
    LedgerUnavailable,
    PaymentStatus,
    PostHold,
    RailPayment,
    TransferRequest,
)
from reversa.adapters.payments._boundary import translate_ledger
from reversa.core.context import idempotency_key
from reversa.demos.payments import PaymentsWorld
from reversa.simulators.ledger import FaultKind, RecallAnswer

from .helpers import ctx

XFER = {"debit": "cust:alice", "credit": "hold:GBP", "amount": "1000.00", "currency": "GBP"}


def test_transfer_replays_and_is_corrected_once(world: PaymentsWorld) -> None:
    op = LedgerTransfer()
    act = ctx(world, "debit", XFER)
    first = op.execute(act)
    assert op.execute(act) == first  # a retry is a replay
    assert world.ledger.get_account("cust:alice").posted == 249_000_00
    comp = ctx(world, "debit", XFER, phase=Phase.COMPENSATION, result=first)
    undo = op.compensate(comp)
    assert undo["outcome"] == "corrected" and undo["corrects"] == first["transfer_id"]
    assert op.compensate(comp)["correction_id"] == undo["correction_id"]  # replay
    assert len(world.ledger.find_transfers(corrects=first["transfer_id"])) == 1
    assert world.ledger.get_account("cust:alice").posted == 250_000_00
    assert op.probe(act)[0] is Probe.HAPPENED  # type: ignore[index]


def test_compensating_what_never_happened_is_success(world: PaymentsWorld) -> None:
    comp = ctx(world, "debit", XFER, phase=Phase.COMPENSATION)
    assert LedgerTransfer().compensate(comp)["outcome"] == "nothing_to_undo"
    assert LedgerTransfer().probe(ctx(world, "debit", XFER)) is Probe.NOT_HAPPENED
    assert LedgerHold().compensate(comp)["outcome"] == "nothing_to_undo"
    assert RailPayment().compensate(comp)["outcome"] == "nothing_to_undo"
    assert FxConvert().compensate(ctx(world, "convert", FX, phase=Phase.COMPENSATION))[
        "outcome"] == "nothing_to_undo"


def test_precondition_sees_money_already_spent(world: PaymentsWorld) -> None:
    refund = {"debit": "ops:GBP", "credit": "cust:alice", "amount": "500.00", "currency": "GBP"}
    result = LedgerTransfer().execute(ctx(world, "refund", refund))
    comp = ctx(world, "refund", refund, phase=Phase.COMPENSATION, result=result)
    assert LedgerTransfer().preconditions(comp).ok
    world.ledger.create_transfer(TransferRequest("spend", "cust:alice", "ops:GBP",
                                                 250_400_00, "GBP"))
    check = LedgerTransfer().preconditions(comp)
    assert not check.ok and "less than" in check.reason


def test_hold_is_voided_or_corrected_never_twice(world: PaymentsWorld) -> None:
    hold_params = {**XFER, "timeout_s": 3600}
    hold = LedgerHold().execute(ctx(world, "debit", hold_params))
    assert world.ledger.get_account("cust:alice").pending == -1_000_00
    post = {"hold": "$results.debit.transfer_id"}
    posted = PostHold().execute(ctx(world, "settle", post, results={"debit": hold}))
    assert world.ledger.get_account("cust:alice").posted == 249_000_00
    undo_post = PostHold().compensate(
        ctx(world, "settle", post, phase=Phase.COMPENSATION, result=posted))
    assert undo_post["outcome"] == "corrected"
    undo_hold = LedgerHold().compensate(
        ctx(world, "debit", hold_params, phase=Phase.COMPENSATION, result=hold))
    assert undo_hold["outcome"] == "nothing_to_undo"  # the posting's correction covered it
    assert world.ledger.get_account("cust:alice").posted == 250_000_00


def test_hold_void_and_expiry(world: PaymentsWorld) -> None:
    params = {**XFER, "timeout_s": 60}
    hold = LedgerHold().execute(ctx(world, "debit", params))
    comp = ctx(world, "debit", params, phase=Phase.COMPENSATION, result=hold)
    assert LedgerHold().compensate(comp)["outcome"] == "voided"
    assert LedgerHold().compensate(comp)["outcome"] == "voided"  # replay
    other = LedgerHold().execute(ctx(world, "debit2", params))
    world.clock.advance(61)
    expired = LedgerHold().compensate(
        ctx(world, "debit2", params, phase=Phase.COMPENSATION, result=other))
    assert expired == {"outcome": "nothing_to_undo", "reason": "hold is expired"}
    assert world.ledger.get_account("cust:alice").pending == 0


PAY = {"debit_account": "ops:GBP", "amount": "5000.00", "currency": "GBP",
       "beneficiary": "Acme Ltd"}


def pay_and_undo(world: PaymentsWorld, rail: str, advance: float = 0.0) -> dict[str, object]:
    params = {**PAY, "rail": rail}
    step = f"pay_{rail}_{len(world.ledger.payments())}"
    done = RailPayment().execute(ctx(world, step, params))
    world.clock.advance(advance)
    return RailPayment().compensate(
        ctx(world, step, params, phase=Phase.COMPENSATION, result=done))


def test_payment_compensation_follows_state_and_rail(world: PaymentsWorld) -> None:
    assert pay_and_undo(world, "swift_mt103")["outcome"] == "cancelled"
    assert pay_and_undo(world, "card", advance=86_400)["outcome"] == "returned"
    world.ledger.recall_answers["Acme Ltd"] = RecallAnswer(accept=True)
    undo = pay_and_undo(world, "swift_mt103", advance=7_200)
    assert undo["outcome"] == "recalled"
    assert world.ledger.get_account("ops:GBP").posted == 1_000_000_00


def test_refused_and_pending_recalls(world: PaymentsWorld) -> None:
    world.ledger.recall_answers["Acme Ltd"] = RecallAnswer(accept=False, reason="LEGL")
    with pytest.raises(PermanentError) as refused:
        pay_and_undo(world, "swift_mt103", advance=7_200)
    assert refused.value.code == "recall_rejected" and "LEGL" in refused.value.message
    world.ledger.recall_answers["Acme Ltd"] = RecallAnswer(accept=True, delay_s=600)
    params = {**PAY, "rail": "swift_mt103"}
    done = RailPayment().execute(ctx(world, "pay2", params))
    world.clock.advance(7_200)
    comp = ctx(world, "pay2", params, phase=Phase.COMPENSATION, result=done)
    with pytest.raises(TransientError):
        RailPayment().compensate(comp)
    world.clock.advance(600)
    assert RailPayment().compensate(comp)["outcome"] == "recalled"


def test_payment_probe_and_rejection(world: PaymentsWorld) -> None:
    world.ledger.sanctioned.add("Bad Co")
    params = {**PAY, "rail": "target2", "beneficiary": "Bad Co"}
    with pytest.raises(PermanentError) as err:
        RailPayment().execute(ctx(world, "pay", params))
    assert err.value.code == "sanctions_hit"
    assert RailPayment().probe(ctx(world, "pay", params)) is Probe.NOT_HAPPENED
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True)
    ok = {**PAY, "rail": "swift_mt103"}
    with pytest.raises(OutcomeUnknown):
        RailPayment().execute(ctx(world, "pay2", ok))
    verdict = RailPayment().probe(ctx(world, "pay2", ok))
    assert verdict[0] is Probe.HAPPENED  # type: ignore[index]
    # A probe that cannot reach the ledger raises: only the engine catches it (probe_failed).
    world.ledger.faults.inject("get_payment", FaultKind.TIMEOUT)
    with pytest.raises(TransientError):
        RailPayment().probe(ctx(world, "pay2", ok))


def test_cancel_in_flight_stops_only_this_sagas_money(world: PaymentsWorld) -> None:
    for saga in ("s1", "s2"):
        RailPayment().execute(ctx(world, "pay", {**PAY, "rail": "swift_mt103"}, saga_id=saga))
    RailPayment().execute(ctx(world, "inst", {**PAY, "rail": "sepa_instant"}, saga_id="s1"))
    out = CancelInFlightPayments()(ctx(world, "pay", {}, phase=Phase.SAFE_STATE))
    assert out["cancelled"] == [idempotency_key("s1", "pay", "action")]
    assert out["irrevocable_in_flight"] == [idempotency_key("s1", "inst", "action")]
    other = world.ledger.get_payment(idempotency_key("s2", "pay", "action"))
    assert other is not None and other.status == PaymentStatus.ACCEPTED


FX = {"sell_currency": "GBP", "buy_currency": "EUR", "amount": "100000.00",
      "from_account": "hold:GBP", "to_account": "hold:EUR"}


def test_fx_round_trip_books_legs_and_corrections(world: PaymentsWorld) -> None:
    op = FxConvert()
    fwd = op.execute(ctx(world, "convert", FX))
    assert fwd["sell_amount"] == 100_000_00 and fwd["buy_amount"] > 116_000_00
    assert world.ledger.get_account("hold:EUR").posted == fwd["buy_amount"]
    assert fwd["reversal_estimate_at_execution"]["cost"] > 0
    comp = ctx(world, "convert", FX, phase=Phase.COMPENSATION, result=fwd)
    estimate = op.estimate_cost(comp)
    assert estimate.acceptable and estimate.unit == "GBP"
    back = op.compensate(comp)
    assert back["realized_cost_minor"] == pytest.approx(estimate.amount * 100, abs=1)
    again = op.compensate(comp)  # a retry after a lost reply: same reversal, same corrections
    same = ("reverse_order_id", "received", "realized_cost_minor", "corrections")
    assert {k: again[k] for k in same} == {k: back[k] for k in same}
    assert len(world.venue.orders) == 2  # replays did not trade again
    assert world.ledger.get_account("hold:GBP").posted == 0
    assert world.ledger.get_account("hold:EUR").posted == 0
    assert world.ledger.get_account("fx_pnl:GBP").posted == -back["realized_cost_minor"]


def test_fx_policy_refuses_a_too_costly_reversal(world: PaymentsWorld) -> None:
    tight = {**FX, "max_reversal_cost_bps": 1}
    fwd = FxConvert().execute(ctx(world, "convert", tight))
    comp = ctx(world, "convert", tight, phase=Phase.COMPENSATION, result=fwd)
    estimate = FxConvert().estimate_cost(comp)
    assert not estimate.acceptable and "1 bps limit" in estimate.reason
    with pytest.raises(PreconditionFailed):
        FxConvert().compensate(comp)
    assert len(world.venue.orders) == 1


def test_fx_crash_between_venue_and_ledger_is_completed_then_reversed(
    world: PaymentsWorld,
) -> None:
    world.ledger.faults.inject("create_linked", FaultKind.CRASH)
    with pytest.raises(OutcomeUnknown):
        FxConvert().execute(ctx(world, "convert", FX))
    world.ledger.restart()
    assert world.ledger.get_account("hold:EUR").posted == 0  # venue traded, books did not
    assert FxConvert().probe(ctx(world, "convert", FX))[0] is Probe.HAPPENED  # type: ignore[index]
    back = FxConvert().compensate(ctx(world, "convert", FX, phase=Phase.COMPENSATION))
    assert back["outcome"] == "reversed"
    assert world.ledger.get_account("hold:GBP").posted == 0
    assert world.ledger.get_account("hold:EUR").posted == 0


@pytest.mark.parametrize(
    ("error", "effect", "expected", "code"),
    [
        (LedgerTimeout("slow"), True, OutcomeUnknown, "ledger_timeout"),
        (LedgerTimeout("slow"), False, TransientError, "ledger_timeout"),
        (LedgerUnavailable("gone", in_doubt=True), True, OutcomeUnknown, None),
        (LedgerUnavailable("refused"), True, TransientError, None),
    ],
)
def test_ledger_errors_become_reversa_errors(error: Exception, effect: bool,
                                             expected: type[Exception], code: str | None) -> None:
    out = translate_ledger(error, "pay", effect=effect)  # type: ignore[arg-type]
    assert type(out) is expected
    assert code is None or out.code == code


def test_hold_precondition_void_always_possible(world: PaymentsWorld) -> None:
    params = {"debit": "ops:GBP", "credit": "cust:alice", "amount": "100.00",
              "currency": "GBP"}
    hold = LedgerHold().execute(ctx(world, "h", params))
    comp = ctx(world, "h", params, phase=Phase.COMPENSATION, result=hold)
    world.ledger.create_transfer(TransferRequest("spend", "cust:alice", "ops:GBP",
                                                 250_000_00, "GBP"))
    assert LedgerHold().preconditions(comp).ok  # pending: a void needs no funds
    PostHold().execute(ctx(world, "p", {"hold": "$results.h.transfer_id"}, results={"h": hold}))
    assert LedgerHold().preconditions(comp).ok  # posted: alice holds the 100 to return
    world.ledger.create_transfer(TransferRequest("spend2", "cust:alice", "ops:GBP", 1, "GBP"))
    assert not LedgerHold().preconditions(comp).ok  # ...until she spends any of it
