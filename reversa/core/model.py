"""Saga definitions: the declarative plan a user writes before step 1.

A :class:`Saga` is a named workflow of :class:`Step` objects forming a DAG. Every
callable is referenced *by registered name*, never by Python object, so the
plan can be serialised, hashed, stored and executed by a process that did not
start the saga (AG-166 4.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .sensitive import parse_path

__all__ = [
    "CompensationKind",
    "Escalation",
    "OnCrash",
    "OnFailure",
    "OnInfeasible",
    "Retry",
    "Reversibility",
    "Saga",
    "Step",
]

_NAME_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
_IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class Reversibility(StrEnum):
    """AG-384 4.1(c): how far a step's effects can be undone."""

    REVERSIBLE = "reversible"
    PARTIAL = "partially_reversible"
    IRREVERSIBLE = "irreversible"


class CompensationKind(StrEnum):
    """Whether the compensation reverses the effect or neutralises it (AG-166 4.9)."""

    REVERSE = "reverse"
    SEMANTIC = "semantic"


class OnFailure(StrEnum):
    """What a saga does when a step fails after its retries."""

    ROLLBACK = "rollback"
    """Compensate every completed step (the default)."""
    ROLLBACK_TO_CHECKPOINT = "rollback_to_checkpoint"
    """Compensate only the steps after the last checkpoint (AG-384 4.12)."""
    RETRY_FROM_CHECKPOINT = "retry_from_checkpoint"
    """Undo back to the last checkpoint and run forward again (AG-166 4.10)."""


class OnCrash(StrEnum):
    """What a recovering worker does with a forward run whose owner died."""

    COMPENSATE = "compensate"
    RESUME = "resume"


