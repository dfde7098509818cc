"""What the robot operations declare they touch: the cell and its work pieces.

Two resource kinds (see :mod:`reversa.core.resources`):

- :data:`CELL` (``robot.cell``), id the :class:`~.cell.RobotCell`'s ``name``:
  every operation *touches* it. It is never linked (using the arm takes nothing
  from another saga), but it is held: while a saga that used the cell is
  rolling back or escalated (the arm driven to a safe state, a human called),
  no other saga moves it; their steps wait or fail naming the holder.
- :data:`WORKPIECE` (``robot.workpiece``), id ``<cell>/<part or board id>``: a pick
  *consumes* the part it takes from a station, a place *produces* it where it
  puts it, dispensing paste produces the pasted board and an inspection
  touches it. A saga that picks the part another saga placed is linked to it:
  rolling the placer back assesses the picker first.
"""

from __future__ import annotations

from reversa.core.resources import Resource, Role

__all__ = ["CELL", "WORKPIECE", "cell", "workpiece"]

CELL = "robot.cell"
"""Resource kind of a robot cell (id: the cell's name)."""
WORKPIECE = "robot.workpiece"
"""Resource kind of a part or board handled in a cell (id: its id)."""


def cell(name: str) -> Resource:
    """The cell ``name``: touched (held, never linked)."""
    return Resource(CELL, name, Role.TOUCHES)


def workpiece(cell_name: str, piece: object, role: Role) -> Resource:
    """The part or board ``piece`` in cell ``cell_name``, used in ``role``.

    Part ids are only unique within a cell, so the id is ``<cell>/<piece>``: part
    U1 of one cell is never held by a saga working another cell's U1.
    """
    return Resource(WORKPIECE, f"{cell_name}/{piece}", role)
