"""The robot demos run and succeed; the public surface is pinned."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import reversa.adapters.robot as robot
import reversa.safety as safety
import reversa.simulators.robot as simulators
from reversa import Engine, Saga, SagaStatus
from reversa.demos.robot.scenarios import DEMOS
from reversa.simulators.robot import CellWorld


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_demo_runs_and_succeeds(name: str, tmp_path: Path) -> None:
    out = io.StringIO()
    run = DEMOS[name](f"sqlite:///{tmp_path / 'demo.db'}", Console(file=out, width=160))
    text = out.getvalue()
    assert run.code == 0, text
    assert len(run.saga_ids) == 1  # each robot story is one saga
    assert "audit chain: verified" in text
    assert (DEMOS[name].__doc__ or "").strip()  # `reversa demo --list` shows it


def test_the_public_api_is_pinned() -> None:
    assert sorted(robot.__all__) == sorted([
        "RobotCell", "Belief", "connect_cell", "CellLayout", "Station", "pcb_cell",
        "ArmPort", "SafetySensors", "ToolingPort", "CameraPort", "ConveyorPort",
        "MotionOutcome", "ZoneStatus", "Stamp", "BlockOutcome", "RosLink", "RosNames",
        "RosTooling", "SerialTooling",
        "PlanningScene", "Box", "Person", "Attached", "BoardStatus", "CollisionChecker",
        "Contact", "PathReport", "MoveTo", "Pick", "Place", "ApplyPaste", "Inspect",
        "drive_to_safe_state", "route_to_rework", "cell_snapshot", "cell_predicate",
        "state_report", "robot_registry",
    ])
    assert sorted(safety.__all__) == sorted([
        "StopCategory", "StopEvent", "StopLatch", "StopReset", "JointLimits", "Joints",
        "interpolate", "joint_distance", "motion_duration", "ArmModel", "DHJoint",
        "LinkSegment", "ur5_like", "GripperState", "SafeState", "SafetyPolicy", "ToolState",
        "GRASPABLE_LOCATIONS", "PASTE_IRREVERSIBLE", "PartStatus", "ToolingStatus",
        "can_regrip", "can_return_part", "tooling_matches",
    ])
    assert sorted(simulators.__all__) == sorted([
        "CellWorld", "DeviceError", "FaultPlan", "MotionTrigger", "SerialFault",
        "RosbridgeSim", "SerialGripperSim", "start_gripper", "start_rosbridge",
    ])
    for module in (robot, safety, simulators):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_operations_satisfy_the_operation_protocol() -> None:
    from reversa import Operation

    for op in (robot.MoveTo(), robot.Pick(), robot.Place(), robot.ApplyPaste(), robot.Inspect()):
        assert isinstance(op, Operation)
        assert op.name.startswith("robot.")


def test_connect_cell_rejects_a_bad_address() -> None:
    from reversa import ConfigError

    with pytest.raises(ConfigError, match="ws://host:9090"):
        robot.connect_cell("http://cell-pc:9090")


def test_operations_read_params_and_services_through_the_context(
    engine: Engine, world: CellWorld, cell: robot.RobotCell
) -> None:
    from reversa import ConfigError, FakeClock, Phase, StepContext

    r = robot.robot_registry()
    saga = Saga.chain("by-reference", [
        r.step("out", "robot.move", params={"to": "$input.pose", "back": "home"}),
        r.step("inspect", "robot.inspect", params={"board": "B1"}),
    ], snapshot="robot.snapshot", predicate="robot.predicate")
    world.inject({"kind": "camera_error", "message": "E42"})
    result = engine.run(saga, {"pose": "tray_above"})
    assert result.status is SagaStatus.COMPENSATED, result.error
    assert world.motions[0]["to"] == list(world.layout.pose("tray_above"))

    def ctx(services: dict[str, object]) -> StepContext:
        return StepContext(saga_id="s", workflow="w", step="out", phase=Phase.ACTION,
                           attempt=1, idempotency_key="k", input={},
                           params={"to": "home", "back": "home"}, results={}, result=None,
                           pre_state=None, deadline=None, clock=FakeClock(),
                           services=services)

    with pytest.raises(ConfigError, match=r"service 'robot' is missing"):
        robot.MoveTo().execute(ctx({}))
    assert robot.MoveTo(service="cell-2").execute(ctx({"cell-2": cell}))["moved"] is False
