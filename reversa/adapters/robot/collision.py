"""Continuous collision checking of arm motions against the current planning scene.

The arm's links are the convex hulls of its URDF collision meshes, placed by
forward kinematics (:class:`~.urdf.UrdfArm`); the held object is a box fixed in
the tool frame; the world is the scene's boxes plus a cylinder per detected
person. Distances come from python-fcl.

A joint-space segment is checked *continuously*, by conservative advancement
(Schwarzer, Saha and Latombe's adaptive dynamic collision checking): at a
configuration, every moving body's distance ``d`` to the world is computed; no
point of that body can move faster than ``mu`` (the sum over the joints that
move it of the joint's travel times the body's largest possible distance from
the joint's axis), so the segment is free up to ``(d - tolerance/2) / mu`` further
on, where the next check happens. Nothing between two checks is left unchecked,
however thin: a motion is refused when any body comes closer than the stated
tolerance to anything it may not touch. fcl's own ``continuousCollide`` is not
used because it interpolates each object's pose linearly (or as a screw) between
two poses, which is not how a link moves when the joints move linearly.

Self-collision is out of scope here: industrial controllers enforce it
themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fcl
import numpy as np

from reversa.core.context import Check
from reversa.safety import JointLimits

from .scene import PlanningScene
from .urdf import UrdfArm

__all__ = ["ATTACH_MARGIN", "CollisionChecker", "Contact", "PathReport", "PreparedScene"]

ATTACH_MARGIN = 0.004
"""Resting contact of a held part with the surface it sits on is not a collision:
the held object's box is shrunk by this margin (m) on every side."""

_NEAR = 0.05  # m: closer than this by bounding boxes, the exact distance is computed


@dataclass(frozen=True, slots=True)
class Contact:
    """A link (or the held object) closer than the tolerance to a world object."""

    link: str
    obstacle: str

    def __str__(self) -> str:
        return f"{self.link} x {self.obstacle}"


@dataclass(frozen=True, slots=True)
class PathReport:
    """The result of checking one path (a polyline in joint space).

    Attributes:
        ok: Every configuration along it is inside the limits and no body comes
            closer than ``tolerance`` to anything it may not touch.
        reason: What failed, or a summary of the check.
        tolerance: Clearance (m) below which a body counts as colliding.
        waypoints: Vertices of the path.
        iterations: Configurations whose distances were computed.
        clearance: Smallest distance (m) seen along the path.
        first_bad: Index of the first segment that fails, if any.
        at: Fraction along that segment where it fails.
        contacts: Bodies closer than the tolerance there.
        path: The path's vertices.
        planner: How the path was made: ``"straight"`` or a planner's summary.
    """

    ok: bool
    reason: str
    tolerance: float
    waypoints: int
    iterations: int = 0
    clearance: float = math.inf
    first_bad: int | None = None
    at: float | None = None
    contacts: tuple[Contact, ...] = ()
    path: tuple[tuple[float, ...], ...] = field(default=(), repr=False)
    planner: str = "straight"

    def as_check(self, label: str) -> Check:
        """The report as a precondition check."""
        return Check(self.ok, f"{label}: {self.reason}", self.detail())

    def detail(self) -> dict[str, Any]:
        """JSON evidence (without the full path)."""
        return {
            "check": "continuous",
            "tolerance_m": self.tolerance,
            "waypoints": self.waypoints,
            "iterations": self.iterations,
            "clearance_m": None if math.isinf(self.clearance) else round(self.clearance, 4),
            "first_bad": self.first_bad,
            "at": None if self.at is None else round(self.at, 4),
            "contacts": [str(c) for c in self.contacts],
            "planner": self.planner,
        }


