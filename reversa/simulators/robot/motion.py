"""The simulated trajectory controller: follows FollowJointTrajectory goals on the physics arm.

Each goal is checked (limits, speed, start point), then followed step by step:
the joint motors get the trajectory's position and velocity at each 240 Hz
physics step, and Bullet moves the arm. Whatever the arm touches that it may
not is a collision (read from the physics engine's contacts, with its force):
a protective stop, as on a cobot. The controller obeys the safety controller:
category 0 stops at once; categories 1 and 2 decelerate for a short time first.
A held part with paste on it slips out of the fingers when the motion asks more
of the grip than it has; it falls under gravity and hits whatever is below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reversa.adapters.robot.scene import Box
from reversa.safety import joint_distance

from .physics import DT
from .world import CellWorld

__all__ = ["GoalRejected", "Motion", "advance", "cancel", "start_motion"]

# control_msgs/action/FollowJointTrajectory result codes
SUCCESSFUL = 0
INVALID_GOAL = -1
INVALID_JOINTS = -2
PATH_TOLERANCE_VIOLATED = -4

_DECEL_S = 0.1  # simulated seconds a controlled stop keeps moving
_START_TOLERANCE = 0.05  # rad a trajectory's first point may be from the current pose
_GOAL_TOLERANCE = 1e-4  # rad: the arm has reached the goal
_SETTLE_S = 0.5  # simulated seconds the controller waits for the arm to reach the goal


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
    hold: tuple[float, ...] | None = None
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
        if names != list(world.joint_names):
            raise GoalRejected(INVALID_JOINTS, f"expected joints {list(world.joint_names)}, "
                                               f"got {names}")
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
                  "duration": span, "peak_speed": peak, "outcome": "executing",
                  "waypoints": len(path) - 1}
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
    """Run ``motion`` for ``dt`` simulated seconds of physics; True once it has ended."""
    with world.lock:
        for _ in range(max(1, round(dt / DT))):
            if motion.done:
                return True
            if _tick(world, motion):
                return True
        world.version += 1
        return motion.done


def _tick(world: CellWorld, motion: Motion) -> bool:
    """One physics step of the motion; True when it ended."""
    if world.stop is not None and motion.stopping is None:
        if world.stop.category == 0:
            return _halt(world, motion, "aborted",
                         f"safety stop category 0 ({world.stop.source})")
        motion.stopping = _DECEL_S
    fraction = min(motion.t / max(motion.duration, 1e-9), 1.0)
    ended = _fire_triggers(world, motion, fraction)
    if ended is not None:
        return ended
    if motion.stopping is not None:
        motion.stopping -= DT
        if motion.stopping <= 0:
            return _stopped(world, motion)
    if motion.hold is None:
        q, velocity = _at(motion, motion.t)
        world.physics.drive(q, velocity)
    hits = world.step()
    motion.t += DT
    if hits:
        names = sorted({h.b for h in hits})
        contacts = [f"{h.a} x {h.b}" for h in hits]
        world.log("collision", motion=motion.number, contacts=contacts,
                  force_n=round(max(h.force for h in hits), 2))
        world.trip(2, f"collision:{names[0]}", f"collision with {', '.join(names)}")
        return _halt(world, motion, "aborted",
                     f"protective stop: collision with {', '.join(names)}")
    if motion.t >= motion.duration:
        ended = _fire_triggers(world, motion, 1.0)
        if ended is not None:
            return ended
        goal = motion.path[-1]
        if joint_distance(world.physics.joints(), goal) <= _GOAL_TOLERANCE \
                or motion.t >= motion.duration + _SETTLE_S:
            world.settle()
            return _finish(world, motion, "succeeded", SUCCESSFUL, "")
    return False


def _halt(world: CellWorld, motion: Motion, status: str, message: str) -> bool:
    # Brakes on where the arm is: hold the current position.
    world.physics.drive(world.physics.joints())
    world.settle()
    return _finish(world, motion, status, PATH_TOLERANCE_VIOLATED, message)


def _stopped(world: CellWorld, motion: Motion) -> bool:
    if world.stop is None:
        return _halt(world, motion, motion.stop_status, "canceled")
    return _halt(world, motion, "aborted",
                 f"safety stop category {world.stop.category} ({world.stop.source})")


def _at(motion: Motion, t: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The trajectory's position and velocity at ``t``."""
    for (a, b), (ta, tb) in zip(
        zip(motion.path, motion.path[1:], strict=False),
        zip(motion.times, motion.times[1:], strict=False),
        strict=False,
    ):
        if t <= tb:
            if tb <= ta:
                return b, tuple(0.0 for _ in b)
            f = (t - ta) / (tb - ta)
            return (tuple(x + (y - x) * f for x, y in zip(a, b, strict=True)),
                    tuple((y - x) / (tb - ta) for x, y in zip(a, b, strict=True)))
    last = motion.path[-1]
    return last, tuple(0.0 for _ in last)


def _fire_triggers(world: CellWorld, motion: Motion, fraction: float) -> bool | None:
    due = [t for t in world.faults.triggers
           if t.motion == motion.number and t.fraction <= fraction + 1e-9]
    for trigger in due:
        world.faults.triggers.remove(trigger)
        world.log("fault", fault=trigger.kind, motion=motion.number, fraction=trigger.fraction)
        if trigger.kind == "estop":
            world.press_estop(trigger.category)
            if trigger.category == 0:
                return _halt(world, motion, "aborted", "safety stop category 0 (estop:pendant)")
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


def _finish(world: CellWorld, motion: Motion, status: str, code: int, message: str) -> bool:
    motion.status, motion.error_code, motion.error_string = status, code, message
    motion.record["outcome"] = status
    motion.record["error"] = message
    motion.record["stopped_at"] = world.q
    world.log("motion", number=motion.number, outcome=status, error=message)
    return True
