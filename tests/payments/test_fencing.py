"""The effect boundary in the payments adapter: fencing tokens and probe-and-block.

Each operation blocks by the action's key at the service that would apply the
effect (ledger, FX venue, counterparties), and every call it makes carries the
saga's fencing token; refusals surface as ``reversa.Fenced``. Assertions are made
at the service: what landed, what was refused, per key.
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Fenced, PermanentError, Phase, Probe
from reversa.adapters.payments import (
    FxConvert,
    LedgerHold,
    LedgerTransfer,
    PostHold,
    RailPayment,
    ReserveStock,
    SendNotice,
    TransferRequest,
)
from reversa.demos.payments import PaymentsWorld
from reversa.simulators.fx_exchange import SimFxExchange
from reversa.simulators.ledger import FaultKind

from .helpers import ctx

XFER = {"debit": "cust:alice", "credit": "hold:GBP", "amount": "1000.00", "currency": "GBP"}
PAY = {"debit_account": "ops:GBP", "amount": "5000.00", "currency": "GBP",
       "beneficiary": "Acme Ltd", "rail": "swift_mt103"}
FX = {"sell_currency": "GBP", "buy_currency": "EUR", "amount": "1000.00",
      "from_account": "hold:GBP", "to_account": "hold:EUR"}
RESERVE = {"sku": "WIDGET-500", "qty": 5}


def test_blocked_transfer_key_can_never_be_booked(world: PaymentsWorld) -> None:
    op = LedgerTransfer()
    assert op.block(ctx(world, "debit", XFER)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced) as refused:
        op.execute(ctx(world, "debit", XFER))  # the late request of the in-doubt attempt
    assert refused.value.code == "key_blocked"
    key = ctx(world, "debit", XFER).action_key
    stats = world.ledger.stats()
    assert key not in stats["landed"] and stats["refused"][key] == {"tombstone": 1}
    assert world.ledger.get_account("cust:alice").posted == 250_000_00


def test_block_after_the_effect_reports_it_and_tombstones_nothing(world: PaymentsWorld) -> None:
    op = LedgerTransfer()
    booked = op.execute(ctx(world, "debit", XFER))
    verdict = op.block(ctx(world, "debit", XFER))
    assert verdict == (Probe.HAPPENED, booked)
    assert op.execute(ctx(world, "debit", XFER)) == booked  # still an ordinary replay
    assert world.ledger.stats()["blocked"] == {}


def test_a_stale_fencing_token_is_refused_after_a_newer_owner_called(
    world: PaymentsWorld,
) -> None:
    op = LedgerTransfer()
    new_owner = ctx(world, "debit", XFER, epoch=2)
    assert op.block(new_owner) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced) as refused:
        op.execute(ctx(world, "other", XFER, epoch=1))  # another key, same stale owner
    assert refused.value.code == "stale_epoch"
    assert world.ledger.boundary.gate.epoch("s1") == 2
    # Another saga's epochs are its own.
    op.execute(ctx(world, "debit", XFER, saga_id="s2", epoch=1))


def test_hold_and_post_block_by_their_own_keys(world: PaymentsWorld) -> None:
    hold = LedgerHold().execute(ctx(world, "debit", {**XFER, "timeout_s": 60}))
    post = {"hold": "$results.debit.transfer_id"}
    assert PostHold().block(ctx(world, "settle", post)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced):
        PostHold().execute(ctx(world, "settle", post, results={"debit": hold}))
    assert world.ledger.get_transfer(hold["transfer_id"]).state == "pending"  # type: ignore[union-attr]
    verdict = LedgerHold().block(ctx(world, "debit", XFER))
    assert verdict[0] is Probe.HAPPENED  # type: ignore[index]


def test_payment_block_and_rejected_payment(world: PaymentsWorld) -> None:
    op = RailPayment()
    assert op.block(ctx(world, "pay", PAY)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced):
        op.execute(ctx(world, "pay", PAY))
    assert world.ledger.payments() == []
    world.ledger.sanctioned.add("Bad Co")
    bad = {**PAY, "beneficiary": "Bad Co"}
    with pytest.raises(PermanentError):
        op.execute(ctx(world, "pay2", bad))
    # A rejected payment moved nothing, and a replay of its key is refused as rejected.
    assert op.block(ctx(world, "pay2", bad)) is Probe.NOT_HAPPENED
    paid = op.execute(ctx(world, "pay3", PAY))
    assert op.block(ctx(world, "pay3", PAY)) == (Probe.HAPPENED, paid)


def test_fx_block_at_the_venue(world: PaymentsWorld) -> None:
    op = FxConvert()
    assert op.block(ctx(world, "convert", FX)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced):
        op.execute(ctx(world, "convert", FX))
    assert world.venue.orders == {}
    key = ctx(world, "convert", FX).action_key
    assert world.venue.stats()["refused"][key] == {"tombstone": 1}
    done = op.execute(ctx(world, "convert2", FX))
    verdict = op.block(ctx(world, "convert2", FX))
    assert verdict[0] is Probe.HAPPENED  # type: ignore[index]
    assert verdict[1]["buy_amount"] == done["buy_amount"]  # type: ignore[index]


def test_fx_venue_without_block_escalates_through_the_engine(world: PaymentsWorld) -> None:
    class PlainVenue(SimFxExchange):  # a ccxt exchange that declares no block capability
        def describe(self) -> Any:
            return self.deep_extend(super().describe(), {"has": {"blockOrder": False}})

    services = {**world.services(), "fx": PlainVenue(venue=world.venue)}
    with pytest.raises(PermanentError) as err:
        FxConvert().block(ctx(world, "convert", FX, services=services))
    assert err.value.code == "fx_cannot_block"
    assert world.venue.stats()["blocked"] == {}


def test_counterparty_block_and_fence(world: PaymentsWorld) -> None:
    op = ReserveStock()
    assert op.block(ctx(world, "reserve", RESERVE)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced):
        op.execute(ctx(world, "reserve", RESERVE))
    assert world.counterparties.stock["WIDGET-500"]["reserved"] == 0
    SendNotice().execute(ctx(world, "notice", {"to": "a", "text": "t"}, epoch=3))
    with pytest.raises(Fenced) as stale:
        SendNotice().execute(ctx(world, "notice2", {"to": "a", "text": "t"}, epoch=2))
    assert stale.value.code == "fenced"
    assert [n["kind"] for n in world.counterparties.outbox] == ["confirmation"]


def test_late_request_after_block_is_refused_when_it_arrives(world: PaymentsWorld) -> None:
    # A request slowed in flight is checked when it is applied, not when it arrived.
    import threading

    applied: list[object] = []
    world.ledger.faults.sleep = lambda s: gate.wait(5)
    gate = threading.Event()
    world.ledger.faults.inject("create_transfer", FaultKind.LATENCY, latency_s=1.0)

    def slow() -> None:
        try:
            applied.append(LedgerTransfer().execute(ctx(world, "debit", XFER)))
        except Fenced as exc:
            applied.append(exc)

    late = threading.Thread(target=slow)
    late.start()
    assert LedgerTransfer().block(ctx(world, "debit", XFER)) is Probe.NOT_HAPPENED
    gate.set()
    late.join(5)
    assert isinstance(applied[0], Fenced)
    key = ctx(world, "debit", XFER).action_key
    assert world.ledger.stats()["refused"][key] == {"tombstone": 1}
    assert key not in world.ledger.stats()["landed"]


def test_every_operation_call_carries_the_fence(world: PaymentsWorld) -> None:
    before = dict(world.ledger.stats()["unfenced"])  # the world's own set-up calls
    LedgerTransfer().compensate(ctx(world, "debit", XFER, phase=Phase.COMPENSATION))
    done = LedgerTransfer().execute(ctx(world, "debit", XFER))
    LedgerTransfer().preconditions(ctx(world, "debit", XFER, phase=Phase.COMPENSATION))
    LedgerTransfer().compensate(ctx(world, "debit", XFER, phase=Phase.COMPENSATION,
                                    result=done))
    paid = RailPayment().execute(ctx(world, "pay", PAY))
    RailPayment().preconditions(ctx(world, "pay", PAY, phase=Phase.COMPENSATION))
    RailPayment().compensate(ctx(world, "pay", PAY, phase=Phase.COMPENSATION, result=paid))
    fwd = FxConvert().execute(ctx(world, "convert", FX))
    FxConvert().compensate(ctx(world, "convert", FX, phase=Phase.COMPENSATION, result=fwd))
    ReserveStock().execute(ctx(world, "reserve", RESERVE))
    ReserveStock().compensate(ctx(world, "reserve", RESERVE, phase=Phase.COMPENSATION))
    assert world.ledger.stats()["unfenced"] == before
    assert world.venue.stats()["unfenced"] == {}
    assert world.counterparties.boundary.stats()["unfenced"] == {}
    assert world.ledger.boundary.gate.epoch("s1") == 1


def test_transfer_request_without_fence_is_still_served(world: PaymentsWorld) -> None:
    # Callers outside Reversa (no fence) keep working; they are only not fenced.
    world.ledger.create_transfer(TransferRequest("manual", "cust:alice", "ops:GBP", 1, "GBP"))
    assert world.ledger.stats()["landed"]["manual"] == 1
