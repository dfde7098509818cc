"""Double-entry books: accounts, transfers, holds and corrections (TigerBeetle's model).

Not thread-safe on its own: :class:`~reversa.simulators.ledger.MockLedger` holds a
lock around every call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from reversa.adapters.payments.ledger_api import (
    Account,
    IdempotencyConflict,
    InvalidState,
    LedgerNotFound,
    LedgerRejected,
    PendingState,
    Transfer,
    TransferKind,
    TransferRequest,
)

__all__ = ["Books"]


@dataclass
class _Balances:
    currency: str
    role: str
    flag: bool
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0


class Books:
    """Accounts and immutable transfers; every change is a new transfer."""

    def __init__(self) -> None:
        self.accounts: dict[str, _Balances] = {}
        self.transfers: dict[str, Transfer] = {}
        # What each id was created with, to tell a replay from a conflict.
        self._requests: dict[str, tuple[object, ...]] = {}
        self._state: dict[str, PendingState] = {}
        self._expires: dict[str, float] = {}
        self._posted_by: dict[str, str] = {}
        self._corrected: dict[str, int] = {}

    # -- accounts ---------------------------------------------------------------------
    def create_account(self, id: str, currency: str, role: str, flag: bool) -> Account:
        if not id:
            raise LedgerRejected("account id must not be empty", code="id_must_not_be_empty")
        fingerprint = (currency.upper(), role, flag)
        existing = self.accounts.get(id)
        if existing is not None:
            if (existing.currency, existing.role, existing.flag) != fingerprint:
                raise IdempotencyConflict(
                    f"account {id!r} exists with different fields "
                    f"({existing.currency}, {existing.role})"
                )
            return self.account(id)
        self.accounts[id] = _Balances(currency.upper(), role, flag)
        return self.account(id)

    def account(self, id: str) -> Account:
        bal = self.accounts.get(id)
        if bal is None:
            raise LedgerNotFound(f"no account {id!r}")
        return Account(
            id=id,
            currency=bal.currency,
            role=bal.role,
            debits_pending=bal.debits_pending,
            debits_posted=bal.debits_posted,
            credits_pending=bal.credits_pending,
            credits_posted=bal.credits_posted,
            debits_must_not_exceed_credits=bal.flag,
        )

    # -- transfers --------------------------------------------------------------------
    def transfer(self, id: str) -> Transfer | None:
        record = self.transfers.get(id)
        if record is None or record.kind != TransferKind.PENDING:
            return record
        return dataclasses.replace(record, state=self._state[id].value)

    def find(
        self, prefix: str | None, corrects: str | None, pending_id: str | None = None
    ) -> list[Transfer]:
        out: list[Transfer] = []
        for tid in self.transfers:
            record = self.transfers[tid]
            if prefix is not None and not tid.startswith(prefix):
                continue
            if corrects is not None and record.corrects != corrects:
                continue
            if pending_id is not None and record.pending_id != pending_id:
                continue
            out.append(self.transfer(tid) or record)
        return out

    def create(self, req: TransferRequest, now: float) -> Transfer:
        replay = self._replay(req.id, _fingerprint(req))
        if replay is not None:
            return replay
        self._validate(req)
        kind = TransferKind.PENDING if req.pending else TransferKind.SINGLE
        debit, credit = self.accounts[req.debit_account], self.accounts[req.credit_account]
        if req.pending:
            debit.debits_pending += req.amount
            credit.credits_pending += req.amount
            self._state[req.id] = PendingState.PENDING
            if req.timeout_s is not None:
                self._expires[req.id] = now + req.timeout_s
        else:
            debit.debits_posted += req.amount
            credit.credits_posted += req.amount
        if req.corrects is not None:
            self._corrected[req.corrects] = self._corrected.get(req.corrects, 0) + req.amount
        record = Transfer(
            id=req.id,
            debit_account=req.debit_account,
            credit_account=req.credit_account,
            amount=req.amount,
            currency=req.currency.upper(),
            kind=kind.value,
            code=req.code,
            reference=req.reference,
            timestamp=now,
            corrects=req.corrects,
            timeout_s=req.timeout_s,
        )
        return self._store(record, _fingerprint(req))

    def create_linked(self, reqs: Sequence[TransferRequest], now: float) -> list[Transfer]:
        if not reqs:
            return []
        existing = [r.id in self.transfers for r in reqs]
        if all(existing):
            return [self.create(r, now) for r in reqs]  # each one a checked replay
        if any(existing):
            raise IdempotencyConflict(
                "part of this linked chain already exists with other transfers; "
                "a linked chain is replayed whole or not at all"
            )
        if len({r.id for r in reqs}) != len(reqs):
            raise LedgerRejected("duplicate ids in one linked chain", code="duplicate_ids")
        saved = {a: dataclasses.replace(b) for a, b in self.accounts.items()}
        saved_corrected = dict(self._corrected)
        created: list[str] = []
        try:
            out = []
            for req in reqs:
                out.append(self.create(req, now))
                created.append(req.id)
            return out
        except Exception:
            # All or nothing: put every balance back and forget the partial chain.
            self.accounts = saved
            self._corrected = saved_corrected
            for tid in created:
                self._forget(tid)
            raise

    def post(self, id: str, pending_id: str, amount: int | None, now: float) -> Transfer:
        replay = self._replay(id, ("post", pending_id, amount))
        if replay is not None:
            return replay
        pending = self._open_pending(pending_id, "post")
        if amount is not None and (amount <= 0 or amount > pending.amount):
            raise InvalidState(
                f"cannot post {amount} of hold {pending_id!r} (amount {pending.amount})",
                code="exceeds_pending_transfer_amount",
            )
        posted = pending.amount if amount is None else amount
        self._release(pending)
        self.accounts[pending.debit_account].debits_posted += posted
        self.accounts[pending.credit_account].credits_posted += posted
        self._state[pending_id] = PendingState.POSTED
        self._posted_by[pending_id] = id
        record = dataclasses.replace(
            pending, id=id, amount=posted, kind=TransferKind.POST.value, pending_id=pending_id,
            timestamp=now, timeout_s=None, state=None,
        )
        return self._store(record, ("post", pending_id, amount))

    def void(self, id: str, pending_id: str, now: float) -> Transfer:
        replay = self._replay(id, ("void", pending_id))
        if replay is not None:
            return replay
        pending = self._open_pending(pending_id, "void")
        self._release(pending)
        self._state[pending_id] = PendingState.VOIDED
        record = dataclasses.replace(
            pending, id=id, kind=TransferKind.VOID.value, pending_id=pending_id,
            timestamp=now, timeout_s=None, state=None,
        )
        return self._store(record, ("void", pending_id))

    def expire(self, now: float) -> list[str]:
        """Void holds whose timeout has passed (TigerBeetle expires them itself)."""
        due = [tid for tid, at in self._expires.items() if at <= now]
        for tid in due:
            del self._expires[tid]
            if self._state.get(tid) is PendingState.PENDING:
                self._release(self.transfers[tid])
                self._state[tid] = PendingState.EXPIRED
        return due

    def posted_amount(self, id: str) -> int:
        """How much of a transfer is posted (what a correction may undo)."""
        record = self.transfers[id]
        if record.kind == TransferKind.PENDING:
            post_id = self._posted_by.get(id)
            return self.transfers[post_id].amount if post_id else 0
        if record.kind in (TransferKind.SINGLE, TransferKind.POST):
            return record.amount
        return 0

    def corrected_amount(self, id: str) -> int:
        """How much of a transfer has been corrected so far."""
        return self._corrected.get(id, 0)

    # -- internals --------------------------------------------------------------------
    def _replay(self, id: str, fingerprint: tuple[object, ...]) -> Transfer | None:
        if not id:
            raise LedgerRejected("transfer id must not be empty", code="id_must_not_be_zero")
        if id not in self.transfers:
            return None
        if self._requests[id] != fingerprint:
            raise IdempotencyConflict(
                f"transfer {id!r} exists with different fields; use a new id for a new transfer"
            )
        return self.transfer(id)

    def _validate(self, req: TransferRequest) -> None:
        if not isinstance(req.amount, int) or req.amount <= 0:
            raise LedgerRejected(
                f"transfer {req.id!r}: amount must be a positive integer of minor units",
                code="amount_must_be_positive",
            )
        for acct in (req.debit_account, req.credit_account):
            if acct not in self.accounts:
                raise LedgerNotFound(f"transfer {req.id!r}: no account {acct!r}")
        if req.debit_account == req.credit_account:
            raise LedgerRejected(
                f"transfer {req.id!r} debits and credits the same account",
                code="accounts_must_be_different",
            )
        debit, credit = self.accounts[req.debit_account], self.accounts[req.credit_account]
        currency = req.currency.upper()
        if not debit.currency == credit.currency == currency:
            raise LedgerRejected(
                f"transfer {req.id!r}: {currency} between a {debit.currency} and a "
                f"{credit.currency} account; currency exchange is two transfers",
                code="accounts_must_have_the_same_ledger",
            )
        if req.corrects is not None:
            self._validate_correction(req)
        if debit.flag and (
            debit.debits_posted + debit.debits_pending + req.amount > debit.credits_posted
        ):
            raise LedgerRejected(
                f"transfer {req.id!r}: {req.debit_account!r} has insufficient funds",
                code="exceeds_credits",
            )

    def _validate_correction(self, req: TransferRequest) -> None:
        original = self.transfers.get(req.corrects or "")
        if original is None:
            raise LedgerNotFound(f"correction {req.id!r}: no transfer {req.corrects!r} to correct")
        if req.pending:
            raise LedgerRejected("a correction is posted, never pending", code="correction_pending")
        if (
            req.credit_account != original.debit_account
            and req.debit_account != original.credit_account
        ):
            raise LedgerRejected(
                f"correction {req.id!r} must move money back: credit "
                f"{original.debit_account!r} or debit {original.credit_account!r}",
                code="correction_direction",
            )
        room = self.posted_amount(original.id) - self.corrected_amount(original.id)
        if req.amount > room:
            raise LedgerRejected(
                f"correction {req.id!r} of {req.amount} exceeds what is left to correct "
                f"on {original.id!r} ({room})",
                code="exceeds_original_amount",
            )

    def _open_pending(self, pending_id: str, verb: str) -> Transfer:
        pending = self.transfers.get(pending_id)
        if pending is None:
            raise LedgerNotFound(f"no pending transfer {pending_id!r} to {verb}")
        if pending.kind != TransferKind.PENDING:
            raise InvalidState(
                f"{pending_id!r} is not a pending transfer", code="pending_transfer_not_pending"
            )
        state = self._state[pending_id]
        if state is not PendingState.PENDING:
            raise InvalidState(
                f"cannot {verb} hold {pending_id!r}: it is already {state}",
                code=f"pending_transfer_already_{state}",
            )
        return pending

    def _release(self, pending: Transfer) -> None:
        self.accounts[pending.debit_account].debits_pending -= pending.amount
        self.accounts[pending.credit_account].credits_pending -= pending.amount
        self._expires.pop(pending.id, None)

    def _store(self, record: Transfer, fingerprint: tuple[object, ...]) -> Transfer:
        self.transfers[record.id] = record
        self._requests[record.id] = fingerprint
        return self.transfer(record.id) or record

    def _forget(self, id: str) -> None:
        self.transfers.pop(id, None)
        self._requests.pop(id, None)
        self._state.pop(id, None)
        self._expires.pop(id, None)


def _fingerprint(req: TransferRequest) -> tuple[object, ...]:
    return (
        req.debit_account,
        req.credit_account,
        req.amount,
        req.currency.upper(),
        req.code,
        req.reference,
        req.pending,
        req.timeout_s,
        req.corrects,
    )