class OnInfeasible(StrEnum):
    """What happens when the dry-run finds the rollback infeasible."""

    ESCALATE = "escalate"
    """Drive to the declared safe state (if any), then hand to a human."""
    FORWARD_RECOVERY = "forward_recovery"
    """Drive to the safe state, then run the irreversible steps' forward recovery."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Retry(_Frozen):
    """Bounded retry policy, turned into a tenacity policy by the engine.

    Attributes:
        max_attempts: Total attempts including the first (>= 1). Never infinite.
        initial_s: First backoff delay in seconds.
        max_s: Cap on any single backoff delay.
        multiplier: Exponential growth factor between delays.
    """

    max_attempts: int = Field(default=3, ge=1, le=1000)
    initial_s: float = Field(default=0.05, ge=0)
    max_s: float = Field(default=2.0, ge=0)
    multiplier: float = Field(default=2.0, ge=1)


class Escalation(_Frozen):
    """The escalation policy of an irreversible step with no forward recovery.

    Attributes:
        reason: What a human must know (shown in the review record).
        compensate_others: Still compensate the other, reversible steps before
            handing this one to a human (the default), or touch nothing.
    """

    reason: str = Field(min_length=1)
    compensate_others: bool = True


class Step(_Frozen):
    """One step of a saga, with its full rollback semantics (AG-384 4.1).

    Attributes:
        name: Unique within the saga.
        action: Registered action name.
        compensation: Registered compensation name (reversing or semantic).
        compensation_kind: Reverse the effect, or neutralise it semantically.
        reversibility: Reversible, partially reversible or irreversible.
        preconditions: Registered checks the compensation needs to hold.
        probe: Registered probe answering "did the effect with this key happen?".
        block: Registered block: makes the effect with the action's key unable to
            happen later (tombstone at the service) unless it already happened.
            Needed to record an in-doubt step as "never happened"; without it
            such a step escalates.
        cost: Registered estimator of the compensation's cost.
        forward_recovery: Registered action completing the workflow another way
            when this (irreversible) step cannot be undone.
        escalation: Escalation policy for an irreversible step.
        depends_on: Names of earlier steps whose effects this step consumes.
        retry: Retry policy of the action.
        compensation_retry: Retry policy of the compensation.
        timeout_s: Per-attempt timeout of the action.
        compensation_timeout_s: Per-attempt timeout of the compensation.
        checkpoint: A consistent point the saga may roll back or resume to.
        params: Static JSON parameters handed to every call.
        sensitive: Fields the store and the audit log must never keep in clear:
            paths into this step's result (``"iban"``, ``"cards.*.pan"``) or,
            with ``$input.``, into the saga's input. See ``reversa.core.sensitive``.
    """

    name: str = Field(pattern=_NAME_PATTERN)
    action: str = Field(pattern=_NAME_PATTERN)
    compensation: str | None = None
    compensation_kind: CompensationKind = CompensationKind.REVERSE
    reversibility: Reversibility = Reversibility.REVERSIBLE
    preconditions: tuple[str, ...] = ()
    probe: str | None = None
    block: str | None = None
    cost: str | None = None
    forward_recovery: str | None = None
    escalation: Escalation | None = None
    depends_on: tuple[str, ...] = ()
    retry: Retry = Retry()
    compensation_retry: Retry = Retry(max_attempts=5)
    timeout_s: float | None = Field(default=None, gt=0)
    compensation_timeout_s: float | None = Field(default=None, gt=0)
    checkpoint: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    sensitive: tuple[str, ...] = ()

    @field_validator("sensitive", mode="after")
    @classmethod
    def _check_sensitive(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            parse_path(path, owner="step")
        return value


class Saga(_Frozen):
    """A workflow definition: steps, consistency predicate and policies.

    Attributes:
        workflow: Workflow name (used for filtering and per-workflow thresholds).
        steps: The steps, forming a DAG through ``depends_on``. A step without
            ``depends_on`` depends on nothing; use ``Saga.chain`` for a line.
        snapshot: Registered function capturing the state the saga will touch,
            taken before step 1 and after rollback.
        predicate: Registered consistency predicate checked after rollback. When
            omitted, the post-rollback snapshot must equal the pre-workflow one.
        safe_state: Registered action driving the system to a declared safe
            state when the full rollback is infeasible.
        rollback_window_s: Maximum time from failure detection to the end of the
            rollback; past it the saga escalates (AG-384 4.6).
        stall_after_s: Watchdog threshold for this workflow (None: engine default).
        on_failure: Full rollback, rollback to checkpoint, or retry from checkpoint.
        checkpoint_retries: Forward re-runs allowed by ``retry_from_checkpoint``.
        on_crash: What a recovering worker does with an orphaned forward run.
        on_infeasible: Escalate, or run forward recovery, when the dry-run fails.
        max_rollback_cost: Per unit (``"GBP"``, ``"gas"``) ceiling on the summed
            cost estimates; above it the rollback goes to a human.
        app: Import path (``"pkg.module:registry"``) of the registry holding the
            handlers, so workers and reviewers can load it.
        services: Import path (``"pkg.module:factory"``) of a zero-argument
            function returning the services mapping the handlers expect, so a
            reviewer's ``resolve --action retry`` or ``dry-run`` can rebuild it.
            Recorded with the saga, as ``app`` is (see "Reviewing escalations"
            in ``docs/concepts.md`` for which recorded paths are imported).
        sensitive: Input fields (``"card_number"``, ``"payer.iban"``) or step result
            fields (``"$results.pay.iban"``) kept only as salted digests.
    """

    workflow: str = Field(pattern=_NAME_PATTERN)
    steps: Sequence[Step] = Field(min_length=1)
    snapshot: str | None = None
    predicate: str | None = None
    safe_state: str | None = None
    rollback_window_s: float = Field(default=300.0, gt=0)
    stall_after_s: float | None = Field(default=None, gt=0)
    on_failure: OnFailure = OnFailure.ROLLBACK
    checkpoint_retries: int = Field(default=1, ge=0, le=100)
    on_crash: OnCrash = OnCrash.COMPENSATE
    on_infeasible: OnInfeasible = OnInfeasible.ESCALATE
    max_rollback_cost: dict[str, float] = Field(default_factory=dict)
    app: str | None = None
    # ``app`` is left unchecked: stored plans predate any check and must keep loading.
    services: str | None = Field(default=None, pattern=_IMPORT_PATH, max_length=256)

    sensitive: tuple[str, ...] = ()

    @field_validator("sensitive", mode="after")
    @classmethod
    def _check_sensitive(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for path in value:
            parse_path(path, owner="saga")
        return value

    @field_validator("steps", mode="after")
    @classmethod
    def _freeze_steps(cls, value: Sequence[Step]) -> tuple[Step, ...]:
        return tuple(value)

    @classmethod
    def chain(cls, workflow: str, steps: list[Step], **policy: Any) -> Saga:
        """Build a saga whose steps each depend on the previous one.

        Explicit ``depends_on`` on a step is kept and extended with its predecessor.
        """
        linked: list[Step] = []
        for index, step in enumerate(steps):
            if index == 0:
                linked.append(step)
                continue
            previous = steps[index - 1].name
            deps = step.depends_on if previous in step.depends_on else (*step.depends_on, previous)
            linked.append(step.model_copy(update={"depends_on": deps}))
        return cls(workflow=workflow, steps=tuple(linked), **policy)
