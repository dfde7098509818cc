"""RobotCell: guarded motion, safety stops and the stop latch, against the simulators."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from reversa import EmergencyStop, Fence, OutcomeUnknown, PermanentError, PreconditionFailed
from reversa.adapters.robot import Box, RobotCell, Stamp
from reversa.safety import joint_distance
from reversa.simulators.robot import CellWorld

Wait = Callable[..., None]
STAMP = Stamp("rv:test-saga:motion:action", Fence("test-saga", 1))
TOTE = {"id": "tote", "center": [-0.36, -0.30, 0.13], "size": [0.14, 0.14, 0.26]}


def _pose(world: CellWorld) -> str | None:
    return world.layout.pose_name(tuple(world.q))


def test_a_checked_move_reaches_its_goal(world: CellWorld, cell: RobotCell) -> None:
    result = cell.move(cell.layout.pose("tray_above"), speed=1.0, label="test", stamp=STAMP)
    assert result["moved"] and result["resolution_rad"] == 0.02
    assert _pose(world) == "tray_above"
    again = cell.move(cell.layout.pose("tray_above"), speed=1.0, label="test", stamp=STAMP)
    assert again["moved"] is False  # already there: nothing sent to the controller
    assert len(world.motions) == 1


def test_recovery_motions_respect_the_declared_speed_limit(world: CellWorld,
                                                           cell: RobotCell) -> None:
    cell.move(cell.layout.pose("inspection"), speed=cell.policy.recovery_speed, label="slow",
              stamp=STAMP)
    cell.move(cell.layout.pose("home"), speed=5.0, label="asked too fast", stamp=STAMP)
    slow, clamped = world.motions
    assert slow["peak_speed"] <= cell.policy.recovery_speed + 1e-6
    assert clamped["peak_speed"] <= min(cell.layout.limits.max_speed) + 1e-6


def test_the_scene_is_read_now_not_remembered(world: CellWorld, cell: RobotCell) -> None:
    cell.move(cell.layout.pose("inspection"), speed=1.0, label="out", stamp=STAMP)
    world.add_obstacle(Box.from_dict(TOTE))  # someone put a tote down after the forward move
    with pytest.raises(PreconditionFailed, match="collision with tote"):
        cell.move(cell.layout.pose("board_above"), speed=0.5, label="reverse", stamp=STAMP)
    assert _pose(world) == "inspection"  # refused before any motion
    assert world.events_of("collision") == []


def test_a_person_in_the_zone_refuses_motion(world: CellWorld, cell: RobotCell,
                                             wait_until: Wait) -> None:
    world.inject({"kind": "zone_interlock", "on": False})
    world.add_person("p1", -0.8, 0.3)
    wait_until(lambda: cell.sensors.zone().occupied)
    check = cell.check_motion(cell.joints(), cell.layout.pose("tray_above"))
    assert not check.ok and "reach zone" in check.reason
    with pytest.raises(PreconditionFailed, match="reach zone"):
        cell.move(cell.layout.pose("tray_above"), speed=1.0, label="test", stamp=STAMP)
    assert _pose(world) == "home"


@pytest.mark.parametrize("category", [0, 1, 2])
def test_an_estop_halts_motion_and_locks_it_until_a_human_reset(
    world: CellWorld, cell: RobotCell, category: int, wait_until: Wait
) -> None:
    world.inject({"kind": "estop", "motion": 1, "fraction": 0.4, "category": category})
    with pytest.raises(EmergencyStop) as stop:
        cell.move(cell.layout.pose("inspection"), speed=0.5, label="out", stamp=STAMP)
    assert stop.value.category == category
    assert stop.value.source == "estop:pendant"
    stopped_at = list(world.q)
    assert _pose(world) is None  # halted between home and inspection
    # Nothing moves again: not the adapter, not the controller.
    with pytest.raises(EmergencyStop):
        cell.move(cell.layout.pose("home"), speed=0.5, label="retry", stamp=STAMP)
    with pytest.raises(EmergencyStop):
        cell.actuate("grip", STAMP)
    assert world.q == stopped_at
    with pytest.raises(PreconditionFailed, match="still reports"):
        cell.reset_stop("operator-7")  # the button is still pressed
    assert world.reset_stop()  # the human resets it at the machine
    wait_until(lambda: not cell.sensors.estop_active())
    reset = cell.reset_stop("operator-7", note="checked the cell")
    assert reset.cleared[0].category == category
    cell.move(cell.layout.pose("home"), speed=0.5, label="after reset", stamp=STAMP)
    assert _pose(world) == "home"


def test_stop_categories_differ_in_how_far_the_arm_coasts(
    make_cell: Callable[..., RobotCell], reset_world: Callable[[], CellWorld]
) -> None:
    travelled = {}
    for category in (0, 1):
        world = reset_world()
        cell = make_cell()
        start = list(world.q)
        world.inject({"kind": "estop", "motion": 1, "fraction": 0.3, "category": category})
        with pytest.raises(EmergencyStop):
            cell.move(cell.layout.pose("inspection"), speed=0.5, label="out", stamp=STAMP)
        travelled[category] = joint_distance(start, world.q)
    assert travelled[1] > travelled[0]  # category 1 decelerates; category 0 cuts power


@pytest.mark.usefixtures("slow_motion")
def test_a_person_entering_mid_motion_makes_the_adapter_cancel(world: CellWorld,
                                                               cell: RobotCell) -> None:
    # No hardware interlock: only the adapter's zone monitoring can stop the arm.
    world.inject({"kind": "zone_interlock", "on": False})
    world.inject({"kind": "person", "motion": 1, "fraction": 0.3, "position": [0.6, 0.6]})
    with pytest.raises(EmergencyStop) as stop:
        cell.move(cell.layout.pose("inspection"), speed=0.5, label="out", stamp=STAMP)
    assert stop.value.source.startswith("zone:")
    assert stop.value.category == 2
    assert world.events_of("cancel")  # cancel_action_goal reached the controller
    assert world.stop is None  # the machine itself did not stop it
    assert _pose(world) is None


def test_a_collision_is_a_protective_stop(world: CellWorld, cell: RobotCell) -> None:
    # An obstacle appears mid-path (after the path was checked): the arm hits it.
    world.inject({"kind": "obstacle", "motion": 1, "fraction": 0.2, "id": "cart",
                  "position": [-0.36, -0.30, 0.3], "size": [0.2, 0.2, 0.6]})
    with pytest.raises(EmergencyStop) as stop:
        cell.move(cell.layout.pose("inspection"), speed=0.5, label="out", stamp=STAMP)
    assert stop.value.source == "collision:cart"
    assert world.events_of("collision")


def test_a_motion_without_a_result_is_in_doubt(make_cell: Callable[..., RobotCell],
                                               world: CellWorld) -> None:
    cell = make_cell(motion_timeout_s=0.2)
    world.inject({"kind": "hang_goals", "count": 1})
    with pytest.raises(OutcomeUnknown, match="timeout"):
        cell.move(cell.layout.pose("tray_above"), speed=1.0, label="lost", stamp=STAMP)


def test_a_rejected_goal_did_not_move(world: CellWorld, cell: RobotCell) -> None:
    world.inject({"kind": "reject_goals", "count": 1})
    with pytest.raises(PermanentError, match="refused"):
        cell.move(cell.layout.pose("tray_above"), speed=1.0, label="x", stamp=STAMP)
    assert _pose(world) == "home"
