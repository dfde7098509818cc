"""The robot pack's cell, in-process: a controller over the physics world, and the ports to it.

:class:`CellService` is one saga's cell: a :class:`~reversa.simulators.robot.CellWorld`
(the PyBullet arm, gripper and parts) with the controller the rosbridge simulator
puts in front of it, minus the sockets and threads. It keeps the effect boundary
as the real cell bridge does, atomically with the effect: a command whose fencing
token is older than one it has seen for the saga is refused, and so is every
command under a key a rollback blocked (probe-and-block). A trajectory runs to its
end inside the call (physics steps, no virtual time passes).

It also counts effects where they happen, physically, by idempotency key:

- a ``robot.move`` took effect when the arm arrived at the step's target; it is
  undone when a command of its compensation leaves the arm back at the joints it
  started from (within 0.02 rad per joint);
- a ``robot.pick`` took effect when the gripper closed on the part; it is undone
  when the part rests again at its station, within 2 cm of where it was picked,
  with the gripper open;
- a ``robot.place`` took effect when the part came to rest at the station; it is
  undone when it is held in the gripper again.

An undo is counted when it turns a standing effect into an undone one, and again
whenever a command under a *different* undo key acts on an effect already undone
(a second compensation that moves, grips or releases): what ``compensation_once``
catches. A forward command that re-creates an effect after its undo (a late or
duplicated command the boundary let through) is counted as a new standing effect.

:class:`RobotLink` is one process' connection to the cells: per cell, a
:class:`~reversa.adapters.robot.RobotCell` over in-process ports
(:class:`ArmPort`, :class:`SafetySensors`, :class:`ToolingPort`), which dies with
the process. Every command is one service call of the schedule (sensor reads are
topics, not calls, and carry no fault): a lost request or reply and a late delivery
are a timeout to the caller (the late command lands three call timeouts later, on
the loop, and runs then unless the boundary refuses it, checked at its arrival:
a trajectory goal too, with no cancel behind it, since a cancel can be lost with
its connection and other transports send none), a duplicate is delivered twice,
and the service faults are a transient refusal, a rejection, or an error after
the command ran.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ....adapters.robot import (
    BlockOutcome,
    CellLayout,
    MotionOutcome,
    RobotCell,
    Stamp,
    ZoneStatus,
)
from ....adapters.robot.scene import PlanningScene
from ....core.errors import Fenced, OutcomeUnknown, PermanentError, TransientError
from ....safety import Joints, joint_distance
from ....simulators.robot import CellWorld, DeviceError
from ....simulators.robot.motion import GoalRejected, advance, start_motion
from ..network import CALL_TIMEOUT_S
from . import Effects

if TYPE_CHECKING:
    from ..network import Network
    from ..process import Process

__all__ = ["AT_POSE_RAD", "CellService", "Intent", "RobotLink"]

AT_POSE_RAD = 0.02
"""How close (per joint) the arm must be to a pose to be at it."""
_AT_SLOT_M = 0.02  # how close a returned part must rest to where it was picked
_STEP_S = 1.0  # simulated seconds of physics per advance() while a trajectory runs


@dataclass(frozen=True, slots=True)
class Intent:
    """What a call under one key is for: the cell's work order, told before the call.

    Attributes:
        saga: The saga.
        step: The step.
        op: The operation (``robot.move``, ``robot.pick``, ``robot.place``).
        undo: Whether the call is a compensation (else the forward action).
        target: The forward call's key (the effect a compensation undoes).
        params: The step's resolved parameters (``to``, ``part``, ``station``...).
    """

    saga: str
    step: str
    op: str
    undo: bool
    target: str
    params: dict[str, str]


class CellService:
    """One saga's cell: the physics world behind a fenced controller, counting effects.

    Args:
        name: The cell's name (its resources are ``<name>/<piece>``).
        world: The simulated cell (reset by the caller).
        log: The pack's effect log, shared by every cell of the schedule.
        declined: Keys whose commands the controller declines (a station interlock):
            the planned business failure of the saga.
    """

    def __init__(self, name: str, world: CellWorld, log: Effects,
                 declined: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.world = world
        self.log = log
        self.declined = declined
        self.intents: dict[str, Intent] = {}
        self._start: dict[str, Joints] = {}  # move: the arm's joints when it first moved
        self._slot: dict[str, tuple[float, ...]] = {}  # pick: where the part rested
        self._undone_by: dict[str, str] = {}  # forward key -> the undo key that undid it
        self._again: dict[str, int] = {}

    def expect(self, intent: Intent, key: str) -> None:
        """Learn what the call under ``key`` is for (before its first command)."""
        self.intents.setdefault(key, intent)

    # -- the boundary -----------------------------------------------------------------------
    def admit(self, command: str, stamp: Stamp) -> None:
        """Refuse a stale epoch or a blocked key (the real controller's check).

        Raises:
            Fenced: Refused; nothing happens, and the refusal is counted.
        """
        try:
            self.world.admit(command, stamp.key, stamp.fence)
        except Fenced:
            self.log.refused += 1
            raise

    # -- commands (each atomic with its check, as the bridge does under its lock) ----------
    def motion(self, path: Sequence[Joints], times: Sequence[float], stamp: Stamp
               ) -> MotionOutcome:
        """Run a fenced trajectory to its end."""
        w = self.world
        with w.lock:
            if stamp.key in self.declined:
                w.refused("motion", stamp.key, stamp.fence, "DECLINED")
                return MotionOutcome("rejected", -1, "the station interlock declines this job")
            try:
                self.admit("motion", stamp)
            except Fenced as exc:
                refusal = "key_blocked" if exc.code == "key_blocked" else "fenced"
                return MotionOutcome("fenced", -1, exc.message, refusal=refusal)
            before = tuple(w.q)
            points = [{"positions": list(q),
                       "time_from_start": {"sec": int(t), "nanosec": round((t % 1) * 1e9)}}
                      for q, t in zip(path, times, strict=True)]
            try:
                running = start_motion(w, {"joint_names": list(w.joint_names),
                                           "points": points})
            except GoalRejected as exc:
                w.refused("motion", stamp.key, stamp.fence, exc.message)
                return MotionOutcome("rejected", exc.code, exc.message)
            w.took_effect("motion", stamp.key, stamp.fence)
            while not advance(w, running, _STEP_S):
                pass
            moved = joint_distance(before, w.q) > AT_POSE_RAD
            self._account(stamp.key, "motion", before, moved)
            return MotionOutcome(running.status, running.error_code, running.error_string)

    def tool(self, command: str, stamp: Stamp) -> dict[str, Any]:
        """Run a gripper command (deduplicated by key and command).

        Raises:
            Fenced: Stale epoch or blocked key.
            PermanentError: The device refused (the interlock, a stop).
        """
        w = self.world
        with w.lock:
            if stamp.key in self.declined:
                w.refused(command, stamp.key, stamp.fence, "DECLINED")
                raise PermanentError("the station interlock declines this job",
                                     code="device_declined")
            before = tuple(w.q)
            slot = {p: w.physics.position(f"part:{p}") for p in w.parts
                    if f"part:{p}" in w.physics.bodies}
            done = len(w.executed.get(stamp.key, ()))
            try:
                self.admit(command, stamp)
                # Admitted above under the same hold of the lock: the device need not
                # check the stamp again (it still deduplicates by key and command).
                reply = w.command(command, stamp.key)
            except DeviceError as exc:
                raise PermanentError(f"{command} failed: {exc.message}",
                                     code=f"device_{exc.code.lower()}") from None
            if len(w.executed.get(stamp.key, ())) > done:  # not a replay: it acted
                self._account(stamp.key, command, before, True, slot)
            return reply

    def block(self, stamp: Stamp) -> BlockOutcome:
        """What ran under ``stamp.key``, or tombstone it (see ``ArmPort.block``)."""
        try:
            return BlockOutcome(tuple(self.world.block(stamp.key, stamp.fence)))
        except Fenced:
            self.log.refused += 1
            raise

    # -- physical effect accounting -----------------------------------------------------
    def _account(self, key: str, command: str, before: Joints, acted: bool,
                 slot: Mapping[str, tuple[float, ...]] | None = None) -> None:
        intent = self.intents.get(key)
        if intent is None:
            return  # a safe-state or other call that is no step's effect
        target = intent.target
        if not intent.undo:
            # Where the effect started from: what its undo must restore.
            if intent.op == "robot.move" and command == "motion":
                self._start.setdefault(target, before)
            part = intent.params.get("part", "")
            if intent.op == "robot.pick" and command == "grip" and slot and part in slot:
                self._slot.setdefault(target, slot[part])
            if self._forward_holds(intent):
                self._applied(target, intent)
            return
        if not acted or target not in self.log.applied or not self._undo_holds(intent):
            return
        first = self._undone_by.setdefault(target, key)
        if self.log.undone[target] == 0 or first != key:
            # Undone now; or, already undone, acted on again under another undo key.
            self.log.undone[target] += 1

    def _applied(self, key: str, intent: Intent) -> None:
        log = self.log
        if key not in log.applied:
            log.applied[key] = (intent.saga, intent.step)
        elif log.undone[key] and not self._again.get(key):
            # It stands again after its undo: a late command the boundary let through.
            self._again[key] = 1
            log.applied[f"{key}#after-undo"] = (intent.saga, intent.step)

    def _forward_holds(self, intent: Intent) -> bool:
        w, p = self.world, intent.params
        if intent.op == "robot.move":
            return joint_distance(w.q, w.layout.pose(p["to"])) <= AT_POSE_RAD
        if intent.op == "robot.pick":
            return w.holding == p["part"]
        if intent.op == "robot.place":
            return w.parts[p["part"]].location == p["station"] and w.holding is None
        return False

    def _undo_holds(self, intent: Intent) -> bool:
        w, p = self.world, intent.params
        if intent.op == "robot.move":
            start = self._start.get(intent.target)
            return start is not None and joint_distance(w.q, start) <= AT_POSE_RAD
        if intent.op == "robot.pick":
            part, slot = p["part"], self._slot.get(intent.target)
            if w.parts[part].location != p["station"] or w.gripper != "open" or slot is None:
                return False
            now = w.physics.position(f"part:{part}")
            return math.dist(now[:2], slot[:2]) <= _AT_SLOT_M
        if intent.op == "robot.place":
            return w.holding == p["part"]
        return False


class RobotLink:
    """A process' connection to the cells of one schedule; it dies with the process.

    Args:
        cells: The schedule's cells by name (looked up when an operation first
            touches one).
        layout: The cells' layout.
        proc: The process.
        network: The simulated network (its fault book and call counter).
    """

    def __init__(self, cells: Callable[[str], CellService], layout: CellLayout,
                 proc: Process, network: Network) -> None:
        self.cells = cells
        self.layout = layout
        self.proc = proc
        self.network = network
        self._robots: dict[str, RobotCell] = {}

    def robot(self, name: str) -> RobotCell:
        """This process' RobotCell for cell ``name`` (its latch and beliefs its own)."""
        robot = self._robots.get(name)
        if robot is None:
            service = self.cells(name)
            robot = RobotCell(self.layout, arm=_Arm(self, service),
                              sensors=_Sensors(self, service), tooling=_Tooling(self, service),
                              clock=self.proc.clock, name=name)
            self._robots[name] = robot
        return robot

    async def pause_point(self, what: str) -> None:
        """Where a pause can hit: before an operation's next command to the cell."""
        proc = self.proc
        proc.check_alive()
        pause = self.network.book.pause_fault(proc, proc.calls + 1)
        if pause is None:
            return
        self.network.book.fired_fault(pause, f"{proc.name} paused before {what}")
        proc.paused_until = asyncio.get_running_loop().time() + float(pause.arg)
        await asyncio.sleep(float(pause.arg))
        proc.check_alive()

    def call(self, what: str, stamp: Stamp, apply: Callable[[], Any], *,
             lost: Callable[[], Any]) -> Any:
        """Send one command through the schedule's faults.

        Args:
            what: The command, for the fault record.
            stamp: Its stamp.
            apply: Delivers it to the cell (raises what the cell answers).
            lost: What the caller gets when no answer comes (returns or raises);
                a late delivery gets it too, and ``apply`` runs when it lands.
        """
        proc, net = self.proc, self.network
        proc.check_alive()
        proc.calls += 1
        net.calls += 1
        book = net.book
        net_fault, injected = book.net_fault(net.calls), book.service_fault(net.calls)
        where = f"{what} of {stamp.fence.saga_id} in its cell"
        for fault in (net_fault, injected):
            if fault is not None:
                book.fired_fault(fault, where)
        kind = net_fault.arg if net_fault is not None else None
        if kind == "lost_request":
            return lost()
        if kind == "late":
            asyncio.get_running_loop().call_later(CALL_TIMEOUT_S * 3, _quietly, apply)
            return lost()
        if injected is not None and injected.arg == "transient":
            raise TransientError(f"{what}: the cell bridge is busy (simulated); nothing ran")
        if injected is not None and injected.arg == "permanent":
            raise PermanentError(f"{what}: the cell bridge rejected it (simulated)",
                                 code="rejected")
        result = apply()
        if kind == "dup":
            net.duplicates += 1
            _quietly(apply)
        if kind == "lost_reply" or (injected is not None and injected.arg == "in_doubt"):
            return lost()
        return result

    def read(self) -> None:
        """A sensor read: a dead process reads nothing."""
        self.proc.check_alive()


