"""The wallet: sign locally, send along the policy's route, wait for the confirmation policy.

Every transaction is journaled in the saga store, under the idempotency key
of the step call that sends it, before it leaves the process. Sending again
under the same key never signs a second transaction: it re-evaluates the first
one (waits for it, resends the identical bytes if the node lost it, or reports
it replaced). Only a transaction the node refused outright is signed again, in
the key's next slot (``<key>~2``...), so each journal key is signed once.

The wallet holds no journal of its own: each call gets the calling saga's
through a :class:`~reversa.adapters.evm.TxScope`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from reversa.core.clock import Clock
from reversa.core.errors import Fenced, OutcomeUnknown, PermanentError, StepError

from .errors import NonceTooLow, TxRejected, translate
from .journal import TxJournal, TxRecord, TxScope, slot_key
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
        how: ``confirmed``, ``never_sent``, ``blocked`` (nothing was journaled
            and now nothing can be), ``reverted``, ``replaced`` or
            ``cancelled`` (a same-nonce replacement won).
        sent: The confirmed transaction when it happened.
        cancel: The cancellation summary when one was sent.
    """

    happened: bool
    how: str
    sent: Sent | None = None
    cancel: dict[str, Any] | None = None


class EvmWallet:
    """One account on one network: what operations reach through ``ctx.service``.

    It keeps no durable state: transactions are journaled in the saga store
    (each call's :class:`~reversa.adapters.evm.TxScope` carries the saga's
    journal), so any process with the same database and key can recover them.

    Args:
        network: The node and its policies.
        signer: Holds the private key (never leaves it).
        nonces: Nonce manager (default: a new one).
    """

    def __init__(
        self,
        network: EvmNetwork,
        signer: LocalSigner,
        *,
        nonces: NonceManager | None = None,
    ) -> None:
        self.network = network
        self._signer = signer
        self.nonces = nonces if nonces is not None else NonceManager()
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
        scope: TxScope,
        key: str,
        kind: str,
        to: str,
        data: str,
        *,
        rollback: bool,
    ) -> Sent:
        """Send a contract call under ``key`` (once) and wait for the confirmation policy.

        The signed transaction is journaled (a fenced write) before it is
        broadcast: a process that lost the saga's lease, or a key that a
        rollback blocked, never gets as far as the network.

        Args:
            scope: The calling step's journal, clock, deadline and fence.
            key: Idempotency key plus label; the same key never signs twice.
            kind: Transaction kind (decides the route).
            to: Destination.
            data: Calldata, hex.
            rollback: Whether this is part of a rollback (private route).

        Raises:
            PermanentError: It would revert, it reverted, or it was replaced.
            Fenced: The key was blocked, or the relay saw a newer owner.
            LeaseLost: This process lost the saga's lease; nothing was sent.
            OutcomeUnknown: It was sent and has not reached the policy in time.
            TransientError: It could not be sent; nothing happened.
        """
        record, slot, _ = scope.journal.find(key)
        if record is None:
            routes = self._routes(kind, rollback)  # refuse before a nonce is taken
            record = self._sign(scope.journal, slot, kind, to, data)
            record = self._submit(scope, record, routes)
        else:
            log.info("evm: re-evaluating %s %s (nonce %d) under %s", kind, record.hash,
                     record.nonce, key)
        return await self.wait(scope, record, rollback=rollback)

    def _sign(self, journal: TxJournal, key: str, kind: str, to: str, data: str,
              nonce: int | None = None, fees: tuple[int, int] | None = None,
              gas: int | None = None, replaces: str | None = None) -> TxRecord:
        gas = gas if gas is not None else self.estimate_gas(to, data)
        max_fee, tip = fees if fees is not None else self.fee_quote()
        reserved = nonce is None
        if nonce is None:
            nonce = self.nonces.reserve(self.w3, self.address, journal)
        tx = {
            "type": 2, "chainId": self.chain_id, "nonce": nonce, "to": to, "value": 0,
            "data": data, "gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip,
        }
        signed = self._signer.sign(tx)
        record = TxRecord(key=key, sender=self.address, nonce=nonce, hash=signed.hash,
                          raw=signed.raw.hex(), kind=kind, to=to, gas=gas, max_fee=max_fee,
                          tip=tip, replaces=replaces)
        # Write-ahead and fenced: journaled before it can reach anyone, or not sent.
        try:
            journal.put(record)
        except BaseException:
            if reserved:
                self.nonces.release(self.address, nonce)
            raise
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

    def _submit(self, scope: TxScope, record: TxRecord, routes: list[Submitter]) -> TxRecord:
        raw = bytes.fromhex(record.raw)
        last: StepError | None = None
        for index, route in enumerate(routes):
            try:
                route.submit(raw, record.hash, scope.fence)
            except Fenced:
                # A newer owner of the saga reached the relay first. No fallback:
                # this process must stop sending (its journal writes fail too).
                raise
            except NonceTooLow:
                self._reject(scope.journal, record)
                self.nonces.forget(self.address)
                raise
            except TxRejected:
                self._reject(scope.journal, record)
                raise
            except OutcomeUnknown:
                scope.journal.put(replace(record, route=route.route))
                raise
            except StepError as exc:
                if not exc.retryable:
                    self._reject(scope.journal, record)
                    raise
                last = exc
                if index + 1 < len(routes):
                    log.warning("evm: %s route failed for %s (%s); policy allows the %s route",
                                route.route, record.kind, exc.code, routes[index + 1].route)
                continue
            sent = replace(record, route=route.route)
            scope.journal.put(sent)
            log.info("evm: sent %s %s nonce=%d via %s", record.kind, record.hash, record.nonce,
                     route.route)
            return sent
        assert last is not None
        # Every route refused it outright: it is nowhere, so its nonce is free.
        self._reject(scope.journal, record)
        raise last

    def _reject(self, journal: TxJournal, record: TxRecord) -> None:
        journal.put(replace(record, rejected=True))
        self.nonces.release(self.address, record.nonce)

    def _resend(self, scope: TxScope, record: TxRecord) -> None:
        # The node lost it (reorg, restart, eviction): the identical signed bytes
        # are the same transaction, so resending cannot duplicate its effect.
        routes = {"private": self._private, "public": self._public}
        route = routes.get(record.route) or self._public
        try:
            route.submit(bytes.fromhex(record.raw), record.hash, scope.fence)
        except Fenced:
            raise
        except StepError as exc:
            log.warning("evm: resending %s failed (%s); will re-evaluate", record.hash, exc.code)

    # -- waiting ------------------------------------------------------------------
    async def wait(self, scope: TxScope, record: TxRecord, *, rollback: bool = False) -> Sent:
        """Wait until ``record`` reaches the confirmation policy.

        A transaction that leaves the chain after being seen in a block (a
        reorg) is back in doubt: it is re-evaluated, resent if the node lost
        it, and waited for again; never assumed either way.

        Raises:
            PermanentError: It reverted (``reverted``) or its nonce was taken
                by another transaction (``replaced``).
            OutcomeUnknown: The policy was not reached before the deadline.
        """
        clock = scope.clock
        deadline = self._deadline(scope)
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
                    self._resend(scope, record)
            if clock.now() >= deadline:
                raise OutcomeUnknown(
                    f"{record.kind} transaction {record.hash} (nonce {record.nonce}) did not "
                    f"reach {self.network.confirmation.describe()} in time; last seen "
                    f"{status.state.value}",
                    details={"tx": record.hash, "nonce": record.nonce,
                             "state": status.state.value, "reorgs": reorgs},
                )
            await self._pause(clock)

    def _deadline(self, scope: TxScope) -> float:
        limit = scope.clock.now() + self.network.confirm_timeout_s
        return limit if scope.deadline is None else min(scope.deadline, limit)

    async def _pause(self, clock: Clock) -> None:
        if self.network.on_poll is not None:
            self.network.on_poll()
        await clock.sleep(self.network.poll_interval_s)

    # -- settling, blocking and cancelling ------------------------------------------
    async def settle(self, scope: TxScope, key: str) -> Settled:
        """Decide, for good, whether the transaction sent under ``key`` took effect.

        A pending (or lost) transaction is cancelled with a same-nonce
        replacement: a zero-value self-transfer with both fees bumped by the
        policy's replacement rule. Whichever of the two is mined decides.

        Raises:
            OutcomeUnknown: Neither could be settled before the deadline.
        """
        record = scope.journal.current(key)
        if record is None:
            return Settled(False, "never_sent")
        return await self._settle(scope, record)

    async def block(self, scope: TxScope, key: str) -> Settled:
        """Make the transaction under ``key`` unable to happen later, and settle what was sent.

        Each of the key's journal slots is blocked in turn: an empty slot is
        tombstoned (nothing can be journaled, so nothing broadcast, under it
        from now on, by any process), a refused transaction is skipped, and a
        journaled one is settled as :meth:`settle` does: confirmed means it
        happened; pending or lost, a same-nonce replacement is sent and whichever
        of the two consumes the nonce decides. Errors are not caught here: the
        engine records a failed block and escalates what it cannot settle.

        Raises:
            OutcomeUnknown: Neither the transaction nor its replacement was
                settled before the deadline.
        """
        slot, attempt = key, 1
        while (record := scope.journal.block(slot)) is not None and record.rejected:
            attempt += 1
            slot = slot_key(key, attempt)
        if record is None:
            log.info("evm: blocked %s: nothing was journaled, nothing can be now", slot)
            return Settled(False, "blocked")
        return await self._settle(scope, record)

    async def _settle(self, scope: TxScope, record: TxRecord) -> Settled:
        status = self.status(record)
        if status.state is TxState.REPLACED:
            cancel = scope.journal.current(record.key + "/cancel")
            if cancel is None:
                return Settled(False, "replaced")
            # The nonce is taken, but only a confirmed cancellation makes that final.
            confirmed = await self.wait(scope, cancel, rollback=True)
            return Settled(False, "cancelled", None,
                           confirmed.summary() | {"won": True, "replaced": record.hash})
        if status.state in (TxState.PENDING, TxState.DROPPED):
            return await self._cancel(scope, record)
        try:
            sent = await self.wait(scope, record, rollback=True)
        except PermanentError as exc:
            return Settled(False, exc.code)
        return Settled(True, "confirmed", sent)

    async def _cancel(self, scope: TxScope, record: TxRecord) -> Settled:
        cancel, slot, refused = scope.journal.find(record.key + "/cancel")
        if cancel is None:
            bump = self.network.fees.replacement_bump_bps
            floor_fee, floor_tip = (refused.max_fee, refused.tip) if refused else (0, 0)
            now_fee, now_tip = self.fee_quote()
            tip = max(_bumped(record.tip, bump), _bumped(floor_tip, bump), now_tip)
            max_fee = max(_bumped(record.max_fee, bump), _bumped(floor_fee, bump), now_fee, tip)
            routes = self._routes("cancel", rollback=True)
            cancel = self._sign(scope.journal, slot, "cancel", self.address, "0x",
                                nonce=record.nonce, fees=(max_fee, tip), gas=21_000,
                                replaces=record.hash)
            try:
                cancel = self._submit(scope, cancel, routes)
            except NonceTooLow:
                # The original got mined while the cancellation was on its way:
                # settle on the original instead.
                sent = await self.wait(scope, record, rollback=True)
                return Settled(True, "confirmed", sent, {"won": False, "tx": cancel.hash})
            log.info("evm: cancelling %s with same-nonce replacement %s", record.hash,
                     cancel.hash)
        deadline = self._deadline(scope)
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
                self._resend(scope, cancel)
            if scope.clock.now() >= deadline:
                raise OutcomeUnknown(
                    f"neither {record.hash} nor its cancellation {cancel.hash} was settled in "
                    "time",
                    details={"tx": record.hash, "cancel": cancel.hash},
                )
            await self._pause(scope.clock)


def _bumped(value: int, bump_bps: int) -> int:
    # Round up and add one wei: nodes compare with >=, some with >.
    return math.ceil(value * (10_000 + bump_bps) / 10_000) + 1 if value else 0
