"""The wallet: sign locally, send along the policy's route, wait for the confirmation policy.

Every transaction is journaled under the idempotency key of the step call
that sends it before it leaves the process. Sending again under the same key
never signs a second transaction: it re-evaluates the first one (waits for it,
resends the identical bytes if the node lost it, or reports it replaced).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from reversa.core.clock import Clock
from reversa.core.errors import OutcomeUnknown, PermanentError, StepError

from .errors import NonceTooLow, TxRejected, translate
from .journal import MemoryTxJournal, TxJournal, TxRecord
from .network import EvmNetwork
from .nonces import NonceManager
from .signer import LocalSigner
from .status import TxState, TxStatus, evaluate
from .submit import PrivateSubmitter, PublicSubmitter, Submitter

__all__ = ["EvmWallet", "Sent", "Settled"]

log = logging.getLogger("reversa.adapters.evm")


@dataclass(frozen=True, slots=True)
class Sent:
    """A transaction that reached the confirmation policy.

    Attributes:
        record: Its journal record.
        status: Its last evaluation (state CONFIRMED).
        reorgs: Times it left the canonical chain while being waited for.
        resent: Times its identical bytes were resent after the node lost it.
    """

    record: TxRecord
    status: TxStatus
    reorgs: int = 0
    resent: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON summary for step results and the audit log."""
        receipt = self.status.receipt
        gas_used = int(receipt["gasUsed"]) if receipt is not None else 0
        price = int(receipt.get("effectiveGasPrice", 0) or 0) if receipt is not None else 0
        return {
            "tx": self.record.hash,
            "kind": self.record.kind,
            "nonce": self.record.nonce,
            "route": self.record.route,
            "block": self.status.block,
            "gas_used": gas_used,
            "fee_wei": gas_used * price,
            "reorgs": self.reorgs,
            "resent": self.resent,
        }


@dataclass(frozen=True, slots=True)
class Settled:
    """Whether a forward transaction took effect, once it can no longer change.

    Attributes:
        happened: The transaction is confirmed (its effect stands).
        how: ``confirmed``, ``never_sent``, ``reverted``, ``replaced`` or
            ``cancelled`` (a same-nonce replacement won).
        sent: The confirmed transaction when it happened.
        cancel: The cancellation summary when one was sent.
    """

    happened: bool
    how: str
    sent: Sent | None = None
    cancel: dict[str, Any] | None = None


