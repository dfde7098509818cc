"""An arm's kinematics and collision geometry, read from its URDF.

The URDF (and its collision meshes) is the arm's description, shared by the
adapter and by whatever drives the arm (MoveIt, Gazebo, the physics simulator).
:mod:`yourdfpy` parses it and resolves the mesh files; trimesh (yourdfpy's mesh
library) loads them. Forward kinematics is computed here with numpy from the
parsed joint table: yourdfpy's own forward kinematics goes through a scene graph
and costs about a millisecond per configuration, while continuous collision
checking and planning evaluate tens of thousands of configurations.

Collision geometry is the convex hull of each link's collision mesh, which is
also how a physics engine such as Bullet treats a moving link's mesh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
import yourdfpy

__all__ = ["DESCRIPTIONS", "LinkHull", "UrdfArm", "panda_description"]

DESCRIPTIONS = Path(__file__).parent / "descriptions"
"""Arm descriptions shipped with the adapter (URDF and collision meshes)."""

Mat4 = Any  # a 4x4 numpy array (numpy is untyped for mypy here)


def panda_description() -> Path:
    """The Franka Emika Panda URDF (Apache-2.0, as shipped in pybullet_data)."""
    return DESCRIPTIONS / "panda" / "panda.urdf"


@dataclass(frozen=True, slots=True)
class LinkHull:
    """One link's collision hull in its own frame.

    Attributes:
        link: Link name.
        vertices: Hull vertices (N x 3).
        faces: Hull triangles (M x 3 vertex indices).
        radius: Largest distance of a vertex from the link frame's origin.
    """

    link: str
    vertices: Any = field(repr=False)
    faces: Any = field(repr=False)
    radius: float = 0.0


@dataclass(frozen=True, slots=True)
class _Joint:
    parent: int  # index of the parent link (-1: the base)
    origin: Any  # 4x4
    kind: str  # "revolute", "prismatic", "fixed"
    axis: Any  # unit 3-vector
    chain: int | None  # index into q for an actuated chain joint
    value: float  # fixed value of a joint outside the chain (fingers)
    local: Any  # origin and fixed motion combined, for joints outside the chain


class UrdfArm:
    """A serial arm read from a URDF: joint limits, forward kinematics, link hulls.

    Args:
        path: The URDF file.
        base_link: The arm's root link.
        tip_link: The tool centre point link (e.g. ``panda_grasptarget``).
        fixed: Values for movable joints outside the base-tip chain (the
            fingers); default: their upper limit (fully open, the largest
            volume the hand can take up).
        ignore_links: Links without collision geometry for the checker.

    Raises:
        ValueError: The tip is not below the base, or the file is not a URDF.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        base_link: str,
        tip_link: str,
        fixed: Mapping[str, float] | None = None,
        ignore_links: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        model = _load(str(self.path))
        robot = model.robot
        self.name = str(robot.name)
        joints_by_child = {j.child: j for j in robot.joints}
        chain: list[Any] = []
        link = tip_link
        while link != base_link:
            joint = joints_by_child.get(link)
            if joint is None:
                raise ValueError(f"{self.path}: link {tip_link!r} is not below {base_link!r}")
            chain.append(joint)
            link = joint.parent
        chain.reverse()
        actuated = [j for j in chain if j.type in {"revolute", "continuous"}]
        self.joint_names: tuple[str, ...] = tuple(j.name for j in actuated)
        self.lower = tuple(float(j.limit.lower) for j in actuated)
        self.upper = tuple(float(j.limit.upper) for j in actuated)
        self.velocity = tuple(float(j.limit.velocity) for j in actuated)
        index = {name: i for i, name in enumerate(self.joint_names)}
        fixed = dict(fixed or {})

        # Every link below the base, in an order where a parent precedes its children.
        order: list[str] = [base_link]
        children: dict[str, list[Any]] = {}
        for joint in robot.joints:
            children.setdefault(joint.parent, []).append(joint)
        self._joints: list[_Joint] = [
            _Joint(-1, np.eye(4), "fixed", np.zeros(3), None, 0.0, np.eye(4))]
        position = {base_link: 0}
        queue = [base_link]
        while queue:
            parent = queue.pop(0)
            for joint in children.get(parent, []):
                value = fixed.get(joint.name)
                if value is None and joint.type == "prismatic" and joint.limit is not None:
                    value = float(joint.limit.upper)
                axis = np.array(joint.axis if joint.axis is not None else (0, 0, 1), float)
                origin = np.array(joint.origin if joint.origin is not None else np.eye(4), float)
                kind = "revolute" if joint.type == "continuous" else str(joint.type)
                value = float(value or 0.0)
                local = origin.copy()
                if kind == "revolute":
                    local = origin @ _rotation(axis, value)
                elif kind == "prismatic":
                    local[:3, 3] += origin[:3, :3] @ (axis * value)
                self._joints.append(_Joint(position[parent], origin, kind, axis,
                                           index.get(joint.name), value, local))
                position[joint.child] = len(order)
                order.append(joint.child)
                queue.append(joint.child)
        self.links: tuple[str, ...] = tuple(order)
        self.tip = position[tip_link]
        self.hulls: tuple[tuple[int, LinkHull], ...] = tuple(
            (position[link.name], hull)
            for link in robot.links
            if link.name in position and link.name not in ignore_links
            for hull in [_hull(model, link)] if hull is not None
        )
        self._bounds = self._motion_bounds()

    @property
    def dof(self) -> int:
        """Number of actuated joints in the base-tip chain."""
        return len(self.joint_names)

    def frames(self, q: Sequence[float]) -> list[Mat4]:
        """The pose (4x4, base frame) of every link, in :attr:`links` order."""
        if len(q) != self.dof:
            raise ValueError(f"{self.name}: expected {self.dof} joint values, got {len(q)}")
        out: list[Mat4] = []
        for joint in self._joints:
            if joint.parent < 0:
                out.append(joint.origin)
            elif joint.chain is None:
                out.append(out[joint.parent] @ joint.local)  # fixed for this arm
            else:
                out.append(out[joint.parent] @ joint.origin @ _rotation(joint.axis,
                                                                         float(q[joint.chain])))
        return out

    def tcp_pose(self, q: Sequence[float]) -> Mat4:
        """The tool centre point's pose (4x4)."""
        return self.frames(q)[self.tip]

    def tcp(self, q: Sequence[float]) -> tuple[float, float, float]:
        """The tool centre point's position."""
        p = self.tcp_pose(q)[:3, 3]
        return (float(p[0]), float(p[1]), float(p[2]))

    def bound(self, link: int, joint: int) -> float:
        """How far any point of link ``link`` (or a body fixed to it) can be from the
        axis of chain joint ``joint``, in any configuration (0: the joint does not
        move the link)."""
        return float(self._bounds[link][joint])

    def _motion_bounds(self) -> Any:
        # reach[link][j]: an upper bound on the distance from chain joint j's origin
        # to link's origin, by the triangle inequality over the joint offsets between
        # them (configuration-independent); plus the link's own hull radius.
        n_links = len(self._joints)
        reach = np.zeros((n_links, self.dof))
        radius = np.zeros(n_links)
        for index, hull in self.hulls:
            radius[index] = max(radius[index], hull.radius)
        for link in range(1, n_links):
            joint = self._joints[link]
            parent = reach[joint.parent] if joint.parent >= 0 else np.zeros(self.dof)
            offset = float(np.linalg.norm(joint.origin[:3, 3]))
            if joint.kind == "prismatic":
                offset += abs(joint.value)
            moved = parent > 0
            reach[link] = np.where(moved, parent + offset, 0.0)
            if joint.chain is not None:
                reach[link][joint.chain] = 1e-12  # moved by this joint, at its origin
        bounds: Any = np.where(reach > 0, reach + radius[:, None], 0.0)
        return bounds


