"""The cell as rigid bodies in PyBullet: the ground truth of the robot simulator.

Headless (``DIRECT``), fixed 240 Hz steps, stepped only by the simulator's own
clock (a motion, a gripper stroke, a conveyor run, parts settling), never by
wall time, so the same seed and the same commands give the same trajectory.
The arm is the Panda from the cell's URDF, driven by its joint motors; the
table, fixtures, tray, board fixture, assemblies rack, camera post and conveyor
are static boxes; parts are dynamic boxes under gravity; obstacles and people
are static bodies added while the cell runs.

Contact ground truth comes from Bullet's own contact points and normal forces
(:meth:`Physics.contacts`), never from the adapter's collision checker.
A grip is the fingers closing on the part plus a fixed constraint whose force
is capped by the grip's friction budget: a clean part is held firmly; a part
with solder paste on it (a lubricant between pads and part) has a budget that
shrinks as the paste spreads over the pads while the arm carries it, so the
constraint lets go when the motion demands more than is left, and the part
falls under gravity onto whatever is below.
"""

from __future__ import annotations

import importlib
import math
import os
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reversa.adapters.robot.layout import CellLayout
from reversa.adapters.robot.scene import Box, Vec3


def _import_quietly(name: str) -> Any:
    # pybullet's extension prints its build time on stderr when it loads: a stray
    # line in every command's output that is no error.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            return importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


pb: Any = _import_quietly("pybullet")

__all__ = ["DT", "Physics", "Touch"]

DT = 1.0 / 240.0
"""Seconds of simulated time per physics step."""

_PART_MASS = 0.02  # kg
_GRIP_FORCE = 20.0  # N per finger (the Panda hand's rating)
# Pad-part friction: clean / with solder paste. A pasted grip starts with six times the
# part's weight and loses friction as the paste spreads over the pads: the budget falls
# by e every _SMEAR_M of the fingers' travel. Bullet decides when the part lets go.
_FRICTION = {False: 0.8, True: 0.03}
_SMEAR_M = 0.15
_SLIP_DRIFT = 0.004  # m a held part may lag behind the fingers before it is lost
_FINGER_OPEN = 0.04
_FINGER_STEPS = 60  # steps of a full gripper stroke (0.25 s)


@dataclass(frozen=True, slots=True)
class Touch:
    """A contact between two bodies, as Bullet reports it."""

    a: str
    b: str
    force: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"a": self.a, "b": self.b, "force_n": round(self.force, 3)}


