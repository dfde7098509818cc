"""Robot adapter: governed rollback of physical motion and irreversible process steps.

A motion's reverse is never assumed safe. Compensations re-read the planning
scene, check the interpolated path for joint limits and collisions (python-fcl),
respect tooling/process preconditions (a released part cannot be un-released, a
pasted part cannot be re-gripped), move at a declared recovery speed, and yield
to any e-stop or protective stop at once. When the full rollback is infeasible
the arm is driven to the nearest reachable declared safe state and the saga is
escalated with a state report, or the declared forward recovery runs.

Every command to the cell carries a :class:`Stamp` (the call's idempotency key
and the saga's fencing token); the controllers refuse stale epochs and blocked
keys, and each operation's ``block`` tombstones its forward key at them.

Transports: rosbridge v2 via roslibpy (:class:`RosLink`) and a serial
gripper/tool controller via pyserial (:class:`SerialTooling`). See docs/robot.md.
"""

from __future__ import annotations

from .cell import Belief, RobotCell
from .collision import CollisionChecker, Contact, PathReport
from .connect import connect_cell
from .layout import CellLayout, Station, pcb_cell
from .operations import ApplyPaste, Inspect, MoveTo, Pick, Place
from .ports import (
    ArmPort,
    BlockOutcome,
    CameraPort,
    ConveyorPort,
    MotionOutcome,
    SafetySensors,
    Stamp,
    ToolingPort,
    ZoneStatus,
)
from .recovery import (
    cell_predicate,
    cell_snapshot,
    drive_to_safe_state,
    route_to_rework,
    state_report,
)
from .registry import robot_registry
from .ros import RosLink, RosNames, RosTooling
from .scene import Attached, BoardStatus, Box, Person, PlanningScene
from .serial_tooling import SerialTooling

__all__ = [
    # the cell
    "RobotCell",
    "Belief",
    "connect_cell",
    "CellLayout",
    "Station",
    "pcb_cell",
    # ports and transports
    "ArmPort",
    "SafetySensors",
    "ToolingPort",
    "CameraPort",
    "ConveyorPort",
    "MotionOutcome",
    "ZoneStatus",
    "Stamp",
    "BlockOutcome",
    "RosLink",
    "RosNames",
    "RosTooling",
    "SerialTooling",
    # planning scene and collision checking
    "PlanningScene",
    "Box",
    "Person",
    "Attached",
    "BoardStatus",
    "CollisionChecker",
    "Contact",
    "PathReport",
    # operations and recovery
    "MoveTo",
    "Pick",
    "Place",
    "ApplyPaste",
    "Inspect",
    "drive_to_safe_state",
    "route_to_rework",
    "cell_snapshot",
    "cell_predicate",
    "state_report",
    # the registry sagas name
    "robot_registry",
]