def _rotation(axis: Any, angle: float) -> Any:
    x, y, z = float(axis[0]), float(axis[1]), float(axis[2])
    c, s = math.cos(angle), math.sin(angle)
    t = 1 - c
    return np.array((
        (t * x * x + c, t * x * y - s * z, t * x * z + s * y, 0.0),
        (t * x * y + s * z, t * y * y + c, t * y * z - s * x, 0.0),
        (t * x * z - s * y, t * y * z + s * x, t * z * z + c, 0.0),
        (0.0, 0.0, 0.0, 1.0),
    ))


@cache
def _load(path: str) -> Any:
    return yourdfpy.URDF.load(path, build_scene_graph=False, load_meshes=False,
                              load_collision_meshes=False,
                              filename_handler=lambda name: _resolve(Path(path).parent, name))


def _resolve(root: Path, name: str) -> str:
    """A mesh reference as a file: relative to the URDF's folder, also for
    ``package://`` URIs (with or without their package component), which is how
    the descriptions are laid out when shipped without a ROS workspace."""
    rest = name.removeprefix("package://").removeprefix("file://")
    for candidate in (root / rest, root / Path(*Path(rest).parts[1:])):
        if candidate.is_file():
            return str(candidate)
    return rest


def _hull(model: Any, link: Any) -> LinkHull | None:
    points: list[Any] = []
    for collision in link.collisions:
        geometry = collision.geometry
        origin = np.array(collision.origin if collision.origin is not None else np.eye(4), float)
        if geometry.mesh is not None:
            filename = model._filename_handler(geometry.mesh.filename)
            # trimesh.load is typed as returning any Geometry; force="mesh" makes it a Trimesh.
            mesh: Any = trimesh.load(filename, force="mesh")
            scale = geometry.mesh.scale
            vertices = np.asarray(mesh.vertices, dtype=np.float64) * (
                scale if scale is not None else 1.0)
        elif geometry.box is not None:
            sx, sy, sz = (float(v) / 2 for v in geometry.box.size)
            vertices = np.array([(x, y, z) for x in (-sx, sx) for y in (-sy, sy)
                                 for z in (-sz, sz)])
        else:
            continue  # cylinders/spheres do not occur in the shipped descriptions
        points.append(vertices @ origin[:3, :3].T + origin[:3, 3])
    if not points:
        return None
    hull = trimesh.convex.convex_hull(np.vstack(points))
    vertices = np.asarray(hull.vertices, float)
    return LinkHull(str(link.name), vertices, np.asarray(hull.faces, np.int32),
                    float(np.max(np.linalg.norm(vertices, axis=1))))
