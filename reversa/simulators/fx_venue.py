"""A simulated FX venue: ccxt-shaped order books whose rate drifts, and market orders.

The venue quotes each market around a mid rate that moves with time: a
deterministic drift plus a random walk of bounded steps drawn from a seeded RNG,
read through an injected clock, so a test replays the same path exactly and can
bound how far the rate can move in a given time (:meth:`FxVenue.max_move_bps`).

Books follow ccxt's unified structure (``{'symbol', 'bids': [[price, amount],
...], 'asks', 'timestamp', 'datetime', 'nonce'}``), amounts in the base
currency, prices in quote per base. Depth is rebuilt from the mid at every
instant (liquidity replenishes at once; a fill does not eat the next quote).

Market orders walk the book. A sell gives ``amount`` base; a buy takes either
``amount`` base or spends ``cost`` quote (ccxt's
``createMarketBuyOrderWithCost``). The taker fee is charged in the currency
received. Orders are idempotent by ``clientOrderId``: a replay returns the first
fill, the same id with different parameters is refused.

The venue keeps the effect boundary (:mod:`reversa.simulators.boundary`): every
call may carry the caller's fencing token, and a lower epoch than one seen for
the saga is refused (``fenced``); :meth:`FxVenue.block_order` returns an order's
fill, or tombstones its ``clientOrderId`` so no order may ever be placed under
it. What landed and what was refused is counted per client order id.

Clients reach the venue through :class:`~reversa.simulators.fx_exchange.SimFxExchange`,
a ccxt ``Exchange`` subclass, in process or over HTTP.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from reversa.core.clock import SystemClock
from reversa.core.context import Fence
from reversa.core.errors import Fenced

from .boundary import EffectBoundary
from .ledger.faults import FaultKind, FaultPlan

__all__ = ["FxMarket", "FxVenue", "VenueError"]


class _Now(Protocol):
    def now(self) -> float: ...


@dataclass(frozen=True, slots=True)
class FxMarket:
    """One currency pair and the shape of its book.

    Attributes:
        base: Base currency (amounts are in it), e.g. ``"GBP"``.
        quote: Quote currency (prices are quote per base), e.g. ``"EUR"``.
        mid: Mid rate at the venue's start time.
        half_spread_bps: Distance of the best bid/ask from the mid.
        level_step_bps: Extra distance of each deeper level.
        level_amount: Base amount at the best level.
        amount_growth: Each deeper level holds ``level_amount * (1 + growth * i)``.
        depth: Number of levels per side.
        taker_fee: Fee rate charged in the currency received.
        drift_bps_per_hour: Deterministic drift of the mid (log, in bps).
        vol_bps_per_step: Bound of each random-walk step (uniform in +/- this).
        step_s: Seconds between random-walk steps.
    """

    base: str
    quote: str
    mid: float
    half_spread_bps: float = 2.0
    level_step_bps: float = 1.5
    level_amount: float = 25_000.0
    amount_growth: float = 0.5
    depth: int = 20
    taker_fee: float = 0.0002
    drift_bps_per_hour: float = 0.0
    vol_bps_per_step: float = 0.5
    step_s: float = 60.0

    @property
    def symbol(self) -> str:
        """ccxt unified symbol, ``"GBP/EUR"``."""
        return f"{self.base}/{self.quote}"


class VenueError(Exception):
    """A venue refusal, carried on the wire as ``{"error": {"type", "message"}}``.

    ``type`` is one of: timeout, unavailable, bad_symbol, invalid_order,
    not_fillable, duplicate_order_id, order_not_found, rejected, fenced, dropped.
    """

    status_by_type: ClassVar[dict[str, int]] = {
        "timeout": 504, "unavailable": 503, "bad_symbol": 400, "invalid_order": 400,
        "not_fillable": 422, "duplicate_order_id": 409, "order_not_found": 404,
        "rejected": 422, "fenced": 412, "dropped": 0,
    }

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message

    @property
    def status(self) -> int:
        """HTTP status for the wire (0: drop the connection without a reply)."""
        return self.status_by_type.get(self.type, 500)


class FxVenue:
    """The venue: books, fills, idempotent orders and injected faults.

    Args:
        markets: The markets it quotes.
        clock: Source of time (anything with ``now()``); the rate path is a
            function of ``clock.now() - start``.
        seed: Seed of the random walk (same seed, same path).
        faults: Fault plan (ops: ``markets``, ``order_book``, ``create_order``,
            ``fetch_order``).
        start: Time the walk starts from (default: the clock's now).
    """

    def __init__(
        self,
        markets: Sequence[FxMarket],
        *,
        clock: _Now | None = None,
        seed: int | str = 0,
        faults: FaultPlan | None = None,
        start: float | None = None,
    ) -> None:
        self.clock: _Now = clock or SystemClock()
        self.markets: dict[str, FxMarket] = {m.symbol: m for m in markets}
        self.faults = faults or FaultPlan()
        self.start = self.clock.now() if start is None else start
        self.orders: dict[str, dict[str, Any]] = {}
        """Fills by clientOrderId, in execution order."""
        self._order_params: dict[str, tuple[object, ...]] = {}
        self._walks: dict[str, list[float]] = {}
        self._rngs = {s: random.Random(f"{seed}:{s}") for s in self.markets}
        self._nonce = 0
        self._lock = threading.RLock()
        self.boundary = EffectBoundary()
        """Fencing tokens, tombstoned client order ids, what landed / was refused."""

    # -- the rate path ----------------------------------------------------------------
    def _market(self, symbol: str) -> FxMarket:
        market = self.markets.get(symbol)
        if market is None:
            raise VenueError("bad_symbol", f"no market {symbol!r}; known: {sorted(self.markets)}")
        return market

    def move_bps(self, symbol: str, at: float | None = None) -> float:
        """Log move of the mid since start, in bps, at time ``at`` (default now)."""
        market = self._market(symbol)
        elapsed = max(0.0, (self.clock.now() if at is None else at) - self.start)
        steps = int(elapsed // market.step_s)
        with self._lock:
            walk = self._walks.setdefault(symbol, [0.0])
            rng = self._rngs[symbol]
            while len(walk) <= steps:
                bound = market.vol_bps_per_step
                walk.append(walk[-1] + rng.uniform(-bound, bound))
            return market.drift_bps_per_hour * elapsed / 3600.0 + walk[steps]

    def mid(self, symbol: str, at: float | None = None) -> float:
        """Mid rate (quote per base) at time ``at`` (default now)."""
        return self._market(symbol).mid * math.exp(self.move_bps(symbol, at) / 10_000.0)

    def max_move_bps(self, symbol: str, elapsed_s: float) -> float:
        """Upper bound of the mid's log move over any ``elapsed_s`` window, in bps."""
        market = self._market(symbol)
        steps = math.floor(max(0.0, elapsed_s) / market.step_s) + 1
        return abs(market.drift_bps_per_hour) * elapsed_s / 3600.0 + market.vol_bps_per_step * steps

    def order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        """The current book in ccxt's unified order-book structure."""
        market = self._market(symbol)
        now = self.clock.now()
        mid = self.mid(symbol, now)
        levels = market.depth if limit is None else max(1, min(limit, market.depth))
        bids, asks = [], []
        for i in range(levels):
            off = (market.half_spread_bps + i * market.level_step_bps) / 10_000.0
            amount = round(market.level_amount * (1.0 + market.amount_growth * i), 2)
            bids.append([round(mid * (1.0 - off), 6), amount])
            asks.append([round(mid * (1.0 + off), 6), amount])
        with self._lock:
            self._nonce += 1
            nonce = self._nonce
        ms = int(now * 1000)
        return {
            "symbol": symbol, "bids": bids, "asks": asks, "timestamp": ms,
            "datetime": _iso8601(ms), "nonce": nonce,
        }

    # -- orders -----------------------------------------------------------------------
    def create_order(
        self,
        symbol: str,
        side: str,
        *,
        client_order_id: str,
        amount: float | None = None,
        cost: float | None = None,
        fence: Fence | None = None,
    ) -> dict[str, Any]:
        """Execute a market order now (see the module docs); idempotent by client id.

        Raises:
            VenueError: ``fenced`` when ``fence`` is stale or the client order id
                was blocked; the order was not placed.
        """
        if not client_order_id:
            raise VenueError(
                "invalid_order", "clientOrderId is required (it is the idempotency key)"
            )
        params = (symbol, side, amount, cost)
        with self._lock:
            self._admit("create_order", fence, [client_order_id])
            if client_order_id in self.orders:
                if self._order_params[client_order_id] != params:
                    raise VenueError(
                        "duplicate_order_id",
                        f"clientOrderId {client_order_id!r} was used for a different order",
                    )
                return dict(self.orders[client_order_id])
            order = self._fill(symbol, side, amount, cost, client_order_id)
            self.orders[client_order_id] = order
            self._order_params[client_order_id] = params
            self.boundary.count_landed([client_order_id])
            return dict(order)

    def fetch_order(self, client_order_id: str, fence: Fence | None = None) -> dict[str, Any]:
        """The fill of ``client_order_id``, or VenueError('order_not_found')."""
        with self._lock:
            self._admit("fetch_order", fence)
            order = self.orders.get(client_order_id)
        if order is None:
            raise VenueError("order_not_found", f"no order with clientOrderId {client_order_id!r}")
        return dict(order)

    def block_order(self, client_order_id: str, fence: Fence | None = None
                    ) -> dict[str, Any] | None:
        """Atomically: the fill of ``client_order_id``, or None after tombstoning it."""
        with self._lock:
            self._admit("block_order", fence)
            order = self.orders.get(client_order_id)
            if order is None:
                self.boundary.tombstone(client_order_id, fence)
                return None
            return dict(order)

    def stats(self) -> dict[str, Any]:
        """What landed and what was refused, per client order id."""
        return {**self.boundary.stats(), "orders": len(self.orders),
                "stalled": self.faults.stalled.is_set()}

    def _admit(self, op: str, fence: Fence | None, keys: Sequence[str] = ()) -> None:
        self.boundary.note(op, fence)
        try:
            self.boundary.admit(op, fence, keys)
        except Fenced as exc:
            raise VenueError("fenced", exc.message) from None

    def _fill(
        self, symbol: str, side: str, amount: float | None, cost: float | None, cid: str
    ) -> dict[str, Any]:
        market = self._market(symbol)
        if side not in ("buy", "sell") or (amount is None) == (cost is None):
            raise VenueError("invalid_order", "give side buy/sell and exactly one of amount, cost")
        if cost is not None and side != "buy":
            raise VenueError("invalid_order", "cost is only for market buys")
        size = amount if amount is not None else cost
        if size is None or size <= 0:
            raise VenueError("invalid_order", "amount/cost must be positive")
        book = self.order_book(symbol)
        levels = book["bids"] if side == "sell" else book["asks"]
        base = quote = 0.0
        left = size
        for price, avail in levels:
            if left <= 1e-9:
                break
            if cost is not None:
                take_quote = min(left, price * avail)
                base += take_quote / price
                quote += take_quote
                left -= take_quote
            else:
                take = min(left, avail)
                base += take
                quote += take * price
                left -= take
        if left > 1e-6:
            raise VenueError(
                "not_fillable", f"{symbol} {side} of {size} exceeds the book's depth"
            )
        received, fee_ccy = (quote, market.quote) if side == "sell" else (base, market.base)
        fee = round(received * market.taker_fee, 8)
        with self._lock:
            order_no = len(self.orders) + 1
        return {
            "id": f"fx-{order_no:06d}", "clientOrderId": cid, "timestamp": book["timestamp"],
            "datetime": book["datetime"], "lastTradeTimestamp": book["timestamp"],
            "symbol": symbol, "type": "market", "timeInForce": "IOC", "side": side,
            "price": round(quote / base, 8), "average": round(quote / base, 8),
            "amount": round(base, 8), "filled": round(base, 8), "remaining": 0.0,
            "cost": round(quote, 8), "status": "closed",
            "fee": {"currency": fee_ccy, "cost": fee, "rate": market.taker_fee},
            "trades": [], "info": {"mid": self.mid(symbol)},
        }

    # -- wire boundary ------------------------------------------------------------------
    def markets_payload(self) -> list[dict[str, Any]]:
        """The venue's markets in ccxt's market structure."""
        return [
            {
                "id": m.symbol.replace("/", ""), "symbol": m.symbol, "base": m.base,
                "quote": m.quote, "baseId": m.base, "quoteId": m.quote, "type": "spot",
                "spot": True, "active": True, "taker": m.taker_fee, "maker": m.taker_fee,
                "feeSide": "get", "precision": {"amount": 0.01, "price": 0.000001},
                "limits": {"amount": {"min": 0.01, "max": None}},
            }
            for m in self.markets.values()
        ]

    def dispatch(self, op: str, payload: Mapping[str, Any], fence: Fence | None = None
                 ) -> tuple[int, Any]:
        """Serve one wire call: ``(status, JSON body)``; status 0 means "drop"."""
        try:
            return 200, self._serve(op, payload, fence)
        except VenueError as exc:
            return exc.status, {"error": {"type": exc.type, "message": exc.message}}

    def _serve(self, op: str, payload: Mapping[str, Any], fence: Fence | None) -> Any:
        handlers: dict[str, Callable[[], Any]] = {
            "markets": lambda: self.markets_payload(),
            "order_book": lambda: self.order_book(str(payload["symbol"]), payload.get("limit")),
            "create_order": lambda: self.create_order(
                str(payload["symbol"]), str(payload["side"]),
                client_order_id=str(payload.get("clientOrderId") or ""),
                amount=payload.get("amount"), cost=payload.get("cost"), fence=fence,
            ),
            "fetch_order": lambda: self.fetch_order(str(payload["clientOrderId"]), fence),
            "block_order": lambda: {"order": self.block_order(str(payload["clientOrderId"]),
                                                              fence)},
        }
        handler = handlers.get(op)
        if handler is None:
            raise VenueError("invalid_order", f"unknown venue operation {op!r}")
        # An order is in flight from its arrival (faults included) to its reply.
        keys = [str(payload.get("clientOrderId") or "")] if op == "create_order" else []
        with self.boundary.in_flight(keys):
            return self._faulted(op, payload, handler)

    def _faulted(self, op: str, payload: Mapping[str, Any], handler: Callable[[], Any]) -> Any:
        fault = self.faults.take(op, payload)
        if fault is None:
            return handler()
        if fault.kind is FaultKind.LATENCY:
            self.faults.sleep(fault.latency_s)
            return handler()
        if fault.kind is FaultKind.REJECT:
            raise VenueError("rejected", f"{op} rejected ({fault.code})")
        if fault.latency_s:
            self.faults.sleep(fault.latency_s)
        if fault.applied:
            with contextlib.suppress(VenueError):
                handler()
        if fault.kind is FaultKind.STALL:
            self.faults.wait_stalled()
        if fault.kind is FaultKind.CRASH:
            raise VenueError("dropped", f"venue connection dropped during {op}")
        raise VenueError("timeout", f"{op} timed out")


def _iso8601(ms: int) -> str:
    import datetime as _dt

    stamp = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
