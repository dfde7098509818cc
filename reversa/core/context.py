"""What handlers receive and return.

Handlers are plain or async callables registered by name. They get a context
object and return JSON-serialisable data (or one of the small result types
below). Keep them free of module-level state: resources such as clients come
through ``ctx.services``, handed to the engine once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .clock import Clock
from .states import Phase

__all__ = [
    "Check",
    "CostEstimate",
    "PredicateContext",
    "Probe",
    "SnapshotContext",
    "StepContext",
]


class Probe(StrEnum):
    """A probe's answer to "did the effect with this idempotency key happen?"."""

    HAPPENED = "happened"
    NOT_HAPPENED = "not_happened"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Check:
    """Result of a precondition or consistency predicate.

    Attributes:
        ok: Whether it holds.
        reason: Human-readable explanation (shown in dry-runs and reports).
        detail: JSON-serialisable evidence.
    """

    ok: bool
    reason: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Estimated cost of a compensation before it runs (AG-384 advanced level).

    Attributes:
        amount: Estimated cost in ``unit``.
        unit: Currency code, ``"gas"``, ``"s"``...
        detail: Breakdown (VWAP, spread, fees, slippage...).
        acceptable: False when the adapter's own policy rejects the cost.
        reason: Why it is (not) acceptable.
    """

    amount: float
    unit: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    acceptable: bool = True
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StepContext:
    """Everything an action, compensation, probe, precondition or estimator sees.

    Attributes:
        saga_id: The saga's id.
        workflow: The saga's workflow name.
        step: This step's name.
        phase: Which call this is (action, compensation, forward recovery...).
        attempt: 1-based attempt number of this call.
        idempotency_key: Stable for (saga, step, phase): the same on every retry
            and after a crash, so the remote side can deduplicate.
        input: The saga's input.
        params: This step's static parameters from the plan.
        results: Results of the saga's completed steps, by step name.
        result: This step's own action result (compensation phase), else None.
        pre_state: Snapshot taken before step 1, if the saga declares one.
        deadline: Absolute clock time by which this call must finish, if any.
        clock: The engine's clock.
        services: Resources the engine was given (clients, simulators...).
        generation: How many checkpoint resumes preceded this call (0 normally).
    """

    saga_id: str
    workflow: str
    step: str
    phase: Phase
    attempt: int
    idempotency_key: str
    input: Mapping[str, Any]
    params: Mapping[str, Any]
    results: Mapping[str, Any]
    result: Any
    pre_state: Mapping[str, Any] | None
    deadline: float | None
    clock: Clock
    services: Mapping[str, Any]
    generation: int = 0

    def key_for(self, phase: Phase | str) -> str:
        """The idempotency key this step uses in another phase.

        ``key_for(Phase.ACTION)`` from a compensation names the forward effect to
        undo, including the generation suffix a checkpoint resume adds.
        """
        return idempotency_key(self.saga_id, self.step, str(phase), self.generation)


@dataclass(frozen=True, slots=True)
class SnapshotContext:
    """What a snapshot function sees."""

    saga_id: str
    workflow: str
    input: Mapping[str, Any]
    results: Mapping[str, Any]
    services: Mapping[str, Any]
    clock: Clock


@dataclass(frozen=True, slots=True)
class PredicateContext:
    """What a consistency predicate sees after a rollback.

    Attributes:
        pre_state: Snapshot taken before step 1 (None if no snapshot declared).
        post_state: Snapshot taken after the rollback.
        checkpoint: Name of the checkpoint rolled back to, or None for a full
            rollback.
        results: Results of steps that remain in effect.
        checkpoint_state: Snapshot taken when the checkpoint step completed.
    """

    saga_id: str
    workflow: str
    input: Mapping[str, Any]
    pre_state: Mapping[str, Any] | None
    post_state: Mapping[str, Any] | None
    checkpoint: str | None
    results: Mapping[str, Any]
    services: Mapping[str, Any]
    clock: Clock
    checkpoint_state: Mapping[str, Any] | None = None


def idempotency_key(saga_id: str, step: str, phase: str, generation: int = 0) -> str:
    """Stable idempotency key for one effect: ``rv:<saga>:<step>:<phase>``.

    A checkpoint resume re-runs actions as a new effect, so from the first resume
    on an action's key carries ``#<generation>``.
    """
    key = f"rv:{saga_id}:{step}:{phase}"
    return f"{key}#{generation}" if generation and phase == "action" else key
