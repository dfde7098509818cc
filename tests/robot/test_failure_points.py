"""AG-384 4.8: every failure point of each robot workflow, forward and in compensation.

Faults are injected with ``reversa.testing``; each case also asserts the
physical end state from the simulator (arm pose, part, board, tooling), not
only the saga status.
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Engine, OnInfeasible, SagaStatus
from reversa.demos.robot import scenario_b_saga, transfer_saga
from reversa.simulators.robot import CellWorld
from reversa.testing import FailurePoint, expected_status, failure_points, run_failure_point

TRANSFER = transfer_saga()
SCENARIO_B = scenario_b_saga(on_infeasible=OnInfeasible.FORWARD_RECOVERY)

AT_START = {"pose": "home", "U1": "tray", "B1": "board", "pasted": False, "holding": None}
RETREATED_TO_REWORK = {"pose": "service", "U1": "rework", "B1": "rework", "pasted": True,
                       "holding": None}

# Transfer saga: the generic guarantee (reversa.testing.expected_status) plus where
# the arm, the part and the gripper end up.
TRANSFER_END = {
    "action:pick": AT_START,
    "action:move_inspection": AT_START,
    "action:inspect": AT_START,
    "compensation:pick": {"pose": "tray_above", "U1": "gripper", "B1": "board",
                          "pasted": False, "holding": "U1"},
    "compensation:move_inspection": {"pose": "inspection", "U1": "gripper", "B1": "board",
                                     "pasted": False, "holding": "U1"},
}

# Scenario B departs from the generic expectation on purpose: once the part sits
# in paste, the dry-run refuses the mirror rollback, so a fault injected into the
# reversible compensations is never reached -- the safe state and the rework
# route run instead. Only a failing forward recovery needs a human.
SCENARIO_B_END: dict[str, tuple[SagaStatus, dict[str, Any]]] = {
    "action:pick": (SagaStatus.FAILED, AT_START),
    "action:apply_paste": (SagaStatus.COMPENSATED, AT_START),
    "action:place": (SagaStatus.COMPENSATED,
                     {"pose": "home", "U1": "tray", "B1": "rework", "pasted": True,
                      "holding": None}),
    # The arm never left board_above, whose nearest safe state is home.
    "action:move_inspection": (SagaStatus.COMPENSATED, {**RETREATED_TO_REWORK, "pose": "home"}),
    "action:inspect": (SagaStatus.COMPENSATED, RETREATED_TO_REWORK),
    "compensation:pick": (SagaStatus.COMPENSATED, RETREATED_TO_REWORK),
    "compensation:apply_paste": (SagaStatus.ESCALATED,
                                 {"pose": "service", "U1": "board", "B1": "board",
                                  "pasted": True, "holding": None}),
    "compensation:place": (SagaStatus.COMPENSATED, RETREATED_TO_REWORK),
    "compensation:move_inspection": (SagaStatus.COMPENSATED, RETREATED_TO_REWORK),
}


def _end_state(world: CellWorld) -> dict[str, Any]:
    truth = world.snapshot()
    return {"pose": truth["pose"], "U1": truth["parts"]["U1"]["location"],
            "B1": truth["boards"]["B1"]["location"], "pasted": truth["boards"]["B1"]["pasted"],
            "holding": truth["holding"]}


def _assert_safe(world: CellWorld) -> None:
    truth = world.snapshot()
    assert truth["collisions"] == []
    assert truth["damaged_assemblies"] == []
    assert not truth["parts"]["U1"]["damaged"]


def test_every_point_is_covered() -> None:
    assert {str(p) for p in failure_points(TRANSFER)} == set(TRANSFER_END)
    assert {str(p) for p in failure_points(SCENARIO_B)} == set(SCENARIO_B_END)


@pytest.mark.parametrize("point", failure_points(TRANSFER), ids=str)
def test_transfer_every_failure_point(engine: Engine, world: CellWorld,
                                      point: FailurePoint) -> None:
    result = run_failure_point(engine, TRANSFER, point)
    assert result.status is expected_status(TRANSFER, point), result.error
    assert _end_state(world) == TRANSFER_END[str(point)]
    _assert_safe(world)
    assert engine.store.verify_audit(result.saga_id).ok


@pytest.mark.parametrize("point", failure_points(SCENARIO_B), ids=str)
def test_scenario_b_every_failure_point(engine: Engine, world: CellWorld,
                                        point: FailurePoint) -> None:
    status, end = SCENARIO_B_END[str(point)]
    result = run_failure_point(engine, SCENARIO_B, point)
    assert result.status is status, result.error
    assert _end_state(world) == end
    _assert_safe(world)
    assert world.tool == "off" or status is SagaStatus.FAILED
    if point.phase == "compensation" and status is SagaStatus.COMPENSATED:
        # The injected compensation was never called: the dry-run refused the mirror.
        record = result.rollback
        assert record["dry_run"]["feasible"] is False
        assert [c["step"] for c in record["compensations"]] == ["apply_paste"]
    assert engine.store.verify_audit(result.saga_id).ok
