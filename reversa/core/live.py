"""In-memory image of a saga owned by this process, mirrored to the store.

The engine mutates these records through the state-machine checks below and
flushes them in few, fenced transactions; they are the only copy of the truth
it trusts while it holds the saga's lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .plan import Plan
from .states import SagaStatus, StepStatus, check_saga_transition, check_step_transition

__all__ = ["AuditEvent", "LiveSaga", "LiveStep"]

_IN_EFFECT = frozenset({StepStatus.COMPLETED, StepStatus.COMPENSATING,
                        StepStatus.COMPENSATION_FAILED, StepStatus.ESCALATED})


@dataclass(slots=True)
class AuditEvent:
    """One entry to append to the tamper-evident log."""

    step: str | None
    phase: str
    attempt: int
    event: str
    outcome: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LiveStep:
    """Durable state of one step."""

    name: str
    position: int
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    comp_attempts: int = 0
    result: Any = None
    comp_result: Any = None
    state: Any = None
    error: str | None = None
    outcome: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    comp_started_at: float | None = None
    comp_finished_at: float | None = None
    dirty: bool = False

    def move(self, new: StepStatus) -> None:
        """Transition, enforcing the step state machine."""
        check_step_transition(self.name, self.status, new)
        self.status = new
        self.dirty = True


@dataclass(slots=True)
class LiveSaga:
    """Durable state of one saga plus the fencing token this process holds."""

    id: str
    plan: Plan
    input: dict[str, Any]
    status: SagaStatus
    steps: dict[str, LiveStep]
    token: int
    seq: int
    head: str
    created_at: float
    updated_at: float
    pre_state: dict[str, Any] | None = None
    failed_step: str | None = None
    error: str | None = None
    rollback_started_at: float | None = None
    checkpoint: str | None = None
    resumes: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    events: list[AuditEvent] = field(default_factory=list)
    created: bool = False
    app: str | None = None
    services: str | None = None
    # An escalation resolution to record in the same commit as the saga's next write.
    resolution: dict[str, Any] | None = None
    escalation_id: int | None = None
    last_rollback: dict[str, Any] | None = None
    audited: str | None = None
    """The saga fields last recorded in the audit chain (canonical JSON)."""
    signed_at: float | None = None
    """When this process last signed the saga's head (monotonic clock)."""
    # An operator's rollback request seen on the saga row (by, reason, at,
    # approval), and whether the next commit clears it (it was acted upon).
    rollback_request: dict[str, Any] | None = None
    consume_request: bool = False
    # Governance rows (approvals, notifications) to write in the next commit.
    side: list[Any] = field(default_factory=list)

    def move(self, new: SagaStatus) -> None:
        """Transition, enforcing the saga state machine."""
        check_saga_transition(self.id, self.status, new)
        self.status = new

    def log(
        self,
        event: str,
        outcome: str,
        *,
        step: str | None = None,
        phase: str = "saga",
        attempt: int = 0,
        **detail: Any,
    ) -> None:
        """Queue an audit entry for the next flush."""
        self.events.append(AuditEvent(step, phase, attempt, event, outcome, detail))

    def results(self, among: Iterable[str] | None = None) -> dict[str, Any]:
        """Results of steps whose effects currently stand (of ``among`` only, if given)."""
        names = self.steps if among is None else among
        return {n: s.result for n in names if (s := self.steps[n]).status in _IN_EFFECT}
