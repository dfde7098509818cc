"""``Engine.preview``: the rollback dry-run of a saga before it runs, with no effect."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from reversa import (
    Check,
    CostEstimate,
    Engine,
    Escalation,
    FakeClock,
    Inspector,
    PlanError,
    Registry,
    Reversibility,
    Saga,
    Step,
    StepContext,
    Store,
)


def world() -> tuple[Registry, Counter[str]]:
    calls: Counter[str] = Counter()
    reg = Registry()

    @reg.action("hold")
    def hold(ctx: StepContext) -> dict[str, Any]:
        calls["hold"] += 1
        return {"held": ctx.param("amount")}

    @reg.compensation("release")
    def release(ctx: StepContext) -> None:
        calls["release"] += 1

    @reg.precondition("hold.open")
    def hold_open(ctx: StepContext) -> Check:
        calls["hold.open"] += 1
        return Check(ctx.param("account") != "frozen", f"account {ctx.param('account')}")

    @reg.cost("hold.cost")
    def hold_cost(ctx: StepContext) -> CostEstimate:
        calls["hold.cost"] += 1
        return CostEstimate(float(ctx.param("amount")) / 100, "GBP", reason="1% fee")

    @reg.action("ship")
    def ship(ctx: StepContext) -> None:
        calls["ship"] += 1

    @reg.compensation("unship")
    def unship(ctx: StepContext) -> None:
        calls["unship"] += 1

    @reg.precondition("ship.check")
    def ship_check(ctx: StepContext) -> Check:
        calls["ship.check"] += 1
        return Check(True, f"parcel of {ctx.param('held')}")

    @reg.action("announce")
    def announce(ctx: StepContext) -> None:
        calls["announce"] += 1

    @reg.predicate("ok")
    def ok(ctx: Any) -> bool:
        return True

    return reg, calls


def saga(max_cost: float = 1_000.0) -> Saga:
    return Saga.chain("preview.demo", [
        Step(name="hold", action="hold", compensation="release", preconditions=("hold.open",),
             cost="hold.cost", params={"amount": "$input.amount", "account": "$input.account"}),
        # Its precondition reads the hold's result: only judged once the saga has run.
        Step(name="ship", action="ship", compensation="unship", preconditions=("ship.check",),
             params={"held": "$results.hold.held"}),
        Step(name="announce", action="announce", reversibility=Reversibility.IRREVERSIBLE,
             escalation=Escalation(reason="a public announcement cannot be taken back")),
    ], predicate="ok", max_rollback_cost={"GBP": max_cost})


@pytest.fixture
def engine(store: Store, clock: FakeClock) -> Engine:
    reg, _ = world()
    return Engine(reg, store, clock=clock, heartbeat=False)


def test_preview_reports_the_rollback_and_records_nothing(store: Store, clock: FakeClock) -> None:
    reg, calls = world()
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    report = engine.preview(saga(), {"amount": 5_000, "account": "acc-1"})
    assert report.feasible, report.problems
    assert report.costs == {"GBP": 50.0}
    by_step = {f.step: f for f in report.steps}
    assert [f.step for f in report.steps] == ["announce", "ship", "hold"]  # rollback order
    assert by_step["announce"].action == "escalate"
    assert by_step["hold"].preconditions[0]["ok"] is True
    deferred = by_step["ship"].preconditions[0]
    assert deferred["ok"] is None
    assert deferred["reason"].startswith("deferred: needs the results of earlier steps")
    # Checks and estimators ran; no action, no compensation; nothing stored.
    assert calls == Counter({"hold.open": 1, "hold.cost": 1, "ship.check": 1})
    assert Inspector(store).count() == 0


def test_preview_names_missing_input_and_failing_checks(engine: Engine) -> None:
    report = engine.preview(saga(), {"account": "frozen"})
    assert not report.feasible
    assert "input: step 'hold': '$input.amount': 'amount' is missing; check the saga input " \
           "or the earlier step's result" in report.problems
    assert any("precondition 'hold.open' of step 'hold' does not hold: account frozen" in p
               for p in report.problems)


def test_preview_checks_the_cost_against_the_saga_limit(engine: Engine) -> None:
    report = engine.preview(saga(max_cost=10.0), {"amount": 5_000, "account": "acc-1"})
    assert report.problems == ["estimated rollback cost 50 GBP exceeds the saga's limit 10 GBP"]


def test_preview_refuses_an_invalid_plan(engine: Engine) -> None:
    bad = Saga(workflow="bad", predicate="ok", steps=[Step(name="x", action="nowhere")])
    with pytest.raises(PlanError, match="nowhere"):
        engine.preview(bad, {})
