"""The in-process mock ledger: books plus payment rails, recalls and faults."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reversa.adapters.payments.ledger_api import (
    Account,
    AccountRole,
    IdempotencyConflict,
    InvalidState,
    LedgerError,
    LedgerFenced,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    Payment,
    PaymentRequest,
    PaymentStatus,
    Recall,
    RecallStatus,
    Transfer,
    TransferRequest,
)
from reversa.adapters.payments.rails import DEFAULT_RAILS, AfterFinality, Rail, RailSpec
from reversa.core.clock import SystemClock
from reversa.core.context import Fence
from reversa.core.errors import Fenced

from ..boundary import EffectBoundary, refusal_reason
from ._books import Books
from .faults import Fault, FaultKind, FaultPlan

__all__ = ["MockLedger", "RecallAnswer"]

T = TypeVar("T")


class _Now(Protocol):
    def now(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RecallAnswer:
    """How a beneficiary bank answers recall requests (camt.056 -> camt.029/pacs.004).

    Attributes:
        accept: Return the funds, or refuse.
        delay_s: Time until the answer arrives (0: at once).
        reason: ISO reason code of a refusal (``"CUST"``: customer decision,
            ``"LEGL"``: legal decision, ``"AC04"``: account closed...).
    """

    accept: bool = True
    delay_s: float = 0.0
    reason: str = "CUST"


class MockLedger:
    """A double-entry ledger with holds, corrections, rails, recalls and faults.

    Implements :class:`~reversa.adapters.payments.ledger_api.LedgerAPI` in process;
    :func:`reversa.simulators.ledger.http.serve` exposes the same object over
    HTTP. Settlement, hold expiry and recall answers are driven by ``clock``, and
    are applied lazily at the start of every call, so a FakeClock makes them exact.

    It keeps the effect boundary (:attr:`boundary`): a call whose fencing token is
    older than one seen for its saga, or that would create a record under an id
    :meth:`block_transfer` / :meth:`block_payment` tombstoned, is refused with
    ``LedgerFenced``, checked under the same lock as the booking, when the booking
    happens. :meth:`stats` reports what landed and what was refused, per id.

    Args:
        clock: Source of time (anything with ``now()``); SystemClock by default.
        rails: Rail specs (settlement delay, cancellability, finality).
        faults: Fault plan; a fresh one (real sleep) by default.
        sanctioned: Beneficiary names the screening rejects (``sanctions_hit``).
        recall_answer: Default answer of beneficiary banks to recall requests.
    """

    def __init__(
        self,
        *,
        clock: _Now | None = None,
        rails: Mapping[Rail, RailSpec] | None = None,
        faults: FaultPlan | None = None,
        sanctioned: Sequence[str] = (),
        recall_answer: RecallAnswer | None = None,
    ) -> None:
        self.clock: _Now = clock or SystemClock()
        self.rails: dict[Rail, RailSpec] = dict(rails or DEFAULT_RAILS)
        self.faults = faults or FaultPlan()
        self.sanctioned: set[str] = set(sanctioned)
        self.recall_answer = recall_answer or RecallAnswer()
        self.recall_answers: dict[str, RecallAnswer] = {}
        """Per-beneficiary answers overriding ``recall_answer``."""
        self.calls: dict[str, int] = {}
        """How many calls each operation served (faulted ones included)."""
        self._books = Books()
        self._payments: dict[str, Payment] = {}
        self._payment_requests: dict[str, PaymentRequest] = {}
        self._recalls: dict[str, Recall] = {}
        self._lock = threading.RLock()
        self._down = False
        self.boundary = EffectBoundary()
        """Fencing tokens, tombstones, and what landed / was refused per key."""

    # -- conveniences for tests and demos (not part of LedgerAPI) --------------------
    def open_account(
        self, id: str, currency: str, role: str = AccountRole.CUSTOMER.value, balance: int = 0,
        *, debits_must_not_exceed_credits: bool | None = None,
    ) -> Account:
        """Create an account and fund it from an equity account in one go."""
        flag = (
            role == AccountRole.CUSTOMER.value
            if debits_must_not_exceed_credits is None
            else debits_must_not_exceed_credits
        )
        self.create_account(id, currency, role, debits_must_not_exceed_credits=flag)
        if balance > 0:
            equity = f"equity:{currency.upper()}"
            self.create_account(equity, currency, AccountRole.EQUITY.value)
            self.create_transfer(
                TransferRequest(
                    id=f"fund:{id}", debit_account=equity, credit_account=id,
                    amount=balance, currency=currency, code="funding",
                )
            )
        return self.get_account(id)

    def balances(self, ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """``{account: {"posted": .., "pending": ..}}`` for all or some accounts."""
        with self._lock:
            self._tick()
            chosen = list(self._books.accounts) if ids is None else list(ids)
            out = {}
            for acct in chosen:
                a = self._books.account(acct)
                out[acct] = {"posted": a.posted, "pending": a.pending}
            return out

    def payments(self) -> list[Payment]:
        """Every payment record."""
        with self._lock:
            self._tick()
            return list(self._payments.values())

    def restart(self) -> None:
        """Bring a crashed ledger back (its books survive, as a durable ledger's would)."""
        with self._lock:
            self._down = False

    @property
    def down(self) -> bool:
        """Whether a crash fault took the ledger down."""
        return self._down

    def stats(self) -> dict[str, Any]:
        """What landed and what was refused, per key (see :mod:`reversa.simulators.boundary`),
        plus calls per operation and whether a stall fault is holding a call."""
        with self._lock:
            calls = dict(self.calls)
        return {**self.boundary.stats(), "calls": calls, "stalled": self.faults.stalled.is_set()}

    # -- LedgerAPI: accounts and transfers --------------------------------------------
    def create_account(
        self, id: str, currency: str, role: str = "customer", *,
        debits_must_not_exceed_credits: bool = False, fence: Fence | None = None,
    ) -> Account:
        """Create an account (idempotent)."""
        req = {"id": id, "currency": currency, "role": role}
        return self._call(
            "create_account", req,
            lambda: self._books.create_account(id, currency, role, debits_must_not_exceed_credits),
            fence=fence,
        )

    def get_account(self, id: str, *, fence: Fence | None = None) -> Account:
        """The account, or LedgerNotFound."""
        return self._call("get_account", {"id": id}, lambda: self._books.account(id),
                          fence=fence)

    def get_accounts(self, ids: Sequence[str], *, fence: Fence | None = None) -> list[Account]:
        """Several accounts, in the order asked."""
        return self._call(
            "get_accounts", {"ids": list(ids)}, lambda: [self._books.account(i) for i in ids],
            fence=fence,
        )

    def create_transfer(self, request: TransferRequest, *, fence: Fence | None = None
                        ) -> Transfer:
        """Create one single-phase or pending transfer."""
        return self._call(
            "create_transfer", request.to_dict(),
            lambda: self._books.create(request, self.clock.now()), fence=fence,
            keys=[request.id],
        )

    def create_linked(self, requests: Sequence[TransferRequest], *, fence: Fence | None = None
                      ) -> list[Transfer]:
        """Create transfers atomically (TigerBeetle's ``flags.linked`` chain)."""
        first = requests[0].to_dict() if requests else {}
        return self._call(
            "create_linked", first,
            lambda: self._books.create_linked(list(requests), self.clock.now()), fence=fence,
            keys=[r.id for r in requests],
        )

    def post_pending(self, id: str, pending_id: str, amount: int | None = None, *,
                     fence: Fence | None = None) -> Transfer:
        """Post a hold (fully, or ``amount`` of it)."""
        req = {"id": id, "pending_id": pending_id, "amount": amount}
        return self._call(
            "post_pending", req,
            lambda: self._books.post(id, pending_id, amount, self.clock.now()), fence=fence,
            keys=[id],
        )

    def void_pending(self, id: str, pending_id: str, *, fence: Fence | None = None
                     ) -> Transfer:
        """Void a hold."""
        req = {"id": id, "pending_id": pending_id}
        return self._call(
            "void_pending", req, lambda: self._books.void(id, pending_id, self.clock.now()),
            fence=fence, keys=[id],
        )

    def get_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """The transfer (with a hold's current state), or None."""
        return self._call("get_transfer", {"id": id}, lambda: self._books.transfer(id),
                          fence=fence)

    def block_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """The transfer, or None after tombstoning ``id`` (atomic under the ledger's lock)."""
        def block() -> Transfer | None:
            found = self._books.transfer(id)
            if found is None:
                self.boundary.tombstone(id, fence)
            return found

        return self._call("block_transfer", {"id": id}, block, fence=fence)

    def find_transfers(
        self,
        *,
        prefix: str | None = None,
        corrects: str | None = None,
        pending_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[Transfer]:
        """Transfers by id prefix, corrected transfer and/or resolved hold."""
        req = {"prefix": prefix, "corrects": corrects, "pending_id": pending_id}
        return self._call(
            "find_transfers", req, lambda: self._books.find(prefix, corrects, pending_id),
            fence=fence,
        )

    # -- LedgerAPI: payments and recalls ----------------------------------------------
    def submit_payment(self, request: PaymentRequest, *, fence: Fence | None = None
                       ) -> Payment:
        """Submit a payment: screened, then held until settlement (or posted at once)."""
        return self._call(
            "submit_payment", request.to_dict(), lambda: self._submit(request),
            on_reject=lambda code: self._reject(request, code), fence=fence,
            keys=[request.id],
        )

    def get_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """The payment, or None."""
        return self._call("get_payment", {"id": id}, lambda: self._payments.get(id),
                          fence=fence)

    def block_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """The payment (rejected ones too), or None after tombstoning ``id``."""
        def block() -> Payment | None:
            found = self._payments.get(id)
            if found is None:
                self.boundary.tombstone(id, fence)
            return found

        return self._call("block_payment", {"id": id}, block, fence=fence)

    def find_payments(self, *, prefix: str, fence: Fence | None = None) -> list[Payment]:
        """Payments whose id starts with ``prefix``."""
        return self._call(
            "find_payments", {"prefix": prefix},
            lambda: [p for i, p in self._payments.items() if i.startswith(prefix)], fence=fence,
        )

    def cancel_payment(self, payment_id: str, *, fence: Fence | None = None) -> Payment:
        """Cancel an accepted, unsettled payment (the hold is voided)."""
        return self._call(
            "cancel_payment", {"payment_id": payment_id}, lambda: self._cancel(payment_id),
            fence=fence,
        )

    def return_payment(self, payment_id: str, return_id: str, *, fence: Fence | None = None
                       ) -> Payment:
        """Correct or refund a settled payment on a rail that is not final."""
        req = {"payment_id": payment_id, "return_id": return_id}
        return self._call("return_payment", req, lambda: self._return(payment_id, return_id),
                          fence=fence, keys=[return_id])

    def request_recall(self, recall_id: str, payment_id: str, reason: str, *,
                       fence: Fence | None = None) -> Recall:
        """Send a recall request; the answer follows the configured policy."""
        req = {"recall_id": recall_id, "payment_id": payment_id, "reason": reason}
        return self._call(
            "request_recall", req, lambda: self._recall(recall_id, payment_id, reason),
            fence=fence, keys=[recall_id],
        )

    def get_recall(self, id: str, *, fence: Fence | None = None) -> Recall | None:
        """The recall, or None."""
        return self._call("get_recall", {"id": id}, lambda: self._recalls.get(id), fence=fence)

    # -- call wrapper: faults, lock, fencing, lazy time -------------------------------
    def _call(
        self,
        op: str,
        request: Mapping[str, Any],
        effect: Callable[[], T],
        *,
        fence: Fence | None = None,
        keys: Sequence[str] = (),
        on_reject: Callable[[str], None] | None = None,
    ) -> T:
        """Serve one call. ``keys`` are the ids the call would create: they are
        refused once tombstoned, and counted in flight and when they land."""
        self.boundary.note(op, fence)
        with self.boundary.in_flight(keys):
            with self._lock:
                self.calls[op] = self.calls.get(op, 0) + 1
                if self._down:
                    raise LedgerUnavailable(f"ledger is down: {op} refused", in_doubt=False)
                fault = self.faults.take(op, request)
                if fault is None:
                    return self._apply(op, fence, keys, effect)
            return self._faulted(op, fault, fence, keys, effect, on_reject)

    def _faulted(
        self, op: str, fault: Fault, fence: Fence | None, keys: Sequence[str],
        effect: Callable[[], T], on_reject: Callable[[str], None] | None,
    ) -> T:
        kind = fault.kind
        if kind is FaultKind.LATENCY:
            # The request is in flight meanwhile: fences and tombstones are checked
            # when it is applied, not when it arrived.
            self.faults.sleep(fault.latency_s)
            with self._lock:
                return self._apply(op, fence, keys, effect)
        if kind is FaultKind.REJECT:
            with self._lock:
                self._tick()
                if on_reject is not None:
                    on_reject(fault.code)
            raise LedgerRejected(f"{op} rejected ({fault.code})", code=fault.code)
        if fault.latency_s:
            self.faults.sleep(fault.latency_s)
        if fault.applied:
            # The caller only ever sees the failure below, whatever the effect said.
            with self._lock, contextlib.suppress(LedgerError):
                self._apply(op, fence, keys, effect)
        if kind is FaultKind.CRASH:
            with self._lock:
                self._down = True
            raise LedgerUnavailable(f"ledger crashed during {op}", in_doubt=True)
        if kind is FaultKind.STALL:
            self.faults.wait_stalled()
        raise LedgerTimeout(f"{op} timed out")

    def _apply(
        self, op: str, fence: Fence | None, keys: Sequence[str], effect: Callable[[], T]
    ) -> T:
        """Fence check and effect, atomically (the ledger's lock is held)."""
        self._tick()
        try:
            self.boundary.admit(op, fence, keys)
        except Fenced as exc:
            code = "key_blocked" if refusal_reason(exc) == "tombstone" else "stale_epoch"
            raise LedgerFenced(exc.message, code=code) from None
        sizes = (len(self._books.transfers), len(self._payments), len(self._recalls))
        out = effect()
        self.boundary.count_landed(self._created_since(sizes))
        return out

    def _created_since(self, sizes: tuple[int, int, int]) -> list[str]:
        # Records are only ever added (dicts keep insertion order): what is past
        # the old sizes was created by this call. Rejected payments moved nothing.
        new: list[str] = []
        tables: tuple[Mapping[str, Any], ...] = (self._books.transfers, self._payments,
                                                 self._recalls)
        for table, size in zip(tables, sizes, strict=True):
            new.extend(list(table)[size:])
        return [i for i in new if not (i in self._payments and self._payments[i].status
                                       == PaymentStatus.REJECTED.value)]

    def _tick(self) -> None:
        """Apply what time has made due: settlements, hold expiry, recall answers."""
        now = self.clock.now()
        for pid, pay in list(self._payments.items()):
            if pay.status == PaymentStatus.ACCEPTED and (pay.settles_at or 0.0) <= now:
                self._books.post(f"{pid}#settle", pay.transfer_id or "", None, now)
                self._payments[pid] = dataclasses.replace(pay, status=PaymentStatus.SETTLED.value)
        self._books.expire(now)
        for rid, rec in list(self._recalls.items()):
            if rec.status == RecallStatus.REQUESTED and rec.answer_due_at <= now:
                self._answer(rid)

    # -- payment internals (lock held) ------------------------------------------------
    def _spec(self, rail: str) -> RailSpec:
        try:
            return self.rails[Rail(rail)]
        except (ValueError, KeyError):
            raise LedgerRejected(f"unknown rail {rail!r}", code="unknown_rail") from None

    def _submit(self, req: PaymentRequest) -> Payment:
        existing = self._payments.get(req.id)
        if existing is not None:
            if self._payment_requests[req.id] != req:
                raise IdempotencyConflict(f"payment {req.id!r} exists with different fields")
            if existing.status == PaymentStatus.REJECTED:
                raise LedgerRejected(
                    f"payment {req.id!r} was rejected ({existing.rejection_code})",
                    code=existing.rejection_code,
                )
            return existing
        spec = self._spec(req.rail)
        if req.beneficiary in self.sanctioned:
            self._reject(req, "sanctions_hit")
            raise LedgerRejected(
                f"payment {req.id!r} rejected by sanctions screening", code="sanctions_hit"
            )
        now = self.clock.now()
        clearing = f"clearing:{spec.rail}:{req.currency.upper()}"
        self._books.create_account(clearing, req.currency, AccountRole.CLEARING.value, False)
        settles_now = spec.settlement_delay_s <= 0
        transfer = TransferRequest(
            id=f"{req.id}#pay", debit_account=req.debit_account, credit_account=clearing,
            amount=req.amount, currency=req.currency, code="payment",
            reference=f"{spec.rail} to {req.beneficiary}: {req.reference}".strip(),
            pending=not settles_now,
        )
        try:
            self._books.create(transfer, now)
        except LedgerRejected as exc:
            self._reject(req, exc.code)
            raise
        payment = Payment(
            id=req.id, rail=str(spec.rail), debit_account=req.debit_account, amount=req.amount,
            currency=req.currency.upper(), beneficiary=req.beneficiary, reference=req.reference,
            status=(PaymentStatus.SETTLED if settles_now else PaymentStatus.ACCEPTED).value,
            accepted_at=now, settles_at=now + spec.settlement_delay_s, transfer_id=transfer.id,
        )
        self._payments[req.id] = payment
        self._payment_requests[req.id] = req
        return payment

    def _reject(self, req: PaymentRequest, code: str) -> None:
        if req.id in self._payments:
            return
        self._payments[req.id] = Payment(
            id=req.id, rail=req.rail, debit_account=req.debit_account, amount=req.amount,
            currency=req.currency.upper(), beneficiary=req.beneficiary, reference=req.reference,
            status=PaymentStatus.REJECTED.value, accepted_at=self.clock.now(), rejection_code=code,
        )
        self._payment_requests[req.id] = req

    def _payment(self, payment_id: str) -> Payment:
        pay = self._payments.get(payment_id)
        if pay is None:
            raise LedgerNotFound(f"no payment {payment_id!r}")
        return pay

    def _cancel(self, payment_id: str) -> Payment:
        pay = self._payment(payment_id)
        if pay.status == PaymentStatus.CANCELLED:
            return pay
        if pay.status != PaymentStatus.ACCEPTED:
            raise InvalidState(
                f"payment {payment_id!r} is {pay.status}; only an accepted, unsettled "
                "payment can be cancelled", code=f"payment_{pay.status}",
            )
        if not self._spec(pay.rail).cancellable_before_settlement:
            raise InvalidState(
                f"payment {payment_id!r} on {pay.rail} is irrevocable once accepted; "
                "request a recall", code="irrevocable",
            )
        self._books.void(f"{payment_id}#cancel", pay.transfer_id or "", self.clock.now())
        cancelled = dataclasses.replace(pay, status=PaymentStatus.CANCELLED.value)
        self._payments[payment_id] = cancelled
        return cancelled

    def _return(self, payment_id: str, return_id: str) -> Payment:
        pay = self._payment(payment_id)
        if pay.status == PaymentStatus.RETURNED:
            if pay.return_transfer_id != return_id:
                raise InvalidState(
                    f"payment {payment_id!r} was already returned by {pay.return_transfer_id!r}",
                    code="already_returned",
                )
            return pay
        if pay.status != PaymentStatus.SETTLED:
            raise InvalidState(
                f"payment {payment_id!r} is {pay.status}; only a settled payment is returned "
                "(cancel an accepted one)", code=f"payment_{pay.status}",
            )
        if self._spec(pay.rail).after_finality is AfterFinality.RECALL:
            raise InvalidState(
                f"payment {payment_id!r} on {pay.rail} is final; request a recall",
                code="final",
            )
        return self._book_return(pay, return_id, "return")

    def _book_return(self, pay: Payment, return_id: str, code: str) -> Payment:
        clearing = f"clearing:{pay.rail}:{pay.currency}"
        self._books.create(
            TransferRequest(
                id=return_id, debit_account=clearing, credit_account=pay.debit_account,
                amount=pay.amount, currency=pay.currency, code=code,
                reference=f"{code} of payment {pay.id}", corrects=pay.transfer_id,
            ),
            self.clock.now(),
        )
        returned = dataclasses.replace(
            pay, status=PaymentStatus.RETURNED.value, return_transfer_id=return_id
        )
        self._payments[pay.id] = returned
        return returned

    def _recall(self, recall_id: str, payment_id: str, reason: str) -> Recall:
        existing = self._recalls.get(recall_id)
        if existing is not None:
            if (existing.payment_id, existing.reason) != (payment_id, reason):
                raise IdempotencyConflict(f"recall {recall_id!r} exists with different fields")
            return existing
        pay = self._payment(payment_id)
        if pay.status not in (PaymentStatus.SETTLED, PaymentStatus.ACCEPTED):
            raise InvalidState(
                f"payment {payment_id!r} is {pay.status}: nothing to recall",
                code=f"payment_{pay.status}",
            )
        answer = self.recall_answers.get(pay.beneficiary, self.recall_answer)
        now = self.clock.now()
        self._recalls[recall_id] = Recall(
            id=recall_id, payment_id=payment_id, reason=reason,
            status=RecallStatus.REQUESTED.value, requested_at=now,
            answer_due_at=now + answer.delay_s,
        )
        if answer.delay_s <= 0:
            self._answer(recall_id)
        return self._recalls[recall_id]

    def _answer(self, recall_id: str) -> None:
        rec = self._recalls[recall_id]
        pay = self._payments[rec.payment_id]
        answer = self.recall_answers.get(pay.beneficiary, self.recall_answer)
        if not answer.accept or pay.status not in (PaymentStatus.SETTLED, PaymentStatus.ACCEPTED):
            self._recalls[recall_id] = dataclasses.replace(
                rec, status=RecallStatus.REJECTED.value, rejection_reason=answer.reason
            )
            return
        if pay.status == PaymentStatus.ACCEPTED:
            # An irrevocable payment still in flight settles before it can come back.
            self._books.post(f"{pay.id}#settle", pay.transfer_id or "", None, self.clock.now())
            pay = dataclasses.replace(pay, status=PaymentStatus.SETTLED.value)
        self._book_return(pay, f"{recall_id}#return", "recall_return")
        self._recalls[recall_id] = dataclasses.replace(
            rec, status=RecallStatus.ACCEPTED.value, return_transfer_id=f"{recall_id}#return"
        )
