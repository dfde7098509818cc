"""FX reversal cost: walk a ccxt unified order book for the amount to convert back.

The estimate answers "if we reversed this conversion now, how much of the
original currency would come back, and what does the shortfall consist of?"
It reads the venue's current book in ccxt's unified structure
(``{'bids': [[price, amount], ...], 'asks': ...}``, prices in quote per base,
amounts in base), walks the depth for the amount, and uses ccxt's own
``calculate_fee`` with the market's taker rate. The shortfall against the
original amount splits into:

- **entry cost**: what the original conversion itself paid against the mid of
  its time (its own spread, slippage and fee);
- **rate move**: how far the mid moved since the conversion;
- **spread**: crossing from the mid to the best price on our side;
- **slippage**: walking past the best level because the amount is larger;
- **fees**: the venue's taker fee.

``entry_cost + rate_move + spread + slippage + fees == original - expected_back`` (each is
rounded to the cent, so the sum may differ from the cost by a cent or two).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reversa.core.errors import PermanentError

__all__ = [
    "BookWalk",
    "ReversalEstimate",
    "ReversalPolicy",
    "conversion_side",
    "estimate_reversal",
    "estimate_round_trip",
    "walk_book",
]


@dataclass(frozen=True, slots=True)
class BookWalk:
    """Result of walking one side of a book.

    Attributes:
        given: How much of the given currency the book absorbed.
        received: Gross amount of the received currency (before fees).
        vwap: Volume-weighted price (quote per base) of the walk.
        best: Best price on the side walked.
        levels: Levels touched.
        exhausted: The book could not absorb everything given.
    """

    given: float
    received: float
    vwap: float
    best: float
    levels: int
    exhausted: bool


def conversion_side(markets: Mapping[str, Any], give: str, get: str) -> tuple[str, str]:
    """The ccxt symbol and side that converts ``give`` into ``get``.

    ``GIVE/GET`` is a sell of the base; ``GET/GIVE`` is a buy spending the quote.

    Raises:
        PermanentError: The venue lists neither market.
    """
    if f"{give}/{get}" in markets:
        return f"{give}/{get}", "sell"
    if f"{get}/{give}" in markets:
        return f"{get}/{give}", "buy"
    raise PermanentError(
        f"the FX venue lists neither {give}/{get} nor {get}/{give}", code="fx_no_market"
    )


def walk_book(book: Mapping[str, Any], side: str, give: float) -> BookWalk:
    """Walk ``book`` for an order that gives ``give``.

    A ``sell`` gives base and walks the bids; a ``buy`` gives quote (spends a
    cost) and walks the asks.
    """
    levels: Sequence[Sequence[float]] = book["bids"] if side == "sell" else book["asks"]
    if not levels:
        return BookWalk(0.0, 0.0, 0.0, 0.0, 0, True)
    left, base, quote, used = give, 0.0, 0.0, 0
    for level in levels:
        if left <= 1e-9:
            break
        price, amount = float(level[0]), float(level[1])
        used += 1
        if side == "sell":
            take = min(left, amount)
            base += take
            quote += take * price
        else:
            take = min(left, price * amount)
            quote += take
            base += take / price
        left -= take
    received = quote if side == "sell" else base
    vwap = quote / base if base else 0.0
    return BookWalk(give - max(left, 0.0), received, vwap, float(levels[0][0]), used, left > 1e-6)


@dataclass(frozen=True, slots=True)
class ReversalPolicy:
    """When a reversal is too costly to run without a human.

    Attributes:
        max_cost: Ceiling in major units of the original currency.
        max_bps: Ceiling in basis points of the original amount.
    """

    max_cost: float | None = None
    max_bps: float | None = None

    def judge(self, estimate: ReversalEstimate) -> tuple[bool, str]:
        """``(acceptable, reason)`` for an estimate."""
        if estimate.exhausted:
            return False, (
                f"the {estimate.symbol} book is too thin to convert "
                f"{estimate.give_amount:,.2f} {estimate.give_currency} back"
            )
        cost = f"{estimate.cost:,.2f} {estimate.currency} ({estimate.cost_bps:.1f} bps)"
        if self.max_cost is not None and estimate.cost > self.max_cost:
            return False, f"reversal would cost {cost}, above the {self.max_cost:,.2f} limit"
        if self.max_bps is not None and estimate.cost_bps > self.max_bps:
            return False, f"reversal would cost {cost}, above the {self.max_bps:g} bps limit"
        return True, f"reversal would cost {cost}, within policy"


@dataclass(frozen=True, slots=True)
class ReversalEstimate:
    """What reversing a conversion would cost now (all amounts in major units).

    ``currency`` is the original currency (what we want back); ``give_*`` is
    what we hold and would sell.
    """

    symbol: str
    side: str
    currency: str
    original: float
    give_currency: str
    give_amount: float
    captured_rate: float
    mid: float
    best: float
    vwap: float
    levels: int
    exhausted: bool
    fee_rate: float
    mid_at_conversion: float | None
    entry_cost: float
    rate_move: float
    spread: float
    slippage: float
    fees: float
    expected_back: float
    cost: float
    cost_bps: float
    book_timestamp: int | None
    book_nonce: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (dry-run findings, rollback record)."""
        return asdict(self)


