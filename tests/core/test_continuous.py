"""The worker's continuous checks (issue 15): feasibility and reconciliation.

Both run in a worker round on SQLite and PostgreSQL; they change no saga and
call no action or compensation (``Accounts.landed`` counts what reached the
service). Their advisory escalations and notes keep the audit record whole.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reversa import ConfigError, Engine, FakeClock, SagaStatus, Store, Worker
from reversa.core.evidence import AuditConfig
from reversa.core.evidence.signing import HmacSigner
from reversa.core.jobs import Feasibility
from tests.core.xwf_kit import INPUT, Accounts, funding, registry


@pytest.fixture
def acc() -> Accounts:
    return Accounts()


def _worker(store: Store, clock: FakeClock, acc: Accounts, **jobs: Any) -> Worker:
    jobs.setdefault("feasibility_every_s", None)
    jobs.setdefault("reconcile_every_s", None)
    return Worker(registry(acc), store, clock=clock, **jobs)


def _open(store: Store, saga_id: str, kind: str) -> list[Any]:
    return [e for e in Engine(registry(Accounts()), store).inspect(saga_id).escalations
            if e.kind == kind and e.status == "open"]


def test_feasibility_escalates_before_any_failure(store: Store, clock: FakeClock,
                                                  acc: Accounts) -> None:
    worker = _worker(store, clock, acc, feasibility_every_s=60.0)
    done = worker.engine.run(funding(fail=False, max_rollback_cost={"EUR": 10.0}), INPUT)
    assert done.status is SagaStatus.COMPLETED
    landed = list(acc.landed)
    first = worker.run_round().feasibility or []
    assert [(f["saga_id"], f["severity"]) for f in first] == [(done.saga_id, "ok")]
    acc.price = 9.0  # 90% of the limit: a warning, no escalation
    clock.advance(61)
    second = worker.run_round().feasibility or []
    assert second[0]["severity"] == "warning" and not _open(store, done.saga_id, "feasibility")
    acc.price = 12.0  # past the limit: undoing it now would need a human
    clock.advance(61)
    third = worker.run_round().feasibility or []
    assert third[0]["severity"] == "escalation"
    assert any("exceeds the saga's limit" in r for r in third[0]["reasons"])
    opened = _open(store, done.saga_id, "feasibility")
    assert [e.id for e in opened] == [third[0]["escalation"]]
    # Raised before a failure: the saga still stands, and nothing was called.
    assert worker.engine.inspect(done.saga_id).status is SagaStatus.COMPLETED
    assert acc.landed == landed
    assert "feasibility_escalation" in [e.event for e in worker.engine.audit(done.saga_id)]
    assert store.verify_audit(done.saga_id).ok
    # Not due again before its period; a second pass does not open a second one.
    assert worker.run_round().feasibility is None
    clock.advance(61)
    worker.run_round()
    assert len(_open(store, done.saga_id, "feasibility")) == 1


def test_feasibility_checks_a_running_saga_without_touching_its_chain(
        store: Store, clock: FakeClock, acc: Accounts) -> None:
    engine = Engine(registry(acc), store, clock=clock, heartbeat=False)
    checker = Engine(registry(acc), store, clock=clock, heartbeat=False)  # the worker's
    seen: dict[str, Any] = {"errors": []}

    async def assess_mid_flight() -> None:
        acc.price = 50.0
        seen["sid"] = store.list_sagas(limit=1)[0]["id"]
        seen["found"] = await asyncio.to_thread(
            Feasibility(checker).run, on_error=lambda sid, exc: seen["errors"].append(exc))

    acc.before_boom = assess_mid_flight
    result = engine.run(funding(max_rollback_cost={"EUR": 10.0}), INPUT)
    assert seen["errors"] == []
    found = {f.saga_id: f for f in seen["found"]}[seen["sid"]]
    assert found.status == "running" and found.severity == "escalation"
    # The escalation entry waited for the owner, who appended it in its next commit.
    events = [e.event for e in engine.audit(result.saga_id)]
    assert "feasibility_escalation" in events
    assert store.verify_audit(result.saga_id).ok
    engine.close()
    checker.close()


def test_reconciliation_detects_an_effect_reversed_outside(store: Store, clock: FakeClock,
                                                           acc: Accounts) -> None:
    worker = _worker(store, clock, acc, reconcile_every_s=300.0)
    done = worker.engine.run(funding(fail=False), INPUT)
    clean = worker.run_round().reconciliation or []
    assert clean and clean[0]["drift"] == [] and clean[0]["checked"] == 1
    assert not _open(store, done.saga_id, "drift")
    key = next(k for k, label in acc.applied.items() if label == "do:fund")
    acc.reverse_outside(key, "house", "shared", 100)
    landed = list(acc.landed)
    clock.advance(301)
    found = worker.run_round().reconciliation or []
    assert [d["step"] for d in found[0]["drift"]] == ["fund"]
    assert "booked back outside" in found[0]["drift"][0]["observed"]
    drift = _open(store, done.saga_id, "drift")
    assert [e.id for e in drift] == [found[0]["escalation"]]
    assert acc.landed == landed  # reconciliation reads; it books nothing
    # An advisory escalation is closed, not retried; the closing is chained.
    with pytest.raises(ConfigError):
        worker.engine.resolve(drift[0].id, action="retry", author="user:olga")
    worker.engine.resolve(drift[0].id, action="mark_resolved", author="user:olga",
                          note="rebooked by treasury")
    assert not _open(store, done.saga_id, "drift")
    resolved = [e for e in worker.engine.audit(done.saga_id) if e.event == "escalation_resolved"]
    assert resolved and resolved[-1].detail["escalation"] == drift[0].id
    assert resolved[-1].detail["resolved_at"] is not None
    assert worker.engine.inspect(done.saga_id).status is SagaStatus.COMPLETED
    assert store.verify_audit(done.saga_id).ok


def test_reconciliation_detects_a_compensation_undone_later(store: Store, clock: FakeClock,
                                                            acc: Accounts) -> None:
    worker = _worker(store, clock, acc, reconcile_every_s=300.0)
    rolled = worker.engine.run(funding(), INPUT)
    assert rolled.status is SagaStatus.COMPENSATED
    assert (worker.run_round().reconciliation or [])[0]["drift"] == []
    undo = next(k for k, label in acc.applied.items() if label == "undo:fund")
    acc.reverse_outside(undo, "shared", "house", 100)  # the correction is booked back
    clock.advance(301)
    found = worker.run_round().reconciliation or []
    assert [d["step"] for d in found[0]["drift"]] == ["fund"]
    assert _open(store, rolled.saga_id, "drift")


def test_reconciliation_detects_an_effect_that_appeared_later(
        store: Store, clock: FakeClock, acc: Accounts) -> None:
    worker = _worker(store, clock, acc, reconcile_every_s=300.0)
    rolled = worker.engine.run(funding(), INPUT)  # boom failed: its effect never happened
    assert (worker.run_round().reconciliation or [])[0]["drift"] == []
    started = [e for e in worker.engine.audit(rolled.saga_id)
               if e.event == "step_started" and e.step == "boom"]
    acc.applied[started[-1].detail["key"]] = "do:boom"  # ... until the service shows it
    clock.advance(301)
    found = worker.run_round().reconciliation or []
    assert [d["step"] for d in found[0]["drift"]] == ["boom"]
    assert "appeared later" in found[0]["drift"][0]["observed"]


def test_advisory_escalations_keep_a_signed_record_valid(db_url: str, clock: FakeClock,
                                                         acc: Accounts) -> None:
    signer = HmacSigner.generate()
    store = Store.open(db_url, clock=clock, audit=AuditConfig(signer=signer, background=False))
    try:
        worker = _worker(store, clock, acc, reconcile_every_s=300.0)
        done = worker.engine.run(funding(fail=False), INPUT)
        key = next(k for k, label in acc.applied.items() if label == "do:fund")
        acc.reverse_outside(key, "house", "shared", 100)
        escalation = (worker.run_round().reconciliation or [])[0]["escalation"]
        worker.engine.resolve(escalation, action="mark_resolved", author="user:olga")
        report = store.verify_audit(done.saga_id, verifiers=[signer])
        assert report.ok, report
        # The chain records the escalation's digest: editing the row is caught.
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE reversa_escalations SET reason = 'nothing to see' "
                                 f"WHERE id = {int(escalation)}")
        assert not store.verify_audit(done.saga_id, verifiers=[signer]).ok
    finally:
        store.close()