def _quietly(apply: Callable[[], Any]) -> None:
    # A delivery nobody waits for: the cell's answer (a refusal included) goes nowhere.
    try:
        apply()
    except (Fenced, PermanentError, TransientError):
        return


def _timeout(what: str) -> Callable[[], MotionOutcome]:
    return lambda: MotionOutcome("timeout", -1, f"no result for {what} in time (simulated)")


def _in_doubt(what: str) -> Callable[[], Any]:
    def lost() -> Any:
        raise OutcomeUnknown(f"{what}: no answer from the cell bridge within "
                             f"{CALL_TIMEOUT_S:g}s; it may have acted")
    return lost


def _unavailable(what: str) -> Callable[[], Any]:
    def lost() -> Any:
        raise TransientError(f"{what}: no answer from the cell bridge (simulated)")
    return lost


class _Arm:
    """ArmPort in-process: trajectories and blocks go through the link's faults."""

    def __init__(self, link: RobotLink, cell: CellService) -> None:
        self.link, self.cell = link, cell

    @property
    def controller(self) -> CellService:
        """The controller behind this port (the tooling's too: blocked once)."""
        return self.cell

    def joints(self) -> Joints:
        self.link.read()
        return tuple(self.cell.world.q)

    def execute(self, path: Sequence[Joints], times: Sequence[float], *, stamp: Stamp,
                timeout: float, abort: Callable[[], bool]) -> MotionOutcome:
        goal = (list(path), list(times))
        result: MotionOutcome = self.link.call(
            "trajectory", stamp, lambda: self.cell.motion(goal[0], goal[1], stamp),
            lost=_timeout("the trajectory"))
        return result

    def block(self, stamp: Stamp) -> BlockOutcome:
        # Blocking again answers the same: a lost answer is a transient failure.
        result: BlockOutcome = self.link.call("block", stamp, lambda: self.cell.block(stamp),
                                              lost=_unavailable("block"))
        return result