class CollisionChecker:
    """Checks configurations and motions of one arm.

    Args:
        arm: The arm's kinematics and link hulls (from its URDF).
        limits: The joint limits every configuration must respect.
        tolerance: Clearance (m) below which a body counts as colliding.
        grasp_links: Links that may touch parts (the fingers close on them).
    """

    def __init__(self, arm: UrdfArm, limits: JointLimits, *, tolerance: float = 0.002,
                 grasp_links: Sequence[str] = ()) -> None:
        self.arm = arm
        self.limits = limits
        self.tolerance = tolerance
        self.grasp_links = frozenset(grasp_links)
        self._geometry = [(index, hull.link, _convex(hull.vertices, hull.faces), hull.vertices)
                          for index, hull in arm.hulls]

    def prepared(self, scene: PlanningScene) -> PreparedScene:
        """Build the scene's collision objects once, for many configurations."""
        return PreparedScene(self, scene)

    def contacts(self, q: Sequence[float], scene: PlanningScene) -> list[Contact]:
        """Bodies closer than the tolerance to the scene at ``q``."""
        return self.prepared(scene).contacts(q)

    def check_path(self, start: Sequence[float], goal: Sequence[float],
                   scene: PlanningScene) -> PathReport:
        """Check the joint-space straight line from ``start`` to ``goal``, continuously."""
        return self.prepared(scene).check_path([tuple(start), tuple(goal)])

    def check_waypoints(self, path: Sequence[Sequence[float]],
                        scene: PlanningScene) -> PathReport:
        """Check a polyline through ``path``, every segment continuously."""
        return self.prepared(scene).check_path([tuple(q) for q in path])


