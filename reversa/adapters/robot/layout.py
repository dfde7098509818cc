"""The cell description: arm model, limits, named poses, stations, safe states.

This plays the role a URDF/SRDF plays in ROS: the adapter plans and checks with
it, and the simulator builds its ground-truth world from it. :func:`pcb_cell`
is the PCB assembly cell of AG-384 scenario B; write your own ``CellLayout``
for another cell (see docs/robot.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from reversa.safety import (
    ArmModel,
    JointLimits,
    Joints,
    SafeState,
    SafetyPolicy,
    ur5_like,
)

from .scene import Box

__all__ = ["CellLayout", "Station", "pcb_cell"]


@dataclass(frozen=True, slots=True)
class Station:
    """A place parts or boards rest on.

    Attributes:
        name: ``"tray"``, ``"board"``...
        surface: The fixture box the part rests on.
        rest_z: Height of a resting part's centre (m).
        grasp_pose: Joint pose with the tool centre point at a resting part.
        approach_pose: Joint pose above it.
    """

    name: str
    surface: Box
    rest_z: float
    grasp_pose: str
    approach_pose: str


@dataclass(frozen=True, slots=True)
class CellLayout:
    """Everything static about a cell.

    Attributes:
        arm: Arm geometry.
        limits: Joint limits.
        poses: Named joint poses.
        stations: Stations by name.
        fixtures: Static boxes (table, posts, racks...).
        part_size: Extents of the components handled (m).
        policy: Declared safe states and the recovery envelope.
        allowed: (link, box) pairs allowed to touch.
        zone_radius: Radius of the monitored reach zone around the base (m).
    """

    arm: ArmModel
    limits: JointLimits
    poses: dict[str, Joints]
    stations: dict[str, Station]
    fixtures: tuple[Box, ...]
    part_size: tuple[float, float, float]
    policy: SafetyPolicy
    allowed: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    zone_radius: float = 1.0

    def pose(self, name: str) -> Joints:
        """The joints of a named pose.

        Raises:
            KeyError: Unknown pose (the message lists the known ones).
        """
        try:
            return self.poses[name]
        except KeyError:
            known = ", ".join(sorted(self.poses))
            raise KeyError(f"unknown pose {name!r}; known: {known}") from None

    def pose_name(self, q: Joints, tolerance: float = 0.01) -> str | None:
        """The name of the named pose ``q`` is at, if any."""
        for name, joints in self.poses.items():
            if max(abs(a - b) for a, b in zip(q, joints, strict=True)) <= tolerance:
                return name
        return None


def _tool_down(q1: float, q2: float, q3: float) -> Joints:
    # Wrist angles that keep the tool pointing straight down for a UR5-like arm.
    return (q1, q2, q3, -math.pi / 2 - q2 - q3, -math.pi / 2, 0.0)


def pcb_cell() -> CellLayout:
    """The PCB assembly cell of AG-384 scenario B.

    A UR5-like arm on a table, tray A with components, a board fixture, a rack
    of three finished assemblies between them, a camera post, and two declared
    safe states (``home`` and ``service``).
    """
    arm = ur5_like()
    poses: dict[str, Joints] = {
        "home": _tool_down(-0.3724, -1.9424, 1.4158),
        "service": _tool_down(0.55, -1.85, 1.30),
        "tray_above": _tool_down(-1.0077, -1.5489, 1.8113),
        "tray": _tool_down(-1.0077, -1.3722, 2.0551),
        "board_above": _tool_down(-0.0183, -1.5132, 1.7741),
        "board": _tool_down(-0.0183, -1.3473, 2.0099),
        "inspection": _tool_down(0.9291, -1.5681, 1.3675),
    }
    two_pi = 2 * math.pi
    limits = JointLimits(
        lower=(-math.pi, -math.pi, -2.9, -two_pi, -two_pi, -two_pi),
        upper=(math.pi, 0.0, 2.9, two_pi, two_pi, two_pi),
        max_speed=(1.0, 1.0, 1.5, 2.0, 2.0, 2.0),
    )
    part_size = (0.03, 0.03, 0.012)
    stations = {
        "tray": Station(
            "tray", Box("tray", (-0.35, 0.35, 0.01), (0.16, 0.16, 0.02)), 0.026,
            "tray", "tray_above",
        ),
        "board": Station(
            "board", Box("fixture", (-0.5, -0.1, 0.01), (0.14, 0.12, 0.02)), 0.030,
            "board", "board_above",
        ),
    }
    fixtures = (
        Box("table", (0.0, 0.0, -0.025), (2.0, 2.0, 0.05)),
        Box("camera_post", (-0.05, -0.66, 0.35), (0.06, 0.06, 0.7)),
        Box("assembly:A1", (-0.515, 0.06, 0.015), (0.08, 0.07, 0.03), "board"),
        Box("assembly:A2", (-0.50, 0.15, 0.015), (0.08, 0.07, 0.03), "board"),
        Box("assembly:A3", (-0.47, 0.235, 0.015), (0.08, 0.07, 0.03), "board"),
    )
    policy = SafetyPolicy(
        safe_states=(
            SafeState(name="home", joints=poses["home"]),
            SafeState(name="service", joints=poses["service"]),
        ),
        path_resolution=0.02,
        recovery_speed=0.5,
        reach_zone_radius=1.0,
    )
    return CellLayout(
        arm=arm,
        limits=limits,
        poses=poses,
        stations=stations,
        fixtures=fixtures,
        part_size=part_size,
        policy=policy,
        allowed=frozenset({("base", "table")}),
        zone_radius=1.0,
    )