class _Tooling:
    """ToolingPort in-process; the gripper sits behind the same controller as the arm."""

    def __init__(self, link: RobotLink, cell: CellService) -> None:
        self.link, self.cell = link, cell

    @property
    def controller(self) -> CellService:
        """The controller these commands reach (blocked once with the arm's)."""
        return self.cell

    def _command(self, command: str, stamp: Stamp) -> dict[str, Any]:
        result: dict[str, Any] = self.link.call(
            command, stamp, lambda: self.cell.tool(command, stamp), lost=_in_doubt(command))
        return result

    def grip(self, stamp: Stamp) -> dict[str, Any]:
        return self._command("grip", stamp)

    def release(self, stamp: Stamp) -> dict[str, Any]:
        return self._command("release", stamp)

    def dispense(self, stamp: Stamp, volume_ul: float) -> dict[str, Any]:
        raise PermanentError("this cell has no dispenser", code="device_unknown")

    def tool_off(self, stamp: Stamp) -> dict[str, Any]:
        return self._command("tool_off", stamp)

    def block(self, stamp: Stamp) -> BlockOutcome:
        result: BlockOutcome = self.link.call("block", stamp, lambda: self.cell.block(stamp),
                                              lost=_unavailable("block"))
        return result

    def status(self) -> dict[str, Any]:
        self.link.read()
        raw = self.cell.world.tooling()
        return {"gripper": raw["gripper"], "object": raw["object"], "tool": raw["tool"]}

    def query(self, key: str) -> dict[str, Any] | None:
        self.link.read()
        return self.cell.world.query(key)


class _Sensors:
    """SafetySensors in-process: the scene, zone and stop read from the world now."""

    def __init__(self, link: RobotLink, cell: CellService) -> None:
        self.link, self.cell = link, cell

    def scene(self) -> PlanningScene:
        self.link.read()
        return self.cell.world.scene()

    def zone(self) -> ZoneStatus:
        self.link.read()
        w = self.cell.world
        return ZoneStatus(w.zone_occupied(), tuple(sorted(w.persons)))

    def estop_active(self) -> bool:
        self.link.read()
        return self.cell.world.stop is not None

    def on_stop(self, listener: Callable[[int, str, str], None]) -> Callable[[], None]:
        # Motions end inside one call, so a stop can only be found latched, never
        # reported mid-motion: report one active now, as the protocol asks.
        stop = self.cell.world.stop
        if stop is not None:
            listener(stop.category, stop.source, stop.reason)
        return _nothing

    def on_zone(self, listener: Callable[[ZoneStatus], None]) -> Callable[[], None]:
        return _nothing


def _nothing() -> None:
    return None
