"""The issue-15 demos: cross-workflow and reconcile-drift (SQLite and PostgreSQL).

The scenarios run against the simulated bank; the assertions read the ledger
(what landed at the service) and the store, and the CLI's ``--json`` runs once.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from reversa import Engine, Inspector, SagaStatus, Store
from reversa.demos.payments import build_world, cross_workflow, registry
from reversa.demos.payments.xwf_demos import demo_cross_workflow, demo_reconcile_drift


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_cross_workflow_rolls_the_payout_back_first(db_url: str) -> None:
    run = demo_cross_workflow(db_url, _quiet())
    assert run.code == 0
    a_id, b_id = run.saga_ids
    store = Store.open(db_url)
    try:
        inspector = Inspector(store)
        a, b = inspector.saga(a_id), inspector.saga(b_id)
        assert (a.status, b.status) == (SagaStatus.COMPENSATED, SagaStatus.COMPENSATED)
        assert all(r.predicate_ok for r in [*a.rollbacks, *b.rollbacks])
        record = a.rollbacks[0].record
        assert record["dependents"]["order"] == [b_id]
        assert record["dependents"]["outcome"] == "cascaded"
        # B's correction was booked before A's conversion was reversed.
        b_undone = b.rollbacks[0].finished_at
        a_comp = next(s for s in a.steps if s.name == "convert")
        assert a_comp.comp_started_at is not None and b_undone <= a_comp.comp_started_at
        links = inspector.links(b_id)
        assert [(lk.provider_saga, lk.provider_step, lk.resource) for lk in links] == [
            (a_id, "convert", "ledger.account:hold:EUR")]
        assert "consumed_by" in [e.event for e in inspector.audit(a_id)]
        assert store.verify_audit(a_id).ok and store.verify_audit(b_id).ok
    finally:
        store.close()


def test_block_policy_escalates_and_leaves_the_money_where_it_is(db_url: str) -> None:
    world = build_world(sanctioned=(cross_workflow.SANCTIONED,))
    store = Store.open(db_url)
    engine = Engine(registry(), store, clock=world.clock, services=world.services())
    try:
        reg = engine.registry
        b_ids: list[str] = []

        def screening(seconds: float) -> None:
            import threading

            other = Engine(registry(), store, clock=world.clock, services=world.services())

            def pay() -> None:
                b_ids.append(other.run(cross_workflow.payout(reg),
                                       cross_workflow.PAYOUT_INPUT).saga_id)
            t = threading.Thread(target=pay)
            t.start()
            t.join()
            other.close()

        from reversa.simulators.ledger import FaultKind

        world.ledger.faults.sleep = screening
        world.ledger.faults.inject("submit_payment", FaultKind.LATENCY, latency_s=1.0)
        before = world.ledger.get_account("nostro:EUR").posted
        a = engine.run(cross_workflow.funding(reg, policy=cross_workflow.OnDependents.BLOCK),
                       cross_workflow.FUNDING_INPUT)
        assert a.status is SagaStatus.ESCALATED
        assert b_ids and b_ids[0] in (engine.inspect(a.saga_id).escalations[-1].reason)
        # B's payout still stands at the ledger; no correction of it was booked.
        assert world.ledger.get_account("nostro:EUR").posted == before + 500_000
        assert engine.inspect(b_ids[0]).status is SagaStatus.COMPLETED
        # And A now holds hold:EUR: a new payout fails at once, naming A.
        refused = engine.run(cross_workflow.payout(reg), cross_workflow.PAYOUT_INPUT)
        assert refused.status is SagaStatus.FAILED and a.saga_id in (refused.error or "")
        assert world.ledger.get_account("nostro:EUR").posted == before + 500_000
    finally:
        engine.close()
        store.close()


def test_reconcile_drift_opens_a_drift_escalation(db_url: str) -> None:
    run = demo_reconcile_drift(db_url, _quiet())
    assert run.code == 0
    store = Store.open(db_url)
    try:
        (escalation,) = Inspector(store).saga(run.saga_ids[0]).escalations
        assert escalation.kind == "drift" and escalation.status == "open"
        assert "corrected outside the saga" in escalation.reason
    finally:
        store.close()


def _cli_json(*args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "reversa", *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_both_demos_run_with_json(tmp_path: Path) -> None:
    xwf = _cli_json("demo", "cross-workflow", "--db", str(tmp_path / "x.db"), "--json")
    assert xwf["exit_code"] == 0 and xwf["audit_ok"] is True
    assert [s["status"] for s in xwf["sagas"]] == ["compensated", "compensated"]  # type: ignore[index, union-attr]
    drift = _cli_json("demo", "reconcile-drift", "--db", str(tmp_path / "d.db"), "--json")
    assert drift["exit_code"] == 0
    (saga,) = drift["sagas"]  # type: ignore[misc]
    assert saga["status"] == "completed"
    assert len(saga["escalations"]) == 1  # the drift escalation (its kind: test above)
