"""The cell description: the arm (from its URDF), limits, named poses, stations, safe states.

This plays the role the URDF and SRDF play in ROS: the arm's kinematics and
link geometry come from its URDF (:class:`~.urdf.UrdfArm`); the named joint
poses, stations, fixtures and safe states are what an SRDF and the cell's
layout drawing add. The adapter plans and checks with it; a simulator builds
the physical cell from the same description. :func:`pcb_cell` is the PCB
assembly cell of AG-384 scenario B on a Franka Emika Panda; write your own
``CellLayout`` for another cell (see docs/robot.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from reversa.safety import JointLimits, Joints, SafeState, SafetyPolicy

from .scene import Box, Vec3
from .urdf import UrdfArm, panda_description

__all__ = ["CellLayout", "Station", "panda_arm", "pcb_cell"]


@dataclass(frozen=True, slots=True)
class Station:
    """A place parts or boards rest on.

    Attributes:
        name: ``"tray"``, ``"board"``...
        surface: The fixture box the part rests on.
        rest_z: Height of a resting part's centre (m).
        grasp_pose: Joint pose with the fingers around a resting part.
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
        arm: Arm kinematics and link geometry, from its URDF.
        limits: Joint limits (positions from the URDF; speeds may be lower).
        poses: Named joint poses.
        stations: Stations by name.
        fixtures: Static boxes (table, posts, racks, conveyor...).
        part_size: Extents of the components handled (m).
        grasp_offset: A held part's centre in the tool centre point's frame (m).
        grasp_links: Links that touch a part when gripping it (the fingers).
        policy: Declared safe states and the recovery envelope.
        allowed: (link, box) pairs allowed to touch.
        zone_radius: Radius of the monitored reach zone around the base (m).
        rework: Where the conveyor takes a board for rework (x, y, z of its centre).
    """

    arm: UrdfArm
    limits: JointLimits
    poses: dict[str, Joints]
    stations: dict[str, Station]
    fixtures: tuple[Box, ...]
    part_size: Vec3
    policy: SafetyPolicy
    grasp_offset: Vec3 = (0.0, 0.0, 0.0)
    grasp_links: tuple[str, ...] = ()
    allowed: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    zone_radius: float = 1.0
    rework: Vec3 = (0.0, 0.0, 0.0)

    @property
    def urdf(self) -> Path:
        """The arm's URDF file."""
        return self.arm.path

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


@cache
def panda_arm() -> UrdfArm:
    """The Panda's chain from its base to the grasp target, fingers fully open."""
    return UrdfArm(panda_description(), base_link="panda_link0", tip_link="panda_grasptarget")


def pcb_cell() -> CellLayout:
    """The PCB assembly cell of AG-384 scenario B, on a Franka Emika Panda.

    The arm stands on a table; tray A holds components, the board fixture holds
    board B1, a rack of three finished assemblies sits between them, a camera
    post looks at the board, a conveyor runs to the rework station, and two
    safe states are declared (``home`` and ``service``). The named poses were
    solved once by inverse kinematics for tool-down targets (the tool centre
    point positions are listed next to them); ``tests/robot/test_urdf.py``
    checks them against the URDF.
    """
    arm = panda_arm()
    poses: dict[str, Joints] = {
        # Franka's "ready" pose; TCP (0.307, 0, 0.485)
        "home": (0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785),
        # TCP (0.10, 0.45, 0.40), clear of the tray, the board and the camera's view
        "service": (0.0811, -0.6972, 1.0132, -2.1732, 0.5841, 1.7258, 1.6527),
        # TCP (0.45, 0.30, 0.20) / (0.45, 0.30, 0.045): above / at a part in tray A
        "tray_above": (0.13, 0.1659, 0.4618, -2.2314, -0.1066, 2.3774, 1.4487),
        "tray": (0.2524, 0.5134, 0.3018, -2.2233, -0.3441, 2.6941, 1.615),
        # TCP (0.45, -0.25, 0.20) / (0.45, -0.25, 0.051): above / at a part on board B1
        "board_above": (-0.102, 0.0885, -0.4053, -2.3242, 0.0519, 2.4049, 0.2411),
        "board": (-0.2069, 0.442, -0.2645, -2.3222, 0.2872, 2.7357, 0.0734),
        # TCP (0.10, -0.45, 0.40): out of the camera's view of the board
        "inspection": (-0.0813, -0.697, -1.0131, -2.1732, -0.5839, 1.7259, -0.0821),
    }
    limits = JointLimits(lower=arm.lower, upper=arm.upper, max_speed=arm.velocity)
    part_size = (0.03, 0.03, 0.03)
    stations = {
        "tray": Station("tray", Box("tray", (0.45, 0.30, 0.01), (0.16, 0.16, 0.02)), 0.035,
                        "tray", "tray_above"),
        "board": Station("board", Box("fixture", (0.45, -0.25, 0.01), (0.14, 0.12, 0.02)),
                         0.039, "board", "board_above"),
    }
    fixtures = (
        Box("table", (0.2, 0.0, -0.025), (1.6, 1.6, 0.05)),
        Box("camera_post", (0.75, -0.55, 0.35), (0.06, 0.06, 0.7)),
        Box("conveyor", (0.85, 0.1, 0.04), (0.16, 1.0, 0.08)),
        Box("assembly:A1", (0.52, -0.03, 0.015), (0.08, 0.07, 0.03), "board"),
        Box("assembly:A2", (0.51, 0.06, 0.015), (0.08, 0.07, 0.03), "board"),
        Box("assembly:A3", (0.49, 0.15, 0.015), (0.08, 0.07, 0.03), "board"),
    )
    policy = SafetyPolicy(
        safe_states=(
            SafeState(name="home", joints=poses["home"]),
            SafeState(name="service", joints=poses["service"]),
        ),
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
        grasp_offset=(0.0, 0.0, 0.01),
        grasp_links=("panda_leftfinger", "panda_rightfinger"),
        allowed=frozenset({("panda_link0", "table")}),
        zone_radius=1.0,
        rework=(0.85, 0.55, 0.082),
    )
