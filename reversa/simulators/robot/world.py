"""Ground truth of the simulated PCB cell: arm, tooling, parts, boards, people, stops.

The rosbridge server and the Modbus gripper are two front doors to one
``CellWorld``; tests read the world directly to assert the *physical* end state
(where the part is, whether assemblies were hit and how hard, which stop
category ran), not only what the adapter believed. The bodies live in a
PyBullet world (:mod:`.physics`); where a part is, whether it is held, whether
the arm touched anything is read from the physics engine, never from the
adapter's collision checker.

The world is also the controller's fencing memory (:class:`FenceGate`): the
highest epoch seen per saga and the keys a rollback blocked (sealed, whether or
not a command under them had run), checked under the
world's lock together with the effect, and a log of every fenced command with
its outcome (:attr:`CellWorld.commands`), so a test can prove at the controller
that a stale command was refused and moved nothing.

Thread-safe: the rosbridge loop, the Modbus device thread and test code all
touch it, under one re-entrant lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from reversa.adapters.robot.layout import CellLayout, pcb_cell
from reversa.adapters.robot.scene import Attached, BoardStatus, Box, Person, PlanningScene, Vec3
from reversa.core.context import Fence
from reversa.core.errors import Fenced
from reversa.core.fencing import FenceGate
from reversa.safety import PartStatus

from .faults import FaultPlan
from .physics import Physics
from .process import BOARD_SIZE, Process

__all__ = ["JOINT_NAMES", "CellWorld", "DeviceError", "SimBoard", "SimPart", "SimStop"]


class DeviceError(Exception):
    """A simulated device refused or failed a command (the effect did not happen)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class SimPart:
    """A component's state: where the physics puts it, and its process state."""

    id: str
    location: str
    pasted: bool = False
    damaged: bool = False


@dataclass
class SimBoard:
    """A circuit board's state."""

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


