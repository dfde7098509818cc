"""Declared safe states: where a cell may be left when a rollback cannot finish.

A safe state is declared by the integrator before anything runs (AG-384 4.3:
the post-rollback state must match the pre-workflow state *or a declared safe
intermediate state*). It fixes the arm pose, the tooling state and the speed
limit used for every recovery motion.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reversa.core.context import Check

from .envelope import joint_distance

__all__ = ["GripperState", "SafeState", "SafetyPolicy", "ToolState"]


class GripperState(StrEnum):
    """Declared gripper state."""

    OPEN = "open"
    CLOSED = "closed"


class ToolState(StrEnum):
    """Declared process-tool state (e.g. a paste dispenser)."""

    OFF = "off"
    ON = "on"


class SafeState(BaseModel):
    """One declared safe state.

    Attributes:
        name: E.g. ``"home"``.
        joints: Arm joint positions (rad).
        gripper: Gripper state required there.
        tool: Tool state required there.
        tolerance: Largest joint error (rad) still counted as "at" the state.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    joints: tuple[float, ...] = Field(min_length=1)
    gripper: GripperState = GripperState.OPEN
    tool: ToolState = ToolState.OFF
    tolerance: float = Field(default=0.01, gt=0)

    def arm_at(self, q: Sequence[float]) -> Check:
        """Whether the arm is at this state's pose."""
        error = joint_distance(self.joints, q)
        if error <= self.tolerance:
            return Check(True, f"arm at safe state {self.name!r}", {"error_rad": error})
        return Check(
            False,
            f"arm is {error:.3f} rad from safe state {self.name!r} (tolerance {self.tolerance})",
            {"error_rad": error},
        )


class SafetyPolicy(BaseModel):
    """The cell's declared safety envelope for recovery.

    Attributes:
        safe_states: Declared safe states; the nearest reachable one is used.
        collision_tolerance: Clearance (m) below which a moving body counts as
            colliding; paths are checked continuously, not at samples.
        planning_time_s: Longest a recovery motion may spend planning a path
            around an obstacle when the straight reverse is blocked.
        recovery_speed: Joint speed limit (rad/s) of every compensation and
            safe-state motion: slower than production moves on purpose.
        reach_zone_radius: Radius (m) around the base inside which a person
            makes any motion infeasible.
        motion_timeout_s: Longest a motion may take beyond its planned duration
            before it is cancelled and reported in doubt.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    safe_states: tuple[SafeState, ...] = Field(min_length=1)
    collision_tolerance: float = Field(default=0.002, gt=0, le=0.05)
    planning_time_s: float = Field(default=2.0, gt=0, le=60)
    recovery_speed: float = Field(default=0.5, gt=0)
    reach_zone_radius: float = Field(default=1.0, gt=0)
    motion_timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("safe_states", mode="before")
    @classmethod
    def _coerce(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    def by_distance(self, q: Sequence[float]) -> list[SafeState]:
        """Safe states sorted by joint distance from ``q``, nearest first."""
        return sorted(self.safe_states, key=lambda s: joint_distance(s.joints, q))

    def state(self, name: str) -> SafeState:
        """The safe state called ``name``.

        Raises:
            KeyError: No such safe state is declared.
        """
        for state in self.safe_states:
            if state.name == name:
                return state
        known = ", ".join(s.name for s in self.safe_states)
        raise KeyError(f"no safe state {name!r} declared (declared: {known})")
