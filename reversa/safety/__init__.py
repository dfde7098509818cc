"""Safety rules for physical rollback: stops, envelopes, safe states, process rules.

Nothing here moves hardware or imports a vendor library; adapters (such as
:mod:`reversa.adapters.robot`) apply these rules at their boundary.
"""

from __future__ import annotations

from .envelope import JointLimits, Joints, interpolate, joint_distance, motion_duration
from .process import (
    GRASPABLE_LOCATIONS,
    PASTE_IRREVERSIBLE,
    PartStatus,
    ToolingStatus,
    can_regrip,
    can_return_part,
    tooling_matches,
)
from .states import GripperState, SafeState, SafetyPolicy, ToolState
from .stops import StopCategory, StopEvent, StopLatch, StopReset

__all__ = [
    # stops
    "StopCategory",
    "StopEvent",
    "StopLatch",
    "StopReset",
    # envelope
    "JointLimits",
    "Joints",
    "interpolate",
    "joint_distance",
    "motion_duration",
    # safe states
    "GripperState",
    "SafeState",
    "SafetyPolicy",
    "ToolState",
    # process rules
    "GRASPABLE_LOCATIONS",
    "PASTE_IRREVERSIBLE",
    "PartStatus",
    "ToolingStatus",
    "can_regrip",
    "can_return_part",
    "tooling_matches",
]
