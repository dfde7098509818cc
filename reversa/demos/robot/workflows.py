"""The PCB cell's story sagas: AG-384 scenario B and a fully reversible transfer job.

Build your own the same way: register the operations (``robot_registry``), then
declare each step with its reversibility, its reverse target and, for
irreversible process steps, a forward recovery.
"""

from __future__ import annotations

from reversa.adapters.robot.registry import (
    PREDICATE,
    REWORK,
    SAFE_STATE,
    SNAPSHOT,
    robot_registry,
)
from reversa.core.model import OnInfeasible, Reversibility, Saga
from reversa.core.registry import Registry

__all__ = ["APP", "robot_registry", "scenario_b_saga", "transfer_saga"]

APP = "reversa.adapters.robot.registry:robot_registry"
"""Import path of :func:`robot_registry`, to record as a saga's ``app``."""


def scenario_b_saga(
    registry: Registry | None = None,
    *,
    on_infeasible: OnInfeasible = OnInfeasible.ESCALATE,
    rollback_window_s: float = 120.0,
    app: str | None = None,
    services: str | None = None,
) -> Saga:
    """AG-384 scenario B: pick U1 from tray A, paste board B1, place, inspect.

    Applying paste is declared irreversible with the rework route as its
    forward recovery; ``on_infeasible`` chooses between escalating with a state
    report (after driving to the safe state) and running that recovery.
    ``app`` and ``services`` are recorded with the saga (see ``Saga``).
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
        on_infeasible=on_infeasible, rollback_window_s=rollback_window_s, app=app,
        services=services,
    )


def transfer_saga(
    registry: Registry | None = None,
    *,
    rollback_window_s: float = 120.0,
    app: str | None = None,
    services: str | None = None,
) -> Saga:
    """Pick U1, carry it to the inspection pose, inspect: every step can be undone.

    The rollback really moves the arm back and returns the part to the tray,
    which is where e-stops, people entering the zone and serial timeouts during
    compensation are exercised. ``app`` and ``services`` are recorded with the saga.
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
        rollback_window_s=rollback_window_s, app=app, services=services,
    )
