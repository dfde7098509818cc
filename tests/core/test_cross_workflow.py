"""Rollback across workflows (issue 15): links, dependents policies, holds.

Saga A funds a shared account, saga B pays those funds out, then A's later step
fails. Every test runs on SQLite and PostgreSQL and counts effects AT THE
SERVICE (``Accounts.landed``), not rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import Engine, FakeClock, SagaStatus, Store
from reversa.core.model import OnDependents
from tests.core.xwf_kit import INPUT, Accounts, funding, payout, registry


@pytest.fixture
def acc() -> Accounts:
    return Accounts()


@pytest.fixture
def engine(store: Store, clock: FakeClock, acc: Accounts) -> Any:
    eng = Engine(registry(acc), store, clock=clock, heartbeat=False)
    yield eng
    eng.close()


def _run_a_with_b(engine: Engine, acc: Accounts, policy: OnDependents) -> tuple[Any, Any]:
    """Run A; between its funding and its failing step, B pays the funds out."""
    out: dict[str, Any] = {}

    async def run_b() -> None:
        out["b"] = await engine.run_async(payout(), INPUT)

    acc.before_boom = run_b
    a = engine.run(funding(policy), INPUT)
    return a, out["b"]


def _events(engine: Engine, saga_id: str) -> list[str]:
    return [e.event for e in engine.audit(saga_id)]


def test_b_consuming_a_is_linked_in_both_chains(engine: Engine, acc: Accounts) -> None:
    a, b = _run_a_with_b(engine, acc, OnDependents.BLOCK)
    assert b.status is SagaStatus.COMPLETED
    links = engine.store.relations.links(a.saga_id)
    assert [(lk["consumer_saga"], lk["provider_saga"], lk["resource"]) for lk in links] == [
        (b.saga_id, a.saga_id, "acct:shared")]
    assert "consumes" in _events(engine, b.saga_id)
    assert "consumed_by" in _events(engine, a.saga_id)


def test_cascade_rolls_b_back_first_then_a(engine: Engine, acc: Accounts) -> None:
    a, b = _run_a_with_b(engine, acc, OnDependents.CASCADE)
    assert a.status is SagaStatus.COMPENSATED, a.error
    assert engine.inspect(b.saga_id).status is SagaStatus.COMPENSATED
    # At the service: each effect and each undo landed exactly once, B's undo first.
    assert acc.landed == ["do:fund", "do:spend", "undo:spend", "undo:fund"]
    assert acc.balances == {"house": 1000, "shared": 0, "payee": 0, "writeoff": 0}
    record = a.rollback or {}
    assert record["dependents"]["outcome"] == "cascaded"
    assert record["dependents"]["order"] == [b.saga_id]
    # The dry-run of B's rollback was part of the assessment.
    assert record["dependents"]["dependents"][0]["feasible"] is True
    assert "cascade_rollback" in _events(engine, b.saga_id)


def test_block_escalates_naming_the_dependent_and_undoes_nothing(
        engine: Engine, acc: Accounts) -> None:
    a, b = _run_a_with_b(engine, acc, OnDependents.BLOCK)
    assert a.status is SagaStatus.ESCALATED
    view = engine.inspect(a.saga_id)
    assert any(b.saga_id in e.reason for e in view.escalations)
    assert engine.inspect(b.saga_id).status is SagaStatus.COMPLETED
    assert acc.landed == ["do:fund", "do:spend"]  # no undo reached the service


def test_accept_leaves_b_standing_with_a_semantic_compensation(
        engine: Engine, acc: Accounts) -> None:
    a, b = _run_a_with_b(engine, acc, OnDependents.ACCEPT)
    assert a.status is SagaStatus.COMPENSATED, a.error
    assert engine.inspect(b.saga_id).status is SagaStatus.COMPLETED
    assert acc.count("accept:fund") == 1
    assert acc.count("undo:fund") == 0 and acc.count("undo:spend") == 0
    comp = [c for c in (a.rollback or {})["compensations"] if c["step"] == "fund"]
    assert comp[0]["kind"] == "semantic" and comp[0]["accepted"] == "fund.accept"
    assert "provider_rolled_back" in _events(engine, b.saga_id)


def test_a_hold_refuses_a_concurrent_saga_until_the_resolution(
        engine: Engine, acc: Accounts) -> None:
    a, _ = _run_a_with_b(engine, acc, OnDependents.BLOCK)
    assert a.status is SagaStatus.ESCALATED
    before = list(acc.landed)
    refused = engine.run(payout(hold_wait_s=0), {"account": "shared", "amount": 0})
    assert refused.status is SagaStatus.FAILED
    assert refused.error is not None and a.saga_id in refused.error
    assert "held" in refused.error and "escalations resolve" in refused.error
    assert acc.landed == before  # the refused step never reached the service
    # A bounded wait ends the same way (the fake clock moves while it polls).
    waited = engine.run(payout(hold_wait_s=3), {"account": "shared", "amount": 0})
    assert waited.status is SagaStatus.FAILED and "after waiting 3s" in (waited.error or "")
    assert "resource_wait" in _events(engine, waited.saga_id)
    assert acc.landed == before
    # The resolution releases the hold: the next saga runs and its effect lands.
    escalation = engine.inspect(a.saga_id).escalations[-1].id
    engine.resolve(escalation, action="mark_resolved", author="user:olga", note="checked")
    ok = engine.run(payout(hold_wait_s=0), {"account": "shared", "amount": 0})
    assert ok.status is SagaStatus.COMPLETED, ok.error
    assert acc.landed == [*before, "do:spend"]


def test_dry_run_reports_dependents_and_overhead(engine: Engine, acc: Accounts) -> None:
    a, b = _run_a_with_b(engine, acc, OnDependents.BLOCK)
    report = engine.dry_run(a.saga_id)
    assert report.dependents is not None
    assert [d["saga"] for d in report.dependents["dependents"]] == [b.saga_id]
    assert not report.feasible
    # Overhead: the foreseen review of the blocked dependents, and the FX estimate by kind.
    assert any(r["class"] == "dependents" for r in report.overhead["review"])
    assert report.overhead["review_minutes"] > 0
    assert report.overhead["by_kind"].get("fx", {}).get("EUR") == pytest.approx(1.0)
    landed = list(acc.landed)
    engine.dry_run(a.saga_id)
    assert acc.landed == landed  # a dry-run calls no action or compensation


def test_cascade_follows_dependencies_across_several_sagas(engine: Engine, acc: Accounts) -> None:
    from reversa import Step
    from tests.core.xwf_kit import FAST

    acc.balances["relay"] = 0
    # A funds shared; B spends shared and funds relay; (B pausing) C spends relay.
    b_saga = payout().model_copy(update={"steps": (
        payout().steps[0],
        Step(name="refund", action="fund", compensation="fund.undo", probe="acct.probe",
             resources="fund.resources", depends_on=("spend",), retry=FAST,
             compensation_retry=FAST, params={"account": "relay", "amount": 40}),
        Step(name="pause", action="pause", compensation="pause.undo", depends_on=("refund",),
             retry=FAST))})
    ids: dict[str, Any] = {}

    async def run_c() -> None:
        ids["c"] = await engine.run_async(payout(), {"account": "relay", "amount": 40})

    async def run_b() -> None:
        acc.before_pause = run_c
        ids["b"] = await engine.run_async(b_saga, INPUT)

    acc.before_boom = run_b
    a = engine.run(funding(OnDependents.CASCADE), INPUT)
    b, c = ids["b"], ids["c"]
    assert (b.status, c.status) == (SagaStatus.COMPLETED, SagaStatus.COMPLETED)
    assert a.status is SagaStatus.COMPENSATED, a.error
    assert (a.rollback or {})["dependents"]["order"] == [c.saga_id, b.saga_id]  # deepest first
    assert engine.inspect(c.saga_id).status is SagaStatus.COMPENSATED
    assert engine.inspect(b.saga_id).status is SagaStatus.COMPENSATED
    undos = [label for label in acc.landed if label.startswith("undo:")]
    # C's payout, then B's refund and payout, then A's funding: each exactly once.
    assert undos == ["undo:spend", "undo:fund", "undo:spend", "undo:fund"]
    assert acc.balances == {"house": 1000, "shared": 0, "payee": 0, "writeoff": 0, "relay": 0}
