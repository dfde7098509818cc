"""The robot cell as operations see it: guarded motion, sensors, tooling, a world model.

Every motion goes through :meth:`RobotCell.move`, which enforces the safety
model in this order:

1. a latched safety stop refuses the motion (nothing moves until a human reset);
2. the scene is read *now* from the cell's sensors, never remembered;
3. a person inside the reach zone refuses the motion;
4. the joint-space path must be inside the joint limits and collision-free
   against the arm's links (from its URDF), the held object and every obstacle
   in that scene, checked continuously (:mod:`.collision`); a recovery motion
   whose straight path is blocked gets a path planned around the obstacle
   (:mod:`.planning`), verified the same way, or is refused with the reason;
5. while the arm moves, an e-stop or protective stop reported by the machine, or
   a person entering the zone, trips the latch and cancels the goal at once; the
   call then raises :class:`~reversa.core.errors.EmergencyStop`.

Every command (motion, tooling, conveyor) carries the caller's
:class:`~.ports.Stamp`; a controller's refusal of a stale epoch or a blocked key
raises :class:`~reversa.core.errors.Fenced` and nothing moved.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from reversa.core.clock import Clock, SystemClock
from reversa.core.context import Check
from reversa.core.errors import (
    EmergencyStop,
    Fenced,
    OutcomeUnknown,
    PermanentError,
    PreconditionFailed,
)
from reversa.safety import (
    GripperState,
    Joints,
    PartStatus,
    StopCategory,
    StopLatch,
    StopReset,
    ToolingStatus,
    ToolState,
    joint_distance,
    motion_duration,
)

from .collision import CollisionChecker, PathReport
from .layout import CellLayout
from .planning import plan_path
from .ports import (
    ArmPort,
    BlockOutcome,
    CameraPort,
    ConveyorPort,
    SafetySensors,
    Stamp,
    ToolingPort,
    ZoneStatus,
)
from .scene import PlanningScene

__all__ = ["Belief", "RobotCell"]

_AT_TOLERANCE = 1e-3  # rad: already at the goal, nothing to move


@dataclass
class Belief:
    """The adapter's own world model, updated by every operation it runs.

    The consistency predicate compares it with what the sensors report: a part
    that slipped, was removed by hand or never arrived shows up as a mismatch.
    """

    parts: dict[str, str] = field(default_factory=dict)
    boards: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"parts": dict(sorted(self.parts.items())),
                "boards": dict(sorted(self.boards.items()))}


class RobotCell:
    """A robot cell: arm, safety sensors, tooling, camera and conveyor behind narrow ports.

    Pass it to the engine as a service (``Engine(..., services={"robot": cell})``).

    Args:
        layout: The cell description (poses, stations, safe states, limits).
        arm: Arm motion port.
        sensors: Safety and world sensors.
        tooling: Gripper and process tool.
        camera: Inspection camera, if the workflow uses one.
        conveyor: Board conveyor, if a forward recovery routes boards.
        clock: Time source for stop records (the engine's clock).
        production_speed: Joint speed (rad/s) of forward motions; recovery
            motions use the policy's slower ``recovery_speed``.
        name: The cell's identity as a resource (``robot.cell:<name>``): give
            each physical cell sharing a saga store its own name.
    """

    def __init__(
        self,
        layout: CellLayout,
        *,
        arm: ArmPort,
        sensors: SafetySensors,
        tooling: ToolingPort,
        camera: CameraPort | None = None,
        conveyor: ConveyorPort | None = None,
        clock: Clock | None = None,
        production_speed: float = 1.0,
        name: str = "cell",
    ) -> None:
        self.name = name
        self.layout = layout
        self.policy = layout.policy
        self.arm = arm
        self.sensors = sensors
        self.tooling = tooling
        self.camera = camera
        self.conveyor = conveyor
        self.clock = clock or SystemClock()
        self.production_speed = production_speed
        self.latch = StopLatch(self.clock.now)
        self.checker = CollisionChecker(layout.arm, layout.limits,
                                        tolerance=layout.policy.collision_tolerance,
                                        grasp_links=layout.grasp_links)
        self._beliefs: dict[str, Belief] = {}
        self._belief_lock = threading.Lock()
        self.motions: list[dict[str, Any]] = []
        self._motion_lock = threading.Lock()
        self._moving = threading.Event()
        self._unsubscribe = [sensors.on_stop(self._on_machine_stop),
                             sensors.on_zone(self._on_zone)]

    # -- safety events (transport threads) ----------------------------------------------
    def _on_machine_stop(self, category: int, source: str, reason: str) -> None:
        self.latch.trip(category, source, reason)

    def _on_zone(self, status: ZoneStatus) -> None:
        # A person entering while the arm moves is a protective stop; while the arm
        # stands still, the next motion's zone check refuses to start instead.
        if status.occupied and self._moving.is_set():
            who = ",".join(status.persons) or "unknown"
            self.latch.trip(StopCategory.CONTROLLED_HOLD, f"zone:{who}",
                            f"person {who} entered the reach zone during motion")

    def detach(self) -> None:
        """Stop listening to the sensors (the ports stay open for another cell)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def close(self) -> None:
        """Detach, then close every port that can be closed (each once)."""
        self.detach()
        seen: set[int] = set()
        for port in (self.arm, self.sensors, self.tooling, self.camera, self.conveyor):
            closer = getattr(port, "close", None)
            if port is not None and id(port) not in seen and callable(closer):
                seen.add(id(port))
                closer()

    def reset_stop(self, operator: str, note: str = "") -> StopReset:
        """Acknowledge a human's reset of a safety stop at the machine.

        Raises:
            PreconditionFailed: The machine still reports the stop active or the
                zone occupied.
        """
        released = not self.sensors.estop_active() and not self.sensors.zone().occupied
        return self.latch.reset(operator, hardware_released=released, note=note)

    # -- reading the cell now ---------------------------------------------------------
    def joints(self) -> Joints:
        """Joint positions now."""
        return self.arm.joints()

    def scene(self) -> PlanningScene:
        """The planning scene now."""
        return self.sensors.scene()

    def tooling_status(self, scene: PlanningScene | None = None) -> ToolingStatus:
        """Gripper and tool state now.

        The gripper reports whether its fingers stopped on an object; which part it
        is comes from the planning scene's attached object (a gripper knows no part
        ids). An object the scene does not know is reported as ``"unidentified"``.
        """
        raw = self.tooling.status()
        holding: str | None = None
        if raw.get("object"):
            attached = (scene or self.scene()).attached
            holding = attached.id if attached else "unidentified"
        return ToolingStatus(GripperState(str(raw.get("gripper", "open"))), holding,
                             ToolState(str(raw.get("tool", "off"))))

    def part(self, part_id: str, scene: PlanningScene | None = None) -> PartStatus:
        """A part's status now."""
        return (scene or self.scene()).part(part_id)

    def pose_name(self, q: Joints | None = None) -> str | None:
        """The named pose the arm is at, if any."""
        return self.layout.pose_name(q if q is not None else self.joints(), 0.02)

    def belief(self, saga_id: str) -> Belief:
        """The world model of one saga, initialised from the sensors on first use.

        The first use is the pre-workflow snapshot, so every later divergence
        between what the saga did and what the sensors report is visible.
        """
        with self._belief_lock:
            known = self._beliefs.get(saga_id)
        if known is not None:
            return known
        scene = self.scene()
        fresh = Belief({p.part: p.location for p in scene.parts},
                       {b.board: b.location for b in scene.boards})
        with self._belief_lock:
            return self._beliefs.setdefault(saga_id, fresh)

    # -- checks -------------------------------------------------------------------------
    def check_zone(self, scene: PlanningScene | None = None) -> Check:
        """The reach zone is clear (sensor report and scene persons)."""
        zone = self.sensors.zone()
        inside = [
            p.id for p in (scene.persons if scene else ())
            if (p.x**2 + p.y**2) ** 0.5 - p.radius < self.policy.reach_zone_radius
        ]
        if zone.occupied or inside:
            who = ", ".join(sorted(set(zone.persons) | set(inside))) or "unknown"
            return Check(False, f"person in the arm's reach zone ({who}): no motion allowed",
                         {"persons": who})
        return Check(True, "reach zone clear")

    def check_motion(
        self, start: Joints, goal: Joints, *, scene: PlanningScene | None = None,
        label: str = "motion", replan: bool = False,
    ) -> Check:
        """Whether the arm may move from ``start`` to ``goal`` in the scene read now
        (with ``replan``, along a planned path when the straight one is blocked)."""
        if self.latch.tripped:
            signal = self.latch.signal()
            return Check(False, f"{label}: {signal.message if signal else 'stop latched'}")
        scene = scene or self.scene()
        zone = self.check_zone(scene)
        if not zone.ok:
            return Check(False, f"{label}: {zone.reason}", dict(zone.detail))
        return self.route(start, goal, scene, replan=replan).as_check(label)

    def path(self, start: Joints, goal: Joints, scene: PlanningScene) -> PathReport:
        """Check the straight joint-space path ``start -> goal``, continuously."""
        return self.checker.check_path(start, goal, scene)

    def route(self, start: Joints, goal: Joints, scene: PlanningScene, *,
              replan: bool) -> PathReport:
        """The straight path if it is collision-free; otherwise, with ``replan``, a
        path planned around what blocks it (bounded by the policy's planning time).

        Returns:
            The report of the path to drive (``ok``), or of why there is none: the
            straight path's collision and, with ``replan``, the planner's answer.
        """
        straight = self.path(start, goal, scene)
        if straight.ok or not replan or straight.contacts == ():
            return straight  # free, or not blocked by a collision (limits): no plan helps
        planned = plan_path(self.checker.prepared(scene), start, goal,
                            time_s=self.policy.planning_time_s)
        if planned.ok:
            return PathReport(True, f"straight path blocked ({straight.reason}); planned "
                              f"around it: {planned.reason}", planned.tolerance,
                              planned.waypoints, planned.iterations, planned.clearance,
                              path=planned.path, planner=planned.planner)
        return PathReport(False, f"{straight.reason}; {planned.reason}", straight.tolerance,
                          straight.waypoints, straight.iterations, straight.clearance,
                          straight.first_bad, straight.at, straight.contacts, straight.path,
                          planner=planned.planner)

    # -- acting -------------------------------------------------------------------------
    def move(
        self,
        goal: Joints,
        *,
        speed: float,
        label: str,
        stamp: Stamp,
        budget_s: float | None = None,
        replan: bool = False,
    ) -> dict[str, Any]:
        """Move to ``goal`` along a continuously checked joint-space path.

        Args:
            goal: Target joints.
            speed: Joint speed limit (rad/s), clamped to the joints' limits.
            label: What this motion is for (reports and errors).
            stamp: The calling step's key and fencing token, sent with the goal.
            budget_s: Seconds left before the caller's deadline; the motion is
                cancelled rather than allowed to outlive it.
            replan: When the straight path is blocked, plan a path around the
                obstacle (recovery motions) instead of refusing.

        Returns:
            ``{"from", "to", "moved", "waypoints", "route", "check", "speed"}``.

        Raises:
            EmergencyStop: A safety stop is latched, or happened during the motion.
            PreconditionFailed: The zone is occupied or the path is not safe now.
            Fenced: The controller refused the stamp: a newer owner of the saga
                has spoken to it, or a rollback blocked the key (the arm did not move).
            PermanentError: The controller refused the goal (the arm did not move).
            OutcomeUnknown: The motion did not finish or report in time; where
                the arm stopped is for the next call to read.
        """
        with self._motion_lock:
            self.latch.raise_if_tripped()
            start = self.joints()
            record: dict[str, Any] = {"label": label, "from": list(start), "to": list(goal),
                                      "speed": speed}
            if joint_distance(start, goal) <= _AT_TOLERANCE:
                return {**record, "moved": False, "waypoints": 0, "route": "none"}
            scene = self.scene()
            zone = self.check_zone(scene)
            if not zone.ok:
                raise PreconditionFailed(f"{label}: {zone.reason}", details=dict(zone.detail))
            report = self.route(start, goal, scene, replan=replan)
            if not report.ok:
                raise PreconditionFailed(f"{label}: {report.reason}", details=report.detail())
            speed = self.layout.limits.speed_for(speed)
            times = motion_duration(report.path, speed)
            timeout = times[-1] + self.policy.motion_timeout_s
            if budget_s is not None:
                timeout = max(0.1, min(timeout, budget_s))
            self._moving.set()
            try:
                outcome = self.arm.execute(list(report.path[1:]), times[1:], stamp=stamp,
                                           timeout=timeout, abort=lambda: self.latch.tripped)
            finally:
                self._moving.clear()
            record.update(outcome=outcome.status, message=outcome.message,
                          waypoints=report.waypoints, route=report.planner,
                          check=report.detail(), speed=speed)
            self.motions.append(record)
            if not outcome.ok and self.sensors.estop_active() and not self.latch.tripped:
                self.latch.trip(StopCategory.CONTROLLED_HOLD, "controller",
                                f"{label}: controller aborted the motion: {outcome.message}")
            self.latch.raise_if_tripped()
            if outcome.ok:
                return {**record, "moved": True}
            if outcome.status == "fenced":
                raise Fenced(f"{label}: the controller refused the command: {outcome.message}",
                             code=outcome.refusal or None, details=record)
            if outcome.status == "rejected":
                raise PermanentError(f"{label}: the controller refused the goal: "
                                     f"{outcome.message}", details=record)
            raise OutcomeUnknown(
                f"{label}: motion {outcome.status} ({outcome.message}); the arm stopped "
                "somewhere on the checked path", details=record)

    def actuate(self, command: str, stamp: Stamp, **args: Any) -> dict[str, Any]:
        """Run a tooling command unless a safety stop is latched.

        ``tool_off`` always runs: switching a tool off is safe in every state.
        The controller deduplicates by (``stamp.key``, command).
        """
        if command != "tool_off":
            self.latch.raise_if_tripped()
        handler = {
            "grip": self.tooling.grip,
            "release": self.tooling.release,
            "tool_off": self.tooling.tool_off,
        }.get(command)
        if command == "dispense":
            return self.tooling.dispense(stamp, float(args.get("volume_ul", 5.0)))
        if handler is None:
            raise PermanentError(f"unknown tooling command {command!r}")
        return handler(stamp)

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Block ``stamp.key`` at every controller that takes keyed commands.

        Each controller, atomically, reports what ran under the key and tombstones
        it, and from now on refuses the saga's older epochs. Every controller is
        asked, even after one reports that something ran: each must learn the
        new epoch, and must refuse a late command under the key from now on.

        Returns:
            The commands that had run under the key, on any controller (empty:
            none had). Either way, no more will.
        """
        executed: list[str] = []
        seen: set[int] = set()
        for port in (self.arm, self.tooling):
            # A port fronting another port's controller (RosTooling on the arm's
            # link) says so, and that controller is asked once.
            controller = getattr(port, "controller", port)
            if id(controller) not in seen:
                seen.add(id(controller))
                executed += port.block(stamp).executed
        return BlockOutcome(tuple(executed))

    def require(self, what: str, port: Any) -> Any:
        """Return an optional port or explain that the cell lacks it."""
        if port is None:
            raise PermanentError(f"this RobotCell has no {what}; pass {what}= to RobotCell")
        return port

    def signal(self) -> EmergencyStop | None:
        """The latched stop as a signal, if any."""
        return self.latch.signal()
