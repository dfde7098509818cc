"""Shared machinery of the EVM operations: amounts, allowances, probe and block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reversa.core.context import Check, CostEstimate, Probe, StepContext, lookup_service
from reversa.core.errors import PermanentError

from .abi import ERC20_ABI
from .journal import TxJournal, TxScope
from .status import TxState
from .wallet import EvmWallet, Sent, Settled

__all__ = ["EvmOperation", "base_units"]

MAX_UINT = 2**256 - 1


def base_units(value: Any, what: str) -> int:
    """An amount parameter in base units: an int, a decimal string, or ``"max"``.

    References (``"$input.x"``, ``"$results.step.x"``) are resolved by
    ``ctx.param`` before this sees the value.

    Raises:
        PermanentError: Not an amount (code ``bad_param``).
    """
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

    Every transaction a step sends is journaled under ``<ctx.action_key>/<label>``
    in the saga store before it is broadcast. :attr:`labels` lists the labels
    the action may use, in the order it uses them, so that :meth:`block` can
    make each of them unable to be sent later.

    Args:
        service: Name of the :class:`~reversa.adapters.evm.EvmWallet` in the
            engine's ``services``.
    """

    name = "evm.operation"
    main_label = "tx"
    """Label of the transaction whose confirmation means the step happened."""
    labels: tuple[str, ...] = ("tx",)
    """Every label the action may journal a transaction under, in order."""
    side_labels: tuple[str, ...] = ()
    """Labels whose confirmed transaction is an effect of its own (an allowance)."""

    def __init__(self, service: str = "evm") -> None:
        self.service = service

    # -- helpers ------------------------------------------------------------------
    def _wallet(self, ctx: StepContext) -> EvmWallet:
        return ctx.service(self.service, EvmWallet)

    def _wallet_of(self, services: Mapping[str, Any], where: str) -> EvmWallet:
        # Snapshot and predicate contexts carry services but no lookup method.
        return lookup_service(services, self.service, EvmWallet, where=where)

    @staticmethod
    def _amount(ctx: StepContext, name: str) -> int:
        return base_units(ctx.param(name), f"step {ctx.step!r} parameter {name!r}")

    @staticmethod
    def _tx_key(ctx: StepContext, label: str) -> str:
        """Journal key of the action's transaction ``label``."""
        return f"{ctx.action_key}/{label}"

    def _token(self, wallet: EvmWallet, address: str) -> Any:
        return wallet.contract(address, ERC20_ABI)

    def _allowance(self, wallet: EvmWallet, token: str, spender: str) -> int:
        call = self._token(wallet, token).functions.allowance(wallet.address, spender)
        return int(wallet.read(call, f"allowance of {token}"))

    def _balance(self, wallet: EvmWallet, token: str) -> int:
        call = self._token(wallet, token).functions.balanceOf(wallet.address)
        return int(wallet.read(call, f"balance of {token}"))

    def _symbol(self, wallet: EvmWallet, token: str) -> str:
        return str(wallet.read(self._token(wallet, token).functions.symbol(), "symbol"))

    async def _approve(
        self,
        scope: TxScope,
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
        contract = self._token(wallet, token)
        already = scope.journal.current(key + "/approve") is not None
        if (zero_first and amount != 0 and not already
                and self._allowance(wallet, token, spender) != 0):
            data = contract.encode_abi("approve", [spender, 0])
            sent.append(await wallet.send(scope, key + "/zero_first", "revoke", token, data,
                                          rollback=rollback))
        data = contract.encode_abi("approve", [spender, amount])
        kind = "revoke" if amount == 0 else "approve"
        sent.append(await wallet.send(scope, key + "/approve", kind, token, data,
                                      rollback=rollback))
        return sent

    async def _revoke(
        self, scope: TxScope, wallet: EvmWallet, key: str, token: str, spender: str
    ) -> Sent | None:
        """Approve zero if the allowance is not already zero (idempotent under ``key``)."""
        if scope.journal.current(key) is None and self._allowance(wallet, token, spender) == 0:
            return None
        data = self._token(wallet, token).encode_abi("approve", [spender, 0])
        return await wallet.send(scope, key, "revoke", token, data, rollback=True)

    def _gas_cost(self, wallet: EvmWallet, gas: int, route: str) -> CostEstimate:
        """A gas-denominated cost estimate at the current fee quote."""
        max_fee, tip = wallet.fee_quote()
        return CostEstimate(
            amount=float(gas),
            unit="gas",
            detail={"gas": gas, "max_fee_per_gas_wei": max_fee, "tip_wei": tip,
                    "max_cost_wei": gas * max_fee, "route": route,
                    **wallet.network.describe()},
        )

    def _gas_funds(self, wallet: EvmWallet, gas: int) -> Check:
        """Whether the wallet can pay ``gas`` at the current fee quote."""
        max_fee, _ = wallet.fee_quote()
        need, have = gas * max_fee, wallet.balance_wei()
        if have >= need:
            return Check(True, f"ether balance covers {gas} gas", {"need_wei": need,
                                                                   "have_wei": have})
        return Check(False, f"ether balance {have} wei cannot pay {gas} gas ({need} wei)",
                     {"need_wei": need, "have_wei": have})

    @staticmethod
    def _rollback_route(wallet: EvmWallet) -> str:
        sub = wallet.network.submission
        if not sub.rollback_private:
            return "public"
        return "private" if wallet.network.private is not None else "none configured"

    def _result_from_receipt(self, ctx: StepContext, wallet: EvmWallet, receipt: Any) -> Any:
        """Rebuild the action's result from its confirmed receipt (after a crash)."""
        return None

    # -- probe and block (shared) ---------------------------------------------------
    def probe(self, ctx: StepContext) -> Probe | tuple[Probe, Any]:
        """Did the action's main transaction take effect? From the journal and the chain.

        Used when a crashed step is resumed forward. Never sent (nothing
        journaled), reverted or replaced: not happened. Confirmed: happened.
        Pending, lost or not deep enough: unknown.
        """
        wallet, txs = self._wallet(ctx), TxJournal(ctx.require_journal())
        record = txs.current(self._tx_key(ctx, self.main_label))
        side = self._has_side_txs(txs, ctx)
        if record is None:
            return Probe.UNKNOWN if side else Probe.NOT_HAPPENED
        status = wallet.status(record)
        if status.state is TxState.CONFIRMED:
            result = self._result_from_receipt(ctx, wallet, status.receipt)
            return Probe.HAPPENED if result is None else (Probe.HAPPENED, result)
        if status.state in (TxState.REVERTED, TxState.REPLACED) and not side:
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN

    async def block(self, ctx: StepContext) -> Probe | tuple[Probe, Any]:
        """Make the in-doubt action unable to take effect later, and say whether it had.

        Every label the action may journal under is blocked in the saga store
        first (an unjournaled one is tombstoned, so no process can sign or
        broadcast it later), then each journaled transaction is settled on
        chain: confirmed means it happened; pending or lost, a same-nonce
        replacement is sent and waited for until the nonce is consumed. The
        step happened if its main transaction did (the result is rebuilt from
        the receipt), or if a side transaction did (an allowance stands: the
        compensation clears it).
        """
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        settled: dict[str, Settled] = {}
        for label in self.labels:
            settled[label] = await wallet.block(scope, self._tx_key(ctx, label))
        main = settled[self.main_label]
        if main.happened:
            assert main.sent is not None
            result = self._result_from_receipt(ctx, wallet, main.sent.status.receipt)
            return Probe.HAPPENED if result is None else (Probe.HAPPENED, result)
        if any(settled[label].happened for label in self.side_labels):
            return Probe.HAPPENED
        return Probe.NOT_HAPPENED

    def _has_side_txs(self, txs: TxJournal, ctx: StepContext) -> bool:
        # A step that granted an allowance before its main transaction has an
        # effect of its own even if the main one never ran: let the
        # compensation clean it up rather than recording "never happened".
        return any(txs.current(self._tx_key(ctx, label)) is not None
                   for label in self.side_labels)
