"""Read models returned by queries and printed by the CLI (``--json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from .governance import Approval
from .states import SagaStatus, StepStatus

__all__ = [
    "AttemptView",
    "AuditEntry",
    "EscalationView",
    "OutboxEntry",
    "RollbackView",
    "SagaResult",
    "SagaSummary",
    "SagaView",
    "StepView",
]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class AuditEntry(_View):
    """One entry of the tamper-evident log."""

    id: int
    saga_id: str
    seq: int
    ts: float
    step: str | None
    phase: str
    attempt: int
    event: str
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AttemptView(_View):
    """One call of an action, compensation or recovery, from the log."""

    phase: str
    attempt: int
    started_at: float | None
    finished_at: float | None
    outcome: str
    error: str | None = None


class StepView(_View):
    """A step with its state, timestamps and every attempt."""

    name: str
    position: int
    status: StepStatus
    reversibility: str
    depends_on: list[str]
    attempts: int
    comp_attempts: int
    outcome: str | None
    error: str | None
    result: Any
    comp_result: Any
    started_at: float | None
    finished_at: float | None
    comp_started_at: float | None
    comp_finished_at: float | None
    history: list[AttemptView]

    @property
    def in_doubt(self) -> bool:
        """Intent recorded, outcome not: the process died inside the call."""
        return self.status in (StepStatus.RUNNING, StepStatus.COMPENSATING)


class RollbackView(_View):
    """A rollback record (AG-384 4.5)."""

    id: int
    saga_id: str
    failed_step: str | None
    scope: str
    outcome: str
    detected_at: float
    finished_at: float
    duration_s: float
    predicate_ok: bool | None
    record: dict[str, Any]


class EscalationView(_View):
    """A human-review record with its full state report."""

    id: int
    saga_id: str
    created_at: float
    reason: str
    status: str
    report: dict[str, Any]
    resolution: str | None
    resolved_by: str | None
    resolved_at: float | None
    note: str | None


class SagaSummary(_View):
    """One line of a saga listing: identity, state, lease and origin."""

    id: str
    workflow: str
    status: SagaStatus
    created_at: float
    updated_at: float
    failed_step: str | None
    error: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    app: str | None = None
    services: str | None = None


class SagaView(_View):
    """Everything about one saga: plan, steps, attempts, rollbacks, escalations."""

    id: str
    workflow: str
    status: SagaStatus
    plan_hash: str
    plan: dict[str, Any]
    input: dict[str, Any]
    pre_state: dict[str, Any] | None
    created_at: float
    updated_at: float
    failed_step: str | None
    error: str | None
    checkpoint: str | None
    lease_owner: str | None
    lease_token: int
    lease_expires_at: float | None
    audit_entries: int
    app: str | None = None
    services: str | None = None
    steps: list[StepView]
    rollbacks: list[RollbackView]
    escalations: list[EscalationView]
    approvals: list[Approval] = []
    rollback_requested: dict[str, Any] | None = None
    """An operator's rollback request its owner has not acted on yet."""

    def step(self, name: str) -> StepView:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class SagaResult(_View):
    """What ``Engine.run`` returns."""

    saga_id: str
    status: SagaStatus
    results: dict[str, Any]
    error: str | None = None
    failed_step: str | None = None
    escalation_id: int | None = None
    rollback: dict[str, Any] | None = None


class OutboxEntry(_View):
    """One notification in the durable outbox, and how its delivery went.

    ``delivered_at`` is set once every webhook it was meant for acknowledged it
    (``delivered_to`` names them); ``next_attempt_at`` None with no
    ``delivered_at`` means delivery was given up (``last_error`` says why).
    """

    id: int
    event: str
    saga_id: str
    workflow: str
    payload: dict[str, Any]
    idempotency_key: str
    created_at: float
    attempts: int
    next_attempt_at: float | None
    delivered_at: float | None
    last_error: str | None
    delivered_to: list[str]
