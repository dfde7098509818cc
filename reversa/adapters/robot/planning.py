"""Collision-free paths around obstacles, planned with OMPL (RRTConnect plus shortcutting).

Used when the straight joint-space reverse of a motion is blocked in the scene
read now (an obstacle placed after the forward motion, a part left in the way):
the planner searches joint space for a path to the same goal, the path is
shortened (OMPL's simplifier: shortcutting, vertex reduction), and then every
segment is verified by the same continuous check as a straight motion. Planning
keeps a margin above the collision tolerance, so a planned path passes that
verification; if it does not, planning is repeated with a finer motion
resolution until the time budget is spent. No path within the budget is an
answer too: the caller escalates with the reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from ompl import base as ob
from ompl import geometric as og
from ompl import util as ou

from reversa.safety import Joints

from .collision import PathReport, PreparedScene

__all__ = ["PLANNER", "plan_path"]

PLANNER = "OMPL RRTConnect + simplifier"

ou.setLogLevel(ou.LogLevel.LOG_ERROR)

_MARGIN = 0.01  # m of clearance the planner keeps (the check's tolerance is smaller)
_RESOLUTION = 0.005  # fraction of the space's extent between discrete motion checks


def plan_path(
    prepared: PreparedScene,
    start: Sequence[float],
    goal: Sequence[float],
    *,
    time_s: float,
    margin: float = _MARGIN,
) -> PathReport:
    """Plan a collision-free path from ``start`` to ``goal`` in ``prepared``'s scene.

    Args:
        prepared: The scene read now, prepared for the arm.
        start: Current joints.
        goal: Target joints.
        time_s: Wall-clock budget for planning, simplification and verification.
        margin: Clearance (m) the planner keeps from everything.

    Returns:
        A report whose ``path`` is the verified planned path (``ok``), or whose
        reason says why none was found in time.
    """
    checker = prepared.checker
    limits = checker.limits
    deadline = time.monotonic() + time_s
    tolerance = checker.tolerance
    # A start or goal in close contact (a part being lifted off its tray) cannot
    # keep the full margin: keep what it has, never less than the tolerance.
    ends = min(prepared.clearance(start), prepared.clearance(goal))
    keep = max(tolerance * 1.5, min(margin, ends * 0.9))
    for name, q in (("start", start), ("goal", goal)):
        check = limits.check(q, label=name)
        if not check.ok:
            return PathReport(False, f"no plan: {check.reason}", tolerance, 0, planner=PLANNER)
    if ends < tolerance:
        where, q = ("start", start) if prepared.clearance(start) < tolerance else ("goal", goal)
        touching = ", ".join(str(c) for c in prepared.contacts(q))
        return PathReport(False, f"no plan: the {where} configuration itself is in collision "
                          f"({touching})", tolerance, 0, planner=PLANNER)
    resolution = _RESOLUTION
    attempts = 0
    last = "no attempt"
    while time.monotonic() < deadline:
        attempts += 1
        left = deadline - time.monotonic()
        path = _solve(prepared, start, goal, keep, resolution, left * 0.7)
        if path is None:
            last = f"no collision-free path found within {time_s:g}s (RRTConnect)"
            break
        report = prepared.check_path(path, planner=f"{PLANNER} ({len(path)} waypoints, "
                                                   f"{attempts} attempt(s))")
        if report.ok:
            return report
        last = f"planned path failed its continuous verification: {report.reason}"
        resolution /= 2
    return PathReport(False, f"no plan: {last}", tolerance, 0, planner=PLANNER)


def _solve(prepared: PreparedScene, start: Sequence[float], goal: Sequence[float],
           keep: float, resolution: float, time_s: float) -> list[Joints] | None:
    limits = prepared.checker.limits
    dof = len(start)
    space = ob.RealVectorStateSpace(dof)
    bounds = ob.RealVectorBounds(dof)
    for index, (low, high) in enumerate(zip(limits.lower, limits.upper, strict=True)):
        bounds.setLow(index, low)
        bounds.setHigh(index, high)
    space.setBounds(bounds)
    si = ob.SpaceInformation(space)

    def valid(state: ob.State) -> bool:
        return prepared.is_clear([state[i] for i in range(dof)], keep)

    si.setStateValidityChecker(valid)
    si.setStateValidityCheckingResolution(resolution)
    si.setup()
    setup = og.SimpleSetup(si)
    a, b = si.allocState(), si.allocState()
    for index in range(dof):
        a[index] = float(start[index])
        b[index] = float(goal[index])
    setup.setStartAndGoalStates(a, b)
    setup.setPlanner(og.RRTConnect(si))
    if not setup.solve(max(time_s, 0.05)) or not setup.haveExactSolutionPath():
        return None
    setup.simplifySolution(max(0.05, min(0.2, time_s / 4)))
    found = setup.getSolutionPath()
    path = [tuple(float(found.getState(i)[j]) for j in range(dof))
            for i in range(found.getStateCount())]
    path[0], path[-1] = tuple(start), tuple(goal)
    return [q for i, q in enumerate(path) if i == 0 or math.dist(q, path[i - 1]) > 1e-9]
