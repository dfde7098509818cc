"""Domain operations of a pick-and-place cell, each with its real rollback semantics.

Every operation looks the :class:`~.cell.RobotCell` up with
``ctx.service(name, RobotCell)`` (the name defaults to ``"robot"``), reads its
parameters with ``ctx.param`` and sends every command with the call's
:class:`~.ports.Stamp` (idempotency key and fencing token). Compensations are
not mirror images: they re-check the path against the scene read now, move at
the recovery speed, refuse what the process state forbids (re-gripping a pasted
part, un-releasing a part), and treat "nothing to undo" as success so a retried
or in-doubt compensation is harmless. ``block`` tombstones the forward call's
key at the controllers and reports what had run under it there.

Every compensation first seals the forward call's key the same way (see
:meth:`_CellOperation._sealed`): a forward command still in flight (a late
trajectory goal, a retried grip) carries the current epoch, so only the key can
keep it from landing after the compensation and re-creating the effect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from reversa.core.context import Check, Probe, StepContext
from reversa.core.errors import (
    Fenced,
    OutcomeUnknown,
    PermanentError,
    PreconditionFailed,
    StepError,
)
from reversa.core.resources import Resource, Role
from reversa.safety import PASTE_IRREVERSIBLE, Joints, can_regrip, can_return_part

from .cell import RobotCell
from .layout import Station
from .ports import Stamp
from .resources import cell as cell_resource
from .resources import workpiece

__all__ = [
    "ROBOT",
    "ApplyPaste",
    "Inspect",
    "MoveTo",
    "Pick",
    "Place",
    "all_of",
    "budget",
]

ROBOT = "robot"
"""The service name operations look the cell up under unless told otherwise."""


def budget(ctx: StepContext) -> float | None:
    """Seconds left before the call's deadline (in the engine clock's time), if any."""
    if ctx.deadline is None:
        return None
    return ctx.deadline - ctx.clock.now()


def all_of(checks: Iterable[Check], summary: str) -> Check:
    """Combine checks: ok only if every one holds; the reason names each failure."""
    rows = list(checks)
    failed = [c for c in rows if not c.ok]
    detail = {"checks": [{"ok": c.ok, "reason": c.reason, **dict(c.detail)} for c in rows]}
    if failed:
        return Check(False, "; ".join(c.reason for c in failed), detail)
    return Check(True, summary, detail)


def _station(cell: RobotCell, ctx: StepContext) -> Station:
    name = str(ctx.param("station"))
    try:
        return cell.layout.stations[name]
    except KeyError:
        raise PermanentError(f"unknown station {name!r}; known: "
                             f"{', '.join(sorted(cell.layout.stations))}",
                             code="bad_param") from None


class _Call:
    """One call's commands to the cell: stamped with its key and fence, bounded by
    its deadline, labelled with its step."""

    def __init__(self, cell: RobotCell, ctx: StepContext) -> None:
        self.cell = cell
        self.ctx = ctx
        self.stamp = Stamp.of(ctx)

    def move(self, pose: str | Joints, label: str, *, recovery: bool = False) -> dict[str, Any]:
        goal = self.cell.layout.pose(pose) if isinstance(pose, str) else pose
        speed = self.cell.policy.recovery_speed if recovery else self.cell.production_speed
        return self.cell.move(goal, speed=speed, label=f"{self.ctx.step}: {label}",
                              stamp=self.stamp, budget_s=budget(self.ctx), replan=recovery)

    def actuate(self, command: str, **args: Any) -> dict[str, Any]:
        return self.cell.actuate(command, self.stamp, **args)


class _Attempt(_Call):
    """Keeps a multi-motion action's contract: fail without effect, or be in doubt.

    Before the commit point (the grip, release or dispense took effect) a
    refusal retraces the motions made so far and re-raises, so the step really
    had no effect. After it, any failure becomes OutcomeUnknown: the engine then
    blocks or compensates with the same key. Safety signals pass untouched, and
    so does a fencing refusal before the commit point: this process no longer
    owns the saga and must not move the arm again, even to retrace.
    """

    def __init__(self, cell: RobotCell, ctx: StepContext) -> None:
        super().__init__(cell, ctx)
        self.visited: list[Joints] = [cell.joints()]
        self.committed = False

    def go(self, pose: str, label: str) -> None:
        self.move(pose, label)
        self.visited.append(self.cell.layout.pose(pose))

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if not isinstance(exc, StepError):
            return False
        if self.committed:
            raise OutcomeUnknown(f"{self.ctx.step}: failed after its effect took place "
                                 f"({exc.message})") from exc
        if isinstance(exc, OutcomeUnknown | Fenced):
            return False
        try:
            for q in reversed(self.visited[:-1]):
                self.move(q, "retrace a partial motion", recovery=True)
        except StepError as retreat:
            raise OutcomeUnknown(f"{self.ctx.step}: failed ({exc.message}) and could not "
                                 f"retrace its motion ({retreat.message})") from exc
        return False


class _CellOperation:
    """What the cell's operations share: the service name, and the block.

    Args:
        service: The name the RobotCell is registered under in the engine's
            services.
    """

    name = "robot.operation"

    def __init__(self, service: str = ROBOT) -> None:
        self.service = service

    def _cell(self, ctx: StepContext) -> RobotCell:
        return ctx.service(self.service, RobotCell)

    def resources(self, ctx: StepContext) -> list[Resource]:
        """The cell (touched: held while a saga that used it is rolling back or
        escalated) and the work pieces of :meth:`_pieces`."""
        return [cell_resource(self._cell(ctx).name), *self._pieces(ctx)]

    def _pieces(self, ctx: StepContext) -> list[Resource]:
        return []

    def _sealed(self, ctx: StepContext) -> RobotCell:
        """The cell, once the forward call's key is blocked at every controller.

        Called first by every compensation that acts: from here on nothing under
        the forward key may land, so a forward command still in flight cannot undo
        the compensation behind its back. Blocking again (a retried compensation,
        or after the rollback's own ``block``) answers the same.
        """
        cell = self._cell(ctx)
        cell.block(Stamp.forward(ctx))
        return cell

    def block(self, ctx: StepContext) -> Probe:
        """Tombstone the forward call's key at the controllers; any command that had run
        under it (a motion is enough) counts as happened, and the compensation, which
        tolerates a partial effect, then runs."""
        outcome = self._cell(ctx).block(Stamp.forward(ctx))
        return Probe.HAPPENED if outcome.happened else Probe.NOT_HAPPENED


class MoveTo(_CellOperation):
    """Move the arm to a named pose; compensation moves it back to ``back``.

    Params: ``to`` (pose name), ``back`` (pose the compensation returns to).
    """

    name = "robot.move"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Move along a checked path at production speed."""
        target = str(ctx.param("to"))
        moved = _Call(self._cell(ctx), ctx).move(target, f"move to {target}")
        return {"pose": target, "from": moved["from"], "moved": moved["moved"]}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Move back along a path re-checked now (planned around an obstacle if the
        straight reverse is blocked), at the recovery speed."""
        back = str(ctx.param("back"))
        moved = _Call(self._sealed(ctx), ctx).move(back, f"reverse to {back}", recovery=True)
        return {"pose": back, "outcome": "reversed" if moved["moved"] else "nothing_to_undo",
                "route": moved["route"], "waypoints": moved["waypoints"]}

    def preconditions(self, ctx: StepContext) -> Check:
        """A safe path ``to -> back`` exists in the scene read now: the straight reverse,
        or a path planned around what blocks it."""
        cell = self._cell(ctx)
        to, back = str(ctx.param("to")), str(ctx.param("back"))
        return cell.check_motion(cell.layout.pose(to), cell.layout.pose(back),
                                 label=f"reverse path {to} -> {back}", replan=True)

    def probe(self, ctx: StepContext) -> Probe:
        """At the target: happened; at the start pose: not; anywhere else: unknown."""
        here = self._cell(ctx).pose_name()
        if here == ctx.param("to"):
            return Probe.HAPPENED
        if here == ctx.param("back"):
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class Pick(_CellOperation):
    """Pick a part from a station; compensation puts it back and returns the arm.

    Params: ``part``, ``station``, ``back`` (pose the compensation ends at).
    """

    name = "robot.pick"

    def _pieces(self, ctx: StepContext) -> list[Resource]:
        # Taking the part uses what another saga may have put there.
        return [workpiece(self._cell(ctx).name, ctx.param("part"), Role.CONSUMES)]

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approach, descend, grip, verify the part is held, lift."""
        cell = self._cell(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        with _Attempt(cell, ctx) as attempt:
            attempt.go(station.approach_pose, f"approach {station.name}")
            attempt.go(station.grasp_pose, f"descend to {part}")
            reply = attempt.actuate("grip")
            held = cell.tooling_status().holding if reply.get("object") else None
            if held != part:
                # Closed on nothing (or on something else): open again; the attempt
                # then retraces its motion.
                attempt.actuate("release")
                raise PermanentError(f"{ctx.step}: no part {part} at {station.name} "
                                     f"(gripper closed on {held or 'nothing'})")
            attempt.committed = True
            cell.belief(ctx.saga_id).parts[part] = "gripper"
            attempt.go(station.approach_pose, f"lift {part}")
        return {"part": part, "station": station.name}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Put the part back where it was picked, then return to ``back``."""
        cell = self._sealed(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        status, tooling = cell.part(part), cell.tooling_status()
        check = can_return_part(status, tooling, station.name)
        if not check.ok:
            raise PreconditionFailed(f"{ctx.step}: {check.reason}", details=dict(check.detail))
        if status.location != station.name and tooling.holding != part:
            raise PreconditionFailed(f"{ctx.step}: part {part} is at {status.location!r} and "
                                     "not held; it must be re-gripped before it can go back")
        call = _Call(cell, ctx)
        outcome = "nothing_to_undo"
        if status.location != station.name:
            if cell.pose_name() != station.grasp_pose:  # a retry may find it already down
                call.move(station.approach_pose, f"approach {station.name} to return {part}",
                          recovery=True)
            call.move(station.grasp_pose, f"lower {part} into {station.name}", recovery=True)
            call.actuate("release")
            call.move(station.approach_pose, f"lift from {station.name}", recovery=True)
            outcome = "returned"
        # Also on a retry after a lost reply: the part is back, whoever put it there.
        cell.belief(ctx.saga_id).parts[part] = station.name
        back = str(ctx.param("back", station.approach_pose))
        call.move(back, f"return to {back}", recovery=True)
        return {"part": part, "outcome": outcome}

    def preconditions(self, ctx: StepContext) -> Check:
        """The part can go back (tooling/process rules) along a safe path."""
        cell = self._cell(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        scene = cell.scene()
        rules = can_return_part(cell.part(part, scene), cell.tooling_status(), station.name)
        path = cell.check_motion(cell.layout.pose(station.approach_pose),
                                 cell.layout.pose(station.grasp_pose), scene=scene,
                                 label=f"path down to {station.name}")
        return all_of([rules, path], f"part {part} can be returned to {station.name}")

    def probe(self, ctx: StepContext) -> Probe:
        """Held: the pick happened; resting at its station: it did not."""
        cell = self._cell(ctx)
        part = str(ctx.param("part"))
        if cell.tooling_status().holding == part:
            return Probe.HAPPENED
        if cell.part(part).location == ctx.param("station"):
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class Place(_CellOperation):
    """Place the held part on a station; compensation re-grips it (if the process allows).

    Params: ``part``, ``station``.
    """

    name = "robot.place"

    def _pieces(self, ctx: StepContext) -> list[Resource]:
        # The placed part is what a later pick (of another saga) takes.
        return [workpiece(self._cell(ctx).name, ctx.param("part"), Role.PRODUCES)]

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approach, descend, release, lift."""
        cell = self._cell(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        with _Attempt(cell, ctx) as attempt:
            attempt.go(station.approach_pose, f"approach {station.name}")
            attempt.go(station.grasp_pose, f"lower {part} onto {station.name}")
            attempt.actuate("release")
            attempt.committed = True
            cell.belief(ctx.saga_id).parts[part] = station.name
            attempt.go(station.approach_pose, f"lift from {station.name}")
        return {"part": part, "station": station.name}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Re-grip the part and lift it, unless the process state forbids it."""
        cell = self._sealed(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        status = cell.part(part)
        check = can_regrip(status)
        if not check.ok:
            raise PreconditionFailed(f"{ctx.step}: {check.reason}", details=dict(check.detail))
        if status.location == "gripper":
            cell.belief(ctx.saga_id).parts[part] = "gripper"
            return {"part": part, "outcome": "nothing_to_undo"}
        call = _Call(cell, ctx)
        call.move(station.approach_pose, f"approach {part} on {station.name}", recovery=True)
        call.move(station.grasp_pose, f"descend to {part}", recovery=True)
        reply = call.actuate("grip")
        held = cell.tooling_status().holding if reply.get("object") else None
        if held != part:
            raise PermanentError(f"{ctx.step}: re-grip of {part} failed (holding "
                                 f"{held or 'nothing'})")
        cell.belief(ctx.saga_id).parts[part] = "gripper"
        call.move(station.approach_pose, f"lift {part}", recovery=True)
        return {"part": part, "outcome": "regripped"}

    def preconditions(self, ctx: StepContext) -> Check:
        """The part can be re-gripped (no paste, known pose) along a safe path."""
        cell = self._cell(ctx)
        station = _station(cell, ctx)
        part = str(ctx.param("part"))
        scene = cell.scene()
        status = cell.part(part, scene)
        rule = can_regrip(status)
        if not rule.ok and rule.detail.get("rule") == "paste":
            irreversible = _irreversible_steps(ctx, "solder_paste")
            if irreversible:
                rule = Check(False, f"{rule.reason}; the paste was applied by irreversible "
                             f"step {', '.join(repr(s) for s in irreversible)}",
                             {**dict(rule.detail), "irreversible_steps": irreversible})
        path = cell.check_motion(cell.layout.pose(station.approach_pose),
                                 cell.layout.pose(station.grasp_pose), scene=scene,
                                 label=f"path down to {part}")
        return all_of([rule, path], f"part {part} can be re-gripped at {station.name}")

    def probe(self, ctx: StepContext) -> Probe:
        """Resting at the station: placed; still held: not placed."""
        cell = self._cell(ctx)
        part = str(ctx.param("part"))
        if cell.part(part).location == ctx.param("station"):
            return Probe.HAPPENED
        if cell.tooling_status().holding == part:
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class ApplyPaste(_CellOperation):
    """Dispense solder paste on a board: irreversible (declare a forward recovery).

    Params: ``board``, ``pose`` (dispensing pose), ``volume_ul``.
    """

    name = "robot.apply_paste"

    def _pieces(self, ctx: StepContext) -> list[Resource]:
        return [workpiece(self._cell(ctx).name, ctx.param("board"), Role.PRODUCES)]

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Move over the board and dispense."""
        cell = self._cell(ctx)
        pose = str(ctx.param("pose", "board_above"))
        volume = float(ctx.param("volume_ul", 5.0))
        with _Attempt(cell, ctx) as attempt:
            attempt.go(pose, f"move to {pose}")
            attempt.actuate("dispense", volume_ul=volume)
        return {"process": "solder_paste", "irreversible": True,
                "board": str(ctx.param("board")), "volume_ul": volume}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """There is none: declare the step irreversible with a forward recovery.

        The key is sealed first all the same: a dispense still in flight must not
        land after the rollback has decided what to do about the step."""
        self._sealed(ctx)
        raise PermanentError(f"{ctx.step}: {PASTE_IRREVERSIBLE}; declare "
                             "reversibility=IRREVERSIBLE with forward_recovery or escalation")

    def probe(self, ctx: StepContext) -> Probe:
        """Ask the dispenser whether the dispense under the forward call's key ran."""
        ran = self._cell(ctx).tooling.query(ctx.action_key)
        return Probe.HAPPENED if ran and "dispense" in ran.get("commands", ()) \
            else Probe.NOT_HAPPENED

    def block(self, ctx: StepContext) -> Probe:
        """Happened only if the paste was dispensed: the approach motion alone changed
        nothing irreversible, so a step whose dispense is now blocked is recorded as
        never having happened (no rework needed). A dispense that ran keeps the
        step's forward recovery or escalation."""
        outcome = self._cell(ctx).block(Stamp.forward(ctx))
        return Probe.HAPPENED if "dispense" in outcome.executed else Probe.NOT_HAPPENED


class Inspect(_CellOperation):
    """Trigger the optical inspection of a board. It changes nothing physical.

    Params: ``board``.
    """

    name = "robot.inspect"

    def _pieces(self, ctx: StepContext) -> list[Resource]:
        return [workpiece(self._cell(ctx).name, ctx.param("board"), Role.TOUCHES)]

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Trigger the camera; a failed inspection is a permanent failure."""
        cell = self._cell(ctx)
        camera = cell.require("camera", cell.camera)
        board = str(ctx.param("board"))
        result = dict(camera.inspect(Stamp.of(ctx), board))
        if not result.get("passed", False):
            raise PermanentError(f"{ctx.step}: board {board} failed inspection: "
                                 f"{result.get('defects')}")
        return {"board": board, "passed": True}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Nothing to undo: an inspection only reads (so there is no key to seal)."""
        return {"outcome": "nothing_to_undo"}


def _irreversible_steps(ctx: StepContext, process: str) -> list[str]:
    return sorted(
        name for name, result in ctx.results.items()
        if isinstance(result, Mapping) and result.get("process") == process
        and result.get("irreversible")
    )
