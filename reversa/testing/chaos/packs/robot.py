"""The robot pack: the robot adapter's own operations in simulated PCB cells, one per saga.

Steps are the adapter's real operations (``robot.pick``, ``robot.place``,
``robot.move``), with their compensations, probes, blocks, preconditions and the
cell's safe-state action, snapshot and consistency predicate, run unchanged
against :class:`~reversa.adapters.robot.RobotCell`. Only the wire is simulated:
the ports are in-process (:mod:`.robot_cell`), with no socket and no thread, and
every command goes through the schedule's faults. Each saga works a cell of its
own (``cell-<saga id>``: its arm, its part U1, its resources
``robot.workpiece:cell-<saga id>/U1``), so the sagas of a schedule do not share an
arm, and each cell is a :class:`~reversa.simulators.robot.CellWorld` (PyBullet).

The cell's controller keeps the effect boundary (stale epochs and blocked keys are
refused, atomically with the effect) and counts effects physically: an arm at the
target, a part in the gripper, a part at rest on the station; undone when the arm
is back where it started, the part back in its slot with the gripper open, the
placed part held again (see :mod:`.robot_cell`).

A planned business failure is the station's interlock declining every command of
one step. The ``window`` fault is a person walking into a cell's reach zone: no
motion is allowed any more, so the rollback is infeasible, the arm is held where
it is and the saga escalates with the cell's state report. Pauses stop a process
before an operation (the adapter is synchronous). A trajectory runs to its end in
one call: no virtual time passes while the arm moves.

Physics costs tens of milliseconds per motion: keep to tens of schedules per run.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ....adapters.robot import MoveTo, Pick, Place, pcb_cell
from ....adapters.robot.operations import ROBOT
from ....adapters.robot.recovery import cell_predicate, cell_snapshot, drive_to_safe_state
from ....core.context import Check, PredicateContext, SnapshotContext, StepContext, idempotency_key
from ....core.model import OnCrash, Retry, Saga
from ....core.registry import Registry
from ....simulators.robot import CellWorld
from ..faults import SagaPlan
from ..network import Network
from ..process import Process
from . import Effects
from .paced import Paced
from .robot_cell import CellService, Intent, RobotLink

__all__ = ["LINK", "RobotPack", "RobotWorld", "build_registry", "cell_of"]

LINK = "robot-link"
STEP_RETRY = Retry(max_attempts=3, initial_s=0.2, max_s=1.0)
UNDO_RETRY = Retry(max_attempts=4, initial_s=0.2, max_s=1.0)
SNAPSHOT, PREDICATE, SAFE_STATE = "chaos.robot.snapshot", "chaos.robot.predicate", \
    "chaos.robot.safe_state"

# step -> (operation, params); every chain starts with the arm at home, U1 in the tray.
STEPS: dict[str, tuple[str, dict[str, str]]] = {
    "pick": ("robot.pick", {"part": "U1", "station": "tray", "back": "home"}),
    "carry": ("robot.move", {"to": "inspection", "back": "tray_above"}),
    "place": ("robot.place", {"part": "U1", "station": "board"}),
    "clear": ("robot.move", {"to": "inspection", "back": "board_above"}),
    "out": ("robot.move", {"to": "tray_above", "back": "home"}),
    "over": ("robot.move", {"to": "service", "back": "tray_above"}),
}
WORKFLOWS: dict[str, tuple[str, ...]] = {
    "transfer": ("pick", "carry"),
    "assembly": ("pick", "place", "clear"),
    "tour": ("out", "over"),
}
_PARAMS = ("to", "back", "part", "station")



def cell_of(saga_id: str) -> str:
    """The name of the cell a saga works in."""
    return f"cell-{saga_id}"


class _Worlds:
    """PyBullet cells reused across schedules (building one costs more than a reset)."""

    def __init__(self) -> None:
        self.worlds: list[CellWorld] = []

    def fresh(self, index: int) -> CellWorld:
        """The ``index``-th cell of the schedule, reset to its start."""
        while len(self.worlds) <= index:
            self.worlds.append(CellWorld(pcb_cell()))
        world = self.worlds[index]
        world.reset()
        return world


@functools.lru_cache(maxsize=1)
def _worlds() -> _Worlds:
    return _Worlds()


class RobotWorld:
    """One schedule's cells, one per saga, and the effect log counted at them."""

    service_class: type[CellService] = CellService

    def __init__(self) -> None:
        self.layout = pcb_cell()
        self.log = Effects()
        self.cells: dict[str, CellService] = {}
        self._pending: dict[str, frozenset[str]] = {}

    def registry(self) -> Registry:
        return _registry()

    def services_for(self, proc: Process, network: Network) -> Mapping[str, Any]:
        return {LINK: RobotLink(self.cell, self.layout, proc, network)}

    def cell(self, name: str) -> CellService:
        """The cell ``name`` (built on first use, from a reset world)."""
        service = self.cells.get(name)
        if service is None:
            world = _worlds().fresh(len(self.cells))
            service = self.service_class(name, world, self.log,
                                         self._pending.get(name, frozenset()))
            self.cells[name] = service
        return service

    def effects(self) -> Effects:
        return self.log

    def close_window(self, saga_id: str) -> None:
        # Someone walks into the cell: no motion may start while they are in the zone.
        self.cell(cell_of(saga_id)).world.add_person("visitor", 0.4, 0.6)

    def saga(self, plan: SagaPlan) -> tuple[Saga, dict[str, Any]]:
        if plan.decline:
            key = idempotency_key(plan.saga_id, plan.decline, "action")
            self._pending[cell_of(plan.saga_id)] = frozenset({key})
        return _saga(plan.workflow, plan.option("on_crash", "compensate")), {}


