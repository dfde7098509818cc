"""Rollbacks that really move: e-stops, people and serial timeouts during compensation.

The transfer saga (pick U1, carry it to the inspection pose, inspect) can be
fully undone, so its rollback drives the arm back and returns the part; that is
where stops and device faults during compensation are exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reversa import Engine, FakeClock, PredicateContext, SagaStatus, Store
from reversa.adapters.robot import (
    RobotCell,
    RosLink,
    RosTooling,
    cell_predicate,
    pcb_cell,
    robot_registry,
)
from reversa.core.engine.inspect import audit_entries
from reversa.demos.robot import transfer_saga
from reversa.simulators.robot import CellWorld

Wait = Callable[..., None]
FIRST_COMPENSATION_MOTION = 5  # pick: 3 motions, move_inspection: 1


def _inspection_fails(world: CellWorld) -> None:
    world.inject({"kind": "camera_error", "message": "camera returned error E42"})


def test_the_rollback_returns_arm_and_part(engine: Engine, world: CellWorld) -> None:
    _inspection_fails(world)
    result = engine.run(transfer_saga())
    assert result.status is SagaStatus.COMPENSATED
    record = result.rollback
    assert [c["step"] for c in record["compensations"]] == ["move_inspection", "pick"]
    assert record["predicate"]["ok"] is True, record["predicate"]
    truth = world.snapshot()
    assert truth["pose"] == "home"
    assert truth["parts"]["U1"]["location"] == "tray"
    assert truth["gripper"] == "open" and truth["holding"] is None
    # Every compensation motion ran at the declared recovery speed limit.
    compensation_motions = world.motions[FIRST_COMPENSATION_MOTION - 1:]
    assert len(compensation_motions) == 4
    assert all(m["peak_speed"] <= 0.5 + 1e-6 for m in compensation_motions)
    assert all(m["peak_speed"] > 0.5 for m in world.motions[:FIRST_COMPENSATION_MOTION - 1])


@pytest.mark.parametrize("category", [0, 1, 2])
def test_an_estop_during_rollback_wins(engine: Engine, world: CellWorld, cell: RobotCell,
                                       category: int, wait_until: Wait) -> None:
    _inspection_fails(world)
    world.inject({"kind": "estop", "motion": FIRST_COMPENSATION_MOTION, "fraction": 0.4,
                  "category": category})
    result = engine.run(transfer_saga())

    assert result.status is SagaStatus.ESCALATED
    view = engine.inspect(result.saga_id)
    assert f"category {category}" in view.escalations[0].reason
    assert "estop:pendant" in view.escalations[0].reason
    events = [e["event"] for e in audit_entries(engine.store, result.saga_id)]
    assert "emergency_stop" in events
    assert "compensation_completed" not in events  # the stop won over the rollback
    truth = world.snapshot()
    assert truth["pose"] is None  # halted between inspection and tray_above
    assert truth["holding"] == "U1"  # the pick's compensation never started
    assert len(world.motions) == FIRST_COMPENSATION_MOTION

    # Nothing moves until a human resets: a retry of the rollback escalates again.
    retried = engine.resolve(result.escalation_id, action="retry", author="operator-7")
    assert retried.status is SagaStatus.ESCALATED
    assert len(world.motions) == FIRST_COMPENSATION_MOTION
    # After the reset at the machine and its acknowledgement, the rollback completes.
    assert world.reset_stop()
    wait_until(lambda: not cell.sensors.estop_active())
    cell.reset_stop("operator-7", note="cell inspected, e-stop released")
    second = engine.inspect(result.saga_id).escalations[-1].id
    done = engine.resolve(second, action="retry", author="operator-7")
    assert done.status is SagaStatus.COMPENSATED
    assert world.snapshot()["parts"]["U1"]["location"] == "tray"
    assert world.snapshot()["pose"] == "home"


@pytest.mark.usefixtures("slow_motion")
@pytest.mark.parametrize("interlock", [True, False], ids=["hardware-interlock", "adapter-only"])
def test_a_person_entering_during_rollback_stops_it(engine: Engine, world: CellWorld,
                                                    interlock: bool) -> None:
    _inspection_fails(world)
    world.inject({"kind": "zone_interlock", "on": interlock})
    world.inject({"kind": "person", "motion": FIRST_COMPENSATION_MOTION, "fraction": 0.3,
                  "position": [0.6, 0.6], "id": "visitor"})  # in the zone, off the path
    result = engine.run(transfer_saga())

    assert result.status is SagaStatus.ESCALATED
    reason = engine.inspect(result.saga_id).escalations[0].reason
    assert "zone:visitor" in reason and "category 2" in reason
    assert world.snapshot()["pose"] is None  # stopped short of tray_above
    assert len(world.motions) == FIRST_COMPENSATION_MOTION
    if not interlock:
        assert world.events_of("cancel")  # the adapter cancelled the goal itself


def test_a_gripper_that_times_out_during_compensation_escalates(
    engine: Engine, world: CellWorld
) -> None:
    _inspection_fails(world)
    # The release never answers and never acts: every compensation attempt times out.
    world.inject({"kind": "no_reply", "count": 99, "executes": False, "commands": ["RELEASE"]})
    result = engine.run(transfer_saga())

    assert result.status is SagaStatus.ESCALATED
    view = engine.inspect(result.saga_id)
    pick = next(s for s in view.steps if s.name == "pick")
    assert pick.status.value == "compensation_failed"
    assert pick.comp_attempts == 5  # the declared compensation retry policy, then a human
    assert "no reply" in (pick.error or "")
    truth = world.snapshot()
    assert truth["pose"] == "tray"  # lowered into the tray, part still in the fingers
    assert truth["holding"] == "U1" and world.executions["release"] == 0


def test_a_lost_gripper_reply_is_retried_without_acting_twice(engine: Engine,
                                                              world: CellWorld) -> None:
    _inspection_fails(world)
    world.inject({"kind": "no_reply", "count": 1, "executes": True, "commands": ["RELEASE"]})
    result = engine.run(transfer_saga())

    assert result.status is SagaStatus.COMPENSATED
    assert world.executions["release"] == 1  # the retry carried the same key
    assert world.snapshot()["parts"]["U1"]["location"] == "tray"
    assert world.snapshot()["pose"] == "home"


def test_the_predicate_sees_a_world_model_that_disagrees_with_the_sensors(
    engine: Engine, world: CellWorld, cell: RobotCell
) -> None:
    _inspection_fails(world)
    result = engine.run(transfer_saga())
    assert result.status is SagaStatus.COMPENSATED
    ctx = PredicateContext(
        saga_id=result.saga_id, workflow="pcb-transfer", input={},
        pre_state=result.rollback["pre_state"], post_state=None, checkpoint=None, results={},
        services={"robot": cell}, clock=engine.clock)
    assert cell_predicate(ctx).ok
    with world.lock:  # someone takes U1 out of the tray by hand
        world.parts["U1"].location = "unknown"
    check = cell_predicate(ctx)
    assert not check.ok
    assert "part:U1" in check.reason and "disagrees" in check.reason


def test_the_same_rollback_over_ros_gripper_services(
    world: CellWorld, link: RosLink, tmp_path: Path
) -> None:
    cell = RobotCell(pcb_cell(), arm=link, sensors=link, tooling=RosTooling(link), camera=link,
                     conveyor=link)
    store = Store.open(f"sqlite:///{tmp_path / 'ros-tooling.db'}")
    engine = Engine(robot_registry(), store, clock=FakeClock(), services={"robot": cell},
                    heartbeat=False)
    try:
        _inspection_fails(world)
        world.inject({"kind": "gripper_error", "message": "fingers jammed"})
        result = engine.run(transfer_saga())
        # The pick itself fails at the grip (the ROS gripper service refuses): it
        # retraces its own motion, so the failed step leaves no effect at all.
        assert result.status is SagaStatus.FAILED
        assert "fingers jammed" in (result.error or "")
        assert world.snapshot()["pose"] == "home"
        assert len(world.motions) == 4  # down to the tray, then retraced
        world.faults.gripper_error = None
        second = engine.run(transfer_saga())
        assert second.status is SagaStatus.COMPENSATED
        assert world.snapshot()["parts"]["U1"]["location"] == "tray"
        assert world.executions["grip"] == 1 and world.executions["release"] == 1
    finally:
        engine.close()
        cell.detach()
        store.close()
