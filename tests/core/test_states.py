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
                                      SagaStatus.RESOLVED])
def test_terminal_sagas_never_move(terminal: SagaStatus) -> None:
    with pytest.raises(IllegalTransition, match="none \\(terminal\\)"):
        check_saga_transition("x", terminal, SagaStatus.RUNNING)


@pytest.mark.parametrize("target", [s for s in SagaStatus if s is not SagaStatus.COMPENSATING])
def test_a_completed_saga_only_reopens_for_a_cascade(target: SagaStatus) -> None:
    # A saga whose effect another saga's rollback must undo first (issue 15) goes
    # back to compensating; nothing else ever moves a completed saga.
    check_saga_transition("x", SagaStatus.COMPLETED, SagaStatus.COMPENSATING)
    with pytest.raises(IllegalTransition, match="allowed from completed"):
        check_saga_transition("x", SagaStatus.COMPLETED, target)
