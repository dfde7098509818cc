"""Robot resources (issue 15): the work piece links sagas, the cell is held.

Saga A picks part U1 from the tray and places it on the board; saga B picks U1
from the board (consuming the work piece A's place produced); then A's later
step fails. With ``on_dependents=block`` A escalates naming B, and while A is
escalated the cell is held: a third saga's motion is refused before the arm
moves. Motions are counted at the simulated controller, on SQLite and
PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reversa import (
    Engine,
    FakeClock,
    PermanentError,
    Phase,
    Saga,
    SagaStatus,
    Step,
    StepContext,
    Store,
)
from reversa.adapters.robot import (
    ApplyPaste,
    Inspect,
    MoveTo,
    Pick,
    Place,
    RobotCell,
    robot_registry,
)
from reversa.adapters.robot.resources import CELL, WORKPIECE
from reversa.core.context import idempotency_key
from reversa.core.model import OnDependents
from reversa.core.registry import Registry
from reversa.simulators.robot import CellWorld


@pytest.fixture
def wired(cell: RobotCell, store: Store,
          clock: FakeClock) -> Iterator[tuple[Engine, dict[str, Any]]]:
    hooks: dict[str, Any] = {}

    async def boom(ctx: StepContext) -> None:
        await hooks.pop("before_boom")()
        raise PermanentError("the board was rejected downstream")

    registry = robot_registry()
    registry.add("action", "test.boom", boom)
    registry.add("compensation", "test.noop", lambda ctx: None)
    registry.add("snapshot", "test.nothing", lambda ctx: {})
    engine = Engine(registry, store, clock=clock, services={"robot": cell}, heartbeat=False)
    yield engine, hooks
    engine.close()


def _place_job(r: Registry) -> Saga:
    steps = [r.step("pick", "robot.pick", params={"part": "U1", "station": "tray",
                                                  "back": "home"}),
             r.step("place", "robot.place", params={"part": "U1", "station": "board"}),
             Step(name="boom", action="test.boom", compensation="test.noop",
                  depends_on=("place",))]
    return Saga.chain("place-job", steps, on_dependents=OnDependents.BLOCK,
                      snapshot="test.nothing")


def _take_job(r: Registry) -> Saga:
    return Saga.chain("take-job", [r.step("take", "robot.pick", params={
        "part": "U1", "station": "board", "back": "home"})], snapshot="test.nothing")


def _move_job(r: Registry) -> Saga:
    return Saga.chain("move-job", [r.step("move", "robot.move", params={
        "to": "inspection", "back": "home"})], hold_wait_s=0,
                      snapshot="test.nothing")


def test_a_pick_of_anothers_placed_part_is_linked_and_the_cell_held(
        wired: tuple[Engine, dict[str, Any]], world: CellWorld) -> None:
    engine, hooks = wired
    r = engine.registry
    out: dict[str, Any] = {}

    async def run_b() -> None:
        out["b"] = await engine.run_async(_take_job(r))

    hooks["before_boom"] = run_b
    a = engine.run(_place_job(r))
    b = out["b"]
    assert b.status is SagaStatus.COMPLETED, b.error
    assert world.holding == "U1"  # B really took the part A placed

    # The link, recorded in the store and in both chains.
    links = engine.store.relations.links(a.saga_id)
    assert [(lk["consumer_saga"], lk["provider_saga"], lk["resource"]) for lk in links] == [
        (b.saga_id, a.saga_id, f"{WORKPIECE}:cell/U1")]
    assert "consumes" in [e.event for e in engine.audit(b.saga_id)]
    assert "consumed_by" in [e.event for e in engine.audit(a.saga_id)]

    # A (block policy) escalates naming B.
    assert a.status is SagaStatus.ESCALATED
    assert any(b.saga_id in e.reason for e in engine.inspect(a.saga_id).escalations)

    # While A is escalated the cell is held: a motion of another saga is refused,
    # naming A, and the controller never receives it.
    motions, commands = len(world.motions), len(world.commands)
    refused = engine.run(_move_job(r))
    assert refused.status is SagaStatus.FAILED
    assert refused.error is not None and a.saga_id in refused.error
    assert "held" in refused.error and f"{CELL}:cell" in refused.error
    assert (len(world.motions), len(world.commands)) == (motions, commands)


def test_each_operation_declares_the_cell_and_its_work_pieces(make_cell: Any) -> None:
    cell = make_cell()
    cell.name = "line-2"
    key = idempotency_key("saga", "step", "action")

    def declared(op: Any, **params: Any) -> set[tuple[str, str]]:
        ctx = StepContext(
            saga_id="saga", workflow="w", step="step", phase=Phase.ACTION, attempt=1,
            idempotency_key=key, input={}, params=params, results={}, result=None,
            pre_state=None, deadline=None, clock=FakeClock(), services={"robot": cell},
            action_key=key)
        return {(r.key, r.role.value) for r in op.resources(ctx)}

    here = (f"{CELL}:line-2", "touches")
    assert declared(MoveTo(), to="inspection", back="home") == {here}
    assert declared(Pick(), part="U1", station="tray") == {
        here, (f"{WORKPIECE}:line-2/U1", "consumes")}
    assert declared(Place(), part="U1", station="board") == {here,
                                                             (f"{WORKPIECE}:line-2/U1", "produces")}
    assert declared(ApplyPaste(), board="B1") == {here, (f"{WORKPIECE}:line-2/B1", "produces")}
    assert declared(Inspect(), board="B1") == {here, (f"{WORKPIECE}:line-2/B1", "touches")}
