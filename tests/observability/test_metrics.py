"""Prometheus metrics read from the store (every backend)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reversa import Engine, FakeClock, SagaStatus, Store, TransientError
from reversa.observability.metrics import render_metrics
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


def _samples(store: Store) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render_metrics(store).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_follow_what_the_store_records(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    engine.run(chain_saga())  # completed
    world.fail["do:credit"] = reject()
    engine.run(chain_saga())  # compensated
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    escalated = engine.run(chain_saga())
    assert escalated.status is SagaStatus.ESCALATED
    clock.advance(120)
    m = _samples(store)
    wf = ("workflow", "transfer")
    for status, n in (("completed", 1), ("compensated", 1), ("escalated", 1), ("running", 0)):
        assert m[("reversa_sagas", (("status", status), wf))] == n
    assert m[("reversa_escalations_open", (wf,))] == 1
    assert m[("reversa_escalation_open_age_seconds", (wf,))] == 120
    assert m[("reversa_escalation_age_seconds_bucket", (("le", "60.0"),))] == 0
    assert m[("reversa_escalation_age_seconds_bucket", (("le", "300.0"),))] == 1
    assert m[("reversa_compensation_failures_total", (("kind", "final"),))] == 1
    assert m[("reversa_compensation_failures_total", (("kind", "attempt"),))] == 3
    assert m[("reversa_rollback_duration_seconds_count", (("outcome", "compensated"),))] == 1
    assert m[("reversa_rollback_duration_seconds_count", (("outcome", "escalated"),))] == 1
    assert m[("reversa_outbox_undelivered", ())] == 1
    assert m[("reversa_approvals_pending", (("kind", "start"),))] == 0


def test_in_doubt_steps_are_counted(store: Store, clock: FakeClock) -> None:
    class Crash(BaseException):
        pass

    world = World()
    reg = transfer_registry(world)

    def die(ctx: object) -> None:
        raise Crash()

    reg.add("action", "convert.crash", die)
    saga = chain_saga()
    steps = tuple(s.model_copy(update={"action": "convert.crash"}) if s.name == "convert"
                  else s for s in saga.steps)
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        engine.run(saga.model_copy(update={"steps": steps}))
    key = ("reversa_steps_in_doubt", (("workflow", "transfer"),))
    assert _samples(store).get(key, 0) == 0  # its owner's lease still runs
    clock.advance(6)
    assert _samples(store)[key] == 1
