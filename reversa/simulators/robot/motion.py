"""Trajectory execution in the simulated cell: the physics the safety rules guard against.

A motion follows its trajectory in simulated time. At every configuration (at
most 0.02 rad apart) the simulator checks the *true* world for collisions, fires
armed faults, lets a paste-covered part slip out of the fingers, and obeys the
safety controller: category 0 stops at once, categories 1 and 2 decelerate for
a short time first. A collision is a protective stop, as on a real cobot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reversa.adapters.robot.scene import Box
from reversa.safety import interpolate, joint_distance

from .world import _SLIP_DISTANCE, JOINT_NAMES, CellWorld

__all__ = ["GoalRejected", "Motion", "advance", "cancel", "start_motion"]

# control_msgs/action/FollowJointTrajectory result codes
SUCCESSFUL = 0
INVALID_GOAL = -1
INVALID_JOINTS = -2
PATH_TOLERANCE_VIOLATED = -4

_SAMPLE = 0.02  # rad between checked configurations
_DECEL_S = 0.1  # simulated seconds a controlled stop keeps moving
_START_TOLERANCE = 0.05  # rad a trajectory's first point may be from the current pose


class GoalRejected(Exception):
    """The trajectory controller refused a goal; the arm did not move."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Motion:
    """One trajectory being executed."""

    number: int
    path: list[tuple[float, ...]]
    times: list[float]
    t: float = 0.0
    status: str = "executing"
    error_code: int = SUCCESSFUL
    error_string: str = ""
    hang: bool = False
    stopping: float | None = None
    stop_status: str = "aborted"
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Planned duration in simulated seconds."""
        return self.times[-1]

    @property
    def done(self) -> bool:
        """Whether the motion has ended (any outcome)."""
        return self.status != "executing"


def start_motion(world: CellWorld, trajectory: dict[str, Any]) -> Motion:
    """Accept a FollowJointTrajectory goal's ``trajectory`` and start it.

    Raises:
        GoalRejected: Stop latched, bad joints, outside limits or too fast.
    """
    with world.lock:
        if world.stop is not None:
            raise GoalRejected(INVALID_GOAL, f"safety stop active ({world.stop.source}); "
                                             "a human must reset it before any motion")
        if world.faults.reject_goals > 0:
            world.faults.reject_goals -= 1
            raise GoalRejected(INVALID_GOAL, "controller not ready (injected fault)")
        names = list(trajectory.get("joint_names", []))
        if names != list(JOINT_NAMES):
            raise GoalRejected(INVALID_JOINTS, f"expected joints {list(JOINT_NAMES)}, got {names}")
        points = trajectory.get("points", [])
        if not points:
            raise GoalRejected(INVALID_GOAL, "trajectory has no points")
        path: list[tuple[float, ...]] = [tuple(world.q)]
        times = [0.0]
        for point in points:
            q = tuple(float(v) for v in point["positions"])
            stamp = point.get("time_from_start", {})
            t = float(stamp.get("sec", 0)) + float(stamp.get("nanosec", 0)) / 1e9
            if t <= times[-1] and joint_distance(q, path[-1]) > 1e-9:
                raise GoalRejected(INVALID_GOAL, "time_from_start must increase")
            path.append(q)
            times.append(max(t, times[-1]))
        if joint_distance(path[0], path[1]) > _START_TOLERANCE and times[1] == 0.0:
            raise GoalRejected(INVALID_GOAL, "first point is away from the current position")
        limits = world.layout.limits.check_path(path)
        if not limits.ok:
            raise GoalRejected(INVALID_GOAL, limits.reason)
        for a, b, ta, tb in zip(path, path[1:], times, times[1:], strict=False):
            if tb > ta:
                for index, (x, y) in enumerate(zip(a, b, strict=True)):
                    if abs(x - y) / (tb - ta) > world.layout.limits.max_speed[index] * 1.001:
                        raise GoalRejected(INVALID_GOAL, f"joint {index + 1} would exceed its "
                                                         "speed limit")
        world.motion_count += 1
        hang = world.faults.hang_goals > 0
        if hang:
            world.faults.hang_goals -= 1
        span = max(times[-1], 1e-9)
        peak = max(
            (joint_distance(a, b) / (tb - ta)
             for a, b, ta, tb in zip(path, path[1:], times, times[1:], strict=False) if tb > ta),
            default=0.0,
        )
        record = {"number": world.motion_count, "from": list(path[0]), "to": list(path[-1]),
                  "duration": span, "peak_speed": peak, "outcome": "executing"}
        world.motions.append(record)
        return Motion(world.motion_count, path, times, hang=hang, record=record)


def cancel(world: CellWorld, motion: Motion) -> None:
    """Cancel a motion: a controlled stop, reported as CANCELED."""
    with world.lock:
        if not motion.done and motion.stopping is None:
            motion.stopping = _DECEL_S
            motion.stop_status = "canceled"
            world.log("cancel", motion=motion.number)


def advance(world: CellWorld, motion: Motion, dt: float) -> bool:
    """Move ``motion`` forward by ``dt`` simulated seconds; True once it has ended."""
    with world.lock:
        if motion.done:
            return True
        if world.stop is not None and motion.stopping is None:
            if world.stop.category == 0:
                return _finish(world, motion, "aborted", PATH_TOLERANCE_VIOLATED,
                               f"safety stop category 0 ({world.stop.source})")
            motion.stopping = _DECEL_S
        target_t = min(motion.t + dt, motion.duration)
        start = tuple(world.q)
        goal = _at(motion, target_t)
        samples = interpolate(start, goal, _SAMPLE)[1:] if start != goal else []
        n = len(samples)
        t_prev = motion.t
        for index, q in enumerate(samples):
            t_here = motion.t + (target_t - motion.t) * (index + 1) / max(n, 1)
            if motion.stopping is not None:
                # A controlled stop coasts for _DECEL_S of simulated time, then halts.
                motion.stopping -= t_here - t_prev
                if motion.stopping <= 0:
                    motion.t = t_prev
                    return _stopped(world, motion)
            t_prev = t_here
            outcome = _fire_triggers(world, motion, t_here / max(motion.duration, 1e-9))
            if outcome is not None:
                return outcome
            previous = tuple(world.q)
            world.q = list(q)
            hits = world.prepared_scene().contacts(q)
            if hits:
                world.q = list(previous)
                names = sorted({h.obstacle for h in hits})
                world.log("collision", motion=motion.number, contacts=[str(h) for h in hits])
                world.trip(2, f"collision:{names[0]}", f"collision with {', '.join(names)}")
                return _finish(world, motion, "aborted", PATH_TOLERANCE_VIOLATED,
                               f"protective stop: collision with {', '.join(names)}")
            _slip(world)
        if motion.stopping is not None and not samples:
            motion.stopping -= target_t - motion.t
        motion.t = target_t
        if motion.stopping is not None and (motion.stopping <= 0
                                            or motion.t >= motion.duration):
            return _stopped(world, motion)
        if motion.t >= motion.duration:
            return _finish(world, motion, "succeeded", SUCCESSFUL, "")
        world.version += 1
        return False


def _stopped(world: CellWorld, motion: Motion) -> bool:
    if world.stop is None:
        return _finish(world, motion, motion.stop_status, PATH_TOLERANCE_VIOLATED, "canceled")
    return _finish(world, motion, "aborted", PATH_TOLERANCE_VIOLATED,
                   f"safety stop category {world.stop.category} ({world.stop.source})")


def _at(motion: Motion, t: float) -> tuple[float, ...]:
    for (a, b), (ta, tb) in zip(
        zip(motion.path, motion.path[1:], strict=False),
        zip(motion.times, motion.times[1:], strict=False),
        strict=False,
    ):
        if t <= tb:
            if tb <= ta:
                return b
            f = (t - ta) / (tb - ta)
            return tuple(x + (y - x) * f for x, y in zip(a, b, strict=True))
    return motion.path[-1]


def _fire_triggers(world: CellWorld, motion: Motion, fraction: float) -> bool | None:
    due = [t for t in world.faults.triggers
           if t.motion == motion.number and t.fraction <= fraction]
    for trigger in due:
        world.faults.triggers.remove(trigger)
        world.log("fault", fault=trigger.kind, motion=motion.number, fraction=trigger.fraction)
        if trigger.kind == "estop":
            world.press_estop(trigger.category)
            if trigger.category == 0:
                return _finish(world, motion, "aborted", PATH_TOLERANCE_VIOLATED,
                               "safety stop category 0 (estop:pendant)")
            motion.stopping = _DECEL_S if motion.stopping is None else motion.stopping
        elif trigger.kind == "person":
            x, y = (*trigger.position, 0.0, 0.0)[:2]
            world.add_person(trigger.id, x, y)
            if world.stop is not None and motion.stopping is None:
                motion.stopping = _DECEL_S
        elif trigger.kind == "obstacle":
            cx, cy, cz = (*trigger.position, 0.0, 0.0, 0.0)[:3]
            world.add_obstacle(Box(trigger.id, (cx, cy, cz), trigger.size, "obstacle"))
    return None


def _slip(world: CellWorld) -> None:
    if world.holding is None or world.grip_quality != "slipping":
        return
    tcp = world.layout.arm.tcp(world.q)
    if math.dist(tcp[:2], world._grasp_xy) > _SLIP_DISTANCE:
        part = world.parts[world.holding]
        world.holding, world.grip_quality = None, "none"
        world._drop(part, tcp)
        world._changed()


def _finish(world: CellWorld, motion: Motion, status: str, code: int, message: str) -> bool:
    motion.status, motion.error_code, motion.error_string = status, code, message
    motion.record["outcome"] = status
    motion.record["error"] = message
    motion.record["stopped_at"] = list(world.q)
    world.log("motion", number=motion.number, outcome=status, error=message)
    return True
