"""Safe state, forward recovery, snapshot and consistency predicate of a robot cell.

When the dry-run finds the full rollback infeasible, the engine runs the saga's
``safe_state`` action: :func:`drive_to_safe_state` switches the tool off, drives
the arm to the nearest *reachable* declared safe state along a collision-checked
path at the recovery speed (or holds it where it is if nothing is reachable or
a person is in the zone), opens an empty gripper, and returns a state report.
With ``on_infeasible=FORWARD_RECOVERY`` the irreversible step's recovery
(:func:`route_to_rework`) then completes the workflow another way.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from reversa.core.context import Check, PredicateContext, SnapshotContext, StepContext
from reversa.core.errors import PermanentError, PreconditionFailed, StepError
from reversa.safety import Joints, SafeState, joint_distance, tooling_matches

from .cell import RobotCell
from .operations import ROBOT, all_of, budget
from .ports import Stamp

__all__ = [
    "cell_predicate",
    "cell_snapshot",
    "drive_to_safe_state",
    "reach_safe_state",
    "route_to_rework",
    "state_report",
]


def drive_to_safe_state(ctx: StepContext, *, service: str = ROBOT) -> dict[str, Any]:
    """The saga's ``safe_state`` action (register it with ``registry.action``).

    Every command carries this call's stamp (its key and the saga's fence).

    Returns:
        A state report: the safe state reached, the route and its check, every
        candidate tried, arm, tooling, parts, boards, zone, stops, notes.

    Raises:
        EmergencyStop: A safety stop is latched or happens on the way.
        PermanentError: No declared safe state is reachable along a safe path;
            the arm was held where it is (the message carries the report).
    """
    cell = ctx.service(service, RobotCell)
    reached, tried, notes = reach_safe_state(cell, Stamp.of(ctx), budget(ctx))
    report = state_report(cell)
    report.update(reached=reached.name if reached else None, tried=tried, notes=notes,
                  recovery_speed=cell.policy.recovery_speed,
                  resolution_rad=cell.policy.path_resolution)
    if reached is None:
        why = "; ".join(notes) or "every candidate route collides"
        where = report["arm"]["pose"] or report["arm"]["joints"]
        raise PermanentError(
            f"no declared safe state is reachable along a collision-free path; the arm is held "
            f"at {where} ({why}) and a human must take over", details=report)
    return report


def reach_safe_state(
    cell: RobotCell, stamp: Stamp, budget_s: float | None
) -> tuple[SafeState | None, list[dict[str, Any]], list[str]]:
    """Tool off, then the nearest declared safe state reachable along a checked path.

    ``stamp`` goes with every command (the calling step's key and fence).

    Returns:
        The safe state reached (None: the arm was held where it is), every
        candidate route tried with its check, and notes for the report.
    """
    notes: list[str] = []
    try:
        cell.actuate("tool_off", stamp)
    except StepError as exc:
        notes.append(f"tool off failed: {exc.message}")
    cell.latch.raise_if_tripped()
    start = cell.joints()
    scene = cell.scene()
    zone = cell.check_zone(scene)
    tried: list[dict[str, Any]] = []
    if not zone.ok:
        notes.append(f"arm held in place (category 2 hold): {zone.reason}")
        return None, tried, notes
    for state in cell.policy.by_distance(start):
        for route, legs in _routes(start, state):
            checks = [cell.path(a, b, scene) for a, b in pairwise(legs)]
            ok = all(c.ok for c in checks)
            tried.append({"state": state.name, "route": route, "ok": ok,
                          "reason": "; ".join(c.reason for c in checks if not c.ok)
                          or checks[-1].reason})
            if ok:
                for goal in legs[1:]:
                    cell.move(goal, speed=cell.policy.recovery_speed, stamp=stamp,
                              label=f"safe state {state.name} ({route})", budget_s=budget_s)
                notes += _settle_gripper(cell, state, stamp)
                return state, tried, notes
    return None, tried, notes


def _routes(start: Joints, state: SafeState) -> list[tuple[str, list[Joints]]]:
    # Direct joint-space line first; then "retract first": reach the safe state's
    # arm shape above the current base angle, then rotate the base.
    direct: list[Joints] = [start, state.joints]
    retract = (start[0], *state.joints[1:])
    routes = [("direct", direct)]
    if joint_distance(retract, start) > 1e-3 and joint_distance(retract, state.joints) > 1e-3:
        routes.append(("retract-then-rotate", [start, retract, state.joints]))
    return routes


def _settle_gripper(cell: RobotCell, state: SafeState, stamp: Stamp) -> list[str]:
    tooling = cell.tooling_status()
    if state.gripper.value == "open" and tooling.gripper.value != "open":
        if tooling.holding:
            return [f"part {tooling.holding} kept in the closed gripper: opening it here "
                    "would drop it"]
        cell.actuate("release", stamp)
    return []


def state_report(cell: RobotCell) -> dict[str, Any]:
    """What the cell's sensors report now (for escalations and snapshots)."""
    q = cell.joints()
    scene = cell.scene()
    tooling = cell.tooling_status()
    zone = cell.sensors.zone()
    return {
        "arm": {"joints": [round(v, 4) for v in q], "pose": cell.pose_name(q)},
        "tooling": {"gripper": tooling.gripper.value, "holding": tooling.holding,
                    "tool": tooling.tool.value},
        "parts": {p.part: {"location": p.location, "pasted": p.pasted, "damaged": p.damaged}
                  for p in scene.parts},
        "boards": {b.board: {"location": b.location, "pasted": b.pasted,
                             "components": list(b.components)} for b in scene.boards},
        "obstacles": sorted(b.id for b in scene.boxes if b.kind == "obstacle"),
        "zone": {"occupied": zone.occupied, "persons": list(zone.persons)},
        "stops": [e.as_dict() for e in cell.latch.events],
    }


def route_to_rework(ctx: StepContext, *, service: str = ROBOT) -> dict[str, Any]:
    """Forward recovery of an irreversible paste step: send the board to rework.

    Reads the irreversible step's params (``board``). The arm must be at a
    declared safe state, clear of the board, before the conveyor moves it.
    """
    cell = ctx.service(service, RobotCell)
    conveyor = cell.require("conveyor", cell.conveyor)
    board = str(ctx.param("board"))
    stamp = Stamp.of(ctx)
    q = cell.joints()
    if not any(s.arm_at(q).ok for s in cell.policy.safe_states):
        # The conveyor must not pull the board out from under the arm.
        reached, _, notes = reach_safe_state(cell, stamp, budget(ctx))
        if reached is None:
            raise PreconditionFailed(
                f"arm is at {cell.pose_name(q) or 'an undeclared pose'} and cannot reach a "
                f"declared safe state ({'; '.join(notes) or 'no collision-free route'}); "
                f"board {board} cannot be moved out from under it")
    reply = conveyor.route(stamp, board, "rework")
    belief = cell.belief(ctx.saga_id)
    belief.boards[board] = "rework"
    for part, location in list(belief.parts.items()):
        if location == "board":
            belief.parts[part] = "rework"
    return {"board": board, "location": reply.get("location", "rework"), "route": "rework"}


def cell_snapshot(ctx: SnapshotContext, *, service: str = ROBOT) -> dict[str, Any]:
    """The state a cell saga touches; the first call also starts its world model."""
    cell = ctx.service(service, RobotCell)
    cell.belief(ctx.saga_id)
    report = state_report(cell)
    report["stop_latched"] = cell.latch.tripped
    del report["stops"]
    return report


def cell_predicate(ctx: PredicateContext, *, service: str = ROBOT) -> Check:
    """Arm at a declared safe state (or its pre-workflow pose), tooling as declared,
    the world model matching the sensors, no stop latched."""
    cell = ctx.service(service, RobotCell)
    q = cell.joints()
    tooling = cell.tooling_status()
    scene = cell.scene()
    checks: list[Check] = []
    states = [s for s in cell.policy.safe_states if s.arm_at(q).ok]
    pre = (ctx.pre_state or {}).get("arm", {})
    pre_q = pre.get("joints")
    if states:
        checks.append(Check(True, f"arm at declared safe state {states[0].name!r}"))
        checks += tooling_matches(states[0], tooling)
    elif pre_q is not None and joint_distance(pre_q, q) <= 0.01:
        checks.append(Check(True, "arm back at its pre-workflow pose"))
        before = (ctx.pre_state or {}).get("tooling", {})
        now = {"gripper": tooling.gripper.value, "holding": tooling.holding,
               "tool": tooling.tool.value}
        checks.append(Check(before == now, f"tooling {now} (before the workflow: {before})"))
    else:
        checks.append(Check(False, f"arm at {cell.pose_name(q) or [round(v, 3) for v in q]} is "
                                   "neither at a declared safe state nor at its pre-workflow "
                                   "pose"))
    belief = cell.belief(ctx.saga_id)
    sensed = {**{f"part:{p.part}": p.location for p in scene.parts},
              **{f"board:{b.board}": b.location for b in scene.boards}}
    believed = {**{f"part:{k}": v for k, v in belief.parts.items()},
                **{f"board:{k}": v for k, v in belief.boards.items()}}
    mismatch = {k: {"model": v, "sensors": sensed.get(k, "missing")}
                for k, v in believed.items() if sensed.get(k) != v}
    attached = scene.attached.id if scene.attached else None
    checks.append(Check(attached == tooling.holding,
                        "gripper and scene agree on the held part" if attached == tooling.holding
                        else f"gripper reports {tooling.holding!r} held, the scene {attached!r}"))
    checks.append(Check(not mismatch,
                        "world model matches the sensors" if not mismatch else
                        f"world model disagrees with the sensors: {mismatch}",
                        {"mismatch": mismatch}))
    checks.append(Check(not cell.latch.tripped, "no safety stop latched" if not cell.latch.tripped
                        else "a safety stop is latched"))
    return all_of(checks, "arm at a declared safe state, tooling as declared, world model "
                          "matches the sensors")