class RobotPack:
    """Pick, place and move in simulated PCB cells, through the robot adapter."""

    name = "robot"
    world_class: type[RobotWorld] = RobotWorld

    def workflows(self) -> dict[str, tuple[str, ...]]:
        return dict(WORKFLOWS)

    def world(self, seed: int) -> RobotWorld:
        return self.world_class()


def _with_cell(ctx: Any) -> Any:
    # The adapter's operations look the RobotCell up under one name; each saga has a
    # cell of its own, so the rig hands the operation that saga's cell under that name
    # (its ports belong to the calling process and die with it).
    link = ctx.service(LINK, RobotLink)
    return dataclasses.replace(ctx, services={**ctx.services,
                                              ROBOT: link.robot(cell_of(ctx.saga_id))})


async def _on_cell(name: str, hook: str, ctx: StepContext,
                   run: Callable[[], Awaitable[Any]]) -> Any:
    # The cell learns what the call under this key is for before its first command
    # (how its effects are counted); then the pause point.
    link = ctx.service(LINK, RobotLink)
    if hook in ("execute", "compensate"):
        params = {p: str(ctx.param(p)) for p in _PARAMS if p in ctx.params}
        intent = Intent(ctx.saga_id, ctx.step, name, hook == "compensate",
                        ctx.action_key, params)
        link.cells(cell_of(ctx.saga_id)).expect(intent, ctx.idempotency_key)
    await link.pause_point(f"{hook} of {ctx.saga_id}/{ctx.step}")
    return await run()


def _paced(op: Any) -> Paced:
    """The adapter's operation on the saga's cell, with the pause point a process can
    stop at first; every hook is the operation's own."""
    return Paced(op, functools.partial(_on_cell, op.name), context=_with_cell,
                 resources=True)


async def _safe_state(ctx: StepContext) -> dict[str, Any]:
    await ctx.service(LINK, RobotLink).pause_point(f"safe state of {ctx.saga_id}")
    return drive_to_safe_state(_with_cell(ctx))


def _snapshot(ctx: SnapshotContext) -> dict[str, Any]:
    return cell_snapshot(_with_cell(ctx))


def _predicate(ctx: PredicateContext) -> Check:
    return cell_predicate(_with_cell(ctx))


def build_registry(ops: Sequence[Any] | None = None) -> Registry:
    """The pack's registry: ``ops`` (default: the adapter's ``MoveTo``, ``Pick`` and
    ``Place``), each on the saga's cell; tests pass a broken operation to see it caught."""
    reg = Registry()
    for op in ops if ops is not None else (MoveTo(), Pick(), Place()):
        reg.register(_paced(op))
    reg.add("action", SAFE_STATE, _safe_state)
    reg.add("snapshot", SNAPSHOT, _snapshot)
    reg.add("predicate", PREDICATE, _predicate)
    return reg


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    return build_registry()


@functools.lru_cache(maxsize=16)
def _saga(wf: str, on_crash: str) -> Saga:
    reg = _registry()
    steps = [reg.step(name, STEPS[name][0], params=dict(STEPS[name][1]), retry=STEP_RETRY,
                      compensation_retry=UNDO_RETRY) for name in WORKFLOWS[wf]]
    return Saga.chain(f"robot-{wf}", steps, rollback_window_s=120.0, stall_after_s=60.0,
                      on_crash=OnCrash(on_crash), snapshot=SNAPSHOT, predicate=PREDICATE,
                      safe_state=SAFE_STATE)
