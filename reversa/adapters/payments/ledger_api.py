"""The ledger boundary: one narrow protocol, its records and its errors.

Everything the payments adapter does to money goes through :class:`LedgerAPI`.
The in-process :class:`~reversa.simulators.ledger.MockLedger` implements it, and
so does :class:`~reversa.simulators.ledger.http.HttpLedgerClient`, which reaches
the same ledger served over loopback. A real core-banking connector would
implement it too.

The model follows TigerBeetle: amounts are integers in minor units; a transfer
debits one account and credits another of the same currency; transfers are
never edited or deleted (a mistake is undone by a *correcting* transfer that
references the original); a two-phase transfer is first *pending* (a hold) and
then posted, voided or expired; a transfer id is an idempotency key (a replay
returns the first result, the same id with different fields is an error).

Errors raised across the boundary (the "vendor" errors the adapter translates
into Reversa errors)::

    LedgerError
    ├── LedgerTimeout          no reply in time: the effect may have happened
    ├── LedgerUnavailable      not reached (in_doubt=False) or dropped mid-call
    ├── LedgerRejected         refused, nothing booked (sanctions, funds...)
    ├── IdempotencyConflict    the id exists with different fields
    ├── LedgerNotFound         no such account / transfer / payment
    ├── InvalidState           e.g. voiding a posted hold, returning a final payment
    └── LedgerFenced           stale fencing token, or an id a rollback blocked

Fencing: every call may carry the caller's :class:`~reversa.core.context.Fence`
(the saga's lease epoch). A ledger keeping the effect boundary remembers the
highest epoch per saga and refuses calls with a lower one, and refuses to create
anything under an id that :meth:`LedgerAPI.block_transfer` or
:meth:`LedgerAPI.block_payment` tombstoned; both refusals are
:class:`LedgerFenced` (nothing was booked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, Protocol, Self, runtime_checkable

from reversa.core.context import Fence

__all__ = [
    "Account",
    "AccountRole",
    "IdempotencyConflict",
    "InvalidState",
    "LedgerAPI",
    "LedgerError",
    "LedgerFenced",
    "LedgerNotFound",
    "LedgerRejected",
    "LedgerTimeout",
    "LedgerUnavailable",
    "Payment",
    "PaymentRequest",
    "PaymentStatus",
    "PendingState",
    "Recall",
    "RecallStatus",
    "Transfer",
    "TransferKind",
    "TransferRequest",
    "error_from_dict",
]


# -- errors -----------------------------------------------------------------------------
class LedgerError(Exception):
    """Root of the ledger boundary's errors.

    Args:
        message: What happened (never contains secrets).
        code: Short machine-readable reason (``"sanctions_hit"``...).
    """

    default_code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def to_dict(self) -> dict[str, Any]:
        """Wire form used by the HTTP service."""
        out: dict[str, Any] = {"type": type(self).__name__, "code": self.code}
        out["message"] = self.message
        return out


class LedgerTimeout(LedgerError):
    """No reply in time: the effect may or may not have happened."""

    default_code = "timeout"


class LedgerUnavailable(LedgerError):
    """The ledger could not be reached, or dropped the connection mid-call.

    Args:
        in_doubt: True when the request reached the ledger before the
            connection died (the effect may have happened).
    """

    default_code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, in_doubt: bool = False) -> None:
        super().__init__(message, code=code)
        self.in_doubt = in_doubt

    def to_dict(self) -> dict[str, Any]:
        """Wire form, with the in-doubt flag."""
        return {**super().to_dict(), "in_doubt": self.in_doubt}


class LedgerRejected(LedgerError):
    """A definite refusal; nothing was booked."""

    default_code = "rejected"


class IdempotencyConflict(LedgerError):
    """The id was used before with different fields."""

    default_code = "exists_with_different_fields"


class LedgerNotFound(LedgerError):
    """No account, transfer, payment or recall with that id."""

    default_code = "not_found"


class InvalidState(LedgerError):
    """The request does not fit the current state (e.g. void a posted hold)."""

    default_code = "invalid_state"


class LedgerFenced(LedgerError):
    """Refused at the effect boundary: nothing was booked.

    ``code`` is ``"stale_epoch"`` (a newer owner of the saga already called) or
    ``"key_blocked"`` (a rollback tombstoned this id after judging that the
    effect never happened).
    """

    default_code = "fenced"


_ERRORS: dict[str, type[LedgerError]] = {
    cls.__name__: cls
    for cls in (
        LedgerError,
        LedgerTimeout,
        LedgerUnavailable,
        LedgerRejected,
        IdempotencyConflict,
        LedgerNotFound,
        InvalidState,
        LedgerFenced,
    )
}


def error_from_dict(data: Mapping[str, Any]) -> LedgerError:
    """Rebuild a boundary error from its wire form (unknown types -> LedgerError)."""
    cls = _ERRORS.get(str(data.get("type")), LedgerError)
    message = str(data.get("message", "ledger error"))
    code = data.get("code")
    if cls is LedgerUnavailable:
        return LedgerUnavailable(message, code=code, in_doubt=bool(data.get("in_doubt")))
    return cls(message, code=code)


# -- records ----------------------------------------------------------------------------
class _Record:
    """JSON round-trip for the frozen records below."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build from a dict, ignoring unknown keys (forward compatible)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


