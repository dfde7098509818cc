"""The durable state machines of sagas and steps (AG-166 4.4).

Illegal transitions raise :class:`~reversa.core.errors.IllegalTransition`.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransition

__all__ = [
    "Phase",
    "SagaStatus",
    "StepStatus",
    "AT_REST_SAGA",
    "TERMINAL_SAGA",
    "check_saga_transition",
    "check_step_transition",
]


class Phase(StrEnum):
    """Which kind of call a log entry or idempotency key belongs to."""

    ACTION = "action"
    COMPENSATION = "compensation"
    FORWARD_RECOVERY = "forward_recovery"
    SAFE_STATE = "safe_state"
    SAGA = "saga"


class StepStatus(StrEnum):
    """Per-step states. ``running`` with no outcome after a crash is *in doubt*."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    ESCALATED = "escalated"


class SagaStatus(StrEnum):
    """Per-saga states. ``resolved`` means a human closed an escalation.

    ``awaiting_approval``: recorded but held (nothing runs) until an approval is
    decided; ``approved``: cleared to run (or to run on), waiting for a worker;
    ``rejected``: an approval of its start was refused, nothing ran.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    ESCALATED = "escalated"
    FAILED = "failed"
    RESOLVED = "resolved"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


_S = StepStatus
STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    _S.PENDING: frozenset({_S.RUNNING, _S.SKIPPED}),
    # running -> running is a new attempt; -> skipped is an in-doubt step
    # resolved as "never happened"; -> pending is a resume that re-runs it;
    # -> compensating is an in-doubt step undone blind with its own key.
    _S.RUNNING: frozenset(
        {_S.RUNNING, _S.COMPLETED, _S.FAILED, _S.SKIPPED, _S.PENDING, _S.COMPENSATING,
         _S.ESCALATED}
    ),
    _S.COMPLETED: frozenset({_S.COMPENSATING, _S.ESCALATED, _S.COMPLETED}),
    # A failed step whose outcome is unknown (timeout) is compensated with its key.
    _S.FAILED: frozenset({_S.COMPENSATING, _S.ESCALATED, _S.SKIPPED, _S.PENDING}),
    _S.SKIPPED: frozenset({_S.PENDING}),
    _S.COMPENSATING: frozenset(
        {_S.COMPENSATING, _S.COMPENSATED, _S.COMPENSATION_FAILED, _S.ESCALATED}
    ),
    _S.COMPENSATED: frozenset({_S.PENDING}),
    _S.COMPENSATION_FAILED: frozenset({_S.COMPENSATING, _S.ESCALATED, _S.COMPENSATED}),
    # escalated -> skipped: an in-doubt step a human retry blocked after all.
    _S.ESCALATED: frozenset({_S.COMPENSATING, _S.COMPENSATED, _S.COMPLETED, _S.ESCALATED,
                             _S.SKIPPED}),
}

_G = SagaStatus
SAGA_TRANSITIONS: dict[SagaStatus, frozenset[SagaStatus]] = {
    # -> awaiting_approval: an operator's rollback that needs a second approver
    # holds the saga at a step boundary until it is decided.
    _G.RUNNING: frozenset({_G.RUNNING, _G.COMPLETED, _G.COMPENSATING, _G.ESCALATED, _G.FAILED,
                           _G.AWAITING_APPROVAL}),
    # -> failed: the first step failed, nothing needed undoing, the predicate held.
    _G.COMPENSATING: frozenset(
        {_G.COMPENSATING, _G.COMPENSATED, _G.ESCALATED, _G.RUNNING, _G.FAILED}
    ),
    _G.ESCALATED: frozenset(
        {_G.ESCALATED, _G.COMPENSATING, _G.COMPENSATED, _G.COMPLETED, _G.RESOLVED}
    ),
    # A completed saga is terminal for workers, but an operator may roll it back
    # within its rollback window (directly, or once the rollback is approved).
    _G.COMPLETED: frozenset({_G.COMPENSATING}),
    _G.COMPENSATED: frozenset(),
    _G.FAILED: frozenset(),
    _G.RESOLVED: frozenset(),
    # approved: run (or run on) by a worker; rejected: its start was refused;
    # compensating: an approved operator rollback of a held saga.
    _G.AWAITING_APPROVAL: frozenset({_G.APPROVED, _G.REJECTED, _G.COMPENSATING}),
    # -> failed: an operator stopped it before any step ran.
    _G.APPROVED: frozenset({_G.RUNNING, _G.AWAITING_APPROVAL, _G.COMPENSATING, _G.FAILED}),
    _G.REJECTED: frozenset(),
}

TERMINAL_SAGA = frozenset({_G.COMPLETED, _G.COMPENSATED, _G.FAILED, _G.RESOLVED, _G.REJECTED})
"""Sagas that are over: no worker claims them (an operator rollback may reopen a completed one)."""

AT_REST_SAGA = TERMINAL_SAGA | {_G.ESCALATED, _G.AWAITING_APPROVAL, _G.APPROVED}
"""Sagas no process holds: their last write releases the lease. ``approved`` ones
wait for any worker to claim them; escalated and awaiting ones for a human."""


def check_step_transition(step: str, old: StepStatus, new: StepStatus) -> None:
    """Raise IllegalTransition unless ``old -> new`` is allowed for a step."""
    if new not in STEP_TRANSITIONS[old]:
        raise IllegalTransition(
            f"step {step!r}: illegal transition {old} -> {new}; "
            f"allowed from {old}: {sorted(STEP_TRANSITIONS[old]) or 'none (terminal)'}",
            details={"step": step, "from": old, "to": new},
        )


def check_saga_transition(saga_id: str, old: SagaStatus, new: SagaStatus) -> None:
    """Raise IllegalTransition unless ``old -> new`` is allowed for a saga."""
    if new not in SAGA_TRANSITIONS[old]:
        raise IllegalTransition(
            f"saga {saga_id}: illegal transition {old} -> {new}; "
            f"allowed from {old}: {sorted(SAGA_TRANSITIONS[old]) or 'none (terminal)'}",
            details={"saga": saga_id, "from": old, "to": new},
        )
