"""Ground truth of the simulated PCB cell: arm, tooling, parts, boards, people, stops.

The rosbridge server and the serial controller are two front doors to one
``CellWorld``; tests read the world directly to assert the *physical* end state
(where the part is, whether assemblies were damaged, which stop category ran),
not only what the adapter believed.

The world is also the controller's fencing memory (:class:`FenceGate`): the
highest epoch seen per saga and the keys a rollback blocked, checked under the
world's lock together with the effect, and a log of every fenced command with
its outcome (:attr:`CellWorld.commands`), so a test can prove at the controller
that a stale command was refused and moved nothing.

Thread-safe: the rosbridge loop, the serial device thread and test code all
touch it, under one re-entrant lock.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reversa.adapters.robot.collision import CollisionChecker, PreparedScene
from reversa.adapters.robot.layout import CellLayout, pcb_cell
from reversa.adapters.robot.scene import Attached, BoardStatus, Box, Person, PlanningScene
from reversa.core.context import Fence
from reversa.core.errors import Fenced
from reversa.core.fencing import FenceGate
from reversa.safety import PartStatus
from reversa.safety.kinematics import Vec3

from .faults import FaultPlan

__all__ = ["CellWorld", "DeviceError", "SimBoard", "SimPart", "SimStop"]

_BOARD_SIZE = (0.10, 0.08, 0.004)
_GRASP_TOLERANCE = 0.01  # m between the TCP and a part's centre for a grasp
_SLIP_DISTANCE = 0.10  # m of lateral travel after which a slipping part falls
_IMPACT_RADIUS = 0.12  # m around a falling part's impact point that gets damaged


class DeviceError(Exception):
    """A simulated device refused or failed a command (the effect did not happen)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SimPart:
    """A component's true state."""

    id: str
    location: str
    center: Vec3
    pasted: bool = False
    damaged: bool = False


@dataclass
class SimBoard:
    """A circuit board's true state."""

    id: str
    location: str
    center: Vec3
    pasted: bool = False
    components: list[str] = field(default_factory=list)
    damaged: bool = False


@dataclass
class SimStop:
    """A latched safety stop of the simulated safety controller."""

    category: int
    source: str
    reason: str

    def as_msg(self, active: bool = True) -> dict[str, Any]:
        """The ``/safety/estop`` message."""
        return {"active": active, "category": self.category, "source": self.source,
                "reason": self.reason}


