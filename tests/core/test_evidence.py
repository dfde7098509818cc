"""Evidence of any type is recorded: a Decimal never stops a rollback (issue 10).

A ``Decimal`` in a precondition's ``Check.detail`` or in a probe's result on the resume
path used to make the audit writer raise mid-rollback. Effects are counted at the service.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from reversa import (
    Check,
    Engine,
    FakeClock,
    OnCrash,
    Probe,
    SagaStatus,
    StepContext,
    Store,
    Worker,
)
from reversa.core.canonical import to_recordable
from tests.core.kit import World, chain_saga, reject, transfer_registry


class Crash(BaseException):
    """The owner dies inside a call (real SIGKILLs: tests/chaos)."""


def test_decimal_in_a_precondition_detail_is_recorded(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)
    reg.add("precondition", "fee.ok",
            lambda ctx: Check(True, "fee within policy", {"fee": Decimal("0.10")}))
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"preconditions": ("fee.ok",)}) for s in saga.steps)})
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga)
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.landed == ["do:debit", "do:convert", "undo:convert", "undo:debit"]
    dry = [e for e in store.rows("audit", saga_id=result.saga_id) if e["event"] == "dry_run"]
    assert '"fee":"0.10"' in dry[0]["detail_json"]
    assert store.verify_audit().ok


def test_decimal_in_a_probe_result_on_resume_is_recorded(store: Store, clock: FakeClock) -> None:
    world = World()
    reg = transfer_registry(world)

    def convert_then_die(ctx: StepContext) -> Any:
        world.effect(ctx, "do:convert", {"b": 10})
        raise Crash()

    reg.add("action", "convert.crash", convert_then_die)
    saga = chain_saga(on_crash=OnCrash.RESUME)
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": "convert.crash", "probe": "money.probe"})
        if s.name == "convert" else s for s in saga.steps)})
    reg.add("probe", "money.probe", lambda ctx: (Probe.HAPPENED, {"amount": Decimal("10.00")}))
    agent = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        agent.run(saga, saga_id="resumed")
    clock.advance(10)
    worker_reg = transfer_registry(world)
    worker_reg.add("action", "convert.crash", worker_reg.get("action", "convert"))
    worker_reg.add("probe", "money.probe", reg.get("probe", "money.probe"))
    worker = Worker(worker_reg, store, clock=clock)
    (result,) = worker.run_once()
    worker.engine.close()
    assert result.status is SagaStatus.COMPLETED
    assert result.results["convert"] == {"amount": "10.00"}
    assert world.landed == ["do:debit", "do:convert", "do:credit"]
    assert store.verify_audit().ok


def test_unknown_evidence_is_recorded_by_type_only() -> None:
    class Secretive:
        def __str__(self) -> str:
            return "password=hunter2"

    recorded = to_recordable({"fee": Decimal("1.5"), "when": (1, Secretive())})
    assert recorded == {"fee": "1.5", "when": [1, "<unrecordable Secretive>"]}