class AccountRole(StrEnum):
    """What an account is for; the consistency predicate reads it."""

    CUSTOMER = "customer"
    OPERATING = "operating"
    HOLDING = "holding"
    NOSTRO = "nostro"
    FX_LIQUIDITY = "fx_liquidity"
    PNL = "pnl"
    CLEARING = "clearing"
    EQUITY = "equity"


@dataclass(frozen=True, slots=True)
class Account(_Record):
    """An account and its four TigerBeetle balance fields (minor units)."""

    id: str
    currency: str
    role: str = AccountRole.CUSTOMER.value
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    debits_must_not_exceed_credits: bool = False

    @property
    def posted(self) -> int:
        """Posted balance, credit-normal (credits minus debits)."""
        return self.credits_posted - self.debits_posted

    @property
    def pending(self) -> int:
        """Net pending amount, credit-normal."""
        return self.credits_pending - self.debits_pending

    @property
    def available(self) -> int:
        """What can still be debited: posted credits minus all debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferKind(StrEnum):
    """TigerBeetle's transfer modes."""

    SINGLE = "single"
    PENDING = "pending"
    POST = "post_pending"
    VOID = "void_pending"


class PendingState(StrEnum):
    """Where a pending transfer (a hold) stands."""

    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TransferRequest(_Record):
    """A single-phase or pending transfer to create.

    Attributes:
        id: Idempotency key of the transfer.
        debit_account: Account debited.
        credit_account: Account credited (same currency).
        amount: Positive amount in minor units.
        currency: ISO code; both accounts must hold it.
        code: Why the transfer exists (``"debit"``, ``"fx_leg"``, ``"correction"``...).
        reference: Free text shown to auditors.
        pending: Create a hold (two-phase) instead of posting.
        timeout_s: A hold expires (is voided by the ledger) after this long.
        corrects: Id of the transfer this one corrects, if it is a correction.
    """

    id: str
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    code: str = "transfer"
    reference: str = ""
    pending: bool = False
    timeout_s: float | None = None
    corrects: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer(_Record):
    """A booked transfer. Immutable; ``state`` reports a hold's resolution."""

    id: str
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    kind: str
    code: str
    reference: str
    timestamp: float
    pending_id: str | None = None
    corrects: str | None = None
    timeout_s: float | None = None
    state: str | None = None


class PaymentStatus(StrEnum):
    """Lifecycle of a payment on a rail."""

    ACCEPTED = "accepted"
    """Accepted by the rail, not settled: funds held, cancellable if the rail allows."""
    SETTLED = "settled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    RETURNED = "returned"
    """Settled, then given back (correction, refund or accepted recall)."""


@dataclass(frozen=True, slots=True)
class PaymentRequest(_Record):
    """A payment to submit on a rail.

    Attributes:
        id: Idempotency key of the payment.
        rail: Rail name (see :mod:`reversa.adapters.payments.rails`).
        debit_account: Our account the money leaves from.
        amount: Positive amount in minor units.
        currency: ISO code.
        beneficiary: Who is paid (screened against sanctions lists).
        reference: Remittance information.
    """

    id: str
    rail: str
    debit_account: str
    amount: int
    currency: str
    beneficiary: str
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Payment(_Record):
    """A payment's current record."""

    id: str
    rail: str
    debit_account: str
    amount: int
    currency: str
    beneficiary: str
    reference: str
    status: str
    accepted_at: float
    settles_at: float | None = None
    transfer_id: str | None = None
    rejection_code: str | None = None
    return_transfer_id: str | None = None


