"""Collision checking of arm paths against the current planning scene (python-fcl).

The arm's links are capsules placed by forward kinematics, the held object is a
box at the tool centre point, the world is the scene's boxes plus a cylinder
per detected person. Every configuration of an interpolated path is checked,
at the resolution the caller states.

Self-collision is out of scope here: industrial controllers enforce it
themselves, and the paths Reversa plans are joint-space segments between poses
the integrator declared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fcl
import numpy as np

from reversa.core.context import Check
from reversa.safety import ArmModel, JointLimits, interpolate
from reversa.safety.kinematics import Mat4, Vec3

from .scene import PlanningScene

__all__ = ["CollisionChecker", "Contact", "PathReport", "PreparedScene"]

# Resting contact (a held part sitting on the tray it is picked from) is not a
# collision: the held object's box is shrunk by this margin on every side.
ATTACH_MARGIN = 0.001


@dataclass(frozen=True, slots=True)
class Contact:
    """A link (or the held object) touching a world object."""

    link: str
    obstacle: str

    def __str__(self) -> str:
        return f"{self.link} x {self.obstacle}"


@dataclass(frozen=True, slots=True)
class PathReport:
    """The result of checking one path.

    Attributes:
        ok: Every configuration is inside the limits and collision-free.
        reason: What failed, or a summary of the check.
        resolution: Joint resolution (rad) the path was checked at.
        waypoints: Number of configurations checked.
        first_bad: Index of the first failing configuration, if any.
        contacts: Contacts at the first failing configuration.
        path: The checked configurations.
    """

    ok: bool
    reason: str
    resolution: float
    waypoints: int
    first_bad: int | None = None
    contacts: tuple[Contact, ...] = ()
    path: tuple[tuple[float, ...], ...] = field(default=(), repr=False)

    def as_check(self, label: str) -> Check:
        """The report as a precondition check."""
        return Check(self.ok, f"{label}: {self.reason}", self.detail())

    def detail(self) -> dict[str, Any]:
        """JSON evidence (without the full path)."""
        return {
            "resolution_rad": self.resolution,
            "waypoints": self.waypoints,
            "first_bad": self.first_bad,
            "contacts": [str(c) for c in self.contacts],
        }


class CollisionChecker:
    """Checks configurations and paths of one arm model.

    Args:
        arm: The arm's geometry.
        limits: The joint limits every configuration must respect.
    """

    def __init__(self, arm: ArmModel, limits: JointLimits) -> None:
        self.arm = arm
        self.limits = limits

    def contacts(self, q: Sequence[float], scene: PlanningScene) -> list[Contact]:
        """Contacts of the arm (and held object) at ``q`` with the scene."""
        world = _World(scene)
        return world.contacts(self._moving(q, scene), scene)

    def prepared(self, scene: PlanningScene) -> PreparedScene:
        """Build the scene's collision objects once, for many configurations."""
        return PreparedScene(self, scene)

    def check_path(
        self,
        start: Sequence[float],
        goal: Sequence[float],
        scene: PlanningScene,
        resolution: float,
    ) -> PathReport:
        """Check the joint-space straight line from ``start`` to ``goal``."""
        path = interpolate(start, goal, resolution)
        return self.check_waypoints(path, scene, resolution)

    def check_waypoints(
        self, path: Sequence[Sequence[float]], scene: PlanningScene, resolution: float
    ) -> PathReport:
        """Check an already interpolated path, configuration by configuration."""
        frozen = tuple(tuple(q) for q in path)
        limits = self.limits.check_path(frozen)
        if not limits.ok:
            return PathReport(
                False, limits.reason, resolution, len(frozen),
                first_bad=int(limits.detail.get("waypoint", 0)), path=frozen,
            )
        world = _World(scene)
        for index, q in enumerate(frozen):
            hits = world.contacts(self._moving(q, scene), scene)
            if hits:
                names = ", ".join(sorted({h.obstacle for h in hits}))
                return PathReport(
                    False,
                    f"collision with {names} at waypoint {index} of {len(frozen)}",
                    resolution, len(frozen), first_bad=index, contacts=tuple(hits), path=frozen,
                )
        return PathReport(
            True,
            f"collision-free and inside joint limits at {len(frozen)} waypoints "
            f"({resolution} rad resolution)",
            resolution, len(frozen), path=frozen,
        )

    def _moving(self, q: Sequence[float], scene: PlanningScene) -> list[tuple[str, Any]]:
        objects: list[tuple[str, Any]] = []
        for seg in self.arm.segments(q):
            length = math.dist(seg.start, seg.end)
            geom = fcl.Capsule(seg.radius, length)
            objects.append((seg.name, fcl.CollisionObject(geom, _segment_tf(seg.start, seg.end))))
        if scene.attached is not None:
            size = [max(s - 2 * ATTACH_MARGIN, 1e-4) for s in scene.attached.size]
            geom = fcl.Box(*size)
            objects.append(
                (f"held:{scene.attached.id}",
                 fcl.CollisionObject(geom, _pose_tf(self.arm.tcp_pose(q))))
            )
        return objects


