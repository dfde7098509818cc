"""The adapter boundary: services, parameters, and vendor errors -> Reversa errors."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import ccxt

from reversa.core.context import StepContext
from reversa.core.errors import (
    ConfigError,
    OutcomeUnknown,
    PermanentError,
    StepError,
    TransientError,
)
from reversa.core.states import Phase

from .ledger_api import (
    IdempotencyConflict,
    LedgerAPI,
    LedgerError,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
)

__all__ = [
    "action_key",
    "fx_boundary",
    "ledger_boundary",
    "ledger_of",
    "param",
    "resolve",
    "service",
]

_URL_SECRETS = re.compile(r"\?[^\s]*")


def service(ctx: Any, name: str) -> Any:
    """``ctx.services[name]``, or a ConfigError naming the fix."""
    services: Mapping[str, Any] = getattr(ctx, "services", {}) or {}
    found = services.get(name)
    if found is None:
        raise ConfigError(
            f"service {name!r} is missing; pass it to Engine(services={{{name!r}: ...}})"
        )
    return found


def ledger_of(ctx: Any) -> LedgerAPI:
    """The ledger client this step uses (param ``ledger_service``, default ``ledger``)."""
    name = str(ctx.params.get("ledger_service", "ledger"))
    ledger = service(ctx, name)
    if not isinstance(ledger, LedgerAPI):
        raise ConfigError(f"service {name!r} does not implement LedgerAPI: {ledger!r}")
    return ledger


def resolve(ctx: Any, value: Any) -> Any:
    """Resolve ``"$input.a.b"`` and ``"$results.step.field"`` references; others pass."""
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    root, _, path = value[1:].partition(".")
    sources: dict[str, Any] = {"input": ctx.input, "results": ctx.results}
    if root not in sources:
        raise PermanentError(f"param {value!r}: use $input.<key> or $results.<step>.<key>")
    current: Any = sources[root]
    for part in path.split(".") if path else []:
        if not isinstance(current, Mapping) or part not in current:
            raise PermanentError(
                f"param {value!r}: {part!r} is missing (step {ctx.step!r}); check the saga "
                "input or the earlier step's result"
            )
        current = current[part]
    return current


def param(ctx: Any, name: str, default: Any = ...) -> Any:
    """A step parameter with references resolved; PermanentError when required and absent."""
    if name not in ctx.params:
        if default is ...:
            raise PermanentError(f"step {ctx.step!r} needs param {name!r}")
        return default
    return resolve(ctx, ctx.params[name])


def action_key(ctx: StepContext) -> str:
    """The idempotency key the step's action used (from its result when known)."""
    result = ctx.result if isinstance(ctx.result, Mapping) else {}
    key = result.get("key")
    return str(key) if key else ctx.key_for(Phase.ACTION)


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
