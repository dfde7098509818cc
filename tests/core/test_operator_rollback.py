"""Operator-initiated rollback: running sagas stop at a step boundary, completed ones within
their window are rolled back, four-eyes holds them; all recorded with the operator's name."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from reversa import (
    Approval,
    ApprovalStatus,
    ConfigError,
    Engine,
    FakeClock,
    FourEyes,
    Registry,
    SagaResult,
    SagaStatus,
    StepContext,
    Store,
    Worker,
)
from tests.core.kit import World, chain_saga, transfer_registry

OPERATOR = "user:olga"


def _events(store: Store, saga_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e["event"], e["outcome"], json.loads(e["detail_json"]))
            for e in store.rows("audit", saga_id=saga_id)]


def _engine(store: Store, clock: FakeClock, world: World, owner: str,
            registry: Registry | None = None, **kw: Any) -> Engine:
    return Engine(registry or transfer_registry(world), store, clock=clock, owner=owner,
                  lease_s=30, heartbeat=False, **kw)


def _asking_during(world: World, store: Store, clock: FakeClock, step: str,
                   outcome: list[Any], **kw: Any) -> Registry:
    """A registry whose ``step`` asks (from another thread, as an operator's console
    would) for the saga it belongs to to be rolled back, while it runs."""
    reg = transfer_registry(world)
    original = reg.get("action", step)

    def ask(ctx: StepContext) -> Any:
        def operator() -> None:
            other = _engine(store, clock, world, "console", _plain(world), **kw)
            outcome.append(other.request_rollback(ctx.saga_id, by=OPERATOR,
                                                  reason="customer cancelled"))
            other.close()

        thread = threading.Thread(target=operator)
        thread.start()
        thread.join()
        return original(ctx)

    reg.add("action", f"{step}.x", ask)
    return reg


def _saga(step: str = "convert", **policy: Any) -> Any:
    """The transfer saga, with ``step`` calling the test's own ``<step>.x`` action."""
    saga = chain_saga(**policy)
    steps = [s.model_copy(update={"action": f"{s.name}.x"}) if s.name == step else s
             for s in saga.steps]
    return saga.model_copy(update={"steps": tuple(steps)})


def _plain(world: World, step: str = "convert") -> Registry:
    """A worker's registry: the same names, plain handlers."""
    reg = transfer_registry(world)
    reg.add("action", f"{step}.x", reg.get("action", step))
    return reg


def test_running_saga_stops_at_the_next_step_boundary(store: Store, clock: FakeClock) -> None:
    world, asked = World(), []
    reg = _asking_during(world, store, clock, "convert", asked)
    result = _engine(store, clock, world, "agent", reg).run(_saga())
    # The request was flagged (the agent holds the saga), the agent stopped before
    # credit and rolled back what it had done.
    assert isinstance(asked[0], SagaResult) and asked[0].status is SagaStatus.RUNNING
    assert result.status is SagaStatus.COMPENSATED
    assert "do:credit" not in world.order and world.balances == {"a": 100, "b": 0, "c": 0}
    events = _events(store, result.saga_id)
    names = [e[0] for e in events]
    assert "step_withdrawn" in names
    (request,) = [e for e in events if e[0] == "rollback_requested"]
    assert request[2]["by"] == OPERATOR and request[2]["reason"] == "customer cancelled"
    (record,) = store.rows("rollbacks", saga_id=result.saga_id)
    assert json.loads(record["record_json"])["requested"]["by"] == OPERATOR
    assert store.load(result.saga_id)[0]["rollback_requested"] is None  # consumed
    assert store.verify_audit().ok


def test_completed_saga_within_window_is_rolled_back(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = _engine(store, clock, world, "agent")
    done = engine.run(chain_saga(rollback_window_s=60))
    assert done.status is SagaStatus.COMPLETED
    clock.advance(30)
    result = _engine(store, clock, world, "console").request_rollback(
        done.saga_id, by=OPERATOR, reason="duplicate order")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert world.order[-3:] == ["undo:credit", "undo:convert", "undo:debit"]
    names = [e[0] for e in _events(store, done.saga_id)]
    assert names.index("rollback_requested") < names.index("dry_run") < names.index(
        "predicate_evaluated")
    with pytest.raises(ConfigError, match="already compensated"):
        engine.request_rollback(done.saga_id, by=OPERATOR, reason="again")


def test_completed_saga_past_its_window_is_refused(store: Store, clock: FakeClock) -> None:
    world = World()
    done = _engine(store, clock, world, "agent").run(chain_saga(rollback_window_s=60))
    clock.advance(61)
    with pytest.raises(ConfigError, match="past its rollback window"):
        _engine(store, clock, world, "console").request_rollback(done.saga_id, by=OPERATOR,
                                                                 reason="late")
    assert store.load(done.saga_id)[0]["status"] == "completed"
    assert "rollback_requested" not in [e[0] for e in _events(store, done.saga_id)]


def test_request_needs_identity_and_reason(store: Store, clock: FakeClock) -> None:
    world = World()
    done = _engine(store, clock, world, "agent").run(chain_saga())
    console = _engine(store, clock, world, "console")
    with pytest.raises(ConfigError, match="needs an identity"):
        console.request_rollback(done.saga_id, by=" ", reason="x")
    with pytest.raises(ConfigError, match="needs a reason"):
        console.request_rollback(done.saga_id, by=OPERATOR, reason="")


def test_orphaned_running_saga_is_claimed_and_rolled_back_now(
    store: Store, clock: FakeClock
) -> None:
    world = World()

    class Crash(BaseException):
        pass

    reg = transfer_registry(world)
    original = reg.get("action", "convert")

    def die(ctx: StepContext) -> Any:
        original(ctx)
        raise Crash()

    reg.add("action", "convert.x", die)
    with pytest.raises(Crash):
        _engine(store, clock, world, "agent", reg).run(_saga())
    (row,) = store.list_sagas()
    clock.advance(31)  # the agent's lease ran out
    result = _engine(store, clock, world, "console", _plain(world)).request_rollback(
        row["id"], by=OPERATOR, reason="agent died")
    assert isinstance(result, SagaResult) and result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}


