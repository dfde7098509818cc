"""The rosbridge simulator and the roslibpy transport, at the protocol level."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import roslibpy

from reversa import Fence, OutcomeUnknown, PermanentError, TransientError
from reversa.adapters.robot import RosLink, Stamp
from reversa.safety import interpolate, motion_duration
from reversa.simulators.robot import CellWorld, RosbridgeSim

Wait = Callable[..., None]
STAMP = Stamp("rv:test-saga:motion:action", Fence("test-saga", 1))


def _path(world: CellWorld, goal: str, speed: float = 1.0) -> tuple[list, list]:
    path = interpolate(tuple(world.q), world.layout.pose(goal), 0.02)
    times = motion_duration(path, speed)
    return path[1:], times[1:]


def test_unmodified_roslibpy_speaks_to_the_simulator(
    rosbridge: RosbridgeSim, world: CellWorld, link: RosLink, wait_until: Wait
) -> None:
    # Plain roslibpy objects on a connection of their own: topics, services, actions.
    ros = roslibpy.Ros("127.0.0.1", rosbridge.port)
    ros.run(5)
    try:
        _plain_roslibpy_session(ros, world, link, wait_until)
    finally:
        ros.close()


def _plain_roslibpy_session(ros: roslibpy.Ros, world: CellWorld, link: RosLink,
                            wait_until: Wait) -> None:
    states: list[dict] = []
    topic = roslibpy.Topic(ros, "/joint_states", "sensor_msgs/msg/JointState")
    topic.subscribe(states.append)
    wait_until(lambda: bool(states))  # latched: the current state arrives at once
    assert states[0]["name"][0] == "shoulder_pan_joint"
    service = roslibpy.Service(ros, "/cell/get_scene", "reversa_cell_msgs/srv/GetScene")
    scene = service.call(roslibpy.ServiceRequest({}), timeout=2)
    assert {b["id"] for b in scene["scene"]["boxes"]} >= {"table", "tray", "part:U1"}
    with pytest.raises(roslibpy.core.ServiceException, match="ARM_IN_VIEW"):
        roslibpy.Service(ros, "/inspection/trigger", "x").call(
            roslibpy.ServiceRequest({"board": "B1"}), timeout=2)
    action = roslibpy.ActionClient(ros, "/arm_controller/follow_joint_trajectory",
                                   "control_msgs/action/FollowJointTrajectory")
    path, times = _path(world, "tray_above")
    done = threading.Event()
    results: list = []
    feedback: list = []
    goal = {"trajectory": {"joint_names": list(link.names.joint_names), "points": [
        {"positions": list(q), "time_from_start": {"sec": int(t), "nanosec": int(t % 1 * 1e9)}}
        for q, t in zip(path, times, strict=True)]}}
    action.send_goal(roslibpy.Goal(goal), lambda r: (results.append(r), done.set()),
                     feedback.append, lambda e: (results.append(e), done.set()))
    assert done.wait(5)
    assert results[0]["status"] == roslibpy.core.GoalStatus.SUCCEEDED
    assert feedback  # action_feedback frames were delivered
    assert world.layout.pose_name(tuple(world.q)) == "tray_above"


def test_execute_reaches_the_goal_and_joint_states_follow(world: CellWorld, link: RosLink,
        wait_until: Wait) -> None:
    path, times = _path(world, "tray_above")
    outcome = link.execute(path, times, timeout=5, stamp=STAMP, abort=lambda: False)
    assert outcome.ok
    wait_until(lambda: max(abs(a - b) for a, b in
                           zip(link.joints(), world.layout.pose("tray_above"), strict=True)) < 1e-6)


@pytest.mark.usefixtures("slow_motion")
def test_abort_cancels_the_goal_mid_path(world: CellWorld, link: RosLink) -> None:
    path, times = _path(world, "inspection", speed=0.5)
    calls = {"n": 0}

    def abort() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    outcome = link.execute(path, times, timeout=5, stamp=STAMP, abort=abort)
    assert outcome.status == "canceled"
    assert world.events_of("cancel")  # the simulator received cancel_action_goal
    assert world.layout.pose_name(tuple(world.q)) is None  # stopped between poses


def test_a_goal_is_rejected_while_a_stop_is_latched(world: CellWorld, link: RosLink,
        wait_until: Wait) -> None:
    world.press_estop(0)
    wait_until(link.estop_active)
    path, times = _path(world, "tray_above")
    outcome = link.execute(path, times, timeout=5, stamp=STAMP, abort=lambda: False)
    assert outcome.status == "rejected"
    assert "reset" in outcome.message
    assert world.layout.pose_name(tuple(world.q)) == "home"


def test_a_lost_result_is_a_timeout(world: CellWorld, link: RosLink) -> None:
    world.inject({"kind": "hang_goals", "count": 1})
    path, times = _path(world, "tray_above")
    outcome = link.execute(path, times, timeout=0.5, stamp=STAMP, abort=lambda: False)
    assert outcome.status == "timeout"


def test_service_failures_are_translated(world: CellWorld, link: RosLink) -> None:
    world.inject({"kind": "conveyor_error", "message": "belt jammed"})
    with pytest.raises(PermanentError, match="belt jammed"):
        link.route(STAMP, "B1", "rework")
    world.inject({"kind": "scene_hang"})
    with pytest.raises(TransientError, match="did not answer"):
        link.call("/cell/get_scene", {}, mutating=False, timeout=0.3)
    with pytest.raises(OutcomeUnknown, match="may have happened"):
        link.call("/cell/get_scene", {}, mutating=True, timeout=0.3)


def test_keyed_commands_are_deduplicated_and_probeable(world: CellWorld, link: RosLink) -> None:
    stamp = Stamp("rv:x:route:forward_recovery", Fence("x", 1))
    assert link.query(stamp.key) is None
    first = link.route(stamp, "B1", "rework")
    second = link.route(stamp, "B1", "rework")
    assert first["location"] == second["location"] == "rework"
    assert second.get("duplicate") is True
    assert world.executions["route"] == 1
    assert link.query(stamp.key) == {**first, "commands": ["route"]}


def test_fault_injection_over_the_wire(rosbridge: RosbridgeSim, world: CellWorld,
                                       link: RosLink, wait_until: Wait) -> None:
    link.call("/sim/inject", {"fault": {"kind": "camera_error", "message": "lens"}},
              mutating=True)
    assert world.faults.camera_error == "lens"
    link.call("/sim/person", {"id": "p9", "x": -0.7, "y": 0.1}, mutating=True)
    wait_until(lambda: link.zone().occupied)
    assert link.zone().persons == ("p9",)
    wait_until(link.estop_active)  # the hardware zone interlock latched a protective stop
    assert link.call("/sim/reset_stop", {}, mutating=True)["ok"] is False  # person still there
    link.call("/sim/person", {"op": "remove", "id": "p9"}, mutating=True)
    assert link.call("/sim/reset_stop", {}, mutating=True)["ok"] is True
    wait_until(lambda: not link.estop_active())
    assert link.call("/sim/world", {}, mutating=False)["world"]["pose"] == "home"


def test_unreachable_rosbridge_is_transient() -> None:
    with pytest.raises(TransientError, match="cannot reach rosbridge"):
        RosLink("127.0.0.1", 9, connect_timeout=0.5)
