"""Payments adapter: settlement finality, holds and corrections, FX reversal cost.

Install with ``pip install 'reversa[payments]'`` (ccxt); the mock ledger, FX venue
and demos need ``'reversa[payments-sim]'`` (adds httpx).

Operations (register them all with :func:`payments_registry`):

- :class:`LedgerTransfer` / :class:`LedgerHold` / :class:`PostHold`: double-entry
  transfers; a hold is voided, anything posted is undone by a correcting
  transfer that references the original.
- :class:`RailPayment` with :func:`payment_step`: a payment on a rail, classed
  reversible / partially reversible / irreversible by the rail's finality.
- :class:`FxConvert`: a conversion at a ccxt venue that captures its rate and
  estimates its reversal cost from the live order book before reversing.
- :class:`CancelInFlightPayments`: the safe-state action (no money in flight).

Every operation has a probe answering "did the effect with this idempotency key
happen?" and a block that answers the same question while making a "no" final
(the key is tombstoned at the ledger, venue or counterparty). Every call carries
the saga's fencing token (``ctx.fence``); a service's refusal of a stale token or
a blocked key becomes :class:`reversa.Fenced`. :class:`LedgerSnapshot` and
:class:`LedgerConsistency` are the snapshot and predicate. The ledger is reached
through :class:`LedgerAPI` (in process, or over HTTP with
``reversa.simulators.ledger.http.HttpLedgerClient``); the FX venue through ccxt
with the extensions of :mod:`reversa.adapters.payments.fx_api`. See docs/payments.md.
"""

from __future__ import annotations

from .consistency import UNDO_CODES, LedgerConsistency, LedgerSnapshot
from .fx import (
    BookWalk,
    ReversalEstimate,
    ReversalPolicy,
    conversion_side,
    estimate_reversal,
    walk_book,
)
from .fx_api import FxFenced
from .fx_ops import FxConvert
from .ledger_api import (
    Account,
    AccountRole,
    IdempotencyConflict,
    InvalidState,
    LedgerAPI,
    LedgerError,
    LedgerFenced,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    Payment,
    PaymentRequest,
    PaymentStatus,
    PendingState,
    Recall,
    RecallStatus,
    Transfer,
    TransferKind,
    TransferRequest,
)
from .ledger_ops import LedgerHold, LedgerTransfer, PostHold, correct_remaining
from .money import format_money, to_major, to_minor
from .payment_ops import CancelInFlightPayments, RailPayment, payment_step
from .procurement import (
    ConfirmShipment,
    CreatePurchaseOrder,
    NotifyLogistics,
    ReserveStock,
    SendNotice,
)
from .rails import DEFAULT_RAILS, AfterFinality, Rail, RailSpec, rail_spec
from .registry import payments_registry

__all__ = [
    # operations and plan helpers
    "LedgerTransfer", "LedgerHold", "PostHold", "RailPayment", "FxConvert",
    "CancelInFlightPayments", "SendNotice", "ReserveStock", "CreatePurchaseOrder",
    "NotifyLogistics", "ConfirmShipment", "payment_step", "payments_registry",
    "correct_remaining",
    # rails and finality
    "Rail", "RailSpec", "AfterFinality", "DEFAULT_RAILS", "rail_spec",
    # consistency
    "LedgerSnapshot", "LedgerConsistency", "UNDO_CODES",
    # FX reversal cost
    "ReversalPolicy", "ReversalEstimate", "BookWalk", "estimate_reversal", "walk_book",
    "conversion_side", "FxFenced",
    # the ledger boundary
    "LedgerAPI", "Account", "AccountRole", "Transfer", "TransferKind", "TransferRequest",
    "PendingState", "Payment", "PaymentRequest", "PaymentStatus", "Recall", "RecallStatus",
    "LedgerError", "LedgerTimeout", "LedgerUnavailable", "LedgerRejected",
    "IdempotencyConflict", "LedgerNotFound", "InvalidState", "LedgerFenced",
    # money
    "to_minor", "to_major", "format_money",
]
