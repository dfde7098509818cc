"""The adapter boundary: vendor errors -> Reversa errors.

Parameters, services, keys and fencing tokens come from the engine's
:class:`~reversa.core.context.StepContext`; this module only translates what the
ledger and the FX venue raise into the most specific Reversa error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import ccxt

from reversa.core.errors import (
    Fenced,
    OutcomeUnknown,
    PermanentError,
    StepError,
    TransientError,
)

from .fx_api import FxFenced
from .ledger_api import (
    IdempotencyConflict,
    LedgerError,
    LedgerFenced,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
)

__all__ = ["fx_boundary", "ledger_boundary", "translate_ccxt", "translate_ledger"]

_URL_SECRETS = re.compile(r"\?[^\s]*")


@contextmanager
def ledger_boundary(what: str, *, effect: bool) -> Iterator[None]:
    """Translate ledger errors raised inside into the most specific Reversa error.

    Args:
        what: What was being done (goes into the message).
        effect: Whether the call changes state. A timeout on a call with an
            effect is OutcomeUnknown (in doubt); on a read it is only transient.
    """
    try:
        yield
    except LedgerError as exc:
        raise translate_ledger(exc, what, effect=effect) from exc


def translate_ledger(exc: LedgerError, what: str, *, effect: bool) -> StepError:
    """One ledger error -> one Reversa error (see the module docs of ledger_api)."""
    message = f"{what}: {exc.message}"
    if isinstance(exc, LedgerFenced):
        return Fenced(message, code=exc.code)
    if isinstance(exc, LedgerTimeout):
        if effect:
            return OutcomeUnknown(message, code="ledger_timeout")
        return TransientError(message, code="ledger_timeout")
    if isinstance(exc, LedgerUnavailable):
        if exc.in_doubt and effect:
            return OutcomeUnknown(message, code="ledger_connection_lost")
        return TransientError(message, code="ledger_unavailable")
    if isinstance(exc, IdempotencyConflict):
        return PermanentError(message, code="idempotency_conflict")
    if isinstance(exc, LedgerNotFound):
        return PermanentError(message, code="not_found")
    if isinstance(exc, LedgerRejected):
        return PermanentError(message, code=exc.code)
    return PermanentError(message, code=exc.code)


@contextmanager
def fx_boundary(what: str, *, effect: bool) -> Iterator[None]:
    """Translate ccxt errors raised inside into the most specific Reversa error."""
    try:
        yield
    except ccxt.BaseError as exc:
        raise translate_ccxt(exc, what, effect=effect) from exc


def translate_ccxt(exc: Exception, what: str, *, effect: bool) -> StepError:
    """One ccxt exception -> one Reversa error.

    ccxt messages can carry request URLs; their query strings (where exchanges
    put signatures and keys) are cut before the text reaches any record.
    """
    text = _URL_SECRETS.sub("?…", str(exc))[:300]
    message = f"{what}: {type(exc).__name__}: {text}"
    if isinstance(exc, FxFenced):
        return Fenced(message, code="fx_fenced")
    if isinstance(exc, ccxt.RequestTimeout):
        return (OutcomeUnknown if effect else TransientError)(message, code="fx_timeout")
    if isinstance(exc, ccxt.ExchangeNotAvailable | ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return TransientError(message, code="fx_unavailable")
    if isinstance(exc, ccxt.NetworkError):
        if effect:
            return OutcomeUnknown(message, code="fx_connection_lost")
        return TransientError(message, code="fx_network")
    if isinstance(exc, ccxt.OrderNotFound):
        return PermanentError(message, code="not_found")
    if isinstance(exc, ccxt.DuplicateOrderId):
        return PermanentError(message, code="idempotency_conflict")
    if isinstance(exc, ccxt.InsufficientFunds):
        return PermanentError(message, code="insufficient_funds")
    if isinstance(exc, ccxt.OrderNotFillable):
        return PermanentError(message, code="insufficient_depth")
    if isinstance(exc, ccxt.AuthenticationError):
        return PermanentError(message, code="fx_auth")
    return PermanentError(message, code="fx_rejected")
