"""Forward kinematics of a 6-axis arm from Denavit-Hartenberg parameters.

Pure Python on purpose: the safety rules must be importable (and reviewable)
without numerical extras, and a 6-joint chain is a handful of 4x4 products.
The collision checker turns the frames computed here into python-fcl objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ArmModel",
    "DHJoint",
    "LinkSegment",
    "Mat4",
    "Vec3",
    "ur5_like",
]

Vec3 = tuple[float, float, float]
Mat4 = tuple[tuple[float, float, float, float], ...]

_IDENTITY: Mat4 = (
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 1.0, 0.0, 0.0),
    (0.0, 0.0, 1.0, 0.0),
    (0.0, 0.0, 0.0, 1.0),
)


@dataclass(frozen=True, slots=True)
class DHJoint:
    """Standard DH parameters of one revolute joint (theta is the joint value)."""

    d: float
    a: float
    alpha: float


@dataclass(frozen=True, slots=True)
class LinkSegment:
    """A link approximated as a capsule between two points.

    Attributes:
        name: Link name used in collision reports.
        start: Segment start in the base frame.
        end: Segment end in the base frame.
        radius: Capsule radius in metres.
    """

    name: str
    start: Vec3
    end: Vec3
    radius: float


@dataclass(frozen=True, slots=True)
class ArmModel:
    """Geometry of a 6-axis arm plus its end-of-arm tooling.

    Attributes:
        name: Model name.
        joints: DH parameters, base to flange.
        link_names: One name per joint's outgoing link (reports use them).
        link_radii: Capsule radius per link.
        tool_length: Flange to tool centre point (TCP) along the flange z axis.
        tool_body_length: Length of the gripper body capsule from the flange;
            the fingers below it are excluded so a grasp is not a collision.
        tool_radius: Gripper body capsule radius.
        base_radius: Radius of the pedestal capsule from the base to joint 2.
    """

    name: str
    joints: tuple[DHJoint, ...]
    link_names: tuple[str, ...]
    link_radii: tuple[float, ...]
    tool_length: float = 0.15
    tool_body_length: float = 0.10
    tool_radius: float = 0.035
    base_radius: float = 0.06

    @property
    def dof(self) -> int:
        """Number of joints."""
        return len(self.joints)

    def frames(self, q: Sequence[float]) -> list[Mat4]:
        """Frames of the base and of every joint, in the base frame."""
        if len(q) != self.dof:
            raise ValueError(f"{self.name}: expected {self.dof} joint values, got {len(q)}")
        out = [_IDENTITY]
        current = _IDENTITY
        for theta, joint in zip(q, self.joints, strict=True):
            current = _mul(current, _dh(theta, joint))
            out.append(current)
        return out

    def flange(self, q: Sequence[float]) -> Mat4:
        """Pose of the flange."""
        return self.frames(q)[-1]

    def tcp(self, q: Sequence[float]) -> Vec3:
        """Tool centre point position."""
        return _offset(self.flange(q), self.tool_length)

    def tcp_pose(self, q: Sequence[float]) -> Mat4:
        """Tool centre point frame (the flange frame moved along its z axis)."""
        flange = self.flange(q)
        x, y, z = _offset(flange, self.tool_length)
        return (
            (flange[0][0], flange[0][1], flange[0][2], x),
            (flange[1][0], flange[1][1], flange[1][2], y),
            (flange[2][0], flange[2][1], flange[2][2], z),
            (0.0, 0.0, 0.0, 1.0),
        )

    def segments(self, q: Sequence[float]) -> list[LinkSegment]:
        """Capsules approximating the arm and the gripper body at ``q``.

        Consecutive DH frame origins that coincide are skipped; the pedestal is
        the segment from the base plate to the first joint origin.
        """
        frames = self.frames(q)
        origins = [_origin(f) for f in frames]
        segs: list[LinkSegment] = []
        for index in range(1, len(origins)):
            start, end = origins[index - 1], origins[index]
            if _dist(start, end) < 1e-3:
                continue
            radius = self.base_radius if index == 1 else self.link_radii[index - 1]
            segs.append(LinkSegment(self.link_names[index - 1], start, end, radius))
        flange = frames[-1]
        segs.append(
            LinkSegment(
                "gripper", _origin(flange), _offset(flange, self.tool_body_length), self.tool_radius
            )
        )
        return segs


def ur5_like() -> ArmModel:
    """A UR5-like arm: the published UR5 DH parameters, capsule links, a gripper."""
    half_pi = math.pi / 2
    return ArmModel(
        name="ur5-like",
        joints=(
            DHJoint(d=0.089159, a=0.0, alpha=half_pi),
            DHJoint(d=0.0, a=-0.425, alpha=0.0),
            DHJoint(d=0.0, a=-0.39225, alpha=0.0),
            DHJoint(d=0.10915, a=0.0, alpha=half_pi),
            DHJoint(d=0.09465, a=0.0, alpha=-half_pi),
            DHJoint(d=0.0823, a=0.0, alpha=0.0),
        ),
        link_names=("base", "upper_arm", "forearm", "wrist_1", "wrist_2", "wrist_3"),
        link_radii=(0.06, 0.054, 0.045, 0.04, 0.04, 0.035),
    )


def _dh(theta: float, joint: DHJoint) -> Mat4:
    ct, st = math.cos(theta), math.sin(theta)
    ca, sa = math.cos(joint.alpha), math.sin(joint.alpha)
    return (
        (ct, -st * ca, st * sa, joint.a * ct),
        (st, ct * ca, -ct * sa, joint.a * st),
        (0.0, sa, ca, joint.d),
        (0.0, 0.0, 0.0, 1.0),
    )


def _mul(a: Mat4, b: Mat4) -> Mat4:
    rows = []
    for i in range(4):
        r = a[i]
        rows.append((
            r[0] * b[0][0] + r[1] * b[1][0] + r[2] * b[2][0] + r[3] * b[3][0],
            r[0] * b[0][1] + r[1] * b[1][1] + r[2] * b[2][1] + r[3] * b[3][1],
            r[0] * b[0][2] + r[1] * b[1][2] + r[2] * b[2][2] + r[3] * b[3][2],
            r[0] * b[0][3] + r[1] * b[1][3] + r[2] * b[2][3] + r[3] * b[3][3],
        ))
    return tuple(rows)


def _origin(m: Mat4) -> Vec3:
    return (m[0][3], m[1][3], m[2][3])


def _offset(m: Mat4, length: float) -> Vec3:
    return (
        m[0][3] + m[0][2] * length,
        m[1][3] + m[1][2] * length,
        m[2][3] + m[2][2] * length,
    )


def _dist(a: Vec3, b: Vec3) -> float:
    return math.dist(a, b)
