"""The mock ledger: double entry, holds, corrections, idempotency, rails, recalls, faults."""

from __future__ import annotations

import threading

import pytest

from reversa import FakeClock
from reversa.adapters.payments import (
    IdempotencyConflict,
    InvalidState,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    PaymentRequest,
    PaymentStatus,
    PendingState,
    RecallStatus,
    TransferRequest,
)
from reversa.simulators.ledger import FaultKind, FaultPlan, MockLedger, RecallAnswer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger(clock: FakeClock) -> MockLedger:
    led = MockLedger(clock=clock, faults=FaultPlan(sleep=clock.advance), sanctioned=["Bad Co"])
    led.open_account("alice", "GBP", balance=1_000_00)
    led.open_account("ops", "GBP", "operating", balance=100_000_00)
    led.open_account("hold", "GBP", "holding")
    led.open_account("eur", "EUR", "holding")
    return led


def tr(id: str, debit: str = "alice", credit: str = "hold", amount: int = 100_00,
       **kw: object) -> TransferRequest:
    return TransferRequest(id=id, debit_account=debit, credit_account=credit, amount=amount,
                           currency=str(kw.pop("currency", "GBP")), **kw)  # type: ignore[arg-type]


def test_transfers_are_double_entry(ledger: MockLedger) -> None:
    ledger.create_transfer(tr("t1", amount=250_00))
    assert ledger.get_account("alice").posted == 750_00
    assert ledger.get_account("hold").posted == 250_00
    total = sum(b["posted"] for a, b in ledger.balances().items() if not a.startswith("eur"))
    assert total == 0  # every debit has its credit (equity accounts included)


def test_customer_accounts_cannot_overdraw(ledger: MockLedger) -> None:
    with pytest.raises(LedgerRejected) as err:
        ledger.create_transfer(tr("t1", amount=1_000_01))
    assert err.value.code == "exceeds_credits"
    assert ledger.get_transfer("t1") is None


def test_currency_must_match(ledger: MockLedger) -> None:
    with pytest.raises(LedgerRejected, match="currency exchange"):
        ledger.create_transfer(tr("t1", credit="eur"))


def test_replay_returns_first_result_and_changed_fields_conflict(ledger: MockLedger) -> None:
    first = ledger.create_transfer(tr("t1"))
    assert ledger.create_transfer(tr("t1")) == first
    assert ledger.get_account("alice").posted == 900_00  # applied once
    with pytest.raises(IdempotencyConflict):
        ledger.create_transfer(tr("t1", amount=100_01))


def test_hold_post_partial_releases_rest(ledger: MockLedger) -> None:
    ledger.create_transfer(tr("h1", amount=300_00, pending=True))
    assert ledger.get_account("alice").pending == -300_00
    assert ledger.get_account("alice").available == 700_00
    post = ledger.post_pending("p1", "h1", 200_00)
    assert post.amount == 200_00
    alice = ledger.get_account("alice")
    assert (alice.posted, alice.pending) == (800_00, 0)
    assert ledger.get_transfer("h1").state == PendingState.POSTED  # type: ignore[union-attr]
    with pytest.raises(InvalidState) as err:
        ledger.void_pending("v1", "h1")
    assert err.value.code == "pending_transfer_already_posted"


def test_hold_void_and_expiry(ledger: MockLedger, clock: FakeClock) -> None:
    ledger.create_transfer(tr("h1", pending=True))
    ledger.void_pending("v1", "h1")
    assert ledger.void_pending("v1", "h1").id == "v1"  # replay
    assert ledger.get_account("alice").pending == 0
    ledger.create_transfer(tr("h2", pending=True, timeout_s=60))
    clock.advance(59)
    assert ledger.get_transfer("h2").state == PendingState.PENDING  # type: ignore[union-attr]
    clock.advance(1)
    assert ledger.get_transfer("h2").state == PendingState.EXPIRED  # type: ignore[union-attr]
    assert ledger.get_account("alice").available == 1_000_00
    with pytest.raises(InvalidState, match="expired"):
        ledger.post_pending("p2", "h2")


