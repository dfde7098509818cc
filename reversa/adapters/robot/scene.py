"""The planning scene as the cell reports it *now*: obstacles, people, parts, tooling.

It is plain data (JSON in, JSON out) so it can travel over rosbridge as a
service response, be stored in a dry-run report and be compared with the
adapter's own world model by the consistency predicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reversa.safety import PartStatus

__all__ = ["Attached", "BoardStatus", "Box", "Person", "PlanningScene", "Vec3"]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in the base frame.

    Attributes:
        id: Unique name (``"table"``, ``"tote"``, ``"part:U1"``...).
        center: Centre (m).
        size: Full extents along x, y, z (m).
        kind: ``"fixture"``, ``"obstacle"``, ``"part"`` or ``"board"``.
    """

    id: str
    center: Vec3
    size: Vec3
    kind: str = "fixture"

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "center": list(self.center), "size": list(self.size),
                "kind": self.kind}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Box:
        """Parse the JSON form."""
        return cls(str(data["id"]), _vec3(data["center"]), _vec3(data["size"]),
                   str(data.get("kind", "fixture")))


@dataclass(frozen=True, slots=True)
class Person:
    """A person detected by the cell's safety sensors (a vertical cylinder)."""

    id: str
    x: float
    y: float
    radius: float = 0.25
    height: float = 1.8

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "x": self.x, "y": self.y, "radius": self.radius,
                "height": self.height}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Person:
        """Parse the JSON form."""
        return cls(str(data["id"]), float(data["x"]), float(data["y"]),
                   float(data.get("radius", 0.25)), float(data.get("height", 1.8)))


@dataclass(frozen=True, slots=True)
class Attached:
    """An object held by the gripper.

    Attributes:
        id: The object's id (``"U1"``).
        size: Its box extents (m).
        offset: Its centre in the tool centre point's frame (m).
    """

    id: str
    size: Vec3
    offset: Vec3 = (0.0, 0.0, 0.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"id": self.id, "size": list(self.size), "offset": list(self.offset)}


@dataclass(frozen=True, slots=True)
class BoardStatus:
    """What the cell reports about one circuit board."""

    board: str
    location: str
    pasted: bool = False
    components: tuple[str, ...] = ()
    damaged: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"board": self.board, "location": self.location, "pasted": self.pasted,
                "components": list(self.components), "damaged": self.damaged}


@dataclass(frozen=True, slots=True)
class PlanningScene:
    """Everything the collision checker and the process rules need, read now.

    Attributes:
        boxes: Fixtures, obstacles, resting parts and boards.
        persons: People the safety sensors see.
        attached: The object in the gripper, if any.
        parts: Process state of every part.
        boards: Process state of every board.
        allowed: (link, box id) pairs that may touch (the pedestal on the table).
    """

    boxes: tuple[Box, ...] = ()
    persons: tuple[Person, ...] = ()
    attached: Attached | None = None
    parts: tuple[PartStatus, ...] = ()
    boards: tuple[BoardStatus, ...] = ()
    allowed: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def part(self, part_id: str) -> PartStatus:
        """The status of one part; ``location="unknown"`` if the cell does not know it."""
        for part in self.parts:
            if part.part == part_id:
                return part
        return PartStatus(part_id, "unknown")

    def board(self, board_id: str) -> BoardStatus:
        """The status of one board; ``location="unknown"`` if the cell does not know it."""
        for board in self.boards:
            if board.board == board_id:
                return board
        return BoardStatus(board_id, "unknown")

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the service response of the simulator, the report of a dry-run)."""
        return {
            "boxes": [b.as_dict() for b in self.boxes],
            "persons": [p.as_dict() for p in self.persons],
            "attached": self.attached.as_dict() if self.attached else None,
            "parts": [
                {"part": p.part, "location": p.location, "pasted": p.pasted, "damaged": p.damaged}
                for p in self.parts
            ],
            "boards": [b.as_dict() for b in self.boards],
            "allowed": sorted([list(pair) for pair in self.allowed]),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanningScene:
        """Parse the JSON form.

        Raises:
            KeyError, TypeError, ValueError: The message is malformed (the
                transport turns these into a Reversa error).
        """
        attached = data.get("attached")
        if isinstance(attached, list):
            # The ROS message's bounded sequence (Attached[<=1]): empty or one object.
            attached = attached[0] if attached else None
        return cls(
            boxes=tuple(Box.from_dict(b) for b in data.get("boxes", ())),
            persons=tuple(Person.from_dict(p) for p in data.get("persons", ())),
            attached=Attached(str(attached["id"]), _vec3(attached["size"]),
                              _vec3(attached.get("offset", (0.0, 0.0, 0.0))))
            if attached else None,
            parts=tuple(
                PartStatus(str(p["part"]), str(p["location"]), bool(p.get("pasted", False)),
                           bool(p.get("damaged", False)))
                for p in data.get("parts", ())
            ),
            boards=tuple(
                BoardStatus(str(b["board"]), str(b["location"]), bool(b.get("pasted", False)),
                            tuple(str(c) for c in b.get("components", ())),
                            bool(b.get("damaged", False)))
                for b in data.get("boards", ())
            ),
            allowed=frozenset(_allowed(pair) for pair in data.get("allowed", ())),
        )


def _allowed(pair: Any) -> tuple[str, str]:
    # [link, object] from the simulator's JSON, or an AllowedContact message.
    if isinstance(pair, Mapping):
        return (str(pair["link"]), str(pair["object"]))
    return (str(pair[0]), str(pair[1]))


def _vec3(value: Any) -> Vec3:
    x, y, z = (float(v) for v in value)
    return (x, y, z)
