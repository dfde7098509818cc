"""FX venue and reversal-cost estimation through ccxt's unified structures."""

from __future__ import annotations

import ccxt
import pytest

from reversa import FakeClock, OutcomeUnknown, PermanentError, TransientError
from reversa.adapters.payments import (
    ReversalPolicy,
    estimate_reversal,
    estimate_round_trip,
    to_minor,
    walk_book,
)
from reversa.adapters.payments._boundary import translate_ccxt
from reversa.simulators.fx_exchange import SimFxExchange
from reversa.simulators.fx_venue import FxMarket, FxVenue

BOOK = {
    "symbol": "GBP/EUR", "timestamp": 0, "datetime": None, "nonce": 1,
    "bids": [[1.16, 10_000.0], [1.15, 20_000.0]],
    "asks": [[1.17, 10_000.0], [1.18, 20_000.0]],
}


def venue_and_exchange(**market: float) -> tuple[FakeClock, FxVenue, SimFxExchange]:
    clock = FakeClock()
    venue = FxVenue([FxMarket("GBP", "EUR", 1.1647, **market)], clock=clock, seed=11)  # type: ignore[arg-type]
    return clock, venue, SimFxExchange(venue=venue)


def test_book_is_ccxt_unified_and_survives_ccxt_parsing() -> None:
    _, venue, ex = venue_and_exchange()
    raw = venue.order_book("GBP/EUR", 5)
    parsed = ex.parse_order_book(raw, "GBP/EUR", raw["timestamp"])
    assert parsed["bids"] == raw["bids"] and parsed["asks"] == raw["asks"]  # already sorted
    assert [p for p, _ in raw["bids"]] == sorted((p for p, _ in raw["bids"]), reverse=True)
    assert raw["datetime"] == ex.iso8601(raw["timestamp"])
    assert venue.order_book("GBP/EUR")["nonce"] > raw["nonce"]


def test_rate_path_is_seeded_and_bounded() -> None:
    clock_a, venue_a, _ = venue_and_exchange(vol_bps_per_step=2.0, drift_bps_per_hour=-10.0)
    clock_b, venue_b, _ = venue_and_exchange(vol_bps_per_step=2.0, drift_bps_per_hour=-10.0)
    mids = []
    for _ in range(50):
        clock_a.advance(37.0)
        clock_b.advance(37.0)
        assert venue_a.mid("GBP/EUR") == venue_b.mid("GBP/EUR")
        mids.append((clock_a.now(), venue_a.move_bps("GBP/EUR")))
    for i, (t1, m1) in enumerate(mids):
        for t2, m2 in mids[i + 1:]:
            assert abs(m2 - m1) <= venue_a.max_move_bps("GBP/EUR", t2 - t1) + 1e-9


def test_walk_book_sell_and_buy_with_cost() -> None:
    sell = walk_book(BOOK, "sell", 15_000)
    assert sell.received == pytest.approx(10_000 * 1.16 + 5_000 * 1.15)
    assert (sell.levels, sell.best, sell.exhausted) == (2, 1.16, False)
    assert sell.vwap == pytest.approx(sell.received / 15_000)
    buy = walk_book(BOOK, "buy", 11_700 + 1_180)  # quote spent
    assert buy.received == pytest.approx(10_000 + 1_000)
    assert walk_book(BOOK, "sell", 40_000).exhausted


def test_components_add_up_to_the_cost() -> None:
    _, _, ex = venue_and_exchange()
    est = estimate_reversal(ex, hold_currency="EUR", hold_amount=116_400.0,
                            original_currency="GBP", original_amount=100_000.0,
                            captured_rate=1.164, mid_at_conversion=1.1650)
    parts = est.entry_cost + est.rate_move + est.spread + est.slippage + est.fees
    assert parts == pytest.approx(est.cost, abs=0.03)
    assert est.levels > 1 and est.slippage > 0 and est.spread > 0 and est.fees > 0
    assert est.cost_bps == pytest.approx(est.cost / 100_000 * 10_000, abs=0.01)


def test_estimate_equals_the_fill_at_the_same_instant() -> None:
    _, venue, ex = venue_and_exchange()
    est = estimate_reversal(ex, hold_currency="EUR", hold_amount=116_400.0,
                            original_currency="GBP", original_amount=100_000.0,
                            captured_rate=1.164)
    fill = venue.create_order("GBP/EUR", "buy", cost=116_400.0, client_order_id="r1")
    realized_back = fill["filled"] - fill["fee"]["cost"]
    assert to_minor(est.expected_back, "GBP") == pytest.approx(to_minor(realized_back, "GBP"),
                                                               abs=1)