def test_corrections_reference_the_original_and_never_exceed_it(ledger: MockLedger) -> None:
    ledger.create_transfer(tr("t1", amount=100_00))
    with pytest.raises(LedgerNotFound):
        ledger.create_transfer(tr("c0", "hold", "alice", 10_00, corrects="nope"))
    with pytest.raises(LedgerRejected) as wrong_way:
        ledger.create_transfer(tr("c1", "alice", "hold", 10_00, corrects="t1"))
    assert wrong_way.value.code == "correction_direction"
    ledger.create_transfer(tr("c2", "hold", "alice", 60_00, corrects="t1"))
    with pytest.raises(LedgerRejected) as too_much:
        ledger.create_transfer(tr("c3", "hold", "alice", 40_01, corrects="t1"))
    assert too_much.value.code == "exceeds_original_amount"
    ledger.create_transfer(tr("c4", "hold", "alice", 40_00, corrects="t1"))
    assert [t.id for t in ledger.find_transfers(corrects="t1")] == ["c2", "c4"]
    assert ledger.get_transfer("t1").amount == 100_00  # type: ignore[union-attr] # never edited
    assert ledger.get_account("alice").posted == 1_000_00


def test_a_posted_hold_is_corrected_for_its_posted_amount(ledger: MockLedger) -> None:
    ledger.create_transfer(tr("h1", amount=300_00, pending=True))
    with pytest.raises(LedgerRejected):  # nothing posted yet: void it instead
        ledger.create_transfer(tr("c0", "hold", "alice", 1, corrects="h1"))
    ledger.post_pending("p1", "h1", 200_00)
    assert [t.id for t in ledger.find_transfers(pending_id="h1")] == ["p1"]
    with pytest.raises(LedgerRejected):
        ledger.create_transfer(tr("c1", "hold", "alice", 200_01, corrects="h1"))
    ledger.create_transfer(tr("c2", "hold", "alice", 200_00, corrects="h1"))
    assert ledger.get_account("alice").posted == 1_000_00


def test_linked_chain_is_all_or_nothing(ledger: MockLedger) -> None:
    chain = [tr("l1", amount=100_00), tr("l2", "ops", "alice", 1), tr("l3", amount=5_000_00)]
    with pytest.raises(LedgerRejected):
        ledger.create_linked(chain)
    assert all(ledger.get_transfer(t.id) is None for t in chain)
    assert ledger.get_account("alice").posted == 1_000_00
    ok = ledger.create_linked(chain[:2])
    assert ledger.create_linked(chain[:2]) == ok  # replayed whole
    with pytest.raises(IdempotencyConflict):
        ledger.create_linked([chain[0], tr("l9")])


def pay(id: str, rail: str, amount: int = 500_00, beneficiary: str = "Supplier") -> PaymentRequest:
    return PaymentRequest(id=id, rail=rail, debit_account="ops", amount=amount, currency="GBP",
                          beneficiary=beneficiary)


def test_final_rail_settles_on_acceptance_and_cannot_be_cancelled(ledger: MockLedger) -> None:
    p = ledger.submit_payment(pay("p1", "chaps"))
    assert p.status == PaymentStatus.SETTLED
    with pytest.raises(InvalidState):
        ledger.cancel_payment("p1")
    with pytest.raises(InvalidState, match="final"):
        ledger.return_payment("p1", "r1")


def test_delayed_rail_settles_on_the_clock_and_cancels_before(
    ledger: MockLedger, clock: FakeClock
) -> None:
    ledger.submit_payment(pay("p1", "swift_mt103"))
    assert ledger.get_account("ops").pending == -500_00
    assert ledger.cancel_payment("p1").status == PaymentStatus.CANCELLED
    assert ledger.cancel_payment("p1").status == PaymentStatus.CANCELLED  # idempotent
    assert ledger.get_account("ops").pending == 0
    ledger.submit_payment(pay("p2", "swift_mt103"))
    clock.advance(7_200)
    assert ledger.get_payment("p2").status == PaymentStatus.SETTLED  # type: ignore[union-attr]
    assert ledger.get_account("ops").posted == 99_500_00
    with pytest.raises(InvalidState):
        ledger.cancel_payment("p2")


def test_sepa_instant_is_irrevocable_while_in_flight(ledger: MockLedger) -> None:
    ledger.submit_payment(pay("p1", "sepa_instant"))
    with pytest.raises(InvalidState) as err:
        ledger.cancel_payment("p1")
    assert err.value.code == "irrevocable"


def test_card_payment_is_refunded_after_settlement(ledger: MockLedger, clock: FakeClock) -> None:
    ledger.submit_payment(pay("p1", "card"))
    clock.advance(86_400)
    returned = ledger.return_payment("p1", "r1")
    assert returned.status == PaymentStatus.RETURNED
    assert ledger.get_transfer("r1").corrects == "p1#pay"  # type: ignore[union-attr]
    assert ledger.get_account("ops").posted == 100_000_00


