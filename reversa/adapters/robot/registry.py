"""The robot cell's registry: its operations, safe-state action, rework, snapshot, predicate.

Sagas name these handlers; the PCB cell's story sagas live in
``reversa.demos.robot``.
"""

from __future__ import annotations

from functools import partial

from reversa.core.registry import Registry

from .operations import ROBOT, ApplyPaste, Inspect, MoveTo, Pick, Place
from .recovery import cell_predicate, cell_snapshot, drive_to_safe_state, route_to_rework

__all__ = ["PREDICATE", "REWORK", "SAFE_STATE", "SNAPSHOT", "robot_registry"]

SAFE_STATE = "robot.safe_state"
REWORK = "robot.rework"
SNAPSHOT = "robot.snapshot"
PREDICATE = "robot.predicate"


def robot_registry(service: str = ROBOT) -> Registry:
    """A registry with the cell's operations, safe-state action, rework, snapshot, predicate.

    Args:
        service: The name the engine's services hold the RobotCell under.
    """
    registry = Registry()
    for operation in (MoveTo(service), Pick(service), Place(service), ApplyPaste(service),
                      Inspect(service)):
        registry.register(operation)
    registry.action(SAFE_STATE)(partial(drive_to_safe_state, service=service))
    registry.action(REWORK)(partial(route_to_rework, service=service))
    registry.snapshot(SNAPSHOT)(partial(cell_snapshot, service=service))
    registry.predicate(PREDICATE)(partial(cell_predicate, service=service))
    return registry
