"""State machines: legal paths are accepted, illegal transitions raise."""

from __future__ import annotations

import pytest

from reversa import IllegalTransition, SagaStatus, StepStatus
from reversa.core.states import check_saga_transition, check_step_transition

LEGAL_STEP = [
    (StepStatus.PENDING, StepStatus.RUNNING), (StepStatus.RUNNING, StepStatus.COMPLETED),
    (StepStatus.RUNNING, StepStatus.FAILED), (StepStatus.COMPLETED, StepStatus.COMPENSATING),
    (StepStatus.COMPENSATING, StepStatus.COMPENSATED),
    (StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED),
    (StepStatus.PENDING, StepStatus.SKIPPED), (StepStatus.COMPLETED, StepStatus.ESCALATED),
]
ILLEGAL_STEP = [
    (StepStatus.PENDING, StepStatus.COMPLETED), (StepStatus.PENDING, StepStatus.COMPENSATED),
    (StepStatus.COMPLETED, StepStatus.RUNNING), (StepStatus.COMPENSATED, StepStatus.COMPLETED),
    (StepStatus.SKIPPED, StepStatus.COMPENSATING),
]


@pytest.mark.parametrize(("old", "new"), LEGAL_STEP)
def test_legal_step_transitions(old: StepStatus, new: StepStatus) -> None:
    check_step_transition("s", old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL_STEP)
def test_illegal_step_transitions_raise(old: StepStatus, new: StepStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"step 's': illegal transition {old} -> {new}"):
        check_step_transition("s", old, new)


@pytest.mark.parametrize("terminal", [SagaStatus.COMPENSATED, SagaStatus.FAILED,
                                      SagaStatus.RESOLVED, SagaStatus.REJECTED])
def test_terminal_sagas_never_move(terminal: SagaStatus) -> None:
    with pytest.raises(IllegalTransition, match="none \\(terminal\\)"):
        check_saga_transition("x", terminal, SagaStatus.RUNNING)


def test_a_completed_saga_moves_only_into_an_operator_rollback() -> None:
    check_saga_transition("x", SagaStatus.COMPLETED, SagaStatus.COMPENSATING)
    for new in (SagaStatus.RUNNING, SagaStatus.ESCALATED, SagaStatus.COMPENSATED):
        with pytest.raises(IllegalTransition):
            check_saga_transition("x", SagaStatus.COMPLETED, new)


G = SagaStatus
LEGAL_GOVERNED = [
    (G.AWAITING_APPROVAL, G.APPROVED), (G.AWAITING_APPROVAL, G.REJECTED),
    (G.AWAITING_APPROVAL, G.COMPENSATING), (G.APPROVED, G.RUNNING),
    (G.RUNNING, G.AWAITING_APPROVAL), (G.APPROVED, G.FAILED),
]
ILLEGAL_GOVERNED = [
    (G.AWAITING_APPROVAL, G.RUNNING), (G.AWAITING_APPROVAL, G.COMPLETED),
    (G.APPROVED, G.COMPLETED), (G.REJECTED, G.APPROVED), (G.ESCALATED, G.AWAITING_APPROVAL),
]


@pytest.mark.parametrize(("old", "new"), LEGAL_GOVERNED)
def test_legal_governed_transitions(old: SagaStatus, new: SagaStatus) -> None:
    check_saga_transition("x", old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL_GOVERNED)
def test_illegal_governed_transitions_raise(old: SagaStatus, new: SagaStatus) -> None:
    with pytest.raises(IllegalTransition):
        check_saga_transition("x", old, new)