class PreparedScene:
    """One scene's collision objects, reused for every configuration checked in it."""

    def __init__(self, checker: CollisionChecker, scene: PlanningScene) -> None:
        self.checker = checker
        self.scene = scene
        self._request = fcl.DistanceRequest()
        self._world: list[tuple[str, str, Any, Any, Any]] = []  # id, kind, obj, lo, hi
        for box in scene.boxes:
            center = np.array(box.center, float)
            half = np.array(box.size, float) / 2
            obj = fcl.CollisionObject(fcl.Box(*box.size), fcl.Transform(np.eye(3), center))
            self._world.append((box.id, box.kind, obj, center - half, center + half))
        for person in scene.persons:
            center = np.array([person.x, person.y, person.height / 2])
            half = np.array([person.radius, person.radius, person.height / 2])
            geom = fcl.Cylinder(person.radius, person.height)
            obj = fcl.CollisionObject(geom, fcl.Transform(np.eye(3), center))
            self._world.append((f"person:{person.id}", "person", obj, center - half,
                                center + half))
        self._lo = np.array([w[3] for w in self._world]).reshape(-1, 3)
        self._hi = np.array([w[4] for w in self._world]).reshape(-1, 3)
        arm = checker.arm
        # (name, link index, fcl object, local vertices, local transform, motion bounds)
        self._moving: list[tuple[str, int, Any, Any, Any, Any]] = []
        for index, link, geom, vertices in checker._geometry:
            bounds = np.array([arm.bound(index, j) for j in range(arm.dof)])
            self._moving.append((link, index, fcl.CollisionObject(geom), vertices, None, bounds))
        held = scene.attached
        if held is not None:
            size = np.array([max(s - 2 * ATTACH_MARGIN, 1e-4) for s in held.size])
            offset = np.eye(4)
            offset[:3, 3] = held.offset
            corners = np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
            vertices = corners * size / 2
            reach = float(np.linalg.norm(held.offset) + np.linalg.norm(size) / 2)
            bounds = np.array([arm.bound(arm.tip, j) + reach for j in range(arm.dof)])
            self._moving.append((f"held:{held.id}", arm.tip,
                                 fcl.CollisionObject(fcl.Box(*size)), vertices, offset, bounds))

    # -- one configuration ------------------------------------------------------------
    def _placed(self, q: Sequence[float]) -> list[tuple[str, Any, Any, Any]]:
        """Per moving body: name, fcl object placed at ``q``, and the gap (m) between its
        bounding box and each world object's (a lower bound on their distance)."""
        frames = self.checker.arm.frames(q)
        out = []
        for name, index, obj, vertices, local, _ in self._moving:
            pose = frames[index] if local is None else frames[index] @ local
            rotation, translation = pose[:3, :3], pose[:3, 3]
            world = vertices @ rotation.T + translation
            lo, hi = world.min(axis=0), world.max(axis=0)
            gaps = np.linalg.norm(np.maximum(0.0, np.maximum(self._lo - hi, lo - self._hi)),
                                  axis=1) if self._world else np.zeros(0)
            out.append((name, obj, (rotation, translation), gaps))
        return out

    def distances(self, q: Sequence[float]) -> list[tuple[float, str, list[str]]]:
        """Per moving body: its distance to the world (a lower bound where the bounding
        boxes are far apart), its name, and what is closer than the tolerance."""
        tolerance = self.checker.tolerance
        out: list[tuple[float, str, list[str]]] = []
        for name, obj, pose, gaps in self._placed(q):
            nearest = math.inf
            hits: list[str] = []
            obj.setTransform(fcl.Transform(*pose))
            for (box_id, kind, other, _, _), gap in zip(self._world, gaps, strict=True):
                if self._allowed(name, box_id, kind):
                    continue
                if gap > _NEAR:
                    distance = float(gap)  # a lower bound: enough to step conservatively
                else:
                    distance = max(0.0, float(fcl.distance(obj, other, self._request,
                                                           fcl.DistanceResult())))
                if distance < tolerance:
                    hits.append(box_id)
                nearest = min(nearest, distance)
            out.append((nearest, name, hits))
        return out

    def is_clear(self, q: Sequence[float], margin: float) -> bool:
        """Whether every moving body keeps ``margin`` (m) from the world at ``q``
        (stops at the first that does not; what planners ask of each state)."""
        for name, obj, pose, gaps in self._placed(q):
            near = np.flatnonzero(gaps < margin)
            if not len(near):
                continue
            obj.setTransform(fcl.Transform(*pose))
            for i in near:
                box_id, kind, other, _, _ = self._world[i]
                if self._allowed(name, box_id, kind):
                    continue
                if fcl.distance(obj, other, self._request, fcl.DistanceResult()) < margin:
                    return False
        return True

    def clearance(self, q: Sequence[float]) -> float:
        """The smallest distance (m) of any moving body to the world at ``q``."""
        return min((d for d, _, _ in self.distances(q)), default=math.inf)

    def contacts(self, q: Sequence[float]) -> list[Contact]:
        """Bodies closer than the tolerance to the world at ``q``."""
        return [Contact(name, hit) for _, name, hits in self.distances(q) for hit in hits]

    def _allowed(self, name: str, box_id: str, kind: str) -> bool:
        if (name, box_id) in self.scene.allowed:
            return True
        # Fingers close on parts; a held part is put down on boards and surfaces.
        if kind == "part" and name in self.checker.grasp_links:
            return True
        return name.startswith("held:") and box_id == f"part:{name[5:]}"

    # -- motions ----------------------------------------------------------------------
    def check_path(self, path: Sequence[tuple[float, ...]], planner: str = "straight"
                   ) -> PathReport:
        """Check the polyline through ``path`` continuously (see the module docstring)."""
        checker = self.checker
        frozen = tuple(path)
        limits = checker.limits.check_path(frozen)  # a box: segments between vertices stay in
        if not limits.ok:
            return PathReport(False, limits.reason, checker.tolerance, len(frozen),
                              first_bad=int(limits.detail.get("waypoint", 0)), path=frozen,
                              planner=planner)
        iterations = 0
        clearance = math.inf
        for segment in range(max(1, len(frozen) - 1)):
            a = np.array(frozen[segment], float)
            b = np.array(frozen[min(segment + 1, len(frozen) - 1)], float)
            travel = np.abs(b - a)
            speeds = [float(bounds @ travel) for *_, bounds in self._moving]
            t = 0.0
            while True:
                q = tuple(float(v) for v in a + (b - a) * t)
                rows = self.distances(q)
                iterations += 1
                clearance = min(clearance, *(d for d, _, _ in rows))
                hits = tuple(Contact(name, hit) for _, name, found in rows for hit in found)
                if hits:
                    names = ", ".join(sorted({h.obstacle for h in hits}))
                    return PathReport(
                        False, f"collision with {names} at {t:.0%} of segment {segment + 1} "
                        f"of {max(1, len(frozen) - 1)} (continuous check, "
                        f"{checker.tolerance * 1000:g} mm tolerance)",
                        checker.tolerance, len(frozen), iterations, clearance, segment, t,
                        hits, frozen, planner)
                if t >= 1.0:
                    break
                step = min(((d - checker.tolerance / 2) / mu for (d, _, _), mu
                            in zip(rows, speeds, strict=True) if mu > 0), default=1.0)
                t = min(1.0, t + max(step, 1e-6))
        return PathReport(
            True, f"collision-free under continuous checking ({checker.tolerance * 1000:g} mm "
            f"tolerance, {iterations} distance evaluations, clearance "
            f"{clearance * 1000:.0f} mm) and inside joint limits",
            checker.tolerance, len(frozen), iterations, clearance, path=frozen, planner=planner)


def _convex(vertices: Any, faces: Any) -> Any:
    flat = np.hstack([np.full((len(faces), 1), 3), faces]).ravel()
    return fcl.Convex(np.asarray(vertices, float), len(faces), flat)