class EvmWallet:
    """One account on one network: what operations reach through ``ctx.services``.

    Args:
        network: The node and its policies.
        signer: Holds the private key (never leaves it).
        journal: Write-ahead transaction journal; use
            :class:`~reversa.adapters.evm.SqliteTxJournal` wherever a crash
            must be recoverable (the default keeps it in memory).
        nonces: Nonce manager (default: one over ``journal``).
    """

    def __init__(
        self,
        network: EvmNetwork,
        signer: LocalSigner,
        *,
        journal: TxJournal | None = None,
        nonces: NonceManager | None = None,
    ) -> None:
        self.network = network
        self._signer = signer
        self.journal: TxJournal = journal if journal is not None else MemoryTxJournal()
        self.nonces = nonces if nonces is not None else NonceManager(self.journal)
        self._chain_id: int | None = None
        self._public = PublicSubmitter(network.w3)
        self._private: PrivateSubmitter | None = (
            PrivateSubmitter(network.private, lambda: network.w3.eth.block_number)
            if network.private is not None
            else None
        )

    def __repr__(self) -> str:
        return f"EvmWallet(address={self.address}, network={self.network.name!r})"

    # -- reads --------------------------------------------------------------------
    @property
    def address(self) -> str:
        """The account's checksummed address."""
        return self._signer.address

    @property
    def w3(self) -> Any:
        """The network's web3 client."""
        return self.network.w3

    @property
    def chain_id(self) -> int:
        """The chain id (asked once)."""
        if self._chain_id is None:
            self._chain_id = int(self._read(lambda: self.w3.eth.chain_id, "chain id"))
        return self._chain_id

    def contract(self, address: str, abi: list[dict[str, Any]]) -> Any:
        """A web3 contract object (for encoding calls and reading state)."""
        return self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=abi)

    def read(self, call: Any, what: str) -> Any:
        """Run a contract view call, translating node errors."""
        return self._read(call.call, what)

    def balance_wei(self) -> int:
        """The account's ether balance."""
        return int(self._read(lambda: self.w3.eth.get_balance(self.address), "balance"))

    def _read(self, fn: Any, what: str) -> Any:
        try:
            return fn()
        except StepError:
            raise
        except Exception as exc:
            raise translate(exc, what, sent=False) from None

    def fee_quote(self) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)`` under the fee policy."""
        fees = self.network.fees
        block = self._read(lambda: self.w3.eth.get_block("latest"), "latest block")
        base = int(block.get("baseFeePerGas", 0) or 0)
        tip = fees.priority_fee_wei
        max_fee = base * fees.base_fee_multiplier + tip
        if fees.max_fee_cap_wei is not None and max_fee > fees.max_fee_cap_wei:
            raise StepError(
                f"fee {max_fee} wei/gas is above the policy cap {fees.max_fee_cap_wei}; "
                "waiting for fees to fall",
                retryable=True,
                code="fee_above_cap",
            )
        return max_fee, tip

    def estimate_gas(self, to: str, data: str, *, value: int = 0) -> int:
        """``eth_estimateGas`` plus the policy's margin.

        Raises:
            PermanentError: The call would revert (code ``reverted``).
        """
        tx = {"from": self.address, "to": to, "data": data, "value": value}
        gas = int(self._read(lambda: self.w3.eth.estimate_gas(tx), f"estimate gas to {to}"))
        return gas + gas * self.network.fees.gas_margin_bps // 10_000

    def status(self, record: TxRecord) -> TxStatus:
        """Evaluate ``record`` against the chain now."""
        return evaluate(self.w3, record, self.network.confirmation)

    # -- sending ------------------------------------------------------------------
    async def send(
        self,
        clock: Clock,
        key: str,
        kind: str,
        to: str,
        data: str,
        *,
        rollback: bool,
        deadline: float | None = None,
    ) -> Sent:
        """Send a contract call under ``key`` (once) and wait for the confirmation policy.

        Args:
            clock: The engine's clock (waiting uses its sleep).
            key: Idempotency key plus label; the same key never signs twice.
            kind: Transaction kind (decides the route).
            to: Destination.
            data: Calldata, hex.
            rollback: Whether this is part of a rollback (private route).
            deadline: Absolute clock time to give up waiting (OutcomeUnknown).

        Raises:
            PermanentError: It would revert, it reverted, or it was replaced.
            OutcomeUnknown: It was sent and has not reached the policy in time.
            TransientError: It could not be sent; nothing happened.
        """
        record = self.journal.get(key)
        if record is None or record.rejected:
            routes = self._routes(kind, rollback)  # refuse before a nonce is taken
            record = self._sign(key, kind, to, data)
            record = self._submit(record, routes)
        else:
            log.info("evm: re-evaluating %s %s (nonce %d) under %s", kind, record.hash,
                     record.nonce, key)
        return await self.wait(record, clock, rollback=rollback, deadline=deadline)

    def _sign(self, key: str, kind: str, to: str, data: str, nonce: int | None = None,
              fees: tuple[int, int] | None = None, gas: int | None = None,
              replaces: str | None = None) -> TxRecord:
        gas = gas if gas is not None else self.estimate_gas(to, data)
        max_fee, tip = fees if fees is not None else self.fee_quote()
        if nonce is None:
            nonce = self.nonces.reserve(self.w3, self.address)
        tx = {
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to, "value": 0,
            "data": data, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
        }
        signed = self._signer.sign(tx)
        record = TxRecord(key=key, sender=self.address, nonce=nonce, hash=signed.hash,
                          raw=signed.raw.hex(), kind=kind, to=to, gas=gas, max_fee=max_fee,
                          tip=tip, replaces=replaces)
        # Write-ahead: journaled before it can reach anyone.
        self.journal.put(record)
        return record

    def _routes(self, kind: str, rollback: bool) -> list[Submitter]:
        policy = self.network.submission
        if not policy.wants_private(kind, rollback):
            return [self._public]
        routes: list[Submitter] = [self._private] if self._private is not None else []
        if policy.may_fall_back(kind):
            routes.append(self._public)
        if not routes:
            raise PermanentError(
                f"{kind} must go through a private endpoint and network "
                f"{self.network.name!r} has none; configure EvmNetwork(private=...) or allow "
                f"the public fallback for {kind!r} in SubmissionPolicy",
                code="no_private_route",
            )
        return routes

    def _submit(self, record: TxRecord, routes: list[Submitter]) -> TxRecord:
        raw = bytes.fromhex(record.raw)
        last: StepError | None = None
        for index, route in enumerate(routes):
            try:
                route.submit(raw, record.hash)
            except NonceTooLow:
                self._reject(record)
                self.nonces.forget(self.address)
                raise
            except TxRejected:
                self._reject(record)
                raise
            except OutcomeUnknown:
                self.journal.put(replace(record, route=route.route))
                raise
            except StepError as exc:
                if not exc.retryable:
                    self._reject(record)
                    raise
                last = exc
                if index + 1 < len(routes):
                    log.warning("evm: %s route failed for %s (%s); policy allows the %s route",
                                route.route, record.kind, exc.code, routes[index + 1].route)
                continue
            sent = replace(record, route=route.route)
            self.journal.put(sent)
            log.info("evm: sent %s %s nonce=%d via %s", record.kind, record.hash, record.nonce,
                     route.route)
            return sent
        assert last is not None
        # Every route refused it outright: it is nowhere, so its nonce is free.
        self._reject(record)
        raise last

    def _reject(self, record: TxRecord) -> None:
        self.journal.put(replace(record, rejected=True))
        self.nonces.release(self.address, record.nonce)

    def _resend(self, record: TxRecord) -> None:
        # The node lost it (reorg, restart, eviction): the identical signed bytes
        # are the same transaction, so resending cannot duplicate its effect.
        routes = {"private": self._private, "public": self._public}
        route = routes.get(record.route) or self._public
        try:
            route.submit(bytes.fromhex(record.raw), record.hash)
        except StepError as exc:
            log.warning("evm: resending %s failed (%s); will re-evaluate", record.hash, exc.code)

    # -- waiting ------------------------------------------------------------------
    async def wait(
        self,
        record: TxRecord,
        clock: Clock,
        *,
        rollback: bool = False,
        deadline: float | None = None,
    ) -> Sent:
        """Wait until ``record`` reaches the confirmation policy.

        A transaction that leaves the chain after being seen in a block (a
        reorg) is back in doubt: it is re-evaluated, resent if the node lost
        it, and waited for again; never assumed either way.

        Raises:
            PermanentError: It reverted (``reverted``) or its nonce was taken
                by another transaction (``replaced``).
            OutcomeUnknown: The policy was not reached before the deadline.
        """
        limit = clock.now() + self.network.confirm_timeout_s
        deadline = limit if deadline is None else min(deadline, limit)
        seen: tuple[int | None, str | None] | None = None
        reorgs = resent = 0
        while True:
            status = self.status(record)
            if status.in_block:
                if seen is not None and seen != (status.block, status.block_hash):
                    reorgs += 1
                seen = (status.block, status.block_hash)
                if status.state is TxState.CONFIRMED:
                    return Sent(record, status, reorgs, resent)
                if status.state is TxState.REVERTED:
                    raise PermanentError(
                        f"{record.kind} transaction {record.hash} reverted in block "
                        f"{status.block}; it had no effect but its gas",
                        code="reverted", details={"tx": record.hash, "block": status.block},
                    )
            else:
                if seen is not None:
                    reorgs += 1
                    seen = None
                    log.warning("evm: %s %s left the chain (reorg); back in doubt",
                                record.kind, record.hash)
                if status.state is TxState.REPLACED:
                    raise PermanentError(
                        f"{record.kind} transaction {record.hash} can never be mined: nonce "
                        f"{record.nonce} was used by another transaction",
                        code="replaced", details={"tx": record.hash, "nonce": record.nonce},
                    )
                if status.state is TxState.DROPPED:
                    resent += 1
                    self._resend(record)
            if clock.now() >= deadline:
                raise OutcomeUnknown(
                    f"{record.kind} transaction {record.hash} (nonce {record.nonce}) did not "
                    f"reach {self.network.confirmation.describe()} in time; last seen "
                    f"{status.state.value}",
                    details={"tx": record.hash, "nonce": record.nonce,
                             "state": status.state.value, "reorgs": reorgs},
                )
            if self.network.on_poll is not None:
                self.network.on_poll()
            await clock.sleep(self.network.poll_interval_s)

    # -- settling and cancelling ----------------------------------------------------
    async def settle(
        self, key: str, clock: Clock, *, deadline: float | None = None
    ) -> Settled:
        """Decide, for good, whether the transaction sent under ``key`` took effect.

        A pending (or lost) transaction is cancelled with a same-nonce
        replacement: a zero-value self-transfer with both fees bumped by the
        policy's replacement rule. Whichever of the two is mined decides.

        Raises:
            OutcomeUnknown: Neither could be settled before the deadline.
        """
        record = self.journal.get(key)
        if record is None or record.rejected:
            return Settled(False, "never_sent")
        status = self.status(record)
        if status.state is TxState.REPLACED:
            cancel = self.journal.get(key + "/cancel")
            if cancel is None or cancel.rejected:
                return Settled(False, "replaced")
            # The nonce is taken, but only a confirmed cancellation makes that final.
            confirmed = await self.wait(cancel, clock, rollback=True, deadline=deadline)
            return Settled(False, "cancelled", None,
                           confirmed.summary() | {"won": True, "replaced": record.hash})
        if status.state in (TxState.PENDING, TxState.DROPPED):
            return await self._cancel(record, clock, deadline)
        try:
            sent = await self.wait(record, clock, rollback=True, deadline=deadline)
        except PermanentError as exc:
            return Settled(False, exc.code)
        return Settled(True, "confirmed", sent)

    async def _cancel(self, record: TxRecord, clock: Clock, deadline: float | None) -> Settled:
        key = record.key + "/cancel"
        cancel = self.journal.get(key)
        if cancel is None or cancel.rejected:
            bump = self.network.fees.replacement_bump_bps
            floor_fee, floor_tip = (cancel.max_fee, cancel.tip) if cancel else (0, 0)
            now_fee, now_tip = self.fee_quote()
            tip = max(_bumped(record.tip, bump), _bumped(floor_tip, bump), now_tip)
            max_fee = max(_bumped(record.max_fee, bump), _bumped(floor_fee, bump), now_fee, tip)
            routes = self._routes("cancel", rollback=True)
            cancel = self._sign(key, "cancel", self.address, "0x", nonce=record.nonce,
                                fees=(max_fee, tip), gas=21_000, replaces=record.hash)
            try:
                cancel = self._submit(cancel, routes)
            except NonceTooLow:
                # The original got mined while the cancellation was on its way:
                # settle on the original instead.
                sent = await self.wait(record, clock, rollback=True, deadline=deadline)
                return Settled(True, "confirmed", sent, {"won": False, "tx": cancel.hash})
            log.info("evm: cancelling %s with same-nonce replacement %s", record.hash,
                     cancel.hash)
        limit = clock.now() + self.network.confirm_timeout_s
        deadline = limit if deadline is None else min(deadline, limit)
        while True:
            original = self.status(record)
            replacement = self.status(cancel)
            if original.state is TxState.CONFIRMED:
                sent = Sent(record, original)
                return Settled(True, "confirmed", sent, {"tx": cancel.hash, "won": False})
            if replacement.state in (TxState.CONFIRMED, TxState.REVERTED):
                info = Sent(cancel, replacement).summary() | {"won": True,
                                                             "replaced": record.hash}
                return Settled(False, "cancelled", None, info)
            if original.state is TxState.REVERTED:
                return Settled(False, "reverted", None, {"tx": cancel.hash, "won": False})
            if replacement.state is TxState.DROPPED:
                self._resend(cancel)
            if clock.now() >= deadline:
                raise OutcomeUnknown(
                    f"neither {record.hash} nor its cancellation {cancel.hash} was settled in "
                    "time",
                    details={"tx": record.hash, "cancel": cancel.hash},
                )
            if self.network.on_poll is not None:
                self.network.on_poll()
            await clock.sleep(self.network.poll_interval_s)


def _bumped(value: int, bump_bps: int) -> int:
    # Round up and add one wei: nodes compare with >=, some with >.
    return math.ceil(value * (10_000 + bump_bps) / 10_000) + 1 if value else 0
