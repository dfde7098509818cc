"""Dependency cycles, operational overhead and compensation SLAs (issue 15).

On SQLite and PostgreSQL; effects counted at the service (``Accounts.landed``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from reversa import (
    SLA,
    Engine,
    FakeClock,
    Inspector,
    OnDependents,
    Overhead,
    SagaStatus,
    Step,
    Store,
    TransientError,
)
from reversa.core.jobs import Feasibility
from tests.core.xwf_kit import FAST, INPUT, Accounts, funding, registry


def _step(name: str, action: str, account: str, amount: int, **kw: Any) -> Step:
    comp = {"fund": "fund.undo", "spend": "spend.undo", "pause": "pause.undo"}[action]
    extra = {"fund": {"resources": "fund.resources"},
             "spend": {"resources": "spend.resources"}, "pause": {}}[action]
    return Step(name=name, action=action, compensation=comp, probe="acct.probe", retry=FAST,
                compensation_retry=FAST, params={"account": account, "amount": amount},
                **extra, **kw)


def test_a_dependency_cycle_is_escalated(store: Store, clock: FakeClock) -> None:
    acc = Accounts(balances={"house": 1000, "x": 0, "y": 0, "payee": 0, "writeoff": 0})
    engine = Engine(registry(acc), store, clock=clock, heartbeat=False)
    # X funds x; meanwhile Y spends from x (Y consumes X) and funds y; then X spends
    # from y (X consumes Y) and fails: neither can be rolled back before the other.
    x = funding(OnDependents.CASCADE).model_copy(update={"steps": (
        _step("fund", "fund", "x", 50),
        _step("pause", "pause", "x", 0, depends_on=("fund",)),
        _step("spend", "spend", "y", 10, depends_on=("pause",)),
        Step(name="boom", action="boom", compensation="fund.undo", depends_on=("spend",),
             retry=FAST, params={"account": "x", "amount": 0}))})
    y = funding(OnDependents.CASCADE, fail=False).model_copy(update={"steps": (
        _step("spend", "spend", "x", 20), _step("fund", "fund", "y", 30, depends_on=("spend",)))})
    ys: list[Any] = []

    async def run_y() -> None:
        ys.append(await engine.run_async(y, {}))

    acc.before_pause = run_y
    result = engine.run(x, INPUT)
    engine.close()
    assert ys[0].status is SagaStatus.COMPLETED
    assert result.status is SagaStatus.ESCALATED
    reason = engine.inspect(result.saga_id).escalations[-1].reason
    assert "cycle" in reason and ys[0].saga_id in reason
    assert not [label for label in acc.landed if label.startswith("undo:")]


def test_overhead_counts_against_the_rollback_limit(store: Store, clock: FakeClock) -> None:
    acc = Accounts()
    engine = Engine(registry(acc), store, clock=clock, heartbeat=False)
    # The FX estimate (1 EUR) fits the 2.5 EUR limit; with a 2 EUR fee per
    # compensation call, the rollback costs 3 EUR and goes to a human instead.
    priced = funding(max_rollback_cost={"EUR": 2.5},
                     overhead=Overhead(fees={"EUR": 2.0}))
    result = engine.run(priced, INPUT)
    assert result.status is SagaStatus.ESCALATED
    dry = (result.rollback or {}).get("dry_run") or engine.inspect(
        result.saga_id).rollbacks[-1].record["dry_run"]
    assert dry["total_costs"]["EUR"] == pytest.approx(3.0)
    # A human now reviews it: the overhead foresees that review.
    assert [r["class"] for r in dry["overhead"]["review"]] == ["infeasible"]
    assert dry["overhead"]["fees"] == {"EUR": 2.0}
    assert "operational overhead included" in dry["problems"][0]
    assert acc.count("undo:fund") == 0
    # Without the fee the same rollback runs (on another account: the escalated
    # saga holds the shared one).
    cheap = engine.run(funding(max_rollback_cost={"EUR": 2.5}),
                       {"account": "payee", "amount": 100})
    engine.close()
    assert cheap.status is SagaStatus.COMPENSATED and acc.count("undo:fund") == 1


def _slow_registry(acc: Accounts, clock: FakeClock, *, latency: float, fail_first: bool) -> Any:
    reg = registry(acc)
    undo = reg.get("compensation", "fund.undo")
    failed: list[bool] = []

    def slow_undo(ctx: Any) -> Any:
        clock.advance(latency)
        if fail_first and not failed:
            failed.append(True)
            raise TransientError("recall desk unreachable")
        return undo(ctx)

    reg.add("compensation", "fund.slow_undo", slow_undo)
    reg.declare_sla("fund.slow_undo", SLA(latency_s=2.0, availability=0.99))
    return reg


def _slow_saga(**policy: Any) -> Any:
    base = funding(**policy)
    fund = base.steps[0].model_copy(update={"compensation": "fund.slow_undo"})
    return base.model_copy(update={"steps": (fund, *base.steps[1:])})


def test_compensation_calls_are_measured_against_the_sla(store: Store, clock: FakeClock) -> None:
    acc = Accounts()
    engine = Engine(_slow_registry(acc, clock, latency=5.0, fail_first=True), store,
                    clock=clock, heartbeat=False)
    result = engine.run(_slow_saga(), INPUT)
    engine.close()
    assert result.status is SagaStatus.COMPENSATED and acc.count("undo:fund") == 1
    (report,) = Inspector(store).sla_report(0.0)
    assert report.endpoint == "fund.slow_undo" and report.calls == 2
    assert report.availability == pytest.approx(0.5)
    assert report.breached and any("availability" in b for b in report.breaches)
    assert report.latency_breaches == 2 and report.latency_max_s == pytest.approx(5.0)
    assert any("slower than the promised 2s" in b for b in report.breaches)
    names = {m.name for m in Inspector(store).sla_metrics(0.0)}
    assert any("availability" in n for n in names)


def test_feasibility_escalates_when_promised_latency_exceeds_the_window(
        store: Store, clock: FakeClock) -> None:
    acc = Accounts()
    reg = _slow_registry(acc, clock, latency=0.0, fail_first=False)
    reg.declare_sla("fund.slow_undo", SLA(latency_s=10.0, availability=0.99))
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    done = engine.run(_slow_saga(fail=False, rollback_window_s=5.0), INPUT)
    (found,) = Feasibility(engine).run()
    engine.close()
    assert done.status is SagaStatus.COMPLETED
    assert found.severity == "escalation" and "rollback window" in found.reasons[0]
    assert acc.landed == ["do:fund"]


def test_sla_report_cli(tmp_path: Path) -> None:
    db = str(tmp_path / "sla.db")
    clock = FakeClock(start=time.time() - 60)
    store = Store.open(db, clock=clock)
    try:
        engine = Engine(_slow_registry(Accounts(), clock, latency=5.0, fail_first=False),
                        store, clock=clock, heartbeat=False)
        engine.run(_slow_saga(), INPUT)
        engine.close()
    finally:
        store.close()
    proc = subprocess.run([sys.executable, "-m", "reversa", "sla", "report", "--db", db,
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # a breach: the check fails
    out = json.loads(proc.stdout)
    assert [b["endpoint"] for b in out["breaches"]] == ["fund.slow_undo"]
    bad = subprocess.run([sys.executable, "-m", "reversa", "sla", "report", "--db", db,
                          "--since", "soon"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
