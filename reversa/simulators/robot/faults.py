"""Fault injection for the robot cell simulator.

Every fault is armed explicitly (by a test, a demo, or over the simulator's
``/sim/inject`` service) and fires deterministically: motion faults trigger at
a stated fraction of the n-th motion started after arming, device faults on the
next n commands. Nothing depends on wall-clock timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultPlan", "MotionTrigger", "SerialFault"]


@dataclass
class MotionTrigger:
    """Something that happens part-way through a motion.

    Attributes:
        kind: ``"estop"`` (an e-stop button is pressed), ``"person"`` (a person
            walks into the reach zone) or ``"obstacle"`` (an object appears).
        motion: Which motion, counting motions started after arming (1-based).
        fraction: How far through that motion (0..1).
        category: Stop category of an e-stop (0, 1 or 2).
        position: Where the person stands (x, y) or the obstacle's centre.
        size: Obstacle extents.
        id: Person or obstacle id.
    """

    kind: str
    motion: int = 1
    fraction: float = 0.5
    category: int = 0
    position: tuple[float, ...] = (-0.8, 0.2)
    size: tuple[float, float, float] = (0.1, 0.1, 0.1)
    id: str = "person-1"


@dataclass
class SerialFault:
    """A fault on the tooling's Modbus RTU line or in its devices (gripper, dispenser).

    Attributes:
        kind: ``"no_reply"`` (the reply never comes), ``"bad_checksum"`` (the
            reply is corrupted), ``"busy"`` (the device refuses) or ``"jam"``
            (the fingers do not move).
        count: How many commands it affects.
        executes: For ``no_reply``/``bad_checksum``: whether the command still
            takes effect (the reply is lost after the fact).
        commands: Command names it applies to (empty: all but STATUS/QUERY).
    """

    kind: str
    count: int = 1
    executes: bool = True
    commands: tuple[str, ...] = ()


@dataclass
class FaultPlan:
    """All armed faults.

    Attributes:
        triggers: Motion triggers, consumed when they fire.
        reject_goals: Next n trajectory goals are rejected.
        hang_goals: Next n trajectory goals never report a result.
        camera_error: Inspection fails with this message while set.
        gripper_error: ROS gripper commands fail with this message while set
            (status reads still answer).
        tool_error: ROS tool commands fail with this message while set.
        conveyor_error: Conveyor service fails with this message while set.
        scene_hang: Scene service never answers while set.
        serial: Serial controller faults, consumed in order.
        zone_interlock: The zone scanner is wired to the robot's safety
            controller (a hardware protective stop on intrusion). When False
            only the adapter can stop the motion.
    """

    triggers: list[MotionTrigger] = field(default_factory=list)
    reject_goals: int = 0
    hang_goals: int = 0
    camera_error: str | None = None
    gripper_error: str | None = None
    tool_error: str | None = None
    conveyor_error: str | None = None
    scene_hang: bool = False
    serial: list[SerialFault] = field(default_factory=list)
    zone_interlock: bool = True

    def apply(self, spec: dict[str, Any]) -> None:
        """Arm a fault from its JSON form (the ``/sim/inject`` service).

        Raises:
            ValueError: Unknown fault kind.
        """
        kind = spec.get("kind")
        args = {k: v for k, v in spec.items() if k != "kind"}
        if kind in {"estop", "person", "obstacle"}:
            self.triggers.append(MotionTrigger(kind=kind, **_tuples(args)))
        elif kind in {"no_reply", "bad_checksum", "busy", "jam"}:
            self.serial.append(SerialFault(kind=kind, **_tuples(args)))
        elif kind == "reject_goals":
            self.reject_goals += int(args.get("count", 1))
        elif kind == "hang_goals":
            self.hang_goals += int(args.get("count", 1))
        elif kind in {"camera_error", "gripper_error", "tool_error", "conveyor_error"}:
            setattr(self, kind, str(args.get("message", kind)))
        elif kind == "scene_hang":
            self.scene_hang = bool(args.get("on", True))
        elif kind == "zone_interlock":
            self.zone_interlock = bool(args.get("on", True))
        else:
            raise ValueError(f"unknown fault kind {kind!r}")


def _tuples(args: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