class CellWorld:
    """The simulated cell.

    Args:
        layout: Cell description (default: the scenario B PCB cell).
    """

    def __init__(self, layout: CellLayout | None = None) -> None:
        self.layout = layout or pcb_cell()
        self.checker = CollisionChecker(self.layout.arm, self.layout.limits)
        self.lock = threading.RLock()
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the initial cell: arm home, gripper open, U1 in tray A, B1 on the fixture."""
        with self.lock:
            self.q: list[float] = list(self.layout.pose("home"))
            self.gripper = "open"
            self.holding: str | None = None
            self.grip_quality = "none"
            self._grasp_xy = (0.0, 0.0)
            self.tool = "off"
            tray = self.layout.stations["tray"]
            board = self.layout.stations["board"]
            self.parts: dict[str, SimPart] = {
                "U1": SimPart("U1", "tray", (tray.surface.center[0], tray.surface.center[1],
                                              tray.rest_z)),
            }
            self.boards: dict[str, SimBoard] = {
                "B1": SimBoard("B1", "board", (board.surface.center[0], board.surface.center[1],
                                                board.rest_z - 0.008)),
            }
            self.obstacles: dict[str, Box] = {}
            self.persons: dict[str, Person] = {}
            self.damaged_assemblies: set[str] = set()
            self.stop: SimStop | None = None
            self.faults = FaultPlan()
            self.events: list[dict[str, Any]] = []
            self.executions: Counter[str] = Counter()
            self.replies: dict[tuple[str, str], dict[str, Any]] = {}
            self.gate = FenceGate()
            self.executed: dict[str, list[str]] = {}  # key -> commands that took effect
            self.commands: list[dict[str, Any]] = []  # every fenced command, with its outcome
            self.motion_count = 0
            self.motions: list[dict[str, Any]] = []
            self.version = 0  # bumped on every change the bridge must publish
            self._prepared: PreparedScene | None = None

    def inject(self, spec: dict[str, Any]) -> None:
        """Arm a fault (see :class:`FaultPlan`); motion triggers count from now."""
        with self.lock:
            before = len(self.faults.triggers)
            self.faults.apply(spec)
            for trigger in self.faults.triggers[before:]:
                trigger.motion += self.motion_count

    def log(self, kind: str, **data: Any) -> None:
        """Append an event to the world's log."""
        with self.lock:
            self.events.append({"kind": kind, **data})
            self.version += 1

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """Logged events of one kind."""
        with self.lock:
            return [e for e in self.events if e["kind"] == kind]

    # -- people, obstacles, stops (the world outside the robot) ---------------------------
    def add_person(self, person_id: str, x: float, y: float) -> None:
        """A person walks into the cell at (x, y)."""
        with self.lock:
            self.persons[person_id] = Person(person_id, x, y)
            self._changed()
            if self.zone_occupied() and self.faults.zone_interlock:
                self.trip(2, f"zone:{person_id}", f"person {person_id} entered the reach zone")

    def remove_person(self, person_id: str) -> None:
        """A person leaves the cell."""
        with self.lock:
            self.persons.pop(person_id, None)
            self._changed()

    def add_obstacle(self, box: Box) -> None:
        """Put an object into the cell (a tote, a fixture left behind)."""
        with self.lock:
            self.obstacles[box.id] = box
            self._changed()

    def remove_obstacle(self, box_id: str) -> None:
        """Take an object out of the cell."""
        with self.lock:
            self.obstacles.pop(box_id, None)
            self._changed()

    def zone_occupied(self) -> bool:
        """Whether a person stands inside the monitored reach zone."""
        with self.lock:
            return any(
                math.hypot(p.x, p.y) - p.radius < self.layout.zone_radius
                for p in self.persons.values()
            )

    def zone_msg(self) -> dict[str, Any]:
        """The ``/safety/zone`` message."""
        with self.lock:
            return {"occupied": self.zone_occupied(),
                    "persons": [p.as_dict() for p in self.persons.values()]}

    def trip(self, category: int, source: str, reason: str) -> None:
        """The safety controller latches a stop (first one wins until reset)."""
        with self.lock:
            if self.stop is None:
                self.stop = SimStop(category, source, reason)
            self.log("stop", category=category, source=source, reason=reason)

    def press_estop(self, category: int = 0) -> None:
        """Someone presses an e-stop button."""
        self.trip(category, "estop:pendant", "emergency stop button pressed")

    def reset_stop(self) -> bool:
        """A human resets the stop at the machine; refused while the zone is occupied."""
        with self.lock:
            if self.zone_occupied():
                return False
            if self.stop is not None:
                self.log("stop_reset", source=self.stop.source)
            self.stop = None
            return True

    def estop_msg(self) -> dict[str, Any]:
        """The ``/safety/estop`` message."""
        with self.lock:
            if self.stop is None:
                return {"active": False, "category": -1, "source": "", "reason": ""}
            return self.stop.as_msg()

    # -- scene (what the cell's sensors report) -------------------------------------------
    def scene(self) -> PlanningScene:
        """The planning scene as the cell's sensors would report it now."""
        with self.lock:
            boxes: list[Box] = list(self.layout.fixtures)
            boxes += [s.surface for s in self.layout.stations.values()]
            for board in self.boards.values():
                if board.location == "board":
                    boxes.append(Box(f"board:{board.id}", board.center, _BOARD_SIZE, "board"))
            for part in self.parts.values():
                if part.location not in {"gripper", "rework"}:
                    boxes.append(Box(f"part:{part.id}", part.center, self.layout.part_size, "part"))
            boxes += list(self.obstacles.values())
            attached = Attached(self.holding, self.layout.part_size) if self.holding else None
            return PlanningScene(
                boxes=tuple(boxes),
                persons=tuple(self.persons.values()),
                attached=attached,
                parts=tuple(
                    PartStatus(p.id, p.location, p.pasted, p.damaged) for p in self.parts.values()
                ),
                boards=tuple(
                    BoardStatus(b.id, b.location, b.pasted, tuple(b.components), b.damaged)
                    for b in self.boards.values()
                ),
                allowed=self.layout.allowed,
            )

    def prepared_scene(self) -> PreparedScene:
        """Collision objects for the current scene, rebuilt only after a change."""
        with self.lock:
            if self._prepared is None:
                self._prepared = self.checker.prepared(self.scene())
            return self._prepared

    def joint_state(self) -> dict[str, Any]:
        """The ``/joint_states`` message."""
        with self.lock:
            return {
                "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": "base_link"},
                "name": list(JOINT_NAMES),
                "position": list(self.q),
                "velocity": [0.0] * len(self.q),
                "effort": [],
            }

    def tcp(self) -> Vec3:
        """Tool centre point now."""
        with self.lock:
            return self.layout.arm.tcp(self.q)

    # -- tooling and process --------------------------------------------------------------
    def admit(self, command: str, key: str | None, fence: Fence | None) -> None:
        """The controller's fencing check for one command.

        Hold :attr:`lock` across this check and the effect, so both are one step.

        A command without a fence comes from outside Reversa (a teach pendant, a
        test) and is not fenced.

        Raises:
            Fenced: The fence is older than one seen for the saga, or the key was
                blocked; the refusal is logged and nothing happens.
        """
        with self.lock:
            try:
                self.gate.admit(fence)
                if key:
                    self.gate.check_key(key)
            except Fenced as exc:
                self._log_command(command, key, fence, f"refused:{exc.code}")
                raise

    def took_effect(self, command: str, key: str | None, fence: Fence | None) -> None:
        """Record that a fenced command took effect under ``key`` (under the same hold of
        :attr:`lock` as its :meth:`admit`)."""
        with self.lock:
            if key:
                self.executed.setdefault(key, []).append(command)
            self._log_command(command, key, fence, "executed")

    def refused(self, command: str, key: str | None, fence: Fence | None, why: str) -> None:
        """Log a command the device refused for a reason of its own (a stop, a fault)."""
        self._log_command(command, key, fence, f"rejected:{why}")

    def _log_command(self, command: str, key: str | None, fence: Fence | None,
                     outcome: str) -> None:
        with self.lock:
            self.commands.append({
                "command": command, "key": key, "outcome": outcome,
                "saga": fence.saga_id if fence else None, "epoch": fence.epoch if fence else None,
            })

    def block(self, key: str, fence: Fence | None) -> list[str]:
        """Atomically: the commands that took effect under ``key``, or, when none did,
        tombstone it so that none ever will (an empty list).

        Raises:
            Fenced: ``fence`` is older than one seen for the saga.
        """
        with self.lock:
            self.admit("block", None, fence)
            done = list(self.executed.get(key, ()))
            if not done:
                self.gate.tombstone(key, fence)
            self._log_command("block", key, fence, "happened" if done else "tombstoned")
            return done

    def command(self, name: str, key: str | None, fence: Fence | None = None,
                **args: Any) -> dict[str, Any]:
        """Run a tooling/process command once per (idempotency key, command).

        The fence and the key are checked first, atomically with the effect. A
        repeated (key, command) returns the first reply (with ``duplicate=True``)
        without acting again, which is what makes retried compensations safe.

        Raises:
            Fenced: Stale epoch or blocked key; nothing happened.
            DeviceError: The command was refused; nothing happened.
        """
        with self.lock:
            self.admit(name, key, fence)
            if key and (key, name) in self.replies:
                self._log_command(name, key, fence, "duplicate")
                return {**self.replies[(key, name)], "duplicate": True}
            handler = {
                "grip": self._grip,
                "release": self._release,
                "dispense": self._dispense,
                "tool_off": self._tool_off,
                "route": self._route,
            }.get(name)
            if handler is None:
                raise DeviceError("UNKNOWN", f"unknown command {name!r}")
            if name != "tool_off" and self.stop is not None:
                self.refused(name, key, fence, "STOPPED")
                raise DeviceError("STOPPED", f"safety stop active ({self.stop.source}); "
                                             "reset required")
            try:
                reply = handler(**args)
            except DeviceError as exc:
                self.refused(name, key, fence, exc.code)
                raise
            self.executions[name] += 1
            if key:
                self.replies[(key, name)] = reply
            self.took_effect(name, key, fence)
            self._changed()
            return reply

    def query(self, key: str) -> dict[str, Any] | None:
        """What took effect under ``key``: ``{"commands": [...], **last reply}``, or None."""
        with self.lock:
            done = self.executed.get(key)
            if not done:
                return None
            last = self.replies.get((key, done[-1]), {})
            return {**last, "commands": list(done)}

    def tooling(self) -> dict[str, Any]:
        """Gripper and tool status."""
        with self.lock:
            return {"gripper": self.gripper, "holding": self.holding or "", "tool": self.tool,
                    "grip": self.grip_quality}

    def inspect(self, board_id: str) -> dict[str, Any]:
        """Trigger the inspection camera.

        Raises:
            DeviceError: The camera failed, or the arm is not out of its view.
        """
        with self.lock:
            if self.faults.camera_error:
                raise DeviceError("CAMERA", self.faults.camera_error)
            if self.layout.pose_name(tuple(self.q), 0.02) != "inspection":
                raise DeviceError("ARM_IN_VIEW", "arm is not at the inspection position")
            board = self.boards.get(board_id)
            if board is None or board.location != "board":
                raise DeviceError("NO_BOARD", f"board {board_id} is not on the fixture")
            self.executions["inspect"] += 1
            return {"passed": True, "defects": []}

    def _grip(self) -> dict[str, Any]:
        if self.gripper == "closed" and self.holding:
            return {"ok": True, "state": "closed", "holding": self.holding}
        tcp = self.layout.arm.tcp(self.q)
        self.gripper = "closed"
        for part in self.parts.values():
            if part.location != "gripper" and math.dist(part.center, tcp) <= _GRASP_TOLERANCE:
                part.location = "gripper"
                self.holding = part.id
                self.grip_quality = "slipping" if part.pasted else "secure"
                self._grasp_xy = (tcp[0], tcp[1])
                self.log("grip", part=part.id, quality=self.grip_quality)
                for board in self.boards.values():
                    if part.id in board.components:
                        board.components.remove(part.id)
                return {"ok": True, "state": "closed", "holding": part.id}
        self.log("grip", part=None, quality="empty")
        return {"ok": True, "state": "closed", "holding": ""}

    def _release(self) -> dict[str, Any]:
        self.gripper = "open"
        part_id, self.holding, self.grip_quality = self.holding, None, "none"
        if part_id is None:
            return {"ok": True, "state": "open", "holding": ""}
        part = self.parts[part_id]
        tcp = self.layout.arm.tcp(self.q)
        for station in self.layout.stations.values():
            s = station.surface
            inside = all(abs(tcp[i] - s.center[i]) <= s.size[i] / 2 for i in (0, 1))
            if inside and abs(tcp[2] - station.rest_z) <= _GRASP_TOLERANCE:
                part.location, part.center = station.name, (tcp[0], tcp[1], station.rest_z)
                if station.name == "board":
                    for board in self.boards.values():
                        if board.location == "board":
                            board.components.append(part.id)
                            part.pasted = part.pasted or board.pasted
                self.log("release", part=part_id, location=station.name)
                return {"ok": True, "state": "open", "holding": ""}
        self._drop(part, tcp)
        return {"ok": True, "state": "open", "holding": ""}

    def _drop(self, part: SimPart, at: Vec3) -> None:
        part.location, part.center, part.damaged = "dropped", (at[0], at[1], 0.036), True
        hit = sorted(
            box.id for box in self.layout.fixtures
            if box.kind == "board" and math.dist(box.center[:2], at[:2]) <= _IMPACT_RADIUS
        )
        self.damaged_assemblies.update(hit)
        self.log("drop", part=part.id, at=list(at), damaged=hit)

    def _dispense(self, volume_ul: float = 5.0) -> dict[str, Any]:
        tcp = self.layout.arm.tcp(self.q)
        for board in self.boards.values():
            over = all(abs(tcp[i] - board.center[i]) <= _BOARD_SIZE[i] / 2 for i in (0, 1))
            if board.location == "board" and over and tcp[2] < 0.25:
                board.pasted = True
                self.tool = "on"
                self.log("dispense", board=board.id, volume_ul=volume_ul)
                return {"ok": True, "state": "on", "board": board.id}
        raise DeviceError("NOT_OVER_BOARD", "dispenser nozzle is not over a board")

    def _tool_off(self) -> dict[str, Any]:
        self.tool = "off"
        return {"ok": True, "state": "off"}

    def _route(self, board: str = "B1", destination: str = "rework") -> dict[str, Any]:
        if self.faults.conveyor_error:
            raise DeviceError("CONVEYOR", self.faults.conveyor_error)
        target = self.boards.get(board)
        if target is None:
            raise DeviceError("NO_BOARD", f"unknown board {board}")
        target.location = destination
        for part_id in target.components:
            self.parts[part_id].location = destination
        self.log("route", board=board, destination=destination)
        return {"ok": True, "location": destination}

    def _changed(self) -> None:
        self._prepared = None
        self.version += 1

    def snapshot(self) -> dict[str, Any]:
        """Full ground truth, for tests and the ``/sim/world`` service."""
        with self.lock:
            return {
                "q": list(self.q),
                "pose": self.layout.pose_name(tuple(self.q), 0.02),
                "gripper": self.gripper,
                "holding": self.holding,
                "tool": self.tool,
                "parts": {p.id: {"location": p.location, "pasted": p.pasted,
                                 "damaged": p.damaged} for p in self.parts.values()},
                "boards": {b.id: {"location": b.location, "pasted": b.pasted,
                                  "components": list(b.components)} for b in self.boards.values()},
                "damaged_assemblies": sorted(self.damaged_assemblies),
                "stop": self.stop.as_msg() if self.stop else None,
                "persons": sorted(self.persons),
                "obstacles": sorted(self.obstacles),
                "collisions": self.events_of("collision"),
                "executions": dict(self.executions),
                "motions": [dict(m) for m in self.motions],
                "commands": [dict(c) for c in self.commands],
                "refused": self.gate.refused,
            }


JOINT_NAMES = (
    "shoulder_pan_joint",
    "shoulder_lift_joint",
    "elbow_joint",
    "wrist_1_joint",
    "wrist_2_joint",
    "wrist_3_joint",
)
