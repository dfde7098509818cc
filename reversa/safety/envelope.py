"""Joint limits, path interpolation at a stated resolution, and motion timing.

:func:`interpolate` samples a joint-space line (trajectory points for the
controller); collision checking of the whole motion is continuous and lives in
the robot adapter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from reversa.core.context import Check

__all__ = [
    "Joints",
    "JointLimits",
    "interpolate",
    "joint_distance",
    "motion_duration",
]

Joints = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class JointLimits:
    """Position and speed limits of each joint.

    Attributes:
        lower: Lowest allowed position per joint (rad).
        upper: Highest allowed position per joint (rad).
        max_speed: Highest allowed joint speed per joint (rad/s).
    """

    lower: Joints
    upper: Joints
    max_speed: Joints

    def check(self, q: Sequence[float], *, label: str = "configuration") -> Check:
        """Whether ``q`` is inside the position limits."""
        if len(q) != len(self.lower):
            return Check(False, f"{label}: expected {len(self.lower)} joints, got {len(q)}")
        for index, (value, low, high) in enumerate(zip(q, self.lower, self.upper, strict=True)):
            if not low <= value <= high:
                return Check(
                    False,
                    f"{label}: joint {index + 1} at {value:.3f} rad is outside its limits "
                    f"[{low:.3f}, {high:.3f}]",
                    {"joint": index + 1, "value": value, "lower": low, "upper": high},
                )
        return Check(True, f"{label}: inside joint limits")

    def check_path(self, path: Sequence[Sequence[float]]) -> Check:
        """Whether every configuration of ``path`` is inside the limits."""
        for index, q in enumerate(path):
            check = self.check(q, label=f"waypoint {index}")
            if not check.ok:
                return Check(False, check.reason, {**check.detail, "waypoint": index})
        return Check(True, f"all {len(path)} waypoints inside joint limits")

    def speed_for(self, requested: float) -> float:
        """Clamp a requested joint speed to the slowest joint's limit."""
        return min(requested, *self.max_speed)


def joint_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Largest single-joint difference (the infinity norm), in radians."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def interpolate(start: Sequence[float], goal: Sequence[float], resolution: float) -> list[Joints]:
    """Joint-space straight line from ``start`` to ``goal``, both included.

    Consecutive configurations differ by at most ``resolution`` radians on any
    joint, which is the granularity at which the path gets checked.

    Raises:
        ValueError: ``resolution`` is not positive or the lengths differ.
    """
    if resolution <= 0:
        raise ValueError(f"path resolution must be positive, got {resolution}")
    if len(start) != len(goal):
        raise ValueError(f"start has {len(start)} joints but goal has {len(goal)}")
    steps = max(1, math.ceil(joint_distance(start, goal) / resolution))
    return [
        tuple(s + (g - s) * (i / steps) for s, g in zip(start, goal, strict=True))
        for i in range(steps + 1)
    ]


def motion_duration(path: Sequence[Sequence[float]], speed: float) -> list[float]:
    """Time from start of each waypoint when no joint exceeds ``speed`` (rad/s).

    Raises:
        ValueError: ``speed`` is not positive.
    """
    if speed <= 0:
        raise ValueError(f"joint speed must be positive, got {speed}")
    times = [0.0]
    for prev, nxt in pairwise(path):
        times.append(times[-1] + joint_distance(prev, nxt) / speed)
    return times
