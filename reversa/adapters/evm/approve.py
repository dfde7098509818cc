"""Approvals: state-changing steps with security weight, always revoked in rollback."""

from __future__ import annotations

from typing import Any

from reversa.core.context import Check, CostEstimate, StepContext

from ._base import EvmOperation, resolve_amount

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
        amount: Base units, ``"max"`` or a reference (see :func:`resolve_amount`).
        zero_first: The token refuses non-zero to non-zero changes (USDT-style);
            approve zero first when an allowance already stands.
    """

    name = "evm.approve"
    main_label = "approve"

    async def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approve; returns the grant and its transactions."""
        wallet = self.wallet(ctx.services)
        token, spender = str(self.param(ctx, "token")), str(self.param(ctx, "spender"))
        amount = resolve_amount(self.param(ctx, "amount"), ctx, f"step {ctx.step!r} amount")
        previous = self.allowance(wallet, token, spender)
        sent = await self.approve(ctx, wallet, ctx.idempotency_key, token, spender, amount,
                                  zero_first=bool(ctx.params.get("zero_first", False)),
                                  rollback=False)
        return {"key": ctx.idempotency_key, "token": token, "spender": spender,
                "amount": amount, "previous": previous, "txs": [s.summary() for s in sent]}

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Settle the approval (cancel it if still pending), then approve zero."""
        wallet = self.wallet(ctx.services)
        token, spender = str(self.param(ctx, "token")), str(self.param(ctx, "spender"))
        key = self.action_key(ctx)
        zero_first = await wallet.settle(key + "/zero_first", ctx.clock, deadline=ctx.deadline)
        settled = await wallet.settle(key + "/approve", ctx.clock, deadline=ctx.deadline)
        out: dict[str, Any] = {"approval": settled.how, "token": token, "spender": spender}
        cancels = [s.cancel for s in (zero_first, settled) if s.cancel]
        if cancels:
            out["cancelled"] = cancels
        if not settled.happened:
            out["undone"] = "nothing: the approval never took effect"
            return out
        revoke = await self.revoke(ctx, wallet, ctx.idempotency_key + "/revoke", token, spender)
        out["revoke"] = revoke.summary() if revoke else None
        out["allowance_after"] = self.allowance(wallet, token, spender)
        return out

    def preconditions(self, ctx: StepContext) -> Check:
        """The wallet can pay for the revocation."""
        wallet = self.wallet(ctx.services)
        return self.gas_funds(wallet, wallet.network.gas_defaults["revoke"])

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        """Gas of ``approve(spender, 0)``, estimated on the node."""
        wallet = self.wallet(ctx.services)
        token, spender = str(self.param(ctx, "token")), str(self.param(ctx, "spender"))
        data = self.token(wallet, token).encode_abi("approve", [spender, 0])
        gas = wallet.estimate_gas(token, data)
        return self.gas_cost(wallet, gas, self.rollback_route(wallet))
