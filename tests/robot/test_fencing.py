"""Fencing at the controller: stale epochs and blocked keys are refused where the arm moves.

Every assertion about what moved is made at the simulated controller (its
command log, its motion list, the arm's joints), not from what the adapter
believed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reversa import (
    Engine,
    FakeClock,
    Fence,
    Fenced,
    OutcomeUnknown,
    Phase,
    Probe,
    Retry,
    SagaStatus,
    StepContext,
    Store,
)
from reversa.adapters.robot import (
    ApplyPaste,
    BlockOutcome,
    ModbusTooling,
    MotionOutcome,
    MoveTo,
    Pick,
    RobotCell,
    RosLink,
    Stamp,
    pcb_cell,
    robot_registry,
)
from reversa.core.context import idempotency_key
from reversa.core.engine.inspect import audit_entries
from reversa.core.model import Saga
from reversa.safety import Joints
from reversa.simulators.robot import CellWorld

Wait = Callable[..., None]
SAGA = "fenced-saga"


def _stamp(key: str, epoch: int) -> Stamp:
    return Stamp(key, Fence(SAGA, epoch))


def _pose(world: CellWorld) -> str | None:
    return world.layout.pose_name(tuple(world.q))


def _ctx(cell: RobotCell, step: str, phase: Phase, epoch: int, **params: Any) -> StepContext:
    """The context the engine would build for ``step`` (keys from the one key function)."""
    return StepContext(
        saga_id=SAGA, workflow="fencing", step=step, phase=phase, attempt=1,
        idempotency_key=idempotency_key(SAGA, step, phase.value), input={}, params=params,
        results={}, result=None, pre_state=None, deadline=None, clock=FakeClock(),
        services={"robot": cell}, action_key=idempotency_key(SAGA, step, "action"),
        fencing_token=epoch)


def test_a_stale_epoch_is_refused_and_moves_nothing(world: CellWorld, cell: RobotCell) -> None:
    cell.move(cell.layout.pose("tray_above"), speed=1.0, label="new owner",
              stamp=_stamp("k-new", 2))
    motions = len(world.motions)
    with pytest.raises(Fenced, match="older than 2") as refused:
        cell.move(cell.layout.pose("inspection"), speed=1.0, label="paused owner",
                  stamp=_stamp("k-old", 1))
    assert refused.value.code == "fenced"
    assert _pose(world) == "tray_above" and len(world.motions) == motions
    assert world.commands[-1] == {"command": "motion", "key": "k-old", "outcome": "refused:fenced",
                                  "saga": SAGA, "epoch": 1}
    assert world.gate.refused == 1
    # Another saga's epochs are its own: its first command is admitted.
    cell.move(cell.layout.pose("home"), speed=1.0, label="other saga",
              stamp=Stamp("k-other", Fence("other-saga", 1)))
    assert _pose(world) == "home"


def test_block_reports_a_motion_that_ran(world: CellWorld, cell: RobotCell) -> None:
    cell.move(cell.layout.pose("tray_above"), speed=1.0, label="forward",
              stamp=_stamp("k-move", 1))
    outcome = cell.block(_stamp("k-move", 2))
    assert outcome == BlockOutcome(("motion",)) and outcome.happened
    assert world.gate.is_tombstoned("k-move")  # sealed although it ran
    with pytest.raises(Fenced):  # the old owner is locked out from now on
        cell.move(cell.layout.pose("home"), speed=1.0, label="old owner",
                  stamp=_stamp("k-move", 1))
    assert _pose(world) == "tray_above"


def test_a_late_goal_under_a_key_that_ran_and_was_blocked_is_refused(
    world: CellWorld, cell: RobotCell
) -> None:
    # A goal under K ran (the engine's retry); block(K) reports it; then the first,
    # late goal under K arrives with the current epoch: only the key can refuse it.
    cell.move(cell.layout.pose("tray_above"), speed=1.0, label="retry",
              stamp=_stamp("k-out", 1))
    assert cell.block(_stamp("k-out", 1)) == BlockOutcome(("motion",))
    cell.move(cell.layout.pose("home"), speed=1.0, label="compensation",
              stamp=_stamp("k-undo", 1))
    motions = len(world.motions)
    with pytest.raises(Fenced) as late:
        cell.move(cell.layout.pose("tray_above"), speed=1.0, label="late goal",
                  stamp=_stamp("k-out", 1))
    assert late.value.code == "key_blocked"
    assert world.commands[-1] == {"command": "motion", "key": "k-out",
                                  "outcome": "refused:key_blocked", "saga": SAGA, "epoch": 1}
    assert len(world.motions) == motions and _pose(world) == "home"
    # What ran under the key stays on record: a probe can still read it.
    assert world.query("k-out") == {"commands": ["motion"]}
    assert cell.block(_stamp("k-out", 1)) == BlockOutcome(("motion",))  # blocking again


def test_block_tombstones_a_key_that_never_ran(world: CellWorld, cell: RobotCell,
                                               tooling: ModbusTooling) -> None:
    outcome = cell.block(_stamp("k-late", 2))
    assert outcome == BlockOutcome(()) and not outcome.happened
    # Even with the current epoch, nothing under the blocked key runs any more.
    with pytest.raises(Fenced) as refused:
        cell.move(cell.layout.pose("tray_above"), speed=1.0, label="late",
                  stamp=_stamp("k-late", 2))
    assert refused.value.code == "key_blocked"
    with world.lock:
        world.q = list(world.layout.pose("tray"))
    with pytest.raises(Fenced) as gripped:
        tooling.grip(_stamp("k-late", 2))
    assert gripped.value.code == "key_blocked"
    assert world.executions["grip"] == 0 and world.motions == []
    # Tombstoned at the cell bridge and at both Modbus devices (gripper, dispenser).
    assert [c["outcome"] for c in world.commands] == [
        "tombstoned", "tombstoned", "tombstoned", "refused:key_blocked", "refused:key_blocked"]


def test_the_serial_controller_keeps_its_own_fence(world: CellWorld,
                                                   tooling: ModbusTooling) -> None:
    with world.lock:
        world.q = list(world.layout.pose("tray"))
    tooling.grip(_stamp("k-grip", 1))
    assert tooling.block(_stamp("k-grip", 2)) == BlockOutcome(("grip",))
    with pytest.raises(Fenced, match="FENCED") as stale:
        tooling.release(_stamp("k-release", 1))
    assert stale.value.code == "fenced"
    assert tooling.block(_stamp("k-never", 2)) == BlockOutcome(())
    with pytest.raises(Fenced, match="KEY_BLOCKED"):
        tooling.release(_stamp("k-never", 2))
    assert world.holding == "U1" and world.executions["release"] == 0
    with pytest.raises(Fenced):  # a block with a stale fence is refused too
        tooling.block(_stamp("k-other", 1))


def test_operation_block_never_ran_then_the_late_call_is_refused(
    world: CellWorld, cell: RobotCell
) -> None:
    op = MoveTo()
    assert op.block(_ctx(cell, "over", Phase.ACTION, 2, to="tray_above",
                         back="home")) is Probe.NOT_HAPPENED
    late = _ctx(cell, "over", Phase.ACTION, 2, to="tray_above", back="home")
    with pytest.raises(Fenced):
        op.execute(late)
    assert world.motions == [] and _pose(world) == "home"


def test_operation_block_after_a_pick_reports_it_happened(world: CellWorld,
                                                          cell: RobotCell) -> None:
    op = Pick()
    params = {"part": "U1", "station": "tray", "back": "home"}
    op.execute(_ctx(cell, "pick", Phase.ACTION, 1, **params))
    assert op.block(_ctx(cell, "pick", Phase.COMPENSATION, 2, **params)) is Probe.HAPPENED
    undo = _ctx(cell, "pick", Phase.COMPENSATION, 2, **params)
    assert op.compensate(undo)["outcome"] == "returned"  # the compensation is not blocked
    assert world.snapshot()["parts"]["U1"]["location"] == "tray"


def test_paste_blocked_before_its_dispense_never_happened(world: CellWorld,
                                                          cell: RobotCell) -> None:
    # The approach motion ran under the step's key, the dispense did not: nothing
    # irreversible happened, and the dispense can no longer happen.
    op = ApplyPaste()
    params = {"board": "B1", "pose": "board_above", "volume_ul": 5.0}
    ctx = _ctx(cell, "paste", Phase.ACTION, 1, **params)
    cell.move(cell.layout.pose("board_above"), speed=1.0, label="approach",
              stamp=Stamp.of(ctx))
    assert op.block(_ctx(cell, "paste", Phase.COMPENSATION, 2, **params)) is Probe.NOT_HAPPENED
    with pytest.raises(Fenced):
        cell.actuate("dispense", _stamp(ctx.action_key, 2), volume_ul=5.0)
    assert world.snapshot()["boards"]["B1"]["pasted"] is False


@pytest.mark.usefixtures("slow_motion")
def test_a_newer_epoch_preempts_the_old_owners_running_goal(
    world: CellWorld, cell: RobotCell, wait_until: Wait
) -> None:
    failures: list[BaseException] = []

    def old_owner() -> None:
        try:
            cell.move(cell.layout.pose("inspection"), speed=0.5, label="old owner",
                      stamp=_stamp("k-old", 1))
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    thread = threading.Thread(target=old_owner)
    thread.start()
    wait_until(lambda: bool(world.motions) and _pose(world) is None)
    cell.block(_stamp("k-in-doubt", 2))  # the new owner's first word to the controller
    thread.join(10)
    assert isinstance(failures[0], OutcomeUnknown)  # cancelled mid-path, as in a takeover
    assert world.events_of("cancel") and world.motions[0]["outcome"] == "canceled"
    assert _pose(world) is None  # stopped short of the inspection pose


class _LateArm:
    """An arm port whose goal for one pose is lost on the way (the caller sees a timeout)
    and delivered later, after the rollback: a late effect."""

    def __init__(self, link: RosLink, lose: Joints) -> None:
        self.link, self.lose = link, lose
        self.held: list[tuple[Any, ...]] = []

    def joints(self) -> Joints:
        return self.link.joints()

    def execute(self, path: Sequence[Joints], times: Sequence[float], *, stamp: Stamp,
                timeout: float, abort: Callable[[], bool]) -> MotionOutcome:
        if tuple(path[-1]) == tuple(self.lose) and not self.held:
            self.held.append((path, times, stamp))
            raise OutcomeUnknown("no answer from the controller", retryable=False)
        return self.link.execute(path, times, stamp=stamp, timeout=timeout, abort=abort)

    def block(self, stamp: Stamp) -> BlockOutcome:
        return self.link.block(stamp)

    def deliver(self) -> MotionOutcome:
        path, times, stamp = self.held[0]
        return self.link.execute(path, times, stamp=stamp, timeout=5, abort=lambda: False)


def test_a_late_goal_of_a_blocked_step_is_refused_after_the_rollback(
    world: CellWorld, link: RosLink, tooling: ModbusTooling, tmp_path: Path
) -> None:
    layout = pcb_cell()
    arm = _LateArm(link, layout.pose("inspection"))
    cell = RobotCell(layout, arm=arm, sensors=link, tooling=tooling, camera=link,
                     conveyor=link)
    registry = robot_registry()
    once = Retry(max_attempts=1)
    saga = Saga.chain("late-goal", [
        registry.step("out", "robot.move", params={"to": "tray_above", "back": "home"},
                      retry=once),
        registry.step("over", "robot.move", params={"to": "inspection", "back": "tray_above"},
                      retry=once),
    ], snapshot="robot.snapshot", predicate="robot.predicate")
    store = Store.open(f"sqlite:///{tmp_path / 'late.db'}")
    engine = Engine(registry, store, clock=FakeClock(), services={"robot": cell},
                    heartbeat=False)
    try:
        result = engine.run(saga)
        assert result.status is SagaStatus.COMPENSATED, result.error
        resolved = [e for e in audit_entries(store, result.saga_id)
                    if e["event"] == "in_doubt_resolved"]
        assert resolved[0]["outcome"] == "not_happened"
        assert resolved[0]["detail"]["settled_by"] == "block"
        assert _pose(world) == "home"
        motions = len(world.motions)
        late = arm.deliver()  # the lost goal finally reaches the controller
    finally:
        engine.close()
        cell.detach()
        store.close()
    assert late.status == "fenced" and "KEY_BLOCKED" in late.message
    assert len(world.motions) == motions and _pose(world) == "home"
    assert world.commands[-1]["outcome"] == "refused:key_blocked"


class _RetriedArm(_LateArm):
    """The first goal for ``lose`` is held (the caller times out and the engine retries
    under the same key, which moves the arm); every goal for ``decline`` is rejected."""

    def __init__(self, link: RosLink, lose: Joints, decline: Joints) -> None:
        super().__init__(link, lose)
        self.decline = decline

    def execute(self, path: Sequence[Joints], times: Sequence[float], *, stamp: Stamp,
                timeout: float, abort: Callable[[], bool]) -> MotionOutcome:
        if tuple(path[-1]) == tuple(self.decline):
            return MotionOutcome("rejected", -1, "the station interlock declines this job")
        if tuple(path[-1]) == tuple(self.lose) and not self.held:
            self.held.append((path, times, stamp))
            return MotionOutcome("timeout", -1, "no result in time")
        return self.link.execute(path, times, stamp=stamp, timeout=timeout, abort=abort)


def test_a_compensation_seals_its_step_so_a_late_goal_cannot_undo_it(
    world: CellWorld, link: RosLink, tooling: ModbusTooling, tmp_path: Path
) -> None:
    # The robot pack's seed 4, on the rosbridge cell: `out`'s first goal is late, its
    # retry under the same key moves the arm, `over` is declined, `out` is compensated
    # (arm home), then the late goal lands with the current epoch. The compensation
    # sealed `out`'s key first, so the controller refuses it.
    layout = pcb_cell()
    arm = _RetriedArm(link, layout.pose("tray_above"), layout.pose("inspection"))
    cell = RobotCell(layout, arm=arm, sensors=link, tooling=tooling, camera=link,
                     conveyor=link)
    registry = robot_registry()
    saga = Saga.chain("sealed", [
        registry.step("out", "robot.move", params={"to": "tray_above", "back": "home"},
                      retry=Retry(max_attempts=2)),
        registry.step("over", "robot.move", params={"to": "inspection", "back": "tray_above"},
                      retry=Retry(max_attempts=1)),
    ], snapshot="robot.snapshot", predicate="robot.predicate")
    store = Store.open(f"sqlite:///{tmp_path / 'sealed.db'}")
    engine = Engine(registry, store, clock=FakeClock(), services={"robot": cell},
                    heartbeat=False)
    try:
        result = engine.run(saga)
        assert result.status is SagaStatus.COMPENSATED, result.error
        assert _pose(world) == "home"
        late_key = arm.held[0][2].key
        assert [c["outcome"] for c in world.commands if c["key"] == late_key] == [
            "executed", "happened"]  # the retry ran, then the compensation sealed the key
        motions = len(world.motions)
        late = arm.deliver()
    finally:
        engine.close()
        cell.detach()
        store.close()
    assert late.status == "fenced" and "KEY_BLOCKED" in late.message
    assert len(world.motions) == motions and _pose(world) == "home"
    assert world.commands[-1]["outcome"] == "refused:key_blocked"


class _TakenOverMidStep:
    """An arm port behind which a new owner blocks the step's key after its first motion."""

    def __init__(self, link: RosLink) -> None:
        self.link = link
        self.sent = 0

    def joints(self) -> Joints:
        return self.link.joints()

    def execute(self, path: Sequence[Joints], times: Sequence[float], *, stamp: Stamp,
                timeout: float, abort: Callable[[], bool]) -> MotionOutcome:
        outcome = self.link.execute(path, times, stamp=stamp, timeout=timeout, abort=abort)
        self.sent += 1
        if self.sent == 1:
            self.link.block(Stamp(stamp.key, Fence(stamp.fence.saga_id, stamp.fence.epoch + 1)))
        return outcome

    def block(self, stamp: Stamp) -> BlockOutcome:
        return self.link.block(stamp)


def test_a_fenced_pick_does_not_retrace_its_motion(world: CellWorld, link: RosLink,
                                                   tooling: ModbusTooling) -> None:
    # This process lost the saga mid-pick: it must not move the arm again, not even
    # to retrace; the new owner's rollback decides what happens to the arm.
    cell = RobotCell(pcb_cell(), arm=_TakenOverMidStep(link), sensors=link,
                     tooling=tooling, camera=link, conveyor=link)
    try:
        with pytest.raises(Fenced, match="older than 2"):
            Pick().execute(_ctx(cell, "pick", Phase.ACTION, 1, part="U1", station="tray",
                                back="home"))
    finally:
        cell.detach()
    assert len(world.motions) == 1 and _pose(world) == "tray_above"
    assert [c["outcome"] for c in world.commands] == ["executed", "happened", "refused:fenced"]
