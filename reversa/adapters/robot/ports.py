"""The narrow protocols the robot adapter drives: one per kind of side effect.

A real cell and the simulators implement the same protocols, so the
operations, the safety checks and the tests do not know which one they talk to.
The rosbridge transport implements :class:`ArmPort`, :class:`SafetySensors`,
:class:`CameraPort` and :class:`ConveyorPort`; tooling is either the serial
controller or the rosbridge gripper/tool services (:class:`ToolingPort`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reversa.safety import Joints

from .scene import PlanningScene

__all__ = [
    "ArmPort",
    "CameraPort",
    "ConveyorPort",
    "MotionOutcome",
    "SafetySensors",
    "StopListener",
    "ToolingPort",
    "ZoneStatus",
]


@dataclass(frozen=True, slots=True)
class MotionOutcome:
    """How a trajectory ended.

    Attributes:
        status: ``"succeeded"``, ``"aborted"``, ``"canceled"``, ``"rejected"``
            or ``"timeout"`` (no result arrived).
        error_code: control_msgs FollowJointTrajectory error code.
        message: The controller's error string.
    """

    status: str
    error_code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        """The arm reached the goal."""
        return self.status == "succeeded" and self.error_code == 0


@dataclass(frozen=True, slots=True)
class ZoneStatus:
    """What the reach-zone sensor (a safety laser scanner) reports."""

    occupied: bool
    persons: tuple[str, ...] = ()


# (category, source, reason): a safety stop reported by the cell.
StopListener = Callable[[int, str, str], None]


@runtime_checkable
class ArmPort(Protocol):
    """Moves the arm and reports where it is."""

    def joints(self) -> Joints:
        """Current joint positions, as the controller reports them now."""
        ...

    def execute(
        self,
        path: Sequence[Joints],
        times: Sequence[float],
        *,
        timeout: float,
        abort: Callable[[], bool],
    ) -> MotionOutcome:
        """Follow ``path`` (waypoints after the current pose) at ``times``.

        Blocks until the controller reports the outcome, ``timeout`` expires,
        or ``abort()`` turns true; in the last two cases the goal is cancelled
        before returning.
        """
        ...


@runtime_checkable
class SafetySensors(Protocol):
    """The cell's safety and world sensors."""

    def scene(self) -> PlanningScene:
        """The planning scene read now (obstacles, people, parts, tooling)."""
        ...

    def zone(self) -> ZoneStatus:
        """The reach-zone sensor's latest report."""
        ...

    def estop_active(self) -> bool:
        """Whether the machine reports a safety stop active right now."""
        ...

    def on_stop(self, listener: StopListener) -> Callable[[], None]:
        """Call ``listener`` when the machine reports a safety stop (also at once if
        one is active); returns a function that removes the listener."""
        ...

    def on_zone(self, listener: Callable[[ZoneStatus], None]) -> Callable[[], None]:
        """Call ``listener`` on every zone report; returns a function removing it."""
        ...


@runtime_checkable
class ToolingPort(Protocol):
    """Gripper and process tool. Every command carries an idempotency key."""

    def grip(self, key: str) -> dict[str, Any]:
        """Close the fingers."""
        ...

    def release(self, key: str) -> dict[str, Any]:
        """Open the fingers."""
        ...

    def dispense(self, key: str, volume_ul: float) -> dict[str, Any]:
        """Dispense solder paste (irreversible)."""
        ...

    def tool_off(self, key: str) -> dict[str, Any]:
        """Switch the process tool off."""
        ...

    def status(self) -> dict[str, Any]:
        """``{"gripper": "open"|"closed", "holding": str, "tool": "on"|"off"}``."""
        ...

    def query(self, key: str) -> dict[str, Any] | None:
        """The recorded reply of the command sent with ``key``, if it ran."""
        ...


@runtime_checkable
class CameraPort(Protocol):
    """The optical inspection station."""

    def inspect(self, board: str) -> dict[str, Any]:
        """Trigger an inspection; ``{"passed": bool, "defects": [...]}``."""
        ...


@runtime_checkable
class ConveyorPort(Protocol):
    """Moves boards between stations (the rework route of a forward recovery)."""

    def route(self, key: str, board: str, destination: str) -> dict[str, Any]:
        """Send ``board`` to ``destination``."""
        ...

    def query(self, key: str) -> dict[str, Any] | None:
        """The recorded reply of the route sent with ``key``, if it ran."""
        ...
