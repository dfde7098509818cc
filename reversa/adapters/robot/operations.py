"""Domain operations of a pick-and-place cell, each with its real rollback semantics.

Every operation gets the :class:`~.cell.RobotCell` from ``ctx.services["robot"]``.
Compensations are not mirror images: they re-check the path against the scene
read now, move at the recovery speed, refuse what the process state forbids
(re-gripping a pasted part, un-releasing a part), and treat "nothing to undo"
as success so a retried or in-doubt compensation is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from reversa.core.context import Check, Probe, StepContext
from reversa.core.errors import OutcomeUnknown, PermanentError, PreconditionFailed, StepError
from reversa.safety import PASTE_IRREVERSIBLE, Joints, can_regrip, can_return_part

from .cell import RobotCell
from .layout import Station

__all__ = [
    "ApplyPaste",
    "Inspect",
    "MoveTo",
    "Pick",
    "Place",
    "all_of",
    "budget",
    "cell_of",
]


def cell_of(ctx: Any) -> RobotCell:
    """The RobotCell handed to the engine as ``services["robot"]``."""
    cell = ctx.services.get("robot")
    if not isinstance(cell, RobotCell):
        raise PermanentError(
            "no RobotCell in the engine's services; create the engine with "
            "Engine(..., services={'robot': RobotCell(...)})")
    return cell


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


def _station(cell: RobotCell, params: Mapping[str, Any]) -> Station:
    name = str(params["station"])
    try:
        return cell.layout.stations[name]
    except KeyError:
        raise PermanentError(f"unknown station {name!r}; known: "
                             f"{', '.join(sorted(cell.layout.stations))}") from None


def _recovery(cell: RobotCell) -> float:
    return cell.policy.recovery_speed


class _Attempt:
    """Keeps a multi-motion action's contract: fail without effect, or be in doubt.

    Before the commit point (the grip, release or dispense took effect) a
    refusal retraces the motions made so far and re-raises, so the step really
    had no effect. After it, any failure becomes OutcomeUnknown: the engine then
    probes or compensates with the same key. Safety signals pass untouched.
    """

    def __init__(self, cell: RobotCell, ctx: StepContext) -> None:
        self.cell = cell
        self.ctx = ctx
        self.visited: list[Joints] = [cell.joints()]
        self.committed = False

    def move(self, pose: str, label: str) -> None:
        goal = self.cell.layout.pose(pose)
        self.cell.move(goal, speed=self.cell.production_speed, label=f"{self.ctx.step}: {label}",
                       budget_s=budget(self.ctx))
        self.visited.append(goal)

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if not isinstance(exc, StepError):
            return False
        if self.committed:
            raise OutcomeUnknown(f"{self.ctx.step}: failed after its effect took place "
                                 f"({exc.message})") from exc
        if isinstance(exc, OutcomeUnknown):
            return False
        try:
            for q in reversed(self.visited[:-1]):
                self.cell.move(q, speed=_recovery(self.cell), budget_s=budget(self.ctx),
                               label=f"{self.ctx.step}: retrace a partial motion")
        except StepError as retreat:
            raise OutcomeUnknown(f"{self.ctx.step}: failed ({exc.message}) and could not "
                                 f"retrace its motion ({retreat.message})") from exc
        return False


class MoveTo:
    """Move the arm to a named pose; compensation moves it back to ``params["back"]``.

    Params: ``to`` (pose name), ``back`` (pose the compensation returns to).
    """

    name = "robot.move"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Move along a checked path at production speed."""
        cell = cell_of(ctx)
        target = str(ctx.params["to"])
        moved = cell.move(cell.layout.pose(target), speed=cell.production_speed,
                          label=f"{ctx.step}: move to {target}", budget_s=budget(ctx))
        return {"pose": target, "from": moved["from"], "moved": moved["moved"]}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Move back along a path re-checked now, at the recovery speed."""
        cell = cell_of(ctx)
        back = str(ctx.params["back"])
        moved = cell.move(cell.layout.pose(back), speed=_recovery(cell),
                          label=f"{ctx.step}: reverse to {back}", budget_s=budget(ctx))
        return {"pose": back, "outcome": "reversed" if moved["moved"] else "nothing_to_undo"}

    def preconditions(self, ctx: StepContext) -> Check:
        """The reverse path ``to -> back`` is safe in the scene read now."""
        cell = cell_of(ctx)
        start = cell.layout.pose(str(ctx.params["to"]))
        back = cell.layout.pose(str(ctx.params["back"]))
        return cell.check_motion(start, back, label=f"reverse path {ctx.params['to']} -> "
                                                    f"{ctx.params['back']}")

    def probe(self, ctx: StepContext) -> Probe:
        """At the target: happened; at the start pose: not; anywhere else: unknown."""
        cell = cell_of(ctx)
        here = cell.pose_name()
        if here == ctx.params["to"]:
            return Probe.HAPPENED
        if here == ctx.params["back"]:
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class Pick:
    """Pick a part from a station; compensation puts it back and returns the arm.

    Params: ``part``, ``station``, ``back`` (pose the compensation ends at).
    """

    name = "robot.pick"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approach, descend, grip, verify the part is held, lift."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
        with _Attempt(cell, ctx) as attempt:
            attempt.move(station.approach_pose, f"approach {station.name}")
            attempt.move(station.grasp_pose, f"descend to {part}")
            reply = cell.actuate("grip", ctx.idempotency_key)
            if reply.get("holding") != part:
                # Closed on nothing: open again; the attempt then retraces its motion.
                cell.actuate("release", ctx.idempotency_key + "/undo")
                raise PermanentError(f"{ctx.step}: no part {part} at {station.name} "
                                     f"(gripper closed on {reply.get('holding') or 'nothing'})")
            attempt.committed = True
            cell.belief(ctx.saga_id).parts[part] = "gripper"
            attempt.move(station.approach_pose, f"lift {part}")
        return {"part": part, "station": station.name}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Put the part back where it was picked, then return to ``back``."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
        status, tooling = cell.part(part), cell.tooling_status()
        check = can_return_part(status, tooling, station.name)
        if not check.ok:
            raise PreconditionFailed(f"{ctx.step}: {check.reason}", details=dict(check.detail))
        if status.location != station.name and tooling.holding != part:
            raise PreconditionFailed(f"{ctx.step}: part {part} is at {status.location!r} and "
                                     "not held; it must be re-gripped before it can go back")
        speed = _recovery(cell)
        outcome = "nothing_to_undo"
        if status.location != station.name:
            if cell.pose_name() != station.grasp_pose:  # a retry may find it already down
                cell.move(cell.layout.pose(station.approach_pose), speed=speed,
                          label=f"{ctx.step}: approach {station.name} to return {part}",
                          budget_s=budget(ctx))
            cell.move(cell.layout.pose(station.grasp_pose), speed=speed,
                      label=f"{ctx.step}: lower {part} into {station.name}",
                      budget_s=budget(ctx))
            cell.actuate("release", ctx.idempotency_key)
            cell.move(cell.layout.pose(station.approach_pose), speed=speed,
                      label=f"{ctx.step}: lift from {station.name}", budget_s=budget(ctx))
            outcome = "returned"
        # Also on a retry after a lost reply: the part is back, whoever put it there.
        cell.belief(ctx.saga_id).parts[part] = station.name
        back = str(ctx.params.get("back", station.approach_pose))
        cell.move(cell.layout.pose(back), speed=speed, label=f"{ctx.step}: return to {back}",
                  budget_s=budget(ctx))
        return {"part": part, "outcome": outcome}

    def preconditions(self, ctx: StepContext) -> Check:
        """The part can go back (tooling/process rules) along a safe path."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
        scene = cell.scene()
        rules = can_return_part(cell.part(part, scene), cell.tooling_status(), station.name)
        path = cell.check_motion(cell.layout.pose(station.approach_pose),
                                 cell.layout.pose(station.grasp_pose), scene=scene,
                                 label=f"path down to {station.name}")
        return all_of([rules, path], f"part {part} can be returned to {station.name}")

    def probe(self, ctx: StepContext) -> Probe:
        """Held: the pick happened; resting at its station: it did not."""
        cell = cell_of(ctx)
        part = str(ctx.params["part"])
        if cell.tooling_status().holding == part:
            return Probe.HAPPENED
        if cell.part(part).location == ctx.params["station"]:
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class Place:
    """Place the held part on a station; compensation re-grips it (if the process allows).

    Params: ``part``, ``station``.
    """

    name = "robot.place"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Approach, descend, release, lift."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
        with _Attempt(cell, ctx) as attempt:
            attempt.move(station.approach_pose, f"approach {station.name}")
            attempt.move(station.grasp_pose, f"lower {part} onto {station.name}")
            cell.actuate("release", ctx.idempotency_key)
            attempt.committed = True
            cell.belief(ctx.saga_id).parts[part] = station.name
            attempt.move(station.approach_pose, f"lift from {station.name}")
        return {"part": part, "station": station.name}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Re-grip the part and lift it, unless the process state forbids it."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
        status = cell.part(part)
        check = can_regrip(status)
        if not check.ok:
            raise PreconditionFailed(f"{ctx.step}: {check.reason}", details=dict(check.detail))
        if status.location == "gripper":
            cell.belief(ctx.saga_id).parts[part] = "gripper"
            return {"part": part, "outcome": "nothing_to_undo"}
        speed = _recovery(cell)
        cell.move(cell.layout.pose(station.approach_pose), speed=speed,
                  label=f"{ctx.step}: approach {part} on {station.name}", budget_s=budget(ctx))
        cell.move(cell.layout.pose(station.grasp_pose), speed=speed,
                  label=f"{ctx.step}: descend to {part}", budget_s=budget(ctx))
        reply = cell.actuate("grip", ctx.idempotency_key)
        if reply.get("holding") != part:
            raise PermanentError(f"{ctx.step}: re-grip of {part} failed (holding "
                                 f"{reply.get('holding') or 'nothing'})")
        cell.belief(ctx.saga_id).parts[part] = "gripper"
        cell.move(cell.layout.pose(station.approach_pose), speed=speed,
                  label=f"{ctx.step}: lift {part}", budget_s=budget(ctx))
        return {"part": part, "outcome": "regripped"}

    def preconditions(self, ctx: StepContext) -> Check:
        """The part can be re-gripped (no paste, known pose) along a safe path."""
        cell = cell_of(ctx)
        station = _station(cell, ctx.params)
        part = str(ctx.params["part"])
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
        cell = cell_of(ctx)
        part = str(ctx.params["part"])
        if cell.part(part).location == ctx.params["station"]:
            return Probe.HAPPENED
        if cell.tooling_status().holding == part:
            return Probe.NOT_HAPPENED
        return Probe.UNKNOWN


