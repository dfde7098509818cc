"""Human review: escalations are listed, inspected and resolved with their author."""

from __future__ import annotations

from typing import Any

import pytest

from reversa import (
    ConfigError,
    EmergencyStop,
    Engine,
    FakeClock,
    NotFound,
    Reversibility,
    SagaStatus,
    Store,
    TransientError,
    Worker,
)
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


def _escalated(store: Store, world: World) -> tuple[Engine, str, int]:
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    return engine, result.saga_id, result.escalation_id


def test_mark_resolved_records_author_and_note(store: Store) -> None:
    engine, saga_id, esc_id = _escalated(store, World())
    result = engine.resolve(esc_id, action="mark_resolved", author="alice@ops",
                            note="reversed by hand in the FX system, ticket OPS-12")
    assert result.status is SagaStatus.RESOLVED
    (esc,) = engine.inspect(saga_id).escalations
    assert (esc.status, esc.resolution, esc.resolved_by) == ("resolved", "mark_resolved",
                                                             "alice@ops")
    assert "OPS-12" in (esc.note or "")
    entry = [e for e in store.rows("audit", saga_id=saga_id)
             if e["event"] == "escalation_resolved"]
    assert entry and "alice@ops" in entry[0]["detail_json"]
    assert store.verify_audit().ok
    with pytest.raises(NotFound):
        engine.resolve(esc_id, action="retry", author="bob")


def test_resolution_input_is_checked(store: Store) -> None:
    engine, _, esc_id = _escalated(store, World())
    with pytest.raises(ConfigError, match="unknown resolution 'undo'"):
        engine.resolve(esc_id, action="undo", author="x")
    with pytest.raises(ConfigError, match="needs an author"):
        engine.resolve(esc_id, action="retry", author=" ")
    assert engine.inspect(engine.store.rows("escalations")[0]["saga_id"]).status == "escalated"


def test_forward_recovery_resolution(store: Store) -> None:
    world = World()
    reg = transfer_registry(world)
    done: list[str] = []
    reg.add("action", "notify.followup", lambda ctx: done.append(ctx.step))
    saga = chain_saga(["debit", "notify", "credit"])
    steps = list(saga.steps)
    steps[1] = steps[1].model_copy(update={"compensation": None,
                                           "reversibility": Reversibility.IRREVERSIBLE,
                                           "forward_recovery": "notify.followup"})
    world.fail["do:credit"] = reject()
    world.fail["undo:debit"] = [TransientError("x")] * FAST.max_attempts
    engine = Engine(reg, store, clock=FakeClock(), heartbeat=False)
    first = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    assert first.status is SagaStatus.ESCALATED
    assert first.escalation_id is not None
    result = engine.resolve(first.escalation_id, action="retry", author="ops")
    assert result.status is SagaStatus.COMPENSATED
    assert done == ["notify"]  # forward recovery ran once, in the first rollback


def test_emergency_stop_halts_rollback_and_escalates(store: Store) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = EmergencyStop("operator hit e-stop", category=0,
                                               source="cell-1")
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    result = engine.run(chain_saga())
    assert result.status is SagaStatus.ESCALATED
    assert "undo:debit" not in world.order  # nothing else moved after the stop
    (esc,) = engine.inspect(result.saga_id).escalations
    assert "emergency stop (category 0) from cell-1" in esc.reason
    assert esc.report["emergency_stop"]["source"] == "cell-1"


class _Crash(BaseException):
    """The process dies at a commit boundary (real SIGKILLs: tests/chaos)."""


class _DiesAtCommit(Store):
    """Dies right before (or after) the first saga commit of a resolution."""

    after = False
    armed = False

    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        if self.armed and not self.after:
            raise _Crash()
        out = super().write_batch(items, **kwargs)
        if self.armed:
            raise _Crash()
        return out


@pytest.mark.parametrize("after", [False, True], ids=["before-commit", "after-commit"])
def test_a_crash_inside_a_resolution_never_strands_the_saga(
    store: Store, clock: FakeClock, after: bool
) -> None:
    world = World()
    engine, saga_id, esc_id = _escalated(store, world)
    engine.close()
    world.fail.clear()
    dying = _DiesAtCommit(store.engine, clock=clock)
    dying.after, dying.armed = after, True
    human = Engine(transfer_registry(world), dying, clock=clock, owner="human", heartbeat=False)
    with pytest.raises(_Crash):
        human.resolve(esc_id, action="retry", author="alice", note="counterparty is back")
    row, _ = store.load(saga_id)
    escalation = store.rows("escalations", id=esc_id)[0]
    if after:
        # Resolution and the saga's move back to compensating were one commit: a worker
        # picks the saga up and finishes the retried rollback.
        assert (row["status"], escalation["status"]) == ("compensating", "resolved")
        clock.advance(engine.lease_s + 1)
        worker = Worker(transfer_registry(world), store, clock=clock)
        (result,) = worker.run_once()
        worker.engine.close()
        assert result.status is SagaStatus.COMPENSATED
    else:
        # Nothing of the resolution was recorded: the escalation is still open, so a
        # human can resolve it again (it used to be closed with the saga still escalated).
        assert (row["status"], escalation["status"]) == ("escalated", "open")
        clock.advance(engine.lease_s + 1)
        again = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
        result = again.resolve(esc_id, action="retry", author="alice")
        again.close()
        assert result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert world.calls["rv:" + saga_id + ":convert:compensation"] <= FAST.max_attempts + 1
    events = [e["event"] for e in store.rows("audit", saga_id=saga_id)]
    assert events.count("escalation_resolved") == 1
    assert store.verify_audit().ok
