"""A ccxt ``Exchange`` for the simulated FX venue.

Written the way ccxt's own exchanges are: ``describe()`` declares the API,
unified methods go through ``request() -> sign() -> fetch()``, and
``handle_errors()`` turns the venue's error replies into ccxt's exception
classes. Code written against ccxt (like the payments adapter) therefore
cannot tell it from a real exchange.

``fetch()`` is the one transport seam (as httpx's ``MockTransport``): given a
:class:`~reversa.simulators.fx_venue.FxVenue` it serves the call in process;
given a ``base_url`` it uses ccxt's own HTTP stack against the venue served
over loopback by :mod:`reversa.simulators.ledger.http`.

It declares the effect-boundary extensions of
:mod:`reversa.adapters.payments.fx_api`: a fencing token passed in
``params["reversaFence"]`` travels as the ``Reversa-Fence`` header, and
:meth:`SimFxExchange.block_order` tombstones a client order id at the venue.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import ccxt

from reversa.adapters.payments.fx_api import (
    BLOCK_CAPABILITY,
    FENCE_CAPABILITY,
    FENCE_PARAM,
    FxFenced,
)
from reversa.core.context import Fence

from .fx_venue import FxVenue

__all__ = ["SimFxExchange"]

_ERRORS: dict[str, type[Exception]] = {
    "timeout": ccxt.RequestTimeout,
    "unavailable": ccxt.ExchangeNotAvailable,
    "bad_symbol": ccxt.BadSymbol,
    "invalid_order": ccxt.InvalidOrder,
    "not_fillable": ccxt.OrderNotFillable,
    "duplicate_order_id": ccxt.DuplicateOrderId,
    "order_not_found": ccxt.OrderNotFound,
    "rejected": ccxt.OperationRejected,
    "fenced": FxFenced,
}

_FENCE_HEADER = "Reversa-Fence"  # the ledger server's header (simulators.ledger.http)


class SimFxExchange(ccxt.Exchange):  # type: ignore[misc]  # ccxt ships no type stubs
    """ccxt exchange ``reversa-fxsim``.

    Args:
        venue: Serve calls in process from this venue.
        base_url: Or reach the venue over HTTP (``http://127.0.0.1:PORT``).
        config: Usual ccxt options (``timeout`` in ms...).
    """

    def __init__(
        self,
        venue: FxVenue | None = None,
        base_url: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        if (venue is None) == (base_url is None):
            raise ValueError("give SimFxExchange either a venue (in process) or a base_url")
        self._venue = venue
        self._base_url = (base_url or "http://in-process").rstrip("/")
        super().__init__(config or {})

    def describe(self) -> Any:
        """ccxt exchange description."""
        return self.deep_extend(
            super().describe(),
            {
                "id": "reversa-fxsim",
                "name": "Reversa FX venue simulator",
                "countries": ["GB"],
                "rateLimit": 0,
                "has": {
                    "spot": True,
                    "fetchMarkets": True,
                    "fetchOrderBook": True,
                    "createOrder": True,
                    "createMarketBuyOrderWithCost": True,
                    "fetchOrder": True,
                    FENCE_CAPABILITY: True,
                    BLOCK_CAPABILITY: True,
                },
                "urls": {"api": {"public": self._base_url, "private": self._base_url}},
                "timeout": 5000,
                "enableRateLimit": False,
            },
        )

    # -- unified API ----------------------------------------------------------------------
    def fetch_markets(self, params: dict[str, Any] | None = None) -> Any:
        """Markets in ccxt's market structure."""
        return self.request("markets", "public", "POST", params or {})

    def fetch_order_book(
        self, symbol: str, limit: int | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The venue's book, parsed with ccxt's own ``parse_order_book``."""
        self.load_markets()
        request = {"symbol": symbol, **({"limit": limit} if limit is not None else {})}
        raw = self.request("order_book", "public", "POST", {**request, **(params or {})})
        book = self.parse_order_book(raw, symbol, raw.get("timestamp"))
        book["nonce"] = raw.get("nonce")
        return book

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Market orders only. ``params``: ``clientOrderId`` (required), ``cost``."""
        params = dict(params or {})
        if type != "market":
            raise ccxt.InvalidOrder(f"{self.id} only takes market orders")
        body: dict[str, Any] = {
            "symbol": symbol, "side": side, "clientOrderId": params.pop("clientOrderId", None),
        }
        if "cost" in params:
            body["cost"] = params.pop("cost")
        else:
            body["amount"] = amount
        return self.request("create_order", "private", "POST", _fenced(body, params))

    def create_market_buy_order_with_cost(
        self, symbol: str, cost: float, params: dict[str, Any] | None = None
    ) -> Any:
        """Spend ``cost`` of the quote currency on the base currency."""
        merged = {**(params or {}), "cost": cost}
        return self.create_order(symbol, "market", "buy", 0.0, None, merged)

    def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Look an order up by its ``clientOrderId`` (pass it as ``id``)."""
        body = _fenced({"clientOrderId": id}, params)
        return self.request("fetch_order", "private", "POST", body)

    def block_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        """The fill under client order id ``id``, or None once the venue tombstoned ``id``."""
        body = _fenced({"clientOrderId": id}, params)
        return self.request("block_order", "private", "POST", body)["order"]

    # -- transport --------------------------------------------------------------------------
    def sign(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: dict[str, Any] | None = None,
        headers: Any = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """Build the wire request (JSON POST to ``/v1/fx/<path>``; fence as a header)."""
        body = dict(params or {})
        wire_headers = {"Content-Type": "application/json"}
        fence = body.pop(FENCE_PARAM, None)
        if fence is not None:
            wire_headers[_FENCE_HEADER] = str(fence)
        return {
            "url": f"{self._base_url}/v1/fx/{path}",
            "method": "POST",
            "headers": wire_headers,
            "body": json.dumps(body),
        }

    def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        """Serve in process when given a venue; otherwise ccxt's HTTP fetch."""
        if self._venue is None:
            return super().fetch(url, method, headers, body)
        op = urlparse(url).path.rsplit("/", 1)[-1]
        header = (headers or {}).get(_FENCE_HEADER)
        fence = Fence.parse(header) if header else None
        status, payload = self._venue.dispatch(op, json.loads(body or "{}"), fence)
        if status == 0:
            raise ccxt.NetworkError(f"{self.id} {method} {url} connection aborted")
        if status >= 400:
            text = json.dumps(payload)
            self.handle_errors(status, "", url, method, {}, text, payload, headers, body)
            raise ccxt.ExchangeError(f"{self.id} {method} {url} {status}")
        return payload

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Any,
        body: Any,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> None:
        """Raise the ccxt exception matching the venue's error reply."""
        if not isinstance(response, dict) or "error" not in response:
            return
        error = response["error"]
        cls = _ERRORS.get(str(error.get("type")), ccxt.ExchangeError)
        raise cls(f"{self.id} {error.get('message', '')}")


def _fenced(body: dict[str, Any], params: dict[str, Any] | None) -> dict[str, Any]:
    fence = (params or {}).get(FENCE_PARAM)
    return {**body, FENCE_PARAM: fence} if fence is not None else body
