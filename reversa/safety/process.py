"""Compensation preconditions that come from tooling and process state.

The mirror image of a forward step is often not physically available:

* a gripper that released a part cannot "un-release" it -- it can only pick it
  again, which needs the part resting at a known, graspable pose;
* a part with solder paste on its underside cannot be re-gripped by the same
  fingers: the paste-covered surface does not hold and the part slips
  (AG-384 scenario B);
* applying paste is irreversible: there is no compensation at all, only a
  forward recovery (rework) or a human.

These rules read the process state *now* (from the cell's sensors) and answer
with a :class:`~reversa.core.context.Check` whose reason names the rule, so a
dry-run can show a reviewer exactly why a rollback is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reversa.core.context import Check

from .states import GripperState, SafeState, ToolState

__all__ = [
    "PASTE_IRREVERSIBLE",
    "GRASPABLE_LOCATIONS",
    "PartStatus",
    "ToolingStatus",
    "can_regrip",
    "can_return_part",
    "tooling_matches",
]

PASTE_IRREVERSIBLE = "solder paste cannot be un-applied: the step is irreversible"

# Locations where a released part rests at a known pose the gripper can reach.
GRASPABLE_LOCATIONS = frozenset({"tray", "board", "rework"})


@dataclass(frozen=True, slots=True)
class PartStatus:
    """What the sensors say about one part.

    Attributes:
        part: Part id.
        location: ``"gripper"``, a station (``"tray"``, ``"board"``...),
            ``"dropped"`` or ``"unknown"``.
        pasted: Solder paste on its underside.
        damaged: Reported damaged.
    """

    part: str
    location: str
    pasted: bool = False
    damaged: bool = False


@dataclass(frozen=True, slots=True)
class ToolingStatus:
    """What the tooling reports.

    Attributes:
        gripper: Open or closed.
        holding: Part id detected between the fingers, if any.
        tool: Dispenser on or off.
    """

    gripper: GripperState
    holding: str | None
    tool: ToolState


def can_regrip(part: PartStatus) -> Check:
    """May the gripper pick ``part`` again (the compensation of a release)?"""
    detail = {"rule": "regrip", "part": part.part, "location": part.location}
    if part.location == "gripper":
        return Check(True, f"part {part.part} is already held: nothing to undo", detail)
    if part.pasted:
        return Check(
            False,
            f"precondition 'no paste on part' fails: part {part.part} has solder paste on its "
            "underside and cannot be re-gripped by the same fingers (it would slip and fall)",
            {**detail, "rule": "paste"},
        )
    if part.damaged:
        return Check(False, f"part {part.part} is reported damaged; a human must handle it", detail)
    if part.location not in GRASPABLE_LOCATIONS:
        return Check(
            False,
            f"a released part cannot be un-released: part {part.part} is at "
            f"{part.location!r}, not at a known graspable pose",
            {**detail, "rule": "unrelease"},
        )
    return Check(True, f"part {part.part} rests at {part.location!r} and can be re-gripped", detail)


def can_return_part(part: PartStatus, tooling: ToolingStatus, source: str) -> Check:
    """May a picked part be put back where it came from (the compensation of a pick)?

    Args:
        part: The part's status now.
        tooling: The tooling's status now.
        source: The station the pick took it from.
    """
    if part.location == source:
        return Check(True, f"part {part.part} is already back at {source!r}: nothing to undo")
    if part.location == "gripper" and tooling.holding == part.part:
        if part.pasted:
            return Check(
                False,
                f"part {part.part} carries solder paste; returning it to {source!r} would "
                "contaminate the feeder",
                {"rule": "paste", "part": part.part},
            )
        return Check(True, f"part {part.part} is held and can be returned to {source!r}")
    # Not held now: only a later compensation re-gripping it could make this feasible.
    regrip = can_regrip(part)
    if not regrip.ok:
        return Check(False, f"cannot return part {part.part} to {source!r}: {regrip.reason}",
                     regrip.detail)
    return Check(True, f"part {part.part} can be re-gripped at {part.location!r} and returned")


def tooling_matches(state: SafeState, tooling: ToolingStatus) -> Iterable[Check]:
    """Checks that the tooling is in the safe state's declared state."""
    yield Check(
        tooling.gripper == state.gripper,
        f"gripper {tooling.gripper} (declared {state.gripper})",
        {"gripper": str(tooling.gripper)},
    )
    yield Check(
        state.gripper != GripperState.OPEN or tooling.holding is None,
        "no part between the fingers" if tooling.holding is None
        else f"part {tooling.holding} still detected between the fingers",
        {"holding": tooling.holding},
    )
    yield Check(
        tooling.tool == state.tool,
        f"tool {tooling.tool} (declared {state.tool})",
        {"tool": str(tooling.tool)},
    )