class RecallStatus(StrEnum):
    """A recall request (camt.056) and its answer (camt.029 / pacs.004)."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Recall(_Record):
    """A recall request's record."""

    id: str
    payment_id: str
    reason: str
    status: str
    requested_at: float
    answer_due_at: float
    return_transfer_id: str | None = None
    rejection_reason: str | None = None


# -- protocol ---------------------------------------------------------------------------
@runtime_checkable
class LedgerAPI(Protocol):
    """The operations the payments adapter needs from a ledger.

    Every method takes ``fence``: the adapter passes the saga's fencing token on
    every call, and a ledger keeping the effect boundary refuses a stale one
    (:class:`LedgerFenced`). The ``block_*`` methods are the two halves of a
    rollback's probe-and-block: atomically, the record exists (it happened) or
    its id is tombstoned (it never happened and now cannot).
    """

    def create_account(
        self,
        id: str,
        currency: str,
        role: str = "customer",
        *,
        debits_must_not_exceed_credits: bool = False,
        fence: Fence | None = None,
    ) -> Account:
        """Create an account (idempotent: same id and fields returns it)."""
        ...

    def get_account(self, id: str, *, fence: Fence | None = None) -> Account:
        """The account, or LedgerNotFound."""
        ...

    def get_accounts(self, ids: Sequence[str], *, fence: Fence | None = None) -> list[Account]:
        """Several accounts in one call, in the order asked."""
        ...

    def create_transfer(self, request: TransferRequest, *, fence: Fence | None = None
                        ) -> Transfer:
        """Create one single-phase or pending transfer."""
        ...

    def create_linked(self, requests: Sequence[TransferRequest], *, fence: Fence | None = None
                      ) -> list[Transfer]:
        """Create transfers atomically: all are booked or none is."""
        ...

    def post_pending(self, id: str, pending_id: str, amount: int | None = None, *,
                     fence: Fence | None = None) -> Transfer:
        """Post a hold (all of it, or ``amount`` and release the rest)."""
        ...

    def void_pending(self, id: str, pending_id: str, *, fence: Fence | None = None
                     ) -> Transfer:
        """Void a hold, restoring its amount."""
        ...

    def get_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """The transfer with this id (a probe), or None."""
        ...

    def block_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """Atomically: the transfer with this id, or None after tombstoning the id
        (no transfer, posting or void may ever be created under it)."""
        ...

    def find_transfers(
        self,
        *,
        prefix: str | None = None,
        corrects: str | None = None,
        pending_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[Transfer]:
        """Transfers by id ``prefix``, by the transfer they correct, or by the hold
        they post or void (``pending_id``); filters combine."""
        ...

    def submit_payment(self, request: PaymentRequest, *, fence: Fence | None = None
                       ) -> Payment:
        """Submit a payment on its rail (idempotent by id)."""
        ...

    def get_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """The payment with this id, or None."""
        ...

    def block_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """Atomically: the payment with this id (rejected ones included), or None
        after tombstoning the id (no payment may ever be submitted under it)."""
        ...

    def find_payments(self, *, prefix: str, fence: Fence | None = None) -> list[Payment]:
        """Payments whose id starts with ``prefix``."""
        ...

    def cancel_payment(self, payment_id: str, *, fence: Fence | None = None) -> Payment:
        """Cancel an accepted, unsettled payment on a rail that allows it."""
        ...

    def return_payment(self, payment_id: str, return_id: str, *, fence: Fence | None = None
                       ) -> Payment:
        """Give a settled payment back by correction or refund (non-final rails)."""
        ...

    def request_recall(self, recall_id: str, payment_id: str, reason: str, *,
                       fence: Fence | None = None) -> Recall:
        """Ask the beneficiary bank to return a final payment (camt.056)."""
        ...

    def get_recall(self, id: str, *, fence: Fence | None = None) -> Recall | None:
        """The recall with this id, or None."""
        ...
