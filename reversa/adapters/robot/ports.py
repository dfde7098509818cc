"""The narrow protocols the robot adapter drives: one per kind of side effect.

A real cell and the simulators implement the same protocols, so the
operations, the safety checks and the tests do not know which one they talk to.
The rosbridge transport implements :class:`ArmPort`, :class:`SafetySensors`,
:class:`CameraPort` and :class:`ConveyorPort`; tooling is either the serial
devices on Modbus RTU or the rosbridge gripper/tool services (:class:`ToolingPort`).

Every command that changes the cell carries a :class:`Stamp`: the call's
idempotency key and the saga's fencing token. The controller refuses a stamp
whose epoch is older than one it has seen for the saga, and any stamp whose key
a rollback blocked (:meth:`ArmPort.block`), whether or not a command under it had
run; the port raises :class:`~reversa.core.errors.Fenced` for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from reversa.core.context import Fence, StepContext
from reversa.safety import Joints

from .scene import PlanningScene

__all__ = [
    "ArmPort",
    "BlockOutcome",
    "CameraPort",
    "ConveyorPort",
    "MotionOutcome",
    "SafetySensors",
    "Stamp",
    "StopListener",
    "ToolingPort",
    "ZoneStatus",
]


@dataclass(frozen=True, slots=True)
class Stamp:
    """What every command to the cell carries, so the controller can fence it.

    Attributes:
        key: The idempotency key of the call the command belongs to. Several
            commands of one call share it (a pick's motions and its grip); the
            controller deduplicates tooling commands by (key, command) and
            refuses every command under a key a rollback blocked.
        fence: The saga's fencing token (saga id and lease epoch).
    """

    key: str
    fence: Fence

    @classmethod
    def of(cls, ctx: StepContext) -> Stamp:
        """The stamp of this call (``ctx.idempotency_key``, ``ctx.fence``)."""
        return cls(ctx.idempotency_key, ctx.fence)

    @classmethod
    def forward(cls, ctx: StepContext) -> Stamp:
        """The stamp naming the step's forward call (``ctx.action_key``) under this
        call's fence: what a block tombstones."""
        return cls(ctx.action_key, ctx.fence)


@dataclass(frozen=True, slots=True)
class BlockOutcome:
    """A controller's answer to a block.

    Attributes:
        executed: Commands that had taken effect under the key (``"motion"``,
            ``"grip"``, ``"dispense"``...). Empty: none had. Either way the key
            is now tombstoned there, so no further command under it will.
    """

    executed: tuple[str, ...] = ()

    @property
    def happened(self) -> bool:
        """Whether any command under the key had taken effect."""
        return bool(self.executed)


@dataclass(frozen=True, slots=True)
class MotionOutcome:
    """How a trajectory ended.

    Attributes:
        status: ``"succeeded"``, ``"aborted"``, ``"canceled"``, ``"rejected"``,
            ``"fenced"`` (refused for a stale epoch or a blocked key: the arm
            did not move) or ``"timeout"`` (no result arrived).
        error_code: control_msgs FollowJointTrajectory error code.
        message: The controller's error string.
        refusal: For ``"fenced"``: ``"fenced"`` (stale epoch) or ``"key_blocked"``.
    """

    status: str
    error_code: int = 0
    message: str = ""
    refusal: str = ""

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
        stamp: Stamp,
        timeout: float,
        abort: Callable[[], bool],
    ) -> MotionOutcome:
        """Follow ``path`` (waypoints after the current pose) at ``times``.

        The goal carries ``stamp``. Blocks until the controller reports the
        outcome, ``timeout`` expires, or ``abort()`` turns true; in the last two
        cases the goal is cancelled before returning.
        """
        ...

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Atomically at the controller: report what ran under ``stamp.key`` and
        tombstone the key, so that nothing more runs under it (a late or retried
        command included, whatever its epoch); what ran stays queryable. Also makes
        the controller refuse epochs older than ``stamp.fence`` for the saga.

        Raises:
            Fenced: ``stamp.fence`` is itself stale.
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
    """Gripper and process tool. Every command carries a :class:`Stamp`."""

    def grip(self, stamp: Stamp) -> dict[str, Any]:
        """Close the fingers; the reply's ``object`` tells whether they stopped on one."""
        ...

    def release(self, stamp: Stamp) -> dict[str, Any]:
        """Open the fingers."""
        ...

    def dispense(self, stamp: Stamp, volume_ul: float) -> dict[str, Any]:
        """Dispense solder paste (irreversible)."""
        ...

    def tool_off(self, stamp: Stamp) -> dict[str, Any]:
        """Switch the process tool off."""
        ...

    def block(self, stamp: Stamp) -> BlockOutcome:
        """Like :meth:`ArmPort.block`, at the tooling controller."""
        ...

    def status(self) -> dict[str, Any]:
        """``{"gripper": "open"|"closed", "object": bool, "tool": "on"|"off"}``: whether
        the fingers hold an object (which part it is, the planning scene says)."""
        ...

    def query(self, key: str) -> dict[str, Any] | None:
        """What ran under ``key``, if anything: ``{"commands": [...], ...last reply}``."""
        ...


@runtime_checkable
class CameraPort(Protocol):
    """The optical inspection station."""

    def inspect(self, stamp: Stamp, board: str) -> dict[str, Any]:
        """Trigger an inspection; ``{"passed": bool, "defects": [...]}``."""
        ...


@runtime_checkable
class ConveyorPort(Protocol):
    """Moves boards between stations (the rework route of a forward recovery)."""

    def route(self, stamp: Stamp, board: str, destination: str) -> dict[str, Any]:
        """Send ``board`` to ``destination``."""
        ...

    def query(self, key: str) -> dict[str, Any] | None:
        """What ran under ``key``, if anything (see :meth:`ToolingPort.query`)."""
        ...