def test_estimated_vs_realized_within_the_documented_tolerance() -> None:
    """docs/payments.md: |realized - estimated| <= original x max move over the delay + 1 bp."""
    clock, venue, ex = venue_and_exchange(vol_bps_per_step=1.5, drift_bps_per_hour=-20.0)
    original, hold = 100_000.0, 116_400.0
    for delay in (0.0, 60.0, 900.0, 3_600.0, 86_400.0):
        est = estimate_reversal(ex, hold_currency="EUR", hold_amount=hold,
                                original_currency="GBP", original_amount=original,
                                captured_rate=hold / original)
        naive = original - hold / venue.mid("GBP/EUR")  # what ignoring the book would say
        clock.advance(delay)
        fill = venue.create_order("GBP/EUR", "buy", cost=hold, client_order_id=f"r{delay}")
        realized = original - (fill["filled"] - fill["fee"]["cost"])
        tolerance = original * (venue.max_move_bps("GBP/EUR", delay) + 1.0) / 10_000
        assert abs(realized - est.cost) <= tolerance
        if delay <= 60:
            # The bound is tight enough here to tell a depth walk from a mid-only guess,
            # which misses spread, slippage and fees.
            assert abs(realized - naive) > tolerance


def test_round_trip_estimate_equals_converting_and_reversing_at_once() -> None:
    _, venue, ex = venue_and_exchange()
    est = estimate_round_trip(ex, sell_currency="GBP", buy_currency="EUR", amount=100_000.0)
    assert venue.orders == {}  # an estimate places nothing
    parts = est.entry_cost + est.rate_move + est.spread + est.slippage + est.fees
    assert parts == pytest.approx(est.cost, abs=0.03)
    assert est.rate_move == 0.0 and est.entry_cost > 0
    there = venue.create_order("GBP/EUR", "sell", amount=100_000.0, client_order_id="f1")
    back = venue.create_order("GBP/EUR", "buy", cost=there["cost"] - there["fee"]["cost"],
                              client_order_id="f2")
    realized = 100_000.0 - (back["filled"] - back["fee"]["cost"])
    assert to_minor(realized, "GBP") == pytest.approx(to_minor(est.cost, "GBP"), abs=1)


def test_policy_thresholds() -> None:
    _, _, ex = venue_and_exchange()
    est = estimate_reversal(ex, hold_currency="EUR", hold_amount=116_400.0,
                            original_currency="GBP", original_amount=100_000.0,
                            captured_rate=1.164)
    assert ReversalPolicy().judge(est)[0]
    assert not ReversalPolicy(max_cost=est.cost - 0.01).judge(est)[0]
    ok, reason = ReversalPolicy(max_bps=est.cost_bps / 2).judge(est)
    assert not ok and "bps limit" in reason
    thin = estimate_reversal(ex, hold_currency="EUR", hold_amount=1e9,
                             original_currency="GBP", original_amount=1e9 / 1.164,
                             captured_rate=1.164)
    assert thin.exhausted and not ReversalPolicy(max_bps=1e9).judge(thin)[0]


def test_venue_orders_are_idempotent_by_client_id() -> None:
    _, venue, ex = venue_and_exchange()
    first = ex.create_order("GBP/EUR", "market", "sell", 1_000, None, {"clientOrderId": "k"})
    again = ex.create_order("GBP/EUR", "market", "sell", 1_000, None, {"clientOrderId": "k"})
    assert first == again and len(venue.orders) == 1
    with pytest.raises(ccxt.OrderNotFillable):
        ex.create_order("GBP/EUR", "market", "sell", 1e12, None, {"clientOrderId": "big"})


@pytest.mark.parametrize(
    ("error", "effect", "expected"),
    [
        (ccxt.RequestTimeout("t"), True, OutcomeUnknown),
        (ccxt.RequestTimeout("t"), False, TransientError),
        (ccxt.ExchangeNotAvailable("503"), True, TransientError),
        (ccxt.NetworkError("reset"), True, OutcomeUnknown),
        (ccxt.OrderNotFound("nf"), False, PermanentError),
        (ccxt.InsufficientFunds("$"), True, PermanentError),
        (ccxt.DuplicateOrderId("dup"), True, PermanentError),
    ],
)
def test_ccxt_errors_become_reversa_errors(error: Exception, effect: bool,
                                           expected: type[Exception]) -> None:
    translated = translate_ccxt(error, "convert", effect=effect)
    assert type(translated) is expected


def test_translated_messages_drop_url_query_strings() -> None:
    leaked = ccxt.ExchangeError("venue POST https://x.io/api?apiKey=SECRET&signature=abc failed")
    message = translate_ccxt(leaked, "convert", effect=True).message
    assert "SECRET" not in message and "signature" not in message