def estimate_reversal(
    exchange: Any,
    *,
    hold_currency: str,
    hold_amount: float,
    original_currency: str,
    original_amount: float,
    captured_rate: float,
    mid_at_conversion: float | None = None,
) -> ReversalEstimate:
    """Estimate converting ``hold_amount`` of ``hold_currency`` back, from the live book.

    Args:
        exchange: Any ccxt exchange (a real one, or the simulator's ``SimFxExchange``).
        hold_currency: What the conversion bought (and we now hold).
        hold_amount: How much of it to convert back (major units).
        original_currency: What the conversion sold (what we want back).
        original_amount: How much it sold (major units).
        captured_rate: ``hold / original`` at the time of the conversion.
        mid_at_conversion: The venue's mid when converting, if recorded; without
            it the entry cost is reported inside the rate move.
    """
    markets = exchange.load_markets()
    symbol, side = conversion_side(markets, hold_currency, original_currency)
    book = exchange.fetch_order_book(symbol)
    walk = walk_book(book, side, hold_amount)
    bids, asks = book["bids"], book["asks"]
    mid = (float(bids[0][0]) + float(asks[0][0])) / 2 if bids and asks else walk.best

    def value(price: float) -> float:
        # What hold_amount is worth in the original currency at one price.
        if price <= 0:
            return 0.0
        return hold_amount * price if side == "sell" else hold_amount / price

    then = mid_at_conversion or _price_for(side, hold_amount, original_amount)
    fee_info = exchange.calculate_fee(symbol, "market", side, _fee_amount(side, walk), walk.vwap)
    fee = float(fee_info.get("cost") or 0.0)
    if fee_info.get("currency") == hold_currency:
        fee = value(walk.vwap) * fee / hold_amount if hold_amount else 0.0
    expected = walk.received - fee
    cost = original_amount - expected
    return ReversalEstimate(
        symbol=symbol, side=side, currency=original_currency, original=original_amount,
        give_currency=hold_currency, give_amount=hold_amount, captured_rate=captured_rate,
        mid=mid, best=walk.best, vwap=walk.vwap, levels=walk.levels, exhausted=walk.exhausted,
        fee_rate=float(fee_info.get("rate") or 0.0), mid_at_conversion=mid_at_conversion,
        entry_cost=round(original_amount - value(then), 2),
        rate_move=round(value(then) - value(mid), 2),
        spread=round(value(mid) - value(walk.best), 2),
        slippage=round(value(walk.best) - walk.received, 2),
        fees=round(fee, 2), expected_back=round(expected, 2), cost=round(cost, 2),
        cost_bps=round(cost / original_amount * 10_000, 3) if original_amount else 0.0,
        book_timestamp=book.get("timestamp"), book_nonce=book.get("nonce"),
    )


def estimate_round_trip(
    exchange: Any, *, sell_currency: str, buy_currency: str, amount: float
) -> ReversalEstimate:
    """What converting ``amount`` now and reversing it at once would cost, from the live book.

    The estimate an agent sees before a conversion runs (a saga preview): the
    entry cost (spread, depth and fee of the conversion itself) plus the
    reversal's, with no rate move. It reads the book and places nothing.

    Args:
        exchange: Any ccxt exchange.
        sell_currency: What the conversion would sell.
        buy_currency: What it would buy.
        amount: How much it would sell (major units).
    """
    symbol, side = conversion_side(exchange.load_markets(), sell_currency, buy_currency)
    book = exchange.fetch_order_book(symbol)
    walk = walk_book(book, side, amount)
    bids, asks = book["bids"], book["asks"]
    mid = (float(bids[0][0]) + float(asks[0][0])) / 2 if bids and asks else walk.best
    fee_info = exchange.calculate_fee(symbol, "market", side, _fee_amount(side, walk), walk.vwap)
    fee = float(fee_info.get("cost") or 0.0)
    if fee_info.get("currency") not in (None, buy_currency):
        # Charged in the currency given: value it at the walk's price.
        fee = fee * walk.vwap if side == "sell" else fee / walk.vwap if walk.vwap else 0.0
    bought = max(walk.received - fee, 0.0)
    return estimate_reversal(
        exchange, hold_currency=buy_currency, hold_amount=bought,
        original_currency=sell_currency, original_amount=amount,
        captured_rate=bought / amount if amount else 0.0, mid_at_conversion=mid)


def _price_for(side: str, hold_amount: float, original_amount: float) -> float:
    # The price at which hold_amount is worth exactly original_amount.
    if hold_amount <= 0 or original_amount <= 0:
        return 0.0
    return original_amount / hold_amount if side == "sell" else hold_amount / original_amount


def _fee_amount(side: str, walk: BookWalk) -> float:
    # ccxt's calculate_fee takes the order amount in base currency.
    return walk.given if side == "sell" else walk.received