class PreparedScene:
    """A scene turned into collision objects once (the simulator checks every tick)."""

    def __init__(self, checker: CollisionChecker, scene: PlanningScene) -> None:
        self._checker = checker
        self._scene = scene
        self._world = _World(scene)

    def contacts(self, q: Sequence[float]) -> list[Contact]:
        """Contacts of the arm at ``q``."""
        return self._world.contacts(self._checker._moving(q, self._scene), self._scene)


class _World:
    """The static side of one check: fcl objects for the scene's boxes and people."""

    def __init__(self, scene: PlanningScene) -> None:
        self.objects: list[tuple[str, Any]] = []
        for box in scene.boxes:
            tf = fcl.Transform(np.eye(3), np.array(box.center, dtype=float))
            self.objects.append((box.id, fcl.CollisionObject(fcl.Box(*box.size), tf)))
        for person in scene.persons:
            tf = fcl.Transform(np.eye(3), np.array([person.x, person.y, person.height / 2]))
            geom = fcl.Cylinder(person.radius, person.height)
            self.objects.append((f"person:{person.id}", fcl.CollisionObject(geom, tf)))

    def contacts(self, moving: list[tuple[str, Any]], scene: PlanningScene) -> list[Contact]:
        hits: list[Contact] = []
        request = fcl.CollisionRequest()
        for link, obj in moving:
            for name, other in self.objects:
                if (link, name) in scene.allowed:
                    continue
                if fcl.collide(obj, other, request, fcl.CollisionResult()):
                    hits.append(Contact(link, name))
        return hits


def _segment_tf(start: Vec3, end: Vec3) -> Any:
    # Plain floats, then one array per transform: numpy's per-call overhead on
    # 3-vectors (np.cross, norm) dominated the path check when written with numpy.
    ax, ay, az = end[0] - start[0], end[1] - start[1], end[2] - start[2]
    length = math.sqrt(ax * ax + ay * ay + az * az)
    z = (ax / length, ay / length, az / length)
    rotation = _rotation_from_z(z)
    center = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, (start[2] + end[2]) / 2)
    return fcl.Transform(np.array(rotation), np.array(center))


def _rotation_from_z(z: Vec3) -> tuple[Vec3, Vec3, Vec3]:
    """Rows of a rotation matrix whose third column is the unit vector ``z``."""
    hx, hy, hz = (1.0, 0.0, 0.0) if abs(z[0]) < 0.9 else (0.0, 1.0, 0.0)
    # x = helper x z, normalised; y = z x x
    xx, xy, xz = hy * z[2] - hz * z[1], hz * z[0] - hx * z[2], hx * z[1] - hy * z[0]
    norm = math.sqrt(xx * xx + xy * xy + xz * xz)
    xx, xy, xz = xx / norm, xy / norm, xz / norm
    yx, yy, yz = z[1] * xz - z[2] * xy, z[2] * xx - z[0] * xz, z[0] * xy - z[1] * xx
    return ((xx, yx, z[0]), (xy, yy, z[1]), (xz, yz, z[2]))


def _pose_tf(pose: Mat4) -> Any:
    rotation = np.array([[pose[i][j] for j in range(3)] for i in range(3)], dtype=float)
    translation = np.array([pose[0][3], pose[1][3], pose[2][3]], dtype=float)
    return fcl.Transform(rotation, translation)