class CellWorld(Process):
    """The simulated cell.

    Args:
        layout: Cell description (default: the scenario B PCB cell).
        seed: Seeds the physics world's few random quantities; the same seed and
            the same commands give the same trajectory, step for step.
    """

    def __init__(self, layout: CellLayout | None = None, *, seed: int = 0) -> None:
        self.layout = layout or pcb_cell()
        self.lock = threading.RLock()
        self.physics = Physics(self.layout, seed)
        self.reset()

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The arm's joint names, from its URDF."""
        return self.layout.arm.joint_names

    # -- lifecycle ------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the initial cell: arm home, gripper open, U1 in tray A, B1 on the fixture."""
        with self.lock:
            self.physics.build()
            self.tool = "off"
            tray = self.layout.stations["tray"]
            board = self.layout.stations["board"]
            self.parts: dict[str, SimPart] = {"U1": SimPart("U1", "tray")}
            cx, cy, _ = tray.surface.center
            self.physics.add_part("U1", (cx + self.physics.jitter("U1x"),
                                         cy + self.physics.jitter("U1y"), tray.rest_z))
            top = board.surface.center[2] + board.surface.size[2] / 2
            self.boards: dict[str, SimBoard] = {
                "B1": SimBoard("B1", "board", (board.surface.center[0], board.surface.center[1],
                                               top + BOARD_SIZE[2] / 2)),
            }
            self.physics.add_box(Box("board:B1", self.boards["B1"].center, BOARD_SIZE, "board"))
            self.obstacles: dict[str, Box] = {}
            self.persons: dict[str, Person] = {}
            self.damaged_assemblies: set[str] = set()
            self.impacts: list[dict[str, Any]] = []
            self.contact_log: list[dict[str, Any]] = []
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
            self.trace: list[tuple[float, ...]] = []  # the arm's joints after every step
            self.version = 0  # bumped on every change the bridge must publish
            self.gripper = "open"
            self.settle()

    @property
    def q(self) -> list[float]:
        """The arm's joint positions, read from the physics engine."""
        with self.lock:
            return list(self.physics.joints())

    @q.setter
    def q(self, value: list[float]) -> None:
        # A teleport (tests that start from a pose); the motors then hold it there.
        with self.lock:
            self.physics.set_joints(value)
            self._changed()

    @property
    def holding(self) -> str | None:
        """The part the gripper holds (the physics grasp), if any."""
        with self.lock:
            grasp = self.physics.grasp
            return str(grasp["name"]).removeprefix("part:") if grasp else None

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
            person = Person(person_id, x, y)
            self.persons[person_id] = person
            self.physics.add_person(person_id, x, y, person.radius, person.height)
            self._changed()
            if self.zone_occupied() and self.faults.zone_interlock:
                self.trip(2, f"zone:{person_id}", f"person {person_id} entered the reach zone")

    def remove_person(self, person_id: str) -> None:
        """A person leaves the cell."""
        with self.lock:
            self.persons.pop(person_id, None)
            self.physics.remove(f"person:{person_id}")
            self._changed()

    def add_obstacle(self, box: Box) -> None:
        """Put an object into the cell (a tote, a fixture left behind)."""
        with self.lock:
            self.remove_obstacle(box.id)
            self.obstacles[box.id] = box
            self.physics.add_box(Box(box.id, box.center, box.size, "obstacle"))
            self._changed()

    def remove_obstacle(self, box_id: str) -> None:
        """Take an object out of the cell."""
        with self.lock:
            if self.obstacles.pop(box_id, None) is not None:
                self.physics.remove(box_id)
            self._changed()

    def take_away(self, part_id: str) -> None:
        """Someone takes a part out of the cell by hand (the sensors no longer see it)."""
        with self.lock:
            self.physics.remove(f"part:{part_id}")
            self.parts[part_id].location = "unknown"
            for board in self.boards.values():
                if part_id in board.components:
                    board.components.remove(part_id)
            self._changed()

    def zone_occupied(self) -> bool:
        """Whether a person stands inside the monitored reach zone."""
        with self.lock:
            return any(
                (p.x**2 + p.y**2) ** 0.5 - p.radius < self.layout.zone_radius
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
        """The planning scene as the cell bridge would report it now (MoveIt's planning
        scene plus the MES's part and board state)."""
        with self.lock:
            boxes: list[Box] = list(self.layout.fixtures)
            boxes += [s.surface for s in self.layout.stations.values()]
            for board in self.boards.values():
                boxes.append(Box(f"board:{board.id}", self.physics.position(f"board:{board.id}"),
                                 BOARD_SIZE, "board"))
            held = self.holding
            for part in self.parts.values():
                name = f"part:{part.id}"
                if part.id != held and name in self.physics.bodies:
                    boxes.append(Box(name, self.physics.position(name), self.layout.part_size,
                                     "part"))
            boxes += list(self.obstacles.values())
            attached = (Attached(held, self.layout.part_size, self.layout.grasp_offset)
                        if held else None)
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

    def joint_state(self) -> dict[str, Any]:
        """The ``/joint_states`` message."""
        with self.lock:
            return {
                "header": {"stamp": {"sec": 0, "nanosec": 0}, "frame_id": "panda_link0"},
                "name": list(self.joint_names),
                "position": self.q,
                "velocity": [0.0] * len(self.joint_names),
                "effort": [],
            }

    def tcp(self) -> Vec3:
        """Tool centre point now (from the physics engine)."""
        with self.lock:
            return self.physics.tcp()

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
        """Atomically: report the commands that took effect under ``key``, and tombstone
        it so that no further command under it ever will.

        The key is sealed whether or not something ran: a rollback blocks a key
        before it compensates the effect, and a command under it that lands after
        the compensation (a late or retried goal, with the current epoch) would
        re-create the effect the compensation undid. Executed commands stay
        queryable (:meth:`query`).

        Returns:
            The commands that had taken effect under ``key`` (empty: none had).

        Raises:
            Fenced: ``fence`` is older than one seen for the saga.
        """
        with self.lock:
            self.admit("block", None, fence)
            done = list(self.executed.get(key, ()))
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
                    "object": self.holding is not None}

    def inspect(self, board_id: str) -> dict[str, Any]:
        """Trigger the inspection camera.

        Raises:
            DeviceError: The camera failed, or the arm is not out of its view.
        """
        with self.lock:
            if self.faults.camera_error:
                raise DeviceError("CAMERA", self.faults.camera_error)
            if self.layout.pose_name(tuple(self.q), 0.02) != "inspection":  # in the camera's view
                raise DeviceError("ARM_IN_VIEW", "arm is not at the inspection position")
            board = self.boards.get(board_id)
            if board is None or board.location != "board":
                raise DeviceError("NO_BOARD", f"board {board_id} is not on the fixture")
            self.executions["inspect"] += 1
            return {"passed": True, "defects": []}

    def snapshot(self) -> dict[str, Any]:
        """Full ground truth, for tests and the ``/sim/world`` service."""
        with self.lock:
            q = self.q
            return {
                "q": q,
                "pose": self.layout.pose_name(tuple(q), 0.01),
                "gripper": self.gripper,
                "holding": self.holding,
                "tool": self.tool,
                "parts": {p.id: {"location": p.location, "pasted": p.pasted,
                                 "damaged": p.damaged} for p in self.parts.values()},
                "boards": {b.id: {"location": b.location, "pasted": b.pasted,
                                  "components": list(b.components)} for b in self.boards.values()},
                "damaged_assemblies": sorted(self.damaged_assemblies),
                "impacts": [dict(i) for i in self.impacts],
                "contacts": [dict(c) for c in self.contact_log],
                "stop": self.stop.as_msg() if self.stop else None,
                "persons": sorted(self.persons),
                "obstacles": sorted(self.obstacles),
                "collisions": self.events_of("collision"),
                "executions": dict(self.executions),
                "motions": [dict(m) for m in self.motions],
                "commands": [dict(c) for c in self.commands],
                "refused": self.gate.refused,
                "steps": self.physics.steps,
            }


JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
"""The simulated arm's joint names (the Panda's, from its URDF)."""
