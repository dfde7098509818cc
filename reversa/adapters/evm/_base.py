"""Shared machinery of the EVM operations: services, parameters, allowances, probes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reversa.core.context import Check, CostEstimate, Probe, StepContext
from reversa.core.errors import ConfigError, PermanentError
from reversa.core.states import Phase

from .abi import ERC20_ABI
from .status import TxState
from .wallet import EvmWallet, Sent

__all__ = ["EvmOperation", "resolve_amount"]

MAX_UINT = 2**256 - 1


def resolve_amount(value: Any, ctx: StepContext, what: str) -> int:
    """Resolve an amount parameter to base units.

    Accepts an int, a decimal string of base units, ``"max"``, or a reference:
    ``{"input": "key"}`` (the saga input) or ``{"result": "step", "field": "f"}``
    (an earlier step's result).

    Raises:
        PermanentError: The reference cannot be resolved.
    """
    if isinstance(value, Mapping):
        if "input" in value:
            return resolve_amount(ctx.input.get(value["input"]), ctx, what)
        if "result" in value:
            source = ctx.results.get(value["result"])
            if not isinstance(source, Mapping) or value.get("field") not in source:
                raise PermanentError(
                    f"{what}: step {value['result']!r} has no result field "
                    f"{value.get('field')!r} (has it run?)",
                    code="bad_param",
                )
            return resolve_amount(source[value["field"]], ctx, what)
    if value == "max":
        return MAX_UINT
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PermanentError(f"{what}: expected an amount in base units, got {value!r}",
                             code="bad_param")
    try:
        amount = int(value)
    except ValueError:
        raise PermanentError(f"{what}: {value!r} is not an integer amount",
                             code="bad_param") from None
    if amount < 0:
        raise PermanentError(f"{what}: negative amount {amount}", code="bad_param")
    return amount


class EvmOperation:
    """Base of the EVM operations (one narrow protocol per side effect).

    Args:
        service: Name of the :class:`~reversa.adapters.evm.EvmWallet` in the
            engine's ``services``.
    """

    name = "evm.operation"
    main_label = "tx"
    """Label of the transaction whose confirmation means the step happened."""

    def __init__(self, service: str = "evm") -> None:
        self.service = service

    # -- helpers ------------------------------------------------------------------
    def wallet(self, services: Mapping[str, Any]) -> EvmWallet:
        """The wallet from the engine's services."""
        wallet = services.get(self.service)
        if not isinstance(wallet, EvmWallet):
            raise ConfigError(
                f"{self.name}: services[{self.service!r}] must be an EvmWallet, got "
                f"{type(wallet).__name__}; pass Engine(services={{{self.service!r}: wallet}})"
            )
        return wallet

    @staticmethod
    def action_key(ctx: StepContext) -> str:
        """The idempotency key the action used (from its result when it completed)."""
        if isinstance(ctx.result, Mapping) and isinstance(ctx.result.get("key"), str):
            return str(ctx.result["key"])
        return ctx.key_for(Phase.ACTION)

    @staticmethod
    def param(ctx: StepContext, name: str, default: Any = None) -> Any:
        """A static step parameter, or ``default``."""
        value = ctx.params.get(name, default)
        if value is None:
            raise PermanentError(f"step {ctx.step!r}: missing parameter {name!r}",
                                 code="bad_param")
        return value

    def token(self, wallet: EvmWallet, address: str) -> Any:
        """An ERC-20 contract object."""
        return wallet.contract(address, ERC20_ABI)

    def allowance(self, wallet: EvmWallet, token: str, spender: str) -> int:
        """The wallet's current allowance of ``token`` to ``spender``."""
        call = self.token(wallet, token).functions.allowance(wallet.address, spender)
        return int(wallet.read(call, f"allowance of {token}"))

    def balance(self, wallet: EvmWallet, token: str) -> int:
        """The wallet's balance of ``token``."""
        call = self.token(wallet, token).functions.balanceOf(wallet.address)
        return int(wallet.read(call, f"balance of {token}"))

    def symbol(self, wallet: EvmWallet, token: str) -> str:
        """The token's symbol (for cost units)."""
        return str(wallet.read(self.token(wallet, token).functions.symbol(), "symbol"))

    async def approve(
        self,
        ctx: StepContext,
        wallet: EvmWallet,
        key: str,
        token: str,
        spender: str,
        amount: int,
        *,
        zero_first: bool,
        rollback: bool,
    ) -> list[Sent]:
        """Set an allowance, approving zero first where the token requires it.

        ``zero_first`` handles tokens (USDT-style) that refuse to change one
        non-zero allowance into another. Re-running under the same ``key``
        re-evaluates the journaled transactions instead of sending new ones.
        """
        sent: list[Sent] = []
        contract = self.token(wallet, token)
        already = wallet.journal.get(key + "/approve") is not None
        if (zero_first and amount != 0 and not already
                and self.allowance(wallet, token, spender) != 0):
            data = contract.encode_abi("approve", [spender, 0])
            sent.append(await wallet.send(ctx.clock, key + "/zero_first", "revoke", token, data,
                                          rollback=rollback, deadline=ctx.deadline))
        data = contract.encode_abi("approve", [spender, amount])
        kind = "revoke" if amount == 0 else "approve"
        sent.append(await wallet.send(ctx.clock, key + "/approve", kind, token, data,
                                      rollback=rollback, deadline=ctx.deadline))
        return sent

    async def revoke(
        self, ctx: StepContext, wallet: EvmWallet, key: str, token: str, spender: str
    ) -> Sent | None:
        """Approve zero if the allowance is not already zero (idempotent under ``key``)."""
        if wallet.journal.get(key) is None and self.allowance(wallet, token, spender) == 0:
            return None
        data = self.token(wallet, token).encode_abi("approve", [spender, 0])
        return await wallet.send(ctx.clock, key, "revoke", token, data, rollback=True,
                                 deadline=ctx.deadline)

    def gas_cost(self, wallet: EvmWallet, gas: int, route: str) -> CostEstimate:
        """A gas-denominated cost estimate at the current fee quote."""
        max_fee, tip = wallet.fee_quote()
        return CostEstimate(
            amount=float(gas),
            unit="gas",
            detail={"gas": gas, "max_fee_per_gas_wei": max_fee, "tip_wei": tip,
                    "max_cost_wei": gas * max_fee, "route": route,
                    **wallet.network.describe()},
        )

    def gas_funds(self, wallet: EvmWallet, gas: int) -> Check:
        """Whether the wallet can pay ``gas`` at the current fee quote."""
        max_fee, _ = wallet.fee_quote()
        need, have = gas * max_fee, wallet.balance_wei()
        if have >= need:
            return Check(True, f"ether balance covers {gas} gas", {"need_wei": need,
                                                                   "have_wei": have})
        return Check(False, f"ether balance {have} wei cannot pay {gas} gas ({need} wei)",
                     {"need_wei": need, "have_wei": have})

    def rollback_route(self, wallet: EvmWallet) -> str:
        """Where rollback transactions go on this network."""
        sub = wallet.network.submission
        if not sub.rollback_private:
            return "public"
        return "private" if wallet.network.private is not None else "none configured"

    # -- probe (shared) -----------------------------------------------------------
    def probe(self, ctx: StepContext) -> Probe | tuple[Probe, Any]:
        """Did the action's main transaction take effect? From the journal and the chain.

        Never sent (nothing journaled), reverted or replaced: not happened.
        Confirmed: happened. Pending, lost or not deep enough: unknown, and the
        compensation settles it (cancelling by replacement if still pending).
        """
        wallet = self.wallet(ctx.services)
        record = wallet.journal.get(ctx.key_for(Phase.ACTION) + "/" + self.main_label)
        if record is None or record.rejected:
            return Probe.UNKNOWN if self._has_side_txs(wallet, ctx) else Probe.NOT_HAPPENED
        status = wallet.status(record)
        state = status.state
        if state is TxState.CONFIRMED:
            result = self.result_from_receipt(ctx, wallet, status.receipt)
            return Probe.HAPPENED if result is None else (Probe.HAPPENED, result)
        if state in (TxState.REVERTED, TxState.REPLACED) and not self._has_side_txs(wallet, ctx):
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN

    def result_from_receipt(self, ctx: StepContext, wallet: EvmWallet, receipt: Any) -> Any:
        """Rebuild the action's result from its confirmed receipt (after a crash)."""
        return None

    def _has_side_txs(self, wallet: EvmWallet, ctx: StepContext) -> bool:
        # A step that granted an allowance before its main transaction has an
        # effect of its own even if the main one never ran: let the
        # compensation clean it up rather than recording "never happened".
        base = ctx.key_for(Phase.ACTION)
        return any(
            (rec := wallet.journal.get(f"{base}/{label}")) is not None and not rec.rejected
            for label in ("approve", "zero_first")
            if label != self.main_label
        )
