"""The acceptance stories through the engine, checked in the domain as well as in the record."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reversa import Registry, SagaStatus, Store
from reversa.adapters.payments import PaymentStatus, Rail
from reversa.core.context import idempotency_key, key_prefix
from reversa.demos.payments import (
    PaymentsWorld,
    build_world,
    cross_border,
    mt103,
    procurement,
)
from reversa.simulators.fx_exchange import SimFxExchange
from reversa.simulators.ledger import FaultKind
from reversa.simulators.ledger.http import HttpLedgerClient, start_server

from .helpers import make_engine, restored


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    yield s
    s.close()


def comp_order(result: object) -> list[str]:
    record = getattr(result, "rollback", None) or {}
    return [c["step"] for c in record["compensations"]]


def test_ag166a_procurement(reg: Registry, store: Store, world: PaymentsWorld) -> None:
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=2, latency_s=30)
    before = world.balances()
    engine = make_engine(reg, store, world)
    result = engine.run(procurement.saga(reg), procurement.INPUT)
    assert result.status is SagaStatus.COMPENSATED
    order = comp_order(result)
    assert set(order[:2]) == {"pay", "notify_logistics"}
    assert order[2:] == ["create_po", "reserve"]  # reverse dependency order
    pay = next(c for c in result.rollback["compensations"] if c["step"] == "pay")  # type: ignore[index]
    assert (pay["in_doubt"], pay["outcome"]) == ("not_happened", "nothing_to_undo")
    view = engine.inspect(result.saga_id)
    assert view.step("pay").attempts == 2
    parties = world.counterparties
    assert parties.stock["WIDGET-500"] == {"on_hand": 2_000, "reserved": 0}
    assert [o["status"] for o in parties.orders.values()] == ["cancelled"]
    assert [w["event"] for w in parties.webhooks] == ["capacity.planned", "capacity.cancelled"]
    assert restored(world, before) == {}
    assert result.rollback["predicate"]["ok"]  # type: ignore[index]
    assert store.verify_audit(result.saga_id).ok


def test_ag166a_payment_that_did_go_through_is_voided(reg: Registry, store: Store,
                                                      world: PaymentsWorld) -> None:
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=1)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True)
    before = world.balances()
    result = make_engine(reg, store, world).run(procurement.saga(reg), procurement.INPUT)
    assert result.status is SagaStatus.COMPENSATED
    pay = next(c for c in result.rollback["compensations"] if c["step"] == "pay")  # type: ignore[index]
    assert (pay["in_doubt"], pay["result"]["outcome"]) == ("happened", "cancelled")
    assert [p.status for p in world.ledger.payments()] == [PaymentStatus.CANCELLED]
    assert restored(world, before) == {}


def test_ag166a_on_a_final_rail_that_never_paid_needs_no_human(
    reg: Registry, store: Store, world: PaymentsWorld
) -> None:
    # Both CHAPS submissions timed out without reaching the rail: the probe says the
    # payment never happened, so the irreversible step needs neither recall nor human.
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=2)
    before = world.balances()
    result = make_engine(reg, store, world).run(procurement.saga(reg, rail=Rail.CHAPS),
                                                procurement.INPUT)
    assert result.status is SagaStatus.COMPENSATED
    pay = next(c for c in result.rollback["compensations"] if c["step"] == "pay")  # type: ignore[index]
    assert (pay["in_doubt"], pay["outcome"]) == ("not_happened", "nothing_to_undo")
    assert world.ledger.payments() == []
    assert restored(world, before) == {}


def test_ag166a_on_a_final_rail_that_paid_goes_to_a_human(
    reg: Registry, store: Store, world: PaymentsWorld
) -> None:
    # A CHAPS payment that did settle cannot be undone by the engine: it escalates, with
    # the other steps compensated (Escalation.compensate_others) and the report naming it.
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=1)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True)
    result = make_engine(reg, store, world).run(procurement.saga(reg, rail=Rail.CHAPS),
                                                procurement.INPUT)
    assert result.status is SagaStatus.ESCALATED
    assert "recall it by hand" in (result.rollback or {})["escalation_reason"]
    assert world.counterparties.stock["WIDGET-500"]["reserved"] == 0


def test_ag166c_sanctions_rejection(reg: Registry, store: Store) -> None:
    world = build_world(gbp_eur=cross_border.GBP_EUR, sanctioned=(cross_border.SANCTIONED,))
    before = world.balances()
    result = make_engine(reg, store, world).run(cross_border.saga(reg), cross_border.INPUT)
    assert result.status is SagaStatus.COMPENSATED
    assert result.failed_step == "credit_partner" and "sanctions" in (result.error or "")
    assert comp_order(result) == ["convert", "debit"]
    record = result.rollback or {}
    estimate = next(f["cost"] for f in record["dry_run"]["steps"] if f["step"] == "convert")
    reversal = next(c["result"] for c in record["compensations"] if c["step"] == "convert")
    assert reversal["realized_cost"] == pytest.approx(estimate["amount"], abs=0.01)
    assert world.ledger.get_account("fx_pnl:GBP").posted == -reversal["realized_cost_minor"]
    assert restored(world, before) == {}
    assert record["predicate"]["ok"]


def run_ag384a(reg: Registry, store: Store, world: PaymentsWorld, **saga_kw: float) -> object:
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True, times=2,
                               latency_s=30)
    return make_engine(reg, store, world).run(mt103.saga(reg, **saga_kw), mt103.INPUT)


def test_ag384a_mt103_timeout(reg: Registry, store: Store) -> None:
    world = build_world(gbp_eur=mt103.GBP_EUR, drift_bps_per_hour=-15.0)
    before = world.balances()
    result = run_ag384a(reg, store, world)
    assert result.status is SagaStatus.COMPENSATED  # type: ignore[attr-defined]
    assert comp_order(result) == ["mt103", "credit_nostro", "convert", "debit"]
    record = result.rollback  # type: ignore[attr-defined]
    by_step = {c["step"]: c for c in record["compensations"]}
    assert by_step["mt103"]["in_doubt"] == "happened"
    assert by_step["mt103"]["result"]["outcome"] == "cancelled"
    assert by_step["debit"]["result"]["outcome"] == "voided"
    convert = result.results["convert"]  # type: ignore[attr-defined]
    assert convert["buy_amount"] == pytest.approx(161_470_00, abs=50_00)
    assert convert["reversal_estimate_at_execution"]["cost"] > 0  # estimated before
    dry = next(f["cost"] for f in record["dry_run"]["steps"] if f["step"] == "convert")
    realized = by_step["convert"]["result"]
    assert realized["realized_cost"] == pytest.approx(dry["amount"], abs=0.01)  # recorded after
    corrections = [t for t in world.ledger.find_transfers(
        prefix=key_prefix(result.saga_id)) if t.corrects]  # type: ignore[attr-defined]
    assert {t.code for t in corrections} == {"correction", "fx_reversal_cost"}
    assert restored(world, before) == {}
    assert record["predicate"]["ok"]
    assert [p.status for p in world.ledger.payments()] == [PaymentStatus.CANCELLED]


def test_ag384a_too_costly_reversal_goes_to_a_human(reg: Registry, store: Store) -> None:
    world = build_world(gbp_eur=mt103.GBP_EUR)
    result = run_ag384a(reg, store, world, max_reversal_cost_bps=5.0)
    assert result.status is SagaStatus.ESCALATED  # type: ignore[attr-defined]
    record = result.rollback  # type: ignore[attr-defined]
    assert not record["dry_run"]["feasible"]
    assert "costs too much" in record["escalation_reason"]
    assert record["safe_state"]["ok"]
    mt103_key = idempotency_key(result.saga_id, "mt103", "action")  # type: ignore[attr-defined]
    assert record["safe_state"]["result"]["cancelled"] == [mt103_key]
    assert len(world.venue.orders) == 1  # no reversal was traded
    assert world.ledger.get_account("hold:EUR").posted == 0  # position parked in the nostro
    assert world.ledger.get_account("cust:alice").pending == -142_000_00  # hold kept


def test_ag384a_refused_recall_escalates(reg: Registry, store: Store) -> None:
    from reversa.simulators.ledger import RecallAnswer

    world = build_world(gbp_eur=mt103.GBP_EUR)
    world.ledger.recall_answers[mt103.INPUT["beneficiary"]] = RecallAnswer(accept=False)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True, times=2,
                               latency_s=7_200)  # the payment settles while we wait
    result = make_engine(reg, store, world).run(mt103.saga(reg), mt103.INPUT)
    assert result.status is SagaStatus.ESCALATED
    assert "refused recall" in (result.rollback or {})["escalation_reason"]


def test_ag384a_over_loopback_http(reg: Registry, store: Store) -> None:
    world = build_world(gbp_eur=mt103.GBP_EUR)
    world.ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True, times=2)
    before = world.balances()
    with start_server(world.ledger, world.venue) as server, \
            HttpLedgerClient(server.url) as ledger:
        services = {"ledger": ledger, "fx": SimFxExchange(base_url=server.url),
                    "counterparties": world.counterparties}
        from reversa import Engine

        engine = Engine(reg, store, clock=world.clock, services=services, heartbeat=False)
        result = engine.run(mt103.saga(reg), mt103.INPUT)
    assert result.status is SagaStatus.COMPENSATED
    assert restored(world, before) == {}
