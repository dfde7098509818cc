"""AG-384 scenario B: pick, paste, place, move to inspection, inspection fails.

Reversa refuses the mirror rollback (the dry-run names the paste precondition
and the irreversible step), retracts along a collision-checked path to a safe
state and escalates with a report, or runs the declared forward recovery. The
naive mirror reversal, sent straight to the simulated robot, drops the pasted
part onto finished assemblies or hits an obstacle that appeared meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reversa import Engine, Fence, HandlerKind, OnInfeasible, SagaStatus, StepContext
from reversa.adapters.robot import (
    Box,
    RobotCell,
    RosLink,
    SerialTooling,
    Stamp,
    robot_registry,
)
from reversa.demos.robot import scenario_b_saga
from reversa.safety import interpolate, motion_duration
from reversa.simulators.robot import CellWorld

Wait = Callable[..., None]
# The naive agent runs a job of its own: its own saga id and epoch, admitted by the cell.
NAIVE = Stamp("naive-mirror", Fence("naive-mirror", 1))
TOTE = Box("tote", (-0.36, -0.30, 0.13), (0.14, 0.14, 0.26), "obstacle")


def _inspection_fails(world: CellWorld) -> None:
    world.inject({"kind": "camera_error", "message": "camera returned error E42"})


def _problems(result: Any) -> list[str]:
    return list(result.rollback["dry_run"]["problems"])


def test_the_dry_run_refuses_the_mirror_rollback_and_the_arm_retreats(
    engine: Engine, world: CellWorld
) -> None:
    _inspection_fails(world)
    result = engine.run(scenario_b_saga())

    assert result.status is SagaStatus.ESCALATED
    assert result.failed_step == "inspect"
    dry = result.rollback["dry_run"]
    assert dry["feasible"] is False
    by_step = {f["step"]: f for f in dry["steps"]}
    # The paste precondition, naming the irreversible step that made it fail.
    assert by_step["place"]["feasible"] is False
    assert "solder paste" in by_step["place"]["problems"][0]
    assert "irreversible step 'apply_paste'" in by_step["place"]["problems"][0]
    assert by_step["pick"]["feasible"] is False
    # The irreversible step itself: no compensation, only its forward recovery.
    assert by_step["apply_paste"]["action"] == "forward_recovery"
    # The reverse motion alone would have been fine: it is the process that forbids it.
    assert by_step["move_inspection"]["feasible"] is True
    assert result.rollback["compensations"] == []  # nothing mirrored was attempted

    safe = result.rollback["safe_state"]
    assert safe["ok"] is True
    assert safe["result"]["reached"] == "service"
    assert safe["result"]["tooling"] == {"gripper": "open", "holding": None, "tool": "off"}
    view = engine.inspect(result.saga_id)
    assert len(view.escalations) == 1
    assert "rollback infeasible" in view.escalations[0].reason

    # The physical end state, from the simulator's ground truth.
    truth = world.snapshot()
    assert truth["pose"] == "service"
    assert truth["tool"] == "off" and truth["gripper"] == "open"
    assert truth["parts"]["U1"] == {"location": "board", "pasted": True, "damaged": False}
    assert truth["damaged_assemblies"] == [] and truth["collisions"] == []
    assert world.executions["grip"] == 1  # the pasted part was never re-gripped
    assert engine.store.verify_audit(result.saga_id).ok
    # Re-evaluated later, the dry-run still refuses (the paste has not gone away).
    again = engine.dry_run(result.saga_id)
    assert not again.feasible


def test_forward_recovery_sends_the_board_to_rework(engine: Engine, world: CellWorld) -> None:
    _inspection_fails(world)
    result = engine.run(scenario_b_saga(on_infeasible=OnInfeasible.FORWARD_RECOVERY))

    assert result.status is SagaStatus.COMPENSATED
    record = result.rollback
    assert record["outcome"] == "forward_recovered"
    assert record["predicate"]["ok"] is True, record["predicate"]
    assert [c["step"] for c in record["compensations"]] == ["apply_paste"]
    truth = world.snapshot()
    assert truth["boards"]["B1"]["location"] == "rework"
    assert truth["parts"]["U1"]["location"] == "rework"
    assert truth["pose"] == "service" and truth["tool"] == "off"
    assert truth["damaged_assemblies"] == [] and truth["collisions"] == []
    assert world.executions["route"] == 1


def _send_unchecked(link: RosLink, world: CellWorld, goal: str) -> str:
    """What a naive agent does: send the mirror motion straight to the controller."""
    path = interpolate(tuple(world.q), world.layout.pose(goal), 0.02)
    times = motion_duration(path, 1.0)
    return link.execute(path[1:], times[1:], stamp=NAIVE, timeout=5, abort=lambda: False).status


def test_the_naive_mirror_reversal_drops_the_pasted_part(
    engine: Engine, world: CellWorld, link: RosLink, serial_tooling: SerialTooling,
    wait_until: Wait
) -> None:
    _inspection_fails(world)
    engine.run(scenario_b_saga())
    world.reset_stop()
    wait_until(lambda: world.layout.pose_name(link.joints()) == "service")
    # Mirror of move_inspection, then of place (re-grip the part off the board),
    # then of pick (carry it back to the tray).
    assert _send_unchecked(link, world, "board_above") == "succeeded"
    assert _send_unchecked(link, world, "board") == "succeeded"
    grip = serial_tooling.grip(NAIVE)
    assert grip["holding"] == "U1"  # the fingers close around it...
    assert _send_unchecked(link, world, "board_above") == "succeeded"
    assert _send_unchecked(link, world, "tray_above") == "succeeded"
    truth = world.snapshot()
    assert truth["parts"]["U1"]["location"] == "dropped"  # ...but the paste lets it slip
    assert truth["parts"]["U1"]["damaged"] is True
    assert truth["damaged_assemblies"]  # and it lands on finished assemblies
    assert world.events_of("drop")[0]["damaged"] == truth["damaged_assemblies"]


def test_a_new_obstacle_makes_the_mirror_motion_collide_but_not_the_retreat(
    engine: Engine, world: CellWorld, cell: RobotCell, link: RosLink
) -> None:
    # Motion 7 (move_inspection) reaches the inspection pose; then someone sets a tote down.
    world.inject({"kind": "obstacle", "motion": 7, "fraction": 1.0, "id": "tote",
                  "position": list(TOTE.center), "size": list(TOTE.size)})
    _inspection_fails(world)
    result = engine.run(scenario_b_saga())
    assert result.status is SagaStatus.ESCALATED
    by_step = {f["step"]: f for f in result.rollback["dry_run"]["steps"]}
    reverse = by_step["move_inspection"]
    assert reverse["feasible"] is False
    assert "collision with tote" in reverse["problems"][0]
    safe = result.rollback["safe_state"]["result"]
    assert safe["reached"] in {"service", "home"}
    assert world.events_of("collision") == []  # Reversa's retreat touched nothing

    # The same mirror motion sent unchecked hits the tote.
    world.reset_stop()
    cell.move(cell.layout.pose("inspection"), speed=0.5, label="back to where the run ended",
              stamp=NAIVE)
    assert _send_unchecked(link, world, "board_above") == "aborted"
    collisions = world.events_of("collision")
    assert collisions and "tote" in collisions[0]["contacts"][0]
    assert world.stop is not None and world.stop.source == "collision:tote"


def test_a_person_in_the_zone_holds_the_arm_where_it_is(
    engine: Engine, world: CellWorld, cell: RobotCell, wait_until: Wait
) -> None:
    # A person walks in while the camera runs (the arm stands still); no hardware
    # interlock here, so only Reversa's zone check can keep the arm still.
    world.inject({"kind": "zone_interlock", "on": False})
    _inspection_fails(world)
    registry = robot_registry()
    real_inspect = registry.get(HandlerKind.ACTION, "robot.inspect")

    @registry.action("test.inspect_while_someone_walks_in")
    def inspect_while_someone_walks_in(ctx: StepContext) -> Any:
        world.add_person("p1", -0.8, 0.1)
        wait_until(lambda: cell.sensors.zone().occupied)
        return real_inspect(ctx)

    saga = scenario_b_saga(registry)
    last = saga.steps[-1].model_copy(update={"action": "test.inspect_while_someone_walks_in"})
    saga = saga.model_copy(update={"steps": (*saga.steps[:-1], last)})
    sibling = Engine(registry, engine.store, clock=engine.clock,
                     services={"robot": cell}, heartbeat=False)
    try:
        result = sibling.run(saga)
    finally:
        sibling.close()
    assert result.status is SagaStatus.ESCALATED
    assert any("reach zone" in p for p in _problems(result))
    safe = result.rollback["safe_state"]
    assert safe["ok"] is False
    assert "held" in safe["error"] and "reach zone" in safe["error"]
    assert world.snapshot()["pose"] == "inspection"  # nothing moved
    assert world.tool == "off"  # switching the tool off is safe and was done


def test_an_estop_during_the_retreat_to_the_safe_state_wins(engine: Engine,
                                                            world: CellWorld) -> None:
    # Motion 8 is the first motion after the forward run: the retreat to "service".
    world.inject({"kind": "estop", "motion": 8, "fraction": 0.5, "category": 1})
    _inspection_fails(world)
    result = engine.run(scenario_b_saga())
    assert result.status is SagaStatus.ESCALATED
    reason = engine.inspect(result.saga_id).escalations[0].reason
    assert "emergency stop (category 1)" in reason
    assert world.snapshot()["pose"] is None  # halted between inspection and service
    assert len(world.motions) == 8
    assert world.tool == "off"  # switched off before the arm moved
