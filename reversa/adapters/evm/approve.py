"""Approvals: state-changing steps with security weight, always revoked in rollback."""

from __future__ import annotations

from typing import Any

from reversa.core.context import Check, CostEstimate, StepContext
from reversa.core.resources import Resource, Role

from ._base import EvmOperation
from .journal import TxScope
from .resources import allowance

__all__ = ["ApproveOp"]


class ApproveOp(EvmOperation):
    """Grant a spender an ERC-20 allowance; the compensation approves zero.

    An approval left standing after a rollback is an open door (AG-384
    scenario C lost $340,000 that way), so even a "preparatory" approval is
    a step with a compensation, and the consistency predicate checks that it
    is zero.

    Step params:
        token: Token address.
        spender: Spender address (router, vault...).
        amount: Base units, ``"max"``, or a reference (``"$input.x"``,
            ``"$results.step.x"``).
        zero_first: The token refuses non-zero to non-zero changes (USDT-style);
            approve zero first when an allowance already stands.
    """

    name = "evm.approve"
    main_label = "approve"
    labels = ("zero_first", "approve")

    async def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approve; returns the grant and its transactions."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        token, spender = str(ctx.param("token")), str(ctx.param("spender"))
        amount = self._amount(ctx, "amount")
        previous = self._allowance(wallet, token, spender)
        sent = await self._approve(scope, wallet, ctx.idempotency_key, token, spender, amount,
                                   zero_first=bool(ctx.param("zero_first", False)),
                                   rollback=False)
        return {"token": token, "spender": spender, "amount": amount, "previous": previous,
                "txs": [s.summary() for s in sent]}

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Settle the approval (cancel it if still pending), then approve zero."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        token, spender = str(ctx.param("token")), str(ctx.param("spender"))
        zero_first = await wallet.settle(scope, self._tx_key(ctx, "zero_first"))
        settled = await wallet.settle(scope, self._tx_key(ctx, "approve"))
        out: dict[str, Any] = {"approval": settled.how, "token": token, "spender": spender}
        cancels = [s.cancel for s in (zero_first, settled) if s.cancel]
        if cancels:
            out["cancelled"] = cancels
        if not settled.happened:
            out["undone"] = "nothing: the approval never took effect"
            return out
        revoke = await self._revoke(scope, wallet, ctx.idempotency_key + "/revoke", token,
                                    spender)
        out["revoke"] = revoke.summary() if revoke else None
        out["allowance_after"] = self._allowance(wallet, token, spender)
        return out

    def resources(self, ctx: StepContext) -> list[Resource]:
        """The allowance it grants (produced: a later swap or deposit consumes it)."""
        owner = self._wallet(ctx).address
        return [allowance(ctx.param("token"), owner, ctx.param("spender"), Role.PRODUCES)]

    def preconditions(self, ctx: StepContext) -> Check:
        """The wallet can pay for the revocation."""
        wallet = self._wallet(ctx)
        return self._gas_funds(wallet, wallet.network.gas_defaults["revoke"])

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        """Gas of ``approve(spender, 0)``, estimated on the node."""
        wallet = self._wallet(ctx)
        token, spender = str(ctx.param("token")), str(ctx.param("spender"))
        data = self._token(wallet, token).encode_abi("approve", [spender, 0])
        gas = wallet.estimate_gas(token, data)
        return self._gas_cost(wallet, gas, self._rollback_route(wallet))
