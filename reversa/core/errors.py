"""Reversa's error hierarchy.

One root, with retryability carried on the error itself (as Temporal's
``ApplicationError(non_retryable=...)``)::

    ReversaError                      every error Reversa raises or understands
    ├── PlanError                     a saga definition is invalid (raised before step 1)
    │   └── PlanTampered              a stored plan no longer matches its recorded hashes
    ├── StoreError                    the durable store refused or failed
    │   ├── IllegalTransition         a state-machine move that is not allowed
    │   ├── LeaseLost                 a fenced write from a worker that lost its lease
    │   ├── NotFound                  no saga / escalation with that id
    │   └── SchemaError               the database schema is newer or broken
    ├── StepError                     raised by actions and compensations
    │   ├── TransientError            retryable; the effect did NOT happen
    │   ├── PermanentError            not retryable; the effect did NOT happen
    │   │   └── Fenced                a service refused a stale epoch or a blocked key
    │   ├── OutcomeUnknown            the effect may or may not have happened (timeouts)
    │   └── PreconditionFailed        a compensation's precondition does not hold
    ├── AuditError                    the tamper-evident log does not verify
    └── ConfigError                   bad CLI / engine configuration

    BaseException
    └── ReversaSignal                 must never be swallowed by user code
        ├── EmergencyStop             a safety stop: halt everything, escalate
        ├── StoreAbort                the store failed mid-run: stop, leave it in doubt
        ├── ShutdownRequested         SIGTERM: stop at a step boundary, hand the saga over
        └── RollbackRequested         an operator asked: stop at a step boundary, roll back

Adapters translate vendor errors into the most specific class here at their
boundary, so the engine decides retries and in-doubt handling from the type.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuditError",
    "ConfigError",
    "EmergencyStop",
    "Fenced",
    "IllegalTransition",
    "LeaseLost",
    "NotFound",
    "OutcomeUnknown",
    "PermanentError",
    "PlanError",
    "PlanTampered",
    "PreconditionFailed",
    "ReversaError",
    "ReversaSignal",
    "RollbackRequested",
    "SchemaError",
    "ShutdownRequested",
    "StepError",
    "StoreAbort",
    "StoreError",
    "TransientError",
]


class ReversaError(Exception):
    """Root of every Reversa error.

    Args:
        message: What went wrong and, where possible, how to fix it.
        retryable: Whether retrying the same call may succeed.
        code: A short machine-readable outcome code recorded in the audit log.
        details: JSON-serialisable context (never secrets).
    """

    default_code = "error"
    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.code = code or self.default_code
        self.details = details or {}


class PlanError(ReversaError):
    """A saga definition failed validation; nothing was executed or recorded."""

    default_code = "plan_invalid"


class PlanTampered(PlanError):
    """A stored plan does not match its recorded hash or the hash its audit chain
    starts from: it was edited in the database. Nothing may run from it."""

    default_code = "plan_tampered"


class ConfigError(ReversaError):
    """Engine, store or CLI configuration is wrong."""

    default_code = "config_invalid"


class StoreError(ReversaError):
    """The durable store refused or failed an operation."""

    default_code = "store_error"


class IllegalTransition(StoreError):
    """A state-machine transition that the saga or step model forbids."""

    default_code = "illegal_transition"


class LeaseLost(StoreError):
    """A write carried a fencing token that is no longer current.

    Another worker took the saga over; the stale writer must stop touching it.
    """

    default_code = "lease_lost"


class NotFound(StoreError):
    """No record with the given id."""

    default_code = "not_found"


class SchemaError(StoreError):
    """The database schema cannot be used by this version of Reversa."""

    default_code = "schema_error"


class StepError(ReversaError):
    """Base for errors raised by actions, compensations and their helpers."""

    default_code = "step_error"


class TransientError(StepError):
    """A failure worth retrying; the effect did not happen."""

    default_code = "transient"
    default_retryable = True


class PermanentError(StepError):
    """A definite failure: retrying will not help and the effect did not happen."""

    default_code = "rejected"


class Fenced(PermanentError):
    """A service refused the call: its fencing token or idempotency key is stale.

    Either a newer owner of the saga has already called the service (the
    caller's lease epoch is old), or a rollback blocked the call's key after
    judging that it never happened. The effect did not happen; the caller no
    longer owns the saga and must stop.
    """

    default_code = "fenced"


class OutcomeUnknown(StepError):
    """The call may have taken effect (a timeout, a lost reply).

    The step is *in doubt*: it is probed or compensated with the same
    idempotency key, never assumed to have not happened.
    """

    default_code = "outcome_unknown"
    default_retryable = True


class PreconditionFailed(StepError):
    """A compensation's precondition does not hold, so it must not run."""

    default_code = "precondition_failed"


class AuditError(ReversaError):
    """The tamper-evident log failed verification."""

    default_code = "audit_invalid"


class ReversaSignal(BaseException):
    """Signals user code must not swallow: they derive from BaseException."""


class StoreAbort(ReversaSignal):
    """Carries a store failure out of handler error handling untouched.

    A database error while recording intent or outcome is not a failure of the
    step: it must stop the run (the durable record stays as it was, and a
    worker recovers the saga) instead of triggering retries or a rollback.
    """

    def __init__(self, error: StoreError) -> None:
        super().__init__(error.message)
        self.error = error


class ShutdownRequested(ReversaSignal):
    """The process is shutting down gracefully (SIGTERM).

    Raised by the engine at the next step boundary: what has happened is
    recorded, the lease is released, and another worker continues the saga.
    """


class RollbackRequested(ReversaSignal):
    """An operator asked for this running saga to be rolled back.

    Raised by the engine at a step boundary (never inside a call), when the
    saga's row carries a rollback request: the forward run stops there and the
    request is acted upon (rolled back, or held for its approval).
    """


class EmergencyStop(ReversaSignal):
    """An emergency or protective stop: halt motion now and escalate.

    Raised by safety-aware adapters. The engine stops scheduling anything,
    records the saga as escalated and runs nothing until a human resets it.
    """

    def __init__(self, message: str, *, category: int = 0, source: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.source = source
