"""FX conversion as a governed operation: capture the rate, cost the reversal first.

``execute`` sells ``amount`` of ``sell_currency`` at the venue (a ccxt market
order whose ``clientOrderId`` is the step's idempotency key), then books the
two legs in the ledger as one linked chain (TigerBeetle's currency-exchange
pattern: ``from_account -> fx:<SELL>`` and ``fx:<BUY> -> to_account``). The
result records the captured rate and what reversing it would cost right away.

``estimate_cost`` walks the venue's current book for the reversal (see
:mod:`reversa.adapters.payments.fx`); the policy (``max_reversal_cost`` in major
units or ``max_reversal_cost_bps``) turns a too-costly reversal into
``CostEstimate(acceptable=False)``, which makes the dry-run infeasible, so a
human decides instead of the engine.

``block`` asks the venue for the order with the action's client order id and,
where the venue can (``has["blockOrder"]``), tombstones that id in the same call,
so a late order from a paused owner is refused. Every order call carries the
saga's fencing token where the venue checks them (``has["reversaFence"]``; see
:mod:`reversa.adapters.payments.fx_api`).

``compensate`` converts the bought amount back (clientOrderId: the
compensation's key) and books **corrections** of both legs. The original
account gets back exactly what it gave: what the reversal yields, topped up from
the FX P&L account by the realized cost (``fx_reversal_cost``), or with the
surplus moved to P&L (``fx_reversal_gain``). The realized cost is recorded next
to the estimate taken just before the reversal.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import ccxt

from reversa.core.context import Check, CostEstimate, Probe, StepContext
from reversa.core.errors import PermanentError, PreconditionFailed

from ._boundary import fx_boundary, ledger_boundary
from .fx import ReversalEstimate, ReversalPolicy, conversion_side, estimate_reversal
from .fx_api import BLOCK_CAPABILITY, FENCE_CAPABILITY, FENCE_PARAM
from .ledger_api import AccountRole, LedgerAPI, TransferRequest
from .money import format_money, to_major, to_minor

__all__ = ["FxConvert"]


class FxConvert:
    """Convert between currencies at an FX venue reached through ccxt.

    Step params: ``sell_currency``, ``buy_currency``, ``amount`` (of the sell
    currency, major units), ``from_account`` and ``to_account`` (ledger accounts
    in each currency); optional ``liquidity_prefix`` (default ``fx:``),
    ``pnl_account`` (default ``fx_pnl:<SELL>``), ``max_reversal_cost``,
    ``max_reversal_cost_bps``.

    Args:
        fx_service: Name of the ccxt exchange service (default ``fx``).
        ledger_service: Name of the :class:`LedgerAPI` service (default ``ledger``).
    """

    name = "payments.fx_convert"

    def __init__(self, fx_service: str = "fx", ledger_service: str = "ledger") -> None:
        self.fx_service = fx_service
        self.ledger_service = ledger_service

    # -- helpers ------------------------------------------------------------------------
    def _exchange(self, ctx: StepContext) -> ccxt.Exchange:
        return ctx.service(self.fx_service, ccxt.Exchange)

    def _ledger(self, ctx: StepContext) -> LedgerAPI:
        return ctx.service(self.ledger_service, LedgerAPI)

    @staticmethod
    def _fenced(ex: ccxt.Exchange, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` plus the fencing token, for a venue that checks them."""
        if ex.has.get(FENCE_CAPABILITY):
            return {**params, FENCE_PARAM: ctx.fence.header()}
        return params

    @staticmethod
    def _policy(ctx: StepContext) -> ReversalPolicy:
        cost = ctx.param("max_reversal_cost", None)
        bps = ctx.param("max_reversal_cost_bps", None)
        return ReversalPolicy(
            max_cost=None if cost is None else float(cost),
            max_bps=None if bps is None else float(bps),
        )

    @staticmethod
    def _accounts(ctx: StepContext, sell: str, buy: str) -> dict[str, str]:
        prefix = str(ctx.param("liquidity_prefix", "fx:"))
        return {
            "from": str(ctx.param("from_account")), "to": str(ctx.param("to_account")),
            "liq_sell": f"{prefix}{sell}", "liq_buy": f"{prefix}{buy}",
            "pnl": str(ctx.param("pnl_account", f"fx_pnl:{sell}")),
        }

    @staticmethod
    def _ensure_accounts(ledger: LedgerAPI, acc: Mapping[str, str], sell: str, buy: str,
                         ctx: StepContext) -> None:
        fence = ctx.fence
        ledger.create_account(acc["liq_sell"], sell, AccountRole.FX_LIQUIDITY.value, fence=fence)
        ledger.create_account(acc["liq_buy"], buy, AccountRole.FX_LIQUIDITY.value, fence=fence)
        ledger.create_account(acc["pnl"], sell, AccountRole.PNL.value, fence=fence)

    def _place(self, ctx: StepContext, give: str, get: str, amount: float, client_id: str
               ) -> dict[str, Any]:
        ex = self._exchange(ctx)
        symbol, side = conversion_side(ex.load_markets(), give, get)
        params = self._fenced(ex, ctx, {"clientOrderId": client_id})
        if side == "sell":
            order: dict[str, Any] = ex.create_order(symbol, "market", "sell", amount, None, params)
        else:
            order = ex.create_market_buy_order_with_cost(symbol, amount, params)
        return order

    @staticmethod
    def _received(order: Mapping[str, Any], get: str) -> int:
        """Net amount of ``get`` an order delivered, in minor units."""
        gross = order["cost"] if order["side"] == "sell" else order["filled"]
        fee = order.get("fee") or {}
        fee_cost = Decimal(str(fee.get("cost") or 0))
        if fee.get("currency") not in (None, get):
            # Fee charged in the currency given: value it at the fill's price.
            price = Decimal(str(order["average"]))
            fee_cost = fee_cost * price if order["side"] == "sell" else fee_cost / price
        return to_minor(Decimal(str(gross)) - fee_cost, get)

    def _forward(
        self, ctx: StepContext, order: Mapping[str, Any], key: str
    ) -> tuple[dict[str, Any], list[TransferRequest]]:
        """Rebuild the forward result and its ledger legs from the venue's fill."""
        sell = str(ctx.param("sell_currency")).upper()
        buy = str(ctx.param("buy_currency")).upper()
        sold = to_minor(ctx.param("amount"), sell)
        bought = self._received(order, buy)
        acc = self._accounts(ctx, sell, buy)
        rate = to_major(bought, buy) / to_major(sold, sell)
        legs = [
            TransferRequest(
                id=f"{key}/give", debit_account=acc["from"], credit_account=acc["liq_sell"],
                amount=sold, currency=sell, code="fx_leg",
                reference=f"FX {order['symbol']} {order['side']} order {order['id']}",
            ),
            TransferRequest(
                id=f"{key}/get", debit_account=acc["liq_buy"], credit_account=acc["to"],
                amount=bought, currency=buy, code="fx_leg",
                reference=f"FX {order['symbol']} {order['side']} order {order['id']}",
            ),
        ]
        result = {
            "symbol": order["symbol"], "side": order["side"],
            "order_id": order["id"], "client_order_id": order.get("clientOrderId"),
            "sell_currency": sell, "sell_amount": sold, "buy_currency": buy,
            "buy_amount": bought, "buy_amount_major": str(to_major(bought, buy)),
            "rate": float(round(rate, 8)), "legs": [leg.id for leg in legs],
            "mid_at_execution": (order.get("info") or {}).get("mid"),
            "from_account": acc["from"], "to_account": acc["to"],
            "display": f"{format_money(sold, sell)} -> {format_money(bought, buy)}",
        }
        return result, legs

    def _estimate(self, ctx: StepContext, forward: Mapping[str, Any]) -> ReversalEstimate:
        sell, buy = str(forward["sell_currency"]), str(forward["buy_currency"])
        with fx_boundary(f"estimate reversal of {ctx.step!r}", effect=False):
            return estimate_reversal(
                self._exchange(ctx), hold_currency=buy,
                hold_amount=float(to_major(int(forward["buy_amount"]), buy)),
                original_currency=sell,
                original_amount=float(to_major(int(forward["sell_amount"]), sell)),
                captured_rate=float(forward["rate"]),
                mid_at_conversion=forward.get("mid_at_execution"),
            )

    def _order(self, ctx: StepContext, client_id: str) -> dict[str, Any] | None:
        """The venue's fill for ``client_id`` (the source of truth), or None."""
        ex = self._exchange(ctx)
        with fx_boundary(f"look up FX order of {ctx.step!r}", effect=False):
            try:
                order: dict[str, Any] = ex.fetch_order(client_id, None,
                                                       self._fenced(ex, ctx, {}))
            except ccxt.OrderNotFound:
                return None  # an answer, not a failure: no order under this id
        return order

    def _fetch_forward(
        self, ctx: StepContext
    ) -> tuple[dict[str, Any], list[TransferRequest]] | None:
        """The forward result and legs, rebuilt from the venue's fill, or None."""
        order = self._order(ctx, ctx.action_key)
        return None if order is None else self._forward(ctx, order, ctx.action_key)

    # -- Operation ------------------------------------------------------------------------
    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Convert at the venue, book both legs, record the rate and the reversal cost."""
        sell = str(ctx.param("sell_currency")).upper()
        buy = str(ctx.param("buy_currency")).upper()
        amount = float(to_major(to_minor(ctx.param("amount"), sell), sell))
        key = ctx.idempotency_key
        with fx_boundary(f"convert {sell}->{buy} ({ctx.step!r})", effect=True):
            order = self._place(ctx, sell, buy, amount, key)
        result, legs = self._forward(ctx, order, key)
        ledger = self._ledger(ctx)
        with ledger_boundary(f"book FX legs of {ctx.step!r}", effect=True):
            self._ensure_accounts(ledger, self._accounts(ctx, sell, buy), sell, buy, ctx)
            ledger.create_linked(legs, fence=ctx.fence)
        estimate = self._estimate(ctx, result)
        if not result["mid_at_execution"]:
            # The venue does not report its mid in the fill: use the book's, read at once.
            result["mid_at_execution"] = estimate.mid
            estimate = self._estimate(ctx, result)
        result["reversal_estimate_at_execution"] = estimate.to_dict()
        return result

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        """What reversing the conversion would cost now, judged by the step's policy."""
        forward: Mapping[str, Any] | None = None
        if isinstance(ctx.result, Mapping):
            forward = ctx.result
        else:
            fetched = self._fetch_forward(ctx)
            forward = None if fetched is None else fetched[0]
        sell = str(ctx.param("sell_currency")).upper()
        if forward is None:
            return CostEstimate(0.0, sell, reason="conversion never happened: nothing to reverse")
        estimate = self._estimate(ctx, forward)
        ok, reason = self._policy(ctx).judge(estimate)
        return CostEstimate(estimate.cost, estimate.currency, estimate.to_dict(), ok, reason)

    def preconditions(self, ctx: StepContext) -> Check:
        """The venue quotes the market the reversal needs."""
        sell = str(ctx.param("sell_currency")).upper()
        buy = str(ctx.param("buy_currency")).upper()
        ex = self._exchange(ctx)
        try:
            with fx_boundary("check FX venue", effect=False):
                symbol, _ = conversion_side(ex.load_markets(), buy, sell)
                book = ex.fetch_order_book(symbol)
        except Exception as exc:
            return Check(False, f"FX venue cannot quote {buy}->{sell}: {exc}")
        if not book["bids"] or not book["asks"]:
            return Check(False, f"the {symbol} book is empty")
        return Check(True, f"{symbol} quoted, {len(book['bids'])} levels each side")

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Convert back and book corrections of both legs (P&L absorbs the cost)."""
        fetched = self._fetch_forward(ctx)
        if fetched is None:
            return {"outcome": "nothing_to_undo", "reason": "the conversion never executed"}
        forward, legs = fetched
        if isinstance(ctx.result, Mapping) and ctx.result.get("mid_at_execution"):
            forward["mid_at_execution"] = ctx.result["mid_at_execution"]
        key, ckey = ctx.action_key, ctx.idempotency_key
        sell, buy = str(forward["sell_currency"]), str(forward["buy_currency"])
        sold, bought = int(forward["sell_amount"]), int(forward["buy_amount"])
        acc = self._accounts(ctx, sell, buy)
        ledger = self._ledger(ctx)
        with ledger_boundary(f"complete FX legs of {ctx.step!r}", effect=True):
            self._ensure_accounts(ledger, acc, sell, buy, ctx)
            # A replay, unless a crash came between the venue and the ledger.
            ledger.create_linked(legs, fence=ctx.fence)
        estimate = self._estimate(ctx, forward)
        order = self._order(ctx, ckey)
        if order is None:
            ok, reason = self._policy(ctx).judge(estimate)
            if not ok:
                # The market moved past policy since the dry-run: stop, a human decides.
                raise PreconditionFailed(f"FX reversal of {ctx.step!r} refused: {reason}")
            with fx_boundary(f"reverse conversion {buy}->{sell} ({ctx.step!r})", effect=True):
                order = self._place(ctx, buy, sell, float(to_major(bought, buy)), ckey)
        back = self._received(order, sell)
        corrections = self._corrections(key, ckey, acc, sold, bought, back, sell, buy)
        with ledger_boundary(f"book FX corrections of {ctx.step!r}", effect=True):
            ledger.create_linked(corrections, fence=ctx.fence)
        cost = sold - back
        return {
            "outcome": "reversed", "reverse_order_id": order["id"], "client_order_id": ckey,
            "spent": bought, "spent_currency": buy, "received": back, "currency": sell,
            "realized_cost_minor": cost, "realized_cost": float(to_major(cost, sell)),
            "realized_cost_bps": round(cost / sold * 10_000, 3) if sold else 0.0,
            "estimate_before_reversal": estimate.to_dict(),
            "corrections": [c.id for c in corrections],
            "display": f"{format_money(bought, buy)} -> {format_money(back, sell)}; "
                       f"realized cost {format_money(cost, sell)}",
        }

    @staticmethod
    def _corrections(
        key: str, ckey: str, acc: Mapping[str, str], sold: int, bought: int, back: int,
        sell: str, buy: str,
    ) -> list[TransferRequest]:
        out = [
            TransferRequest(
                id=f"{ckey}/get", debit_account=acc["to"], credit_account=acc["liq_buy"],
                amount=bought, currency=buy, code="correction", corrects=f"{key}/get",
                reference=f"correction of {key}/get: FX reversal",
            ),
            TransferRequest(
                id=f"{ckey}/give", debit_account=acc["liq_sell"], credit_account=acc["from"],
                amount=min(back, sold), currency=sell, code="correction", corrects=f"{key}/give",
                reference=f"correction of {key}/give: FX reversal",
            ),
        ]
        if back < sold:
            out.append(TransferRequest(
                id=f"{ckey}/cost", debit_account=acc["pnl"], credit_account=acc["from"],
                amount=sold - back, currency=sell, code="fx_reversal_cost",
                corrects=f"{key}/give", reference=f"FX reversal cost of {key}",
            ))
        elif back > sold:
            out.append(TransferRequest(
                id=f"{ckey}/gain", debit_account=acc["liq_sell"], credit_account=acc["pnl"],
                amount=back - sold, currency=sell, code="fx_reversal_gain",
                reference=f"FX reversal gain of {key}",
            ))
        return out

    def probe(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """Did the venue execute an order with this step's key? (Errors reach the engine.)"""
        fetched = self._fetch_forward(ctx)
        return Probe.NOT_HAPPENED if fetched is None else (Probe.HAPPENED, fetched[0])

    def block(self, ctx: StepContext) -> Probe | tuple[Probe, dict[str, Any]]:
        """The venue executed the order, or its client order id is now tombstoned there.

        Raises:
            PermanentError: The venue cannot block client order ids; the engine
                then falls back to the probe, and escalates unless it finds the order.
        """
        ex = self._exchange(ctx)
        if not ex.has.get(BLOCK_CAPABILITY):
            raise PermanentError(
                f"FX venue {ex.id!r} cannot block client order id {ctx.action_key}; a late "
                "order cannot be refused, so a conversion that is not found needs a human",
                code="fx_cannot_block")
        with fx_boundary(f"block FX order of {ctx.step!r}", effect=True):
            order = ex.block_order(ctx.action_key, None, self._fenced(ex, ctx, {}))
        if order is None:
            return Probe.NOT_HAPPENED
        return Probe.HAPPENED, self._forward(ctx, order, ctx.action_key)[0]