def test_recall_answers_are_configurable(ledger: MockLedger, clock: FakeClock) -> None:
    ledger.recall_answers["Keeper Ltd"] = RecallAnswer(accept=False, reason="LEGL")
    ledger.recall_answers["Slow Bank"] = RecallAnswer(accept=True, delay_s=3_600)
    ledger.submit_payment(pay("p1", "chaps"))
    accepted = ledger.request_recall("r1", "p1", "DUPL")
    assert accepted.status == RecallStatus.ACCEPTED
    assert ledger.get_payment("p1").status == PaymentStatus.RETURNED  # type: ignore[union-attr]
    ledger.submit_payment(pay("p2", "chaps", beneficiary="Keeper Ltd"))
    refused = ledger.request_recall("r2", "p2", "CUST")
    assert (refused.status, refused.rejection_reason) == (RecallStatus.REJECTED, "LEGL")
    ledger.submit_payment(pay("p3", "chaps", beneficiary="Slow Bank"))
    assert ledger.request_recall("r3", "p3", "CUST").status == RecallStatus.REQUESTED
    clock.advance(3_600)
    assert ledger.get_recall("r3").status == RecallStatus.ACCEPTED  # type: ignore[union-attr]
    assert ledger.get_account("ops").posted == 100_000_00 - 500_00  # only p2 stays paid
    with pytest.raises(IdempotencyConflict):
        ledger.request_recall("r1", "p1", "OTHER")


def test_sanctions_screening_rejects_and_records(ledger: MockLedger) -> None:
    with pytest.raises(LedgerRejected) as err:
        ledger.submit_payment(pay("p1", "target2", beneficiary="Bad Co"))
    assert err.value.code == "sanctions_hit"
    assert ledger.get_payment("p1").status == PaymentStatus.REJECTED  # type: ignore[union-attr]
    with pytest.raises(LedgerRejected):  # a replay returns the first result: a rejection
        ledger.submit_payment(pay("p1", "target2", beneficiary="Bad Co"))
    assert ledger.get_account("ops").posted == 100_000_00


def test_timeout_with_and_without_the_effect(ledger: MockLedger, clock: FakeClock) -> None:
    ledger.faults.inject("create_transfer", FaultKind.TIMEOUT, latency_s=30)
    with pytest.raises(LedgerTimeout):
        ledger.create_transfer(tr("t1"))
    assert ledger.get_transfer("t1") is None
    assert ledger.faults.active == []
    ledger.faults.inject("create_transfer", FaultKind.TIMEOUT, applied=True)
    with pytest.raises(LedgerTimeout):
        ledger.create_transfer(tr("t2"))
    assert ledger.get_transfer("t2") is not None
    assert clock.now() == FakeClock().now() + 30  # latency spent on the injected sleep


def test_reject_fault_records_a_rejected_payment(ledger: MockLedger) -> None:
    rule = ledger.faults.inject("submit_payment", FaultKind.REJECT, code="AM04")
    with pytest.raises(LedgerRejected) as err:
        ledger.submit_payment(pay("p1", "chaps"))
    assert (err.value.code, rule.fired) == ("AM04", 1)
    assert ledger.get_payment("p1").rejection_code == "AM04"  # type: ignore[union-attr]


def test_crash_takes_the_ledger_down_until_restart(ledger: MockLedger) -> None:
    ledger.faults.inject("create_transfer", FaultKind.CRASH, applied=True)
    with pytest.raises(LedgerUnavailable) as mid_call:
        ledger.create_transfer(tr("t1"))
    assert mid_call.value.in_doubt
    with pytest.raises(LedgerUnavailable) as down:
        ledger.get_transfer("t1")
    assert not down.value.in_doubt
    ledger.restart()
    assert ledger.get_transfer("t1") is not None  # the books survived the crash


def test_stall_holds_the_call_until_released(ledger: MockLedger) -> None:
    ledger.faults.inject("create_transfer", FaultKind.STALL, applied=True)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            ledger.create_transfer(tr("t1"))
        except LedgerTimeout as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert ledger.faults.stalled.wait(5)
    assert ledger.get_transfer("t1") is not None  # applied, and the ledger still serves others
    ledger.faults.release()
    caller.join(5)
    assert len(outcome) == 1
