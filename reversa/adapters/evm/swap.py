"""Swaps through a router, and their non-mirror reversal.

Reversing a swap is a new trade at today's price, not an undo. The reverse
swap therefore carries a minimum-output bound derived from what the forward
swap put in (the rate captured when it ran) and the step's maximum acceptable
rollback loss. The dry-run quotes it first; if the market has moved past the
bound, the cost estimate is unacceptable and the engine escalates instead of
trading at any price. It goes out through the private endpoint, so a
searcher cannot sandwich it on its way in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from web3.logs import DISCARD

from reversa.core.context import Check, CostEstimate, StepContext
from reversa.core.errors import PermanentError, PreconditionFailed
from reversa.core.resources import Resource, Role

from ._base import EvmOperation
from .abi import POOL_ABI, ROUTER_ABI
from .journal import TxScope
from .resources import allowance, position
from .wallet import EvmWallet, Sent

__all__ = ["SwapOp"]


class SwapOp(EvmOperation):
    """Swap an exact input on a constant-product pool through the router.

    Step params:
        router: Router address.
        pool: Pool address.
        token_in: Token sold.
        token_out: Token bought.
        amount_in: Base units, or a reference (``"$input.x"``,
            ``"$results.step.amount_out"``).
        max_slippage_bps: Forward bound: the output may fall at most this far
            below ``amount_in`` at the pool's spot price (default 100). A pool
            too thin for it fails the step before anything is sent.
        max_loss_bps: Rollback bound: the reverse swap must return at least
            ``amount_in * (1 - max_loss_bps)`` of ``token_in`` (default 100).
            Keep it consistent with the saga's ``max_rollback_cost``.
        approve: ``"exact"`` to grant the router exactly ``amount_in`` inside
            this step (revoked in its rollback); omit when an earlier approve
            step granted it.
        zero_first: ``token_in`` needs zero-before-nonzero approvals.
        deadline_s: Swap deadline after the latest block's timestamp (default 600).
        cost_unit: Unit of the rollback cost estimate (default: ``token_in``'s symbol).
    """

    name = "evm.swap"
    main_label = "swap"
    labels = ("zero_first", "approve", "swap", "cleanup")
    side_labels = ("approve",)

    # -- reads --------------------------------------------------------------------
    def _router(self, wallet: EvmWallet, ctx: StepContext) -> Any:
        return wallet.contract(str(ctx.param("router")), ROUTER_ABI)

    def _quote(self, wallet: EvmWallet, ctx: StepContext, token_in: str, amount: int) -> int:
        call = self._router(wallet, ctx).functions.quote(str(ctx.param("pool")), token_in,
                                                         amount)
        return int(wallet.read(call, "router quote"))

    def _spot_out(self, wallet: EvmWallet, ctx: StepContext, token_in: str, amount: int) -> int:
        """What ``amount`` would buy at the pool's spot price (no fee, no impact)."""
        pool = wallet.contract(str(ctx.param("pool")), POOL_ABI)
        token0 = str(wallet.read(pool.functions.token0(), "pool token0"))
        r0 = int(wallet.read(pool.functions.reserve0(), "pool reserve0"))
        r1 = int(wallet.read(pool.functions.reserve1(), "pool reserve1"))
        r_in, r_out = (r0, r1) if token0.lower() == token_in.lower() else (r1, r0)
        if r_in == 0:
            return 0
        return amount * r_out // r_in

    def _deadline(self, wallet: EvmWallet, ctx: StepContext) -> int:
        latest = wallet.w3.eth.get_block("latest")
        return int(latest["timestamp"]) + int(ctx.param("deadline_s", 600))

    def _swap_event(self, wallet: EvmWallet, ctx: StepContext, receipt: Any) -> tuple[int, int]:
        """``(amount_in, amount_out)`` from the pool's Swap event in ``receipt``."""
        pool = wallet.contract(str(ctx.param("pool")), POOL_ABI)
        events = pool.events.Swap().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise PermanentError(f"step {ctx.step!r}: swap receipt has no Swap event",
                                 code="bad_receipt")
        args = events[-1]["args"]
        return int(args["amount_in"]), int(args["amount_out"])

    def _amount_out(self, wallet: EvmWallet, ctx: StepContext, receipt: Any) -> int:
        return self._swap_event(wallet, ctx, receipt)[1]

    # -- action -------------------------------------------------------------------
    async def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Check liquidity against the slippage bound, (approve,) swap."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        token_in, token_out = str(ctx.param("token_in")), str(ctx.param("token_out"))
        router, pool = str(ctx.param("router")), str(ctx.param("pool"))
        amount_in = self._amount(ctx, "amount_in")
        key = ctx.action_key
        quote = self._quote(wallet, ctx, token_in, amount_in)
        spot = self._spot_out(wallet, ctx, token_in, amount_in)
        slippage = int(ctx.param("max_slippage_bps", 100))
        min_out = spot * (10_000 - slippage) // 10_000
        resumed = scope.journal.current(key + "/swap") is not None
        if not resumed and quote < min_out:
            impact = 0 if spot == 0 else (spot - quote) * 10_000 // spot
            raise PermanentError(
                f"insufficient liquidity on pool {pool}: {amount_in} in would return {quote}, "
                f"below the {slippage} bps bound ({min_out}); price impact {impact} bps. "
                "Nothing was sent.",
                code="insufficient_liquidity",
                details={"quote": quote, "min_out": min_out, "impact_bps": impact},
            )
        sent: list[Sent] = []
        if ctx.param("approve", None) == "exact":
            sent += await self._approve(scope, wallet, key, token_in, router, amount_in,
                                        zero_first=bool(ctx.param("zero_first", False)),
                                        rollback=False)
        data = self._router(wallet, ctx).encode_abi(
            "swap_exact_in", [pool, token_in, amount_in, min_out, self._deadline(wallet, ctx)])
        try:
            swap = await wallet.send(scope, key + "/swap", "swap", router, data, rollback=False)
        except PermanentError:
            # The swap did not happen but the exact approval did: the engine will
            # not compensate a step whose effect "did not happen", so clean up here.
            if sent:
                await self._revoke(scope, wallet, key + "/cleanup", token_in, router)
            raise
        sent.append(swap)
        amount_out = self._amount_out(wallet, ctx, swap.status.receipt)
        return {
            "pool": pool, "router": router, "token_in": token_in, "token_out": token_out,
            "amount_in": amount_in, "amount_out": amount_out, "min_out": min_out,
            "rate": amount_out / amount_in if amount_in else 0.0,
            "txs": [s.summary() for s in sent],
        }

    def _result_from_receipt(self, ctx: StepContext, wallet: EvmWallet, receipt: Any) -> Any:
        """Amounts of a swap that a crash left unrecorded."""
        amount_in = self._amount(ctx, "amount_in")
        amount_out = self._amount_out(wallet, ctx, receipt)
        return {"pool": str(ctx.param("pool")), "router": str(ctx.param("router")),
                "token_in": str(ctx.param("token_in")),
                "token_out": str(ctx.param("token_out")), "amount_in": amount_in,
                "amount_out": amount_out, "rate": amount_out / amount_in if amount_in else 0.0,
                "recovered_from": "receipt"}

    # -- rollback -----------------------------------------------------------------
    def _bound(self, ctx: StepContext, forward: Mapping[str, Any], sell: int) -> int:
        """Minimum ``token_in`` back for selling ``sell`` of the output.

        At the rate captured by the forward swap, ``sell`` is worth
        ``sell / rate`` of ``token_in``; the bound allows ``max_loss_bps`` off it.
        """
        amount_in, amount_out = int(forward["amount_in"]), int(forward["amount_out"])
        fair = amount_in * sell // amount_out if amount_out else 0
        return fair * (10_000 - int(ctx.param("max_loss_bps", 100))) // 10_000

    async def _forward(self, ctx: StepContext, scope: TxScope,
                       wallet: EvmWallet) -> tuple[Any, Any]:
        """The forward swap's result, settling an in-doubt one first."""
        settled = await wallet.settle(scope, self._tx_key(ctx, "swap"))
        forward = ctx.result if isinstance(ctx.result, Mapping) else None
        if settled.happened and forward is None:
            assert settled.sent is not None
            forward = self._result_from_receipt(ctx, wallet, settled.sent.status.receipt)
        return settled, forward

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Reverse swap within the bound, privately; then revoke what was granted."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        token_in, token_out = str(ctx.param("token_in")), str(ctx.param("token_out"))
        router, ckey = str(ctx.param("router")), ctx.idempotency_key
        settled, forward = await self._forward(ctx, scope, wallet)
        out: dict[str, Any] = {"forward": settled.how}
        if settled.cancel:
            out["cancelled"] = settled.cancel
        if settled.happened and forward is not None:
            out.update(await self._reverse(ctx, scope, wallet, forward))
        else:
            out["undone"] = "nothing: the swap never took effect"
        cleanup = [
            await self._revoke(scope, wallet, ckey + "/revoke_out", token_out, router),
            await self._revoke(scope, wallet, ckey + "/revoke_in", token_in, router)
            if ctx.param("approve", None) == "exact" else None,
        ]
        out["revocations"] = [s.summary() for s in cleanup if s is not None]
        return out

    async def _reverse(
        self, ctx: StepContext, scope: TxScope, wallet: EvmWallet, forward: Mapping[str, Any]
    ) -> dict[str, Any]:
        token_in, token_out = str(ctx.param("token_in")), str(ctx.param("token_out"))
        router, ckey = str(ctx.param("router")), ctx.idempotency_key
        # After a crash mid-rollback the journaled reversal is re-evaluated, not
        # re-priced: the amounts below only shape a first attempt.
        done = scope.journal.current(ckey + "/reverse_swap") is not None
        sell = min(self._balance(wallet, token_out), int(forward["amount_out"]))
        if sell == 0 and not done:
            raise PreconditionFailed(
                f"the wallet holds none of {token_out} to swap back (the forward swap bought "
                f"{forward['amount_out']}); it was moved outside this saga",
                details={"swap_output": int(forward["amount_out"])},
            )
        bound = self._bound(ctx, forward, sell)
        quote = self._quote(wallet, ctx, token_out, sell) if sell else 0
        if not done and quote < bound:
            raise PreconditionFailed(
                f"reverse swap would return {quote} of {token_in}, below the bound {bound} "
                f"({ctx.param('max_loss_bps', 100)} bps off the forward rate): the market "
                "moved past the acceptable rollback cost; not trading at any price",
                details={"quote": quote, "min_out": bound, "sell": sell},
            )
        sent = await self._approve(scope, wallet, ckey, token_out, router, sell,
                                   zero_first=False, rollback=True)
        data = self._router(wallet, ctx).encode_abi(
            "swap_exact_in",
            [str(ctx.param("pool")), token_out, sell, bound, self._deadline(wallet, ctx)],
        )
        swap = await wallet.send(scope, ckey + "/reverse_swap", "reverse_swap", router, data,
                                 rollback=True)
        sell, received = self._swap_event(wallet, ctx, swap.status.receipt)
        bound = self._bound(ctx, forward, sell)
        fair = int(forward["amount_in"]) * sell // int(forward["amount_out"])
        summaries = [s.summary() for s in (*sent, swap)]
        return {
            "sold": sell, "received": received, "min_out": bound, "fair_value": fair,
            "loss": fair - received, "loss_bps": (fair - received) * 10_000 // fair if fair else 0,
            "shortfall": int(forward["amount_out"]) - sell, "route": swap.record.route,
            "gas_used": sum(int(s["gas_used"]) for s in summaries),
            "fee_wei": sum(int(s["fee_wei"]) for s in summaries), "txs": summaries,
        }

    def resources(self, ctx: StepContext) -> list[Resource]:
        """The ``token_in`` position it sells (consumed), the ``token_out`` one it buys into
        (produced), and the router's allowance on ``token_in``: consumed when an earlier
        approval granted it, only touched when this step grants it exactly."""
        owner = self._wallet(ctx).address
        token_in = ctx.param("token_in")
        grant = Role.TOUCHES if ctx.param("approve", None) == "exact" else Role.CONSUMES
        return [position(token_in, owner, Role.CONSUMES),
                position(ctx.param("token_out"), owner, Role.PRODUCES),
                allowance(token_in, owner, ctx.param("router"), grant)]

    def preconditions(self, ctx: StepContext) -> Check:
        """The wallet can pay the reversal's gas.

        Holding the swap output is checked when the reversal runs, not here:
        in a dry-run a later step may still hold it (B swapped on to C), and
        that step's own compensation brings it back first.
        """
        wallet = self._wallet(ctx)
        gas = sum(wallet.network.gas_defaults[k] for k in ("approve", "reverse_swap", "revoke"))
        return self._gas_funds(wallet, gas)

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        """Quote the reversal now against the bound: the loss, and whether it is acceptable."""
        wallet = self._wallet(ctx)
        unit = str(ctx.param("cost_unit", None) or self._symbol(wallet, str(
            ctx.param("token_in"))))
        gas = sum(wallet.network.gas_defaults[k] for k in ("approve", "reverse_swap", "revoke"))
        max_fee, _ = wallet.fee_quote()
        common = {"gas": gas, "max_cost_wei": gas * max_fee,
                  "route": self._rollback_route(wallet),
                  "public_fallback": wallet.network.submission.may_fall_back("reverse_swap"),
                  "max_loss_bps": int(ctx.param("max_loss_bps", 100))}
        forward = ctx.result if isinstance(ctx.result, Mapping) else None
        if forward is None:
            return CostEstimate(0.0, unit, {**common, "note": "swap in doubt: settled first"},
                                reason="the forward swap is in doubt; its reversal is bounded "
                                "when it runs")
        token_out = str(ctx.param("token_out"))
        # Priced on the whole forward output: what a later step took, its own
        # compensation returns before this one runs.
        sell, held = int(forward["amount_out"]), self._balance(wallet, token_out)
        bound = self._bound(ctx, forward, sell)
        quote = self._quote(wallet, ctx, token_out, sell) if sell else 0
        fair = int(forward["amount_in"]) * sell // int(forward["amount_out"]) if sell else 0
        decimals = 10 ** int(ctx.param("decimals", 18))
        loss = max(fair - quote, 0)
        detail = {**common, "sell": sell, "held_now": held, "quote": quote, "min_out": bound,
                  "fair_value": fair,
                  "rate_forward": float(forward.get("rate", 0.0)),
                  "rate_now": quote / sell if sell else 0.0,
                  "loss_bps": loss * 10_000 // fair if fair else 0}
        if quote < bound:
            return CostEstimate(
                loss / decimals, unit, detail, acceptable=False,
                reason=f"the market moved past the bound: reversing returns {quote / decimals:.6g}"
                f" {unit}, below the minimum {bound / decimals:.6g} {unit} "
                f"({detail['max_loss_bps']} bps); escalate instead of trading at any price",
            )
        return CostEstimate(loss / decimals, unit, detail,
                            reason=f"reversal within bound: {quote / decimals:.6g} >= "
                            f"{bound / decimals:.6g} {unit}")
