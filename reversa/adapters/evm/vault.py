"""Vault deposits: redeemed in rollback, with the vault's allowance revoked."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from web3.logs import DISCARD

from reversa.core.context import Check, CostEstimate, StepContext
from reversa.core.errors import PermanentError
from reversa.core.resources import Resource, Role

from ._base import EvmOperation
from .abi import VAULT_ABI
from .journal import TxScope
from .resources import allowance, position
from .wallet import EvmWallet

__all__ = ["VaultDepositOp"]


class VaultDepositOp(EvmOperation):
    """Deposit a token into an ERC-4626-style vault; the compensation redeems the shares.

    Step params:
        vault: Vault address.
        token: The vault's asset.
        amount: Base units, or a reference (``"$results.swap.amount_out"``...).
        approve: ``"exact"`` (default) grants the vault exactly ``amount`` in
            this step; ``"none"`` when an earlier step granted it.
        zero_first: The asset needs zero-before-nonzero approvals.
    """

    name = "evm.vault_deposit"
    main_label = "deposit"
    labels = ("zero_first", "approve", "deposit", "cleanup")
    side_labels = ("approve",)

    def _vault(self, wallet: EvmWallet, ctx: StepContext) -> Any:
        return wallet.contract(str(ctx.param("vault")), VAULT_ABI)

    def _event(self, wallet: EvmWallet, ctx: StepContext, receipt: Any, name: str) -> Any:
        events = getattr(self._vault(wallet, ctx).events, name)().process_receipt(
            receipt, errors=DISCARD)
        if not events:
            raise PermanentError(f"step {ctx.step!r}: receipt has no {name} event",
                                 code="bad_receipt")
        return events[-1]["args"]

    async def execute(self, ctx: StepContext) -> dict[str, Any]:
        """(Approve exactly, then) deposit; returns the shares minted."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        vault, token = str(ctx.param("vault")), str(ctx.param("token"))
        amount = self._amount(ctx, "amount")
        key = ctx.action_key
        sent = []
        if ctx.param("approve", "exact") == "exact":
            sent += await self._approve(scope, wallet, key, token, vault, amount,
                                        zero_first=bool(ctx.param("zero_first", False)),
                                        rollback=False)
        data = self._vault(wallet, ctx).encode_abi("deposit", [amount])
        try:
            deposit = await wallet.send(scope, key + "/deposit", "deposit", vault, data,
                                        rollback=False)
        except PermanentError:
            if sent:
                await self._revoke(scope, wallet, key + "/cleanup", token, vault)
            raise
        sent.append(deposit)
        shares = int(self._event(wallet, ctx, deposit.status.receipt, "Deposit")["shares"])
        return {"vault": vault, "token": token, "assets": amount, "shares": shares,
                "txs": [s.summary() for s in sent]}

    def _result_from_receipt(self, ctx: StepContext, wallet: EvmWallet, receipt: Any) -> Any:
        """Shares of a deposit that a crash left unrecorded."""
        args = self._event(wallet, ctx, receipt, "Deposit")
        return {"vault": str(ctx.param("vault")), "token": str(ctx.param("token")),
                "assets": int(args["assets"]), "shares": int(args["shares"]),
                "recovered_from": "receipt"}

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Settle the deposit, redeem its shares, revoke the vault's allowance."""
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        vault, token = str(ctx.param("vault")), str(ctx.param("token"))
        ckey = ctx.idempotency_key
        settled = await wallet.settle(scope, self._tx_key(ctx, "deposit"))
        out: dict[str, Any] = {"deposit": settled.how}
        if settled.cancel:
            out["cancelled"] = settled.cancel
        forward = ctx.result if isinstance(ctx.result, Mapping) else None
        if settled.happened and forward is None and settled.sent is not None:
            forward = self._result_from_receipt(ctx, wallet, settled.sent.status.receipt)
        if settled.happened and forward is not None:
            data = self._vault(wallet, ctx).encode_abi("redeem", [int(forward["shares"])])
            redeem = await wallet.send(scope, ckey + "/withdraw", "withdraw", vault, data,
                                       rollback=True)
            args = self._event(wallet, ctx, redeem.status.receipt, "Withdraw")
            out.update(redeemed_shares=int(args["shares"]), assets_back=int(args["assets"]),
                       deposited=int(forward["assets"]), withdraw=redeem.summary())
        else:
            out["undone"] = "nothing: the deposit never took effect"
        revoke = await self._revoke(scope, wallet, ckey + "/revoke", token, vault)
        out["revoke"] = revoke.summary() if revoke else None
        return out

    def resources(self, ctx: StepContext) -> list[Resource]:
        """The asset position it deposits (consumed), the vault shares it mints (produced),
        and the vault's allowance on the asset: touched when this step grants it exactly
        (the default), consumed when an earlier approval granted it."""
        owner, token, vault = self._wallet(ctx).address, ctx.param("token"), ctx.param("vault")
        grant = Role.TOUCHES if ctx.param("approve", "exact") == "exact" else Role.CONSUMES
        return [position(token, owner, Role.CONSUMES), position(vault, owner, Role.PRODUCES),
                allowance(token, owner, vault, grant)]

    def preconditions(self, ctx: StepContext) -> Check:
        """The wallet still holds the shares and can pay the redemption's gas."""
        wallet = self._wallet(ctx)
        funds = self._gas_funds(wallet, wallet.network.gas_defaults["withdraw"])
        if not funds.ok or not isinstance(ctx.result, Mapping):
            return funds
        call = self._vault(wallet, ctx).functions.balanceOf(wallet.address)
        held, needed = int(wallet.read(call, "vault shares")), int(ctx.result["shares"])
        if held < needed:
            return Check(False, f"the wallet holds {held} vault shares, the deposit minted "
                         f"{needed}: some were moved", {"held": held, "needed": needed})
        return Check(True, f"holds the {needed} shares; gas covered", {"held": held})

    def estimate_cost(self, ctx: StepContext) -> CostEstimate:
        """Gas of the redemption (estimated on the node when the shares are there)."""
        wallet = self._wallet(ctx)
        gas = wallet.network.gas_defaults["withdraw"]
        if isinstance(ctx.result, Mapping):
            data = self._vault(wallet, ctx).encode_abi("redeem", [int(ctx.result["shares"])])
            # Would revert now: the precondition reports why; keep the default.
            with contextlib.suppress(PermanentError):
                gas = wallet.estimate_gas(str(ctx.param("vault")), data)
        gas += wallet.network.gas_defaults["revoke"]
        return self._gas_cost(wallet, gas, self._rollback_route(wallet))
