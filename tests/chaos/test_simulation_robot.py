"""The robot pack: the adapter's pick, place and move in simulated cells, checked physically.

Physics costs about a second and a half per schedule on the shared machine, so the suite
runs a few dozen; each effect is counted at the cell's controller from where the arm,
the gripper and the part are, not from the store.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("pybullet")
pytest.importorskip("fcl")

from reversa.adapters.robot import BlockOutcome, MoveTo, Pick, Place, Stamp
from reversa.core.context import StepContext, idempotency_key
from reversa.core.registry import Registry
from reversa.testing.chaos import (
    load_packs,
    register_pack,
    schedule_for,
    simulate,
)
from reversa.testing.chaos.packs import Effects, robot
from reversa.testing.chaos.packs.robot_cell import CellService
from tests.chaos.sweep import assert_replays_exactly, assert_sweep_holds, paused_owner

pytestmark = pytest.mark.simulation
ROBOT_PACKS = load_packs(["robot"])
ROBOT_SEEDS = 16


def test_robot_schedules_hold_every_invariant() -> None:
    assert_sweep_holds(range(ROBOT_SEEDS), ROBOT_PACKS,
                       fired={"crash", "net", "service", "sigterm", "window"},
                       ends={"completed", "compensated", "failed"})


def test_a_robot_seed_replays_exactly() -> None:
    # Cells are PyBullet worlds reset to one start: the same seed moves the same arms
    # through the same physics steps and ends the same way every time.
    assert_replays_exactly(3, ROBOT_PACKS)


class _Recording(robot.RobotPack):
    """The real pack, keeping each schedule's world so a test can read its cells."""

    name = "robot-recording"
    made: ClassVar[list[robot.RobotWorld]] = []

    def world(self, seed: int) -> robot.RobotWorld:
        made = super().world(seed)
        self.made.append(made)
        return made


class _Unfenced(CellService):
    """A controller that keeps no boundary: no epoch check, and a block tombstones nothing."""

    def admit(self, command: str, stamp: Stamp) -> None:
        return None

    def block(self, stamp: Stamp) -> BlockOutcome:
        return BlockOutcome(tuple(self.world.executed.get(stamp.key, ())))


class _UnfencedWorld(robot.RobotWorld):
    service_class = _Unfenced


class _UnfencedPack(robot.RobotPack):
    name = "robot-unfenced"
    world_class = _UnfencedWorld


def test_the_checks_catch_a_cell_that_keeps_no_boundary() -> None:
    # One schedule, two controllers: the owner pauses before its first command, its lease
    # lapses, a worker takes the saga over and rolls it back (blocking the paused step's
    # key), then the owner wakes and sends its commands. The real controller refuses them
    # (a newer epoch spoke to it); one without the boundary lets the arm pick the part
    # again in a saga recorded as rolled back.
    register_pack("robot-recording", _Recording)
    register_pack("robot-unfenced", _UnfencedPack)
    real_packs, broken_packs = load_packs(["robot-recording"]), load_packs(["robot-unfenced"])
    real = paused_owner(0, real_packs)
    assert real.ok, "\n".join(real.describe())
    assert real.stats["refused_at_services"] > 0
    assert real.stats["takeovers"] > 0
    # Read before the next run: the physics cells are reused (reset) from run to run.
    refused = [c for cell in _Recording.made[-1].cells.values()
               for c in cell.world.commands if c["outcome"].startswith("refused:")]
    assert refused and all(c["epoch"] == 1 for c in refused)  # the paused owner's
    broken = paused_owner(0, broken_packs)
    assert {v.invariant for v in broken.violations} & {"no_effect_stands",
                                                        "rows_match_services"}, \
        "\n".join(broken.describe())
    assert "agent1 paused before execute of" in "\n".join(broken.describe())


class _KeepsThePart(Pick):
    """A pick whose compensation drives the arm back but never puts the part down."""

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        cell = self._cell(ctx)
        cell.belief(ctx.saga_id).parts[str(ctx.param("part"))] = str(ctx.param("station"))
        return {"part": ctx.param("part"), "outcome": "returned"}


class _KeepsThePartWorld(robot.RobotWorld):
    def registry(self) -> Registry:
        return robot.build_registry([MoveTo(), _KeepsThePart(), Place()])


class _KeepsThePartPack(robot.RobotPack):
    name = "robot-keeps-part"
    world_class = _KeepsThePartWorld


def _declined_after_pick(packs: dict[str, Any]) -> int:
    return next(s for s in range(60) if any(
        p.decline not in (None, "pick", "out", "over") for p in schedule_for(s, packs).sagas))


def test_the_checks_read_the_cell_not_the_store() -> None:
    # One schedule, two picks: the adapter's, and one whose compensation reports the
    # part returned while it stays in the gripper. The part's place is read at the cell.
    register_pack("robot-recording", _Recording)
    register_pack("robot-keeps-part", _KeepsThePartPack)
    real_packs, broken_packs = load_packs(["robot-recording"]), load_packs(["robot-keeps-part"])
    seed = _declined_after_pick(real_packs)
    real = simulate(schedule_for(seed, real_packs).with_faults([]), real_packs)
    assert real.ok, "\n".join(real.describe())
    log: Effects = _Recording.made[-1].effects()
    picks = [k for k, (_, step) in log.applied.items() if step == "pick"]
    assert picks and any(log.undone[k] == 1 for k in picks)  # a part went back, physically
    broken = simulate(schedule_for(seed, broken_packs).with_faults([]), broken_packs)
    assert {v.invariant for v in broken.violations} & {"no_effect_stands",
                                                        "rows_match_services"}, \
        "\n".join(broken.describe())


def test_seed_4_a_late_goal_cannot_move_the_arm_after_its_compensation() -> None:
    # Seed 4: the first trajectory goal of s4-tour's `out` is delivered late; the retry
    # under the same key moves the arm; `over` is declined and `out` compensated (arm
    # home); then the late goal lands, with the current epoch. The compensation sealed
    # `out`'s key at the controller first, so the goal is refused there; before the seal
    # it drove the arm away again in a saga recorded compensated (no_effect_stands).
    register_pack("robot-recording", _Recording)
    packs = load_packs(["robot-recording"])
    run = simulate(schedule_for(4, packs), packs)
    assert run.ok, "\n".join(run.describe())
    assert "hit trajectory of s4-tour in its cell" in "\n".join(run.describe())
    cell = _Recording.made[-1].cells["cell-s4-tour"]
    out = idempotency_key("s4-tour", "out", "action")
    assert [(c["command"], c["outcome"]) for c in cell.world.commands if c["key"] == out] == [
        ("motion", "executed"), ("block", "happened"), ("motion", "refused:key_blocked")]
