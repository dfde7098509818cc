"""Ready-made registry and sagas for the PCB cell (AG-384 scenario B and a transfer job).

Build your own the same way: register the operations, then declare each step
with its reversibility, its reverse target and, for irreversible process steps,
a forward recovery.
"""

from __future__ import annotations

from functools import partial

from reversa.core.model import OnInfeasible, Reversibility, Saga
from reversa.core.registry import Registry

from .operations import ROBOT, ApplyPaste, Inspect, MoveTo, Pick, Place
from .recovery import cell_predicate, cell_snapshot, drive_to_safe_state, route_to_rework

__all__ = ["robot_registry", "scenario_b_saga", "transfer_saga"]

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


def scenario_b_saga(
    registry: Registry | None = None,
    *,
    on_infeasible: OnInfeasible = OnInfeasible.ESCALATE,
    rollback_window_s: float = 120.0,
) -> Saga:
    """AG-384 scenario B: pick U1 from tray A, paste board B1, place, inspect.

    Applying paste is declared irreversible with the rework route as its
    forward recovery; ``on_infeasible`` chooses between escalating with a state
    report (after driving to the safe state) and running that recovery.
    """
    r = registry or robot_registry()
    steps = [
        r.step("pick", "robot.pick", params={"part": "U1", "station": "tray", "back": "home"}),
        r.step("apply_paste", "robot.apply_paste",
               params={"board": "B1", "pose": "board_above", "volume_ul": 5.0},
               reversibility=Reversibility.IRREVERSIBLE, forward_recovery=REWORK,
               compensation=None),
        r.step("place", "robot.place", params={"part": "U1", "station": "board"}),
        r.step("move_inspection", "robot.move",
               params={"to": "inspection", "back": "board_above"}),
        r.step("inspect", "robot.inspect", params={"board": "B1"}),
    ]
    return Saga.chain(
        "pcb-assembly", steps, snapshot=SNAPSHOT, predicate=PREDICATE, safe_state=SAFE_STATE,
        on_infeasible=on_infeasible, rollback_window_s=rollback_window_s,
    )


def transfer_saga(registry: Registry | None = None, *, rollback_window_s: float = 120.0) -> Saga:
    """Pick U1, carry it to the inspection pose, inspect: every step can be undone.

    The rollback really moves the arm back and returns the part to the tray,
    which is where e-stops, people entering the zone and serial timeouts during
    compensation are exercised.
    """
    r = registry or robot_registry()
    steps = [
        r.step("pick", "robot.pick", params={"part": "U1", "station": "tray", "back": "home"}),
        r.step("move_inspection", "robot.move",
               params={"to": "inspection", "back": "tray_above"}),
        r.step("inspect", "robot.inspect", params={"board": "B1"}),
    ]
    return Saga.chain(
        "pcb-transfer", steps, snapshot=SNAPSHOT, predicate=PREDICATE, safe_state=SAFE_STATE,
        rollback_window_s=rollback_window_s,
    )