class Physics:
    """One PyBullet world holding the cell.

    Args:
        layout: The cell description (URDF, fixtures, stations).
        seed: Seeds the few random quantities (where exactly a part lies in its
            tray, within a millimetre and a half).
    """

    def __init__(self, layout: CellLayout, seed: int = 0) -> None:
        self.layout = layout
        self.seed = seed
        self.client = pb.connect(pb.DIRECT)
        self.steps = 0
        self.build()

    # -- building ---------------------------------------------------------------------
    def build(self) -> None:
        """(Re)create every body: the arm at home, the parts and boards at their stations."""
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        pb.setTimeStep(DT, physicsClientId=c)
        pb.setPhysicsEngineParameter(deterministicOverlappingPairs=1, physicsClientId=c)
        self.steps = 0
        self.names: dict[int, str] = {}
        self.kinds: dict[str, str] = {}
        self.bodies: dict[str, int] = {}
        self.arm = pb.loadURDF(str(self.layout.urdf), useFixedBase=True,
                               flags=pb.URDF_USE_INERTIA_FROM_FILE, physicsClientId=c)
        self.names[self.arm] = "arm"
        self.link_names: dict[int, str] = {-1: pb.getBodyInfo(self.arm, physicsClientId=c)[0]
                                           .decode()}
        joints: dict[str, int] = {}
        for j in range(pb.getNumJoints(self.arm, physicsClientId=c)):
            info = pb.getJointInfo(self.arm, j, physicsClientId=c)
            joints[info[1].decode()] = j
            self.link_names[j] = info[12].decode()
        self.joint_ids = [joints[n] for n in self.layout.arm.joint_names]
        self.finger_ids = [j for j, name in self.link_names.items()
                           if name in self.layout.grasp_links]
        self.tcp_link = next(j for j, n in self.link_names.items()
                             if n == self.layout.arm.links[self.layout.arm.tip])
        self.hand_link = pb.getJointInfo(self.arm, self.finger_ids[0], physicsClientId=c)[16]
        self.efforts = [float(pb.getJointInfo(self.arm, j, physicsClientId=c)[10])
                        for j in self.joint_ids]
        for box in self.layout.fixtures:
            self.add_box(box)
        for station in self.layout.stations.values():
            self.add_box(station.surface)
        self.grasp: dict[str, Any] | None = None
        self.slipped: set[int] = set()  # parts that slid out of the fingers (see drop_grasp)
        self.set_joints(self.layout.pose("home"))
        self.set_fingers(_FINGER_OPEN, steps=0)

    def add_box(self, box: Box, *, mass: float = 0.0, friction: float = 0.8) -> int:
        """Add a box body named ``box.id`` (static unless it has a mass)."""
        c = self.client
        half = [s / 2 for s in box.size]
        shape = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=c)
        body = pb.createMultiBody(mass, shape, -1, list(box.center), physicsClientId=c)
        pb.changeDynamics(body, -1, lateralFriction=friction, physicsClientId=c)
        self._name(body, box.id, box.kind)
        return int(body)

    def add_person(self, person_id: str, x: float, y: float, radius: float,
                   height: float) -> None:
        """A person standing in the cell (a static cylinder the arm can hit)."""
        c = self.client
        shape = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=radius, height=height,
                                        physicsClientId=c)
        body = pb.createMultiBody(0, shape, -1, [x, y, height / 2], physicsClientId=c)
        self._name(body, f"person:{person_id}", "person")

    def add_part(self, part_id: str, center: Vec3) -> None:
        """A component resting under gravity."""
        box = Box(f"part:{part_id}", center, self.layout.part_size, "part")
        body = self.add_box(box, mass=_PART_MASS, friction=_FRICTION[False])
        pb.changeDynamics(body, -1, rollingFriction=0.001, spinningFriction=0.001,
                          physicsClientId=self.client)

    def remove(self, name: str) -> None:
        """Take a body out of the cell."""
        body = self.bodies.pop(name, None)
        if body is not None:
            if self.grasp is not None and self.grasp["body"] == body:
                self.drop_grasp()
            pb.removeBody(body, physicsClientId=self.client)
            self.names.pop(body, None)

    def _name(self, body: int, name: str, kind: str) -> None:
        self.names[body] = name
        self.kinds[name] = kind
        self.bodies[name] = body

    def jitter(self, key: str) -> float:
        """A reproducible offset in [-1.5, 1.5] mm for ``key`` under this seed."""
        return random.Random(f"{self.seed}:{key}").uniform(-0.0015, 0.0015)

    # -- the arm ----------------------------------------------------------------------
    def joints(self) -> tuple[float, ...]:
        """The arm's joint positions now."""
        states = pb.getJointStates(self.arm, self.joint_ids, physicsClientId=self.client)
        return tuple(float(s[0]) for s in states)

    def set_joints(self, q: Sequence[float]) -> None:
        """Place the arm at ``q`` (a teleport: tests and resets), holding it there."""
        for j, value in zip(self.joint_ids, q, strict=True):
            pb.resetJointState(self.arm, j, float(value), physicsClientId=self.client)
        self.drive(q)

    def drive(self, q: Sequence[float], velocity: Sequence[float] | None = None) -> None:
        """Set the joint motors' targets (position control, rated torques)."""
        pb.setJointMotorControlArray(
            self.arm, self.joint_ids, pb.POSITION_CONTROL, targetPositions=list(q),
            targetVelocities=list(velocity) if velocity is not None else [0.0] * len(q),
            forces=self.efforts, positionGains=[0.2] * len(q), velocityGains=[1.0] * len(q),
            physicsClientId=self.client)

    def tcp(self) -> Vec3:
        """The tool centre point's position, as Bullet computes it."""
        state = pb.getLinkState(self.arm, self.tcp_link, computeForwardKinematics=True,
                                physicsClientId=self.client)
        x, y, z = state[4]
        return (float(x), float(y), float(z))

    # -- the gripper ------------------------------------------------------------------
    def fingers(self) -> float:
        """Finger opening (m per finger, 0 closed .. 0.04 open)."""
        states = pb.getJointStates(self.arm, self.finger_ids, physicsClientId=self.client)
        return float(sum(s[0] for s in states) / len(states))

    def set_fingers(self, target: float, *, steps: int = _FINGER_STEPS) -> None:
        """Drive the fingers towards ``target`` for ``steps`` physics steps."""
        if target >= _FINGER_OPEN:
            for body in self.slipped:
                self._fingers_touch(body, True)
            self.slipped.clear()
        if steps == 0:
            for j in self.finger_ids:
                pb.resetJointState(self.arm, j, target, physicsClientId=self.client)
        pb.setJointMotorControlArray(self.arm, self.finger_ids, pb.POSITION_CONTROL,
                                     targetPositions=[target] * len(self.finger_ids),
                                     forces=[_GRIP_FORCE] * len(self.finger_ids),
                                     physicsClientId=self.client)
        for _ in range(steps):
            self.step()

    def between_fingers(self) -> str | None:
        """The part both fingers touch, if any."""
        touched: list[set[str]] = []
        for finger in self.finger_ids:
            points = pb.getContactPoints(bodyA=self.arm, linkIndexA=finger,
                                         physicsClientId=self.client)
            touched.append({self.names.get(p[2], "") for p in points})
        common = set.intersection(*touched) if touched else set()
        parts = sorted(n for n in common if self.kinds.get(n) == "part")
        return parts[0] if parts else None

    def hold(self, name: str, *, pasted: bool) -> None:
        """Fix the part to the hand with a constraint capped by the grip's friction."""
        c = self.client
        body = self.bodies[name]
        hand = pb.getLinkState(self.arm, self.hand_link, computeForwardKinematics=True,
                               physicsClientId=c)
        pos, orn = pb.getBasePositionAndOrientation(body, physicsClientId=c)
        # Bullet places constraint frames in the link's centre-of-mass frame.
        inv_pos, inv_orn = pb.invertTransform(hand[0], hand[1])
        rel_pos, rel_orn = pb.multiplyTransforms(inv_pos, inv_orn, pos, orn)
        constraint = pb.createConstraint(self.arm, self.hand_link, body, -1, pb.JOINT_FIXED,
                                         [0, 0, 0], rel_pos, [0, 0, 0], rel_orn,
                                         physicsClientId=c)
        budget = 2 * _GRIP_FORCE * _FRICTION[pasted]
        pb.changeConstraint(constraint, maxForce=budget, physicsClientId=c)
        # From now on the grip's friction budget (the constraint) holds the part,
        # not the pads' contact friction. The fingers stay where the part stopped
        # them: closing on through a part they no longer collide with would leave
        # them inside it, and Bullet would fling it out when the release turns
        # their contacts back on.
        self._fingers_touch(body, False)
        opening = [float(s[0]) for s in pb.getJointStates(self.arm, self.finger_ids,
                                                           physicsClientId=c)]
        pb.setJointMotorControlArray(self.arm, self.finger_ids, pb.POSITION_CONTROL,
                                     targetPositions=opening,
                                     forces=[_GRIP_FORCE] * len(self.finger_ids),
                                     physicsClientId=c)
        self.grasp = {"body": body, "name": name, "constraint": constraint,
                      "rel": (rel_pos, rel_orn), "budget": budget, "pasted": pasted,
                      "travel": 0.0, "at": hand[0]}

    def drop_grasp(self, *, slipped: bool = False) -> str | None:
        """Let go of the held part (its constraint is removed); returns its name.

        With ``slipped`` the part has slid out from between the pads: the fingers,
        still closed where it was, must not catch it again, so they touch it only
        once they next open.
        """
        if self.grasp is None:
            return None
        grasp, self.grasp = self.grasp, None
        pb.removeConstraint(grasp["constraint"], physicsClientId=self.client)
        if slipped:
            self.slipped.add(grasp["body"])
        else:
            self._fingers_touch(grasp["body"], True)
        return str(grasp["name"])

    def _fingers_touch(self, body: int, enabled: bool) -> None:
        for finger in self.finger_ids:
            pb.setCollisionFilterPair(self.arm, body, finger, -1, int(enabled),
                                      physicsClientId=self.client)

    def slipping(self) -> bool:
        """Whether the held part has lagged further behind the fingers than a grip allows."""
        if self.grasp is None:
            return False
        c = self.client
        hand = pb.getLinkState(self.arm, self.hand_link, computeForwardKinematics=True,
                               physicsClientId=c)
        expected, _ = pb.multiplyTransforms(hand[0], hand[1], *self.grasp["rel"])
        actual, _ = pb.getBasePositionAndOrientation(self.grasp["body"], physicsClientId=c)
        return math.dist(expected, actual) > _SLIP_DRIFT

    # -- bodies -----------------------------------------------------------------------
    def position(self, name: str) -> Vec3:
        """A body's centre."""
        pos, _ = pb.getBasePositionAndOrientation(self.bodies[name], physicsClientId=self.client)
        return (float(pos[0]), float(pos[1]), float(pos[2]))

    def move_body(self, name: str, center: Vec3) -> None:
        """Put a body somewhere else (what a conveyor does to the board it carries)."""
        body = self.bodies[name]
        _, orn = pb.getBasePositionAndOrientation(body, physicsClientId=self.client)
        pb.resetBasePositionAndOrientation(body, list(center), orn, physicsClientId=self.client)
        pb.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=self.client)

    def speed(self, name: str) -> float:
        """A body's linear speed (m/s)."""
        linear, _ = pb.getBaseVelocity(self.bodies[name], physicsClientId=self.client)
        return math.sqrt(sum(v * v for v in linear))

    # -- stepping and contacts ----------------------------------------------------------
    def step(self) -> None:
        """One physics step."""
        pb.stepSimulation(physicsClientId=self.client)
        self.steps += 1
        grasp = self.grasp
        if grasp is not None and grasp["pasted"]:
            hand = pb.getLinkState(self.arm, self.hand_link, computeForwardKinematics=True,
                                   physicsClientId=self.client)
            grasp["travel"] += math.dist(hand[0], grasp["at"])
            grasp["at"] = hand[0]
            budget = grasp["budget"] * math.exp(-grasp["travel"] / _SMEAR_M)
            pb.changeConstraint(grasp["constraint"], maxForce=budget,
                                physicsClientId=self.client)

    def contacts(self, name: str | None = None) -> list[Touch]:
        """Every contact (of body ``name`` only, if given) after the last step, with its
        normal force; arm contacts are named after the arm's link."""
        c = self.client
        if name is None:
            points = pb.getContactPoints(physicsClientId=c)
        elif name == "arm":
            points = pb.getContactPoints(bodyA=self.arm, physicsClientId=c)
        else:
            points = pb.getContactPoints(bodyA=self.bodies[name], physicsClientId=c)
        merged: dict[tuple[str, str], float] = {}
        for point in points:
            a, b = self._label(point[1], point[3]), self._label(point[2], point[4])
            merged[(a, b)] = merged.get((a, b), 0.0) + float(point[9])
        return [Touch(a, b, f) for (a, b), f in sorted(merged.items())]

    def _label(self, body: int, link: int) -> str:
        if body == self.arm:
            return self.link_names.get(link, f"link{link}")
        return self.names.get(body, f"body{body}")

    def close(self) -> None:
        """Disconnect from the physics server."""
        pb.disconnect(physicsClientId=self.client)