class ApplyPaste:
    """Dispense solder paste on a board: irreversible (declare a forward recovery).

    Params: ``board``, ``pose`` (dispensing pose), ``volume_ul``.
    """

    name = "robot.apply_paste"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Move over the board and dispense."""
        cell = cell_of(ctx)
        pose = str(ctx.params.get("pose", "board_above"))
        volume = float(ctx.params.get("volume_ul", 5.0))
        with _Attempt(cell, ctx) as attempt:
            attempt.move(pose, f"move to {pose}")
            cell.actuate("dispense", ctx.idempotency_key, volume_ul=volume)
        return {"process": "solder_paste", "irreversible": True,
                "board": str(ctx.params["board"]), "volume_ul": volume}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """There is none: declare the step irreversible with a forward recovery."""
        raise PermanentError(f"{ctx.step}: {PASTE_IRREVERSIBLE}; declare "
                             "reversibility=IRREVERSIBLE with forward_recovery or escalation")

    def probe(self, ctx: StepContext) -> Probe:
        """Ask the dispenser whether the command with this key ran."""
        reply = cell_of(ctx).tooling.query(ctx.idempotency_key)
        return Probe.HAPPENED if reply is not None else Probe.NOT_HAPPENED


class Inspect:
    """Trigger the optical inspection of a board. It changes nothing physical.

    Params: ``board``.
    """

    name = "robot.inspect"

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Trigger the camera; a failed inspection is a permanent failure."""
        cell = cell_of(ctx)
        camera = cell.require("camera", cell.camera)
        board = str(ctx.params["board"])
        result = dict(camera.inspect(board))
        if not result.get("passed", False):
            raise PermanentError(f"{ctx.step}: board {board} failed inspection: "
                                 f"{result.get('defects')}")
        return {"board": board, "passed": True}

    def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Nothing to undo: an inspection only reads."""
        return {"outcome": "nothing_to_undo"}


def _irreversible_steps(ctx: StepContext, process: str) -> list[str]:
    return sorted(
        name for name, result in ctx.results.items()
        if isinstance(result, Mapping) and result.get("process") == process
        and result.get("irreversible")
    )