def test_worker_rolls_back_a_flagged_saga_whose_owner_died(
    store: Store, clock: FakeClock
) -> None:
    world = World()

    class Crash(BaseException):
        pass

    reg = transfer_registry(world)
    original = reg.get("action", "convert")

    def ask_then_die(ctx: StepContext) -> Any:
        def operator() -> None:
            other = _engine(store, clock, world, "console", _plain(world))
            other.request_rollback(ctx.saga_id, by=OPERATOR, reason="stop it")
            other.close()

        thread = threading.Thread(target=operator)
        thread.start()
        thread.join()
        original(ctx)
        raise Crash()  # dies before its next commit: it never sees the flag

    reg.add("action", "convert.x", ask_then_die)
    with pytest.raises(Crash):
        _engine(store, clock, world, "agent", reg).run(_saga())
    (row,) = store.list_sagas()
    assert json.loads(store.load(row["id"])[0]["rollback_requested"])["by"] == OPERATOR
    clock.advance(31)
    worker = Worker(_plain(world), store, clock=clock)
    (ended,) = worker.run_round().ended
    worker.engine.close()
    assert ended.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    (request,) = [e for e in _events(store, row["id"]) if e[0] == "rollback_requested"]
    assert request[2]["by"] == OPERATOR


def test_four_eyes_holds_a_running_saga_until_approved(store: Store, clock: FakeClock) -> None:
    world, asked = World(), []
    policy = {"transfer": FourEyes(always=True)}
    reg = _asking_during(world, store, clock, "convert", asked, governance=policy)
    held = _engine(store, clock, world, "agent", reg).run(_saga())
    (approval,) = asked
    assert isinstance(approval, Approval) and approval.kind == "rollback"
    # Held at the boundary after convert: nothing more ran, nothing was undone.
    assert held.status is SagaStatus.AWAITING_APPROVAL
    assert world.order == ["do:debit", "do:convert"]
    console = _engine(store, clock, world, "console", _plain(world), governance=policy)
    with pytest.raises(ConfigError, match="cannot approve it"):
        console.approve(approval.id, by=OPERATOR)
    with pytest.raises(ConfigError, match="awaiting approval"):
        console.request_rollback(held.saga_id, by="user:other", reason="me too")
    done = console.approve(approval.id, by="user:bob", note="confirmed with the customer")
    assert done.status is ApprovalStatus.EXECUTED
    assert store.load(held.saga_id)[0]["status"] == "compensated"
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    names = [(e[0], e[1]) for e in _events(store, held.saga_id)]
    assert ("rollback_requested", "awaiting_approval") in names
    assert ("approval_decided", "approved") in names
    assert store.verify_audit().ok


def test_rejected_rollback_lets_the_held_saga_run_on(store: Store, clock: FakeClock) -> None:
    world, asked = World(), []
    policy = {"*": FourEyes(always=True)}
    reg = _asking_during(world, store, clock, "convert", asked, governance=policy)
    held = _engine(store, clock, world, "agent", reg).run(_saga())
    (approval,) = asked
    console = _engine(store, clock, world, "console", _plain(world), governance=policy)
    console.reject(approval.id, by="user:bob", note="the customer changed their mind")
    assert store.load(held.saga_id)[0]["status"] == "approved"
    worker = Worker(_plain(world), store, clock=clock)
    (ended,) = worker.run_round().ended
    worker.engine.close()
    assert ended.status is SagaStatus.COMPLETED
    assert world.landed == ["do:debit", "do:convert", "do:credit"]
    names = [e[0] for e in _events(store, held.saga_id)]
    assert names.count("saga_resumed") == 1 and "approval_decided" in names


def test_four_eyes_on_a_completed_saga(store: Store, clock: FakeClock) -> None:
    world = World()
    policy = {"transfer": FourEyes(min_value={"GBP": 100})}
    done = _engine(store, clock, world, "agent").run(chain_saga(),
                                                    {"amount": 500, "currency": "GBP"})
    console = _engine(store, clock, world, "console", _plain(world), governance=policy)
    pending = console.request_rollback(done.saga_id, by=OPERATOR, reason="fraud suspected")
    assert isinstance(pending, Approval)
    assert store.load(done.saga_id)[0]["status"] == "completed"
    console.approve(pending.id, by="user:bob")
    assert store.load(done.saga_id)[0]["status"] == "compensated"
    assert world.balances == {"a": 100, "b": 0, "c": 0}


@pytest.mark.parametrize("status", ["escalated", "compensated", "awaiting_approval"])
def test_refusals_name_why(store: Store, clock: FakeClock, status: str) -> None:
    world = World()
    engine = _engine(store, clock, world, "agent")
    if status == "awaiting_approval":
        saga_id = engine.submit(chain_saga(), by="agent:bot", approval_reason="x").saga_id
        match = "awaiting approval"
    else:
        world.fail["do:credit"] = ValueError("boom")
        if status == "escalated":
            world.fail["undo:convert"] = ValueError("down")
        saga_id = engine.run(chain_saga()).saga_id
        match = "resolve its escalation" if status == "escalated" else "already compensated"
    assert store.load(saga_id)[0]["status"] == status
    with pytest.raises(ConfigError, match=match):
        engine.request_rollback(saga_id, by=OPERATOR, reason="r")
