"""The effect boundary in the core: keys, parameters, hooks, block-or-escalate, timeouts,
fenced journal writes, leases on the store's clock, lost leases, tampered plans.

Effects are counted at the service (``World.landed`` / ``World.gate.refused``), not in
our rows. The real-process versions (paused owners, skewed clocks) live in tests/chaos.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from sqlalchemy import text

from reversa import (
    Engine,
    FakeClock,
    Fenced,
    JournalRecord,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    PlanError,
    PlanTampered,
    Probe,
    Registry,
    Saga,
    SagaStatus,
    Step,
    StepContext,
    StepStatus,
    Store,
    SystemClock,
    Worker,
)
from reversa.core.context import idempotency_key
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

# -- keys -----------------------------------------------------------------------------------


def test_keys_are_unambiguous() -> None:
    assert idempotency_key("a:b", "c", "action") != idempotency_key("a", "b:c", "action")
    assert idempotency_key("a%3Ab", "c", "action") != idempotency_key("a:b", "c", "action")
    # Plain ids stay readable.
    assert idempotency_key("0f3a", "debit", "action") == "rv:0f3a:debit:action"
    assert idempotency_key("0f3a", "debit", "action", 2) == "rv:0f3a:debit:action#2"


def test_colliding_names_book_distinct_effects(store: Store, clock: FakeClock) -> None:
    world = World()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    one = Saga.chain("t", [Step(name="c", action="debit", compensation="debit.undo",
                                block="world.block")], snapshot="world.snapshot")
    two = Saga.chain("t", [Step(name="b:c", action="debit", compensation="debit.undo",
                                block="world.block")], snapshot="world.snapshot")
    engine.run(one, saga_id="a:b")
    engine.run(two, saga_id="a")
    engine.close()
    assert world.landed == ["do:debit", "do:debit"]  # neither was deduplicated away
    assert world.balances["a"] == 80


# -- parameters and services --------------------------------------------------------------


def _echo_registry() -> Registry:
    reg = Registry()
    reg.add("action", "echo", lambda ctx: {"value": ctx.param("value"),
                                           "both": ctx.param("both", None)})
    reg.add("action", "fund", lambda ctx: {"amount": ctx.input["amount"] * 2})
    reg.add("compensation", "noop", lambda ctx: None)
    reg.add("predicate", "ok", lambda ctx: True)
    return reg


def test_one_reference_dialect(store: Store, clock: FakeClock) -> None:
    saga = Saga.chain("p", [
        Step(name="fund", action="fund", compensation="noop"),
        Step(name="use", action="echo", compensation="noop",
             params={"value": "$results.fund.amount",
                     "both": ["$input.who", {"lit": "$$5"}, 7]}),
    ], predicate="ok")
    engine = Engine(_echo_registry(), store, clock=clock, heartbeat=False)
    result = engine.run(saga, {"amount": 21, "who": "ada"})
    engine.close()
    assert result.results["use"] == {"value": 42, "both": ["ada", {"lit": "$5"}, 7]}


def test_reading_a_result_without_depending_on_it_is_rejected() -> None:
    saga = Saga(workflow="p", steps=[
        Step(name="fund", action="fund", compensation="noop"),
        Step(name="use", action="echo", compensation="noop",
             params={"value": "$results.fund.amount"}),
    ], predicate="ok")
    with pytest.raises(PlanError, match="does not depend on step 'fund'"):
        Engine(_echo_registry(), Store.open("sqlite://"), heartbeat=False).run(saga)


def test_a_reference_outside_the_dialect_is_rejected() -> None:
    saga = Saga.chain("p", [Step(name="use", action="echo", compensation="noop",
                                 params={"value": "$env.HOME"})], predicate="ok")
    with pytest.raises(PlanError, match=r"use \$input"):
        Engine(_echo_registry(), Store.open("sqlite://"), heartbeat=False).run(saga)


def test_results_show_only_upstream_steps(store: Store, clock: FakeClock) -> None:
    seen: dict[str, list[str]] = {}
    reg = _echo_registry()
    reg.add("action", "look", lambda ctx: seen.setdefault(ctx.step, sorted(ctx.results)))
    saga = Saga(workflow="p", steps=[
        Step(name="a", action="fund", compensation="noop"),
        Step(name="b", action="fund", compensation="noop"),
        Step(name="c", action="look", compensation="noop", depends_on=("a",)),
    ], predicate="ok")
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    engine.run(saga, {"amount": 1})
    engine.close()
    assert seen == {"c": ["a"]}


def test_service_lookup_names_the_fix() -> None:
    ctx = StepContext(saga_id="s", workflow="w", step="pay", phase="action", attempt=1,  # type: ignore[arg-type]
                      idempotency_key="k", input={}, params={}, results={}, result=None,
                      pre_state=None, deadline=None, clock=FakeClock(),
                      services={"ledger": object()})
    with pytest.raises(Exception, match=r"service 'bank' is missing.*Engine\(services="):
        ctx.service("bank")
    with pytest.raises(Exception, match="is a object, not a World"):
        ctx.service("ledger", World)


# -- the Operation protocol ---------------------------------------------------------------


class _Op:
    name = "op"

    def execute(self, ctx: StepContext) -> None:
        return None


def test_misspelt_hook_is_rejected_at_registration() -> None:
    class Misspelt(_Op):
        def probes(self, ctx: StepContext) -> Probe:
            return Probe.UNKNOWN

    with pytest.raises(PlanError, match=r"probes\(\) which is not a hook; did you mean probe"):
        Registry().register(Misspelt())


def test_register_wires_block() -> None:
    class Blocking(_Op):
        def compensate(self, ctx: StepContext) -> None:
            return None

        def block(self, ctx: StepContext) -> Probe:
            return Probe.NOT_HAPPENED

    reg = Registry()
    reg.register(Blocking())
    assert reg.step("s", "op").block == "op:block"


# -- settling in-doubt steps: block, or escalate -------------------------------------------


def test_in_doubt_step_is_blocked_then_skipped_and_a_late_request_is_refused(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = OutcomeUnknown("gateway timeout")
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(chain_saga())
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert engine.inspect(result.saga_id).step("credit").status is StepStatus.SKIPPED
    # The late request arrives now, with the owner's own key and epoch: refused.
    del world.fail["do:credit"]
    late = _ctx_for(store, result.saga_id, "credit", token=1)
    with pytest.raises(Fenced, match="was blocked"):
        world.effect(late, "do:credit", {"c": 10})
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert "do:credit" not in world.landed


def test_probe_alone_cannot_record_never_happened(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = OutcomeUnknown("gateway timeout")
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"block": None}) for s in saga.steps)})
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(saga)
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    view = engine.inspect(result.saga_id)
    assert view.step("credit").status is StepStatus.ESCALATED
    assert "declares no block hook" in (view.step("credit").error or "")
    # What credit consumed stays in effect (undoing it while credit may land creates money).
    assert view.step("convert").status is StepStatus.COMPLETED
    assert world.landed == ["do:debit", "do:convert"]
    (esc,) = view.escalations
    assert "in doubt" in esc.reason


def test_no_block_no_probe_escalates(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:convert"] = OutcomeUnknown("lost reply")
    saga = chain_saga(["debit", "convert"])
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"block": None, "probe": None}) for s in saga.steps)})
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(saga)
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    view = engine.inspect(result.saga_id)
    (esc,) = view.escalations
    assert "neither block nor probe" in esc.reason
    assert "neither block nor probe" in (view.step("convert").error or "")
    assert view.step("convert").status is StepStatus.ESCALATED
    # The debit it consumed is held in effect, not undone under a credit that may land.
    assert view.step("debit").status is StepStatus.COMPLETED
    assert world.landed == ["do:debit"]


def test_block_that_finds_the_effect_compensates_it(store: Store, clock: FakeClock) -> None:
    world = World()
    reg = transfer_registry(world)
    landed_then_lost = {"n": 0}

    def credit_lost_reply(ctx: StepContext) -> Any:
        world.effect(ctx, "do:credit", {"c": 10})
        landed_then_lost["n"] += 1
        raise OutcomeUnknown("reply lost after the ledger booked it")

    reg.add("action", "credit.lossy", credit_lost_reply)
    saga = chain_saga()
    steps = list(saga.steps)
    steps[2] = steps[2].model_copy(update={"action": "credit.lossy",
                                           "retry": FAST.model_copy(update={"max_attempts": 1})})
    engine = Engine(reg, store, clock=clock, heartbeat=False)
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert world.balances == {"a": 100, "b": 0, "c": 0}
    assert "undo:credit" in world.landed


# -- timeouts: never overlap a running attempt ----------------------------------------------


def _slow_registry(world: World, delay_s: float, fail_after: bool = False) -> Registry:
    reg = transfer_registry(world)
    inflight = {"n": 0, "max": 0}

    def slow_credit(ctx: StepContext) -> Any:
        inflight["n"] += 1
        inflight["max"] = max(inflight["max"], inflight["n"])
        try:
            time.sleep(delay_s)
            return world.effect(ctx, "do:credit", {"c": 10})
        finally:
            inflight["n"] -= 1

    reg.add("action", "credit.slow", slow_credit)
    reg.inflight = inflight  # type: ignore[attr-defined]
    return reg


def _with_slow_credit(timeout_s: float) -> Saga:
    saga = chain_saga()
    steps = list(saga.steps)
    steps[2] = steps[2].model_copy(update={"action": "credit.slow", "timeout_s": timeout_s})
    return saga.model_copy(update={"steps": tuple(steps)})


def test_attempt_that_lands_within_the_grace_is_the_steps_outcome(store: Store) -> None:
    world = World()
    reg = _slow_registry(world, delay_s=0.3)
    engine = Engine(reg, store, heartbeat=False)
    result = engine.run(_with_slow_credit(timeout_s=0.2))
    engine.close()
    assert result.status is SagaStatus.COMPLETED
    assert world.landed.count("do:credit") == 1
    assert reg.inflight["max"] == 1  # type: ignore[attr-defined]


def test_attempt_still_running_is_never_retried_and_its_key_is_blocked(store: Store) -> None:
    world = World()
    reg = _slow_registry(world, delay_s=1.0)
    engine = Engine(reg, store, heartbeat=False)
    result = engine.run(_with_slow_credit(timeout_s=0.1))
    time.sleep(1.2)  # the thread's request arrives now, after the rollback
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    assert reg.inflight["max"] == 1  # type: ignore[attr-defined]  # no overlapping retry
    assert "do:credit" not in world.landed  # the late request was refused at the service
    assert world.gate.refused == 1
    assert world.balances == {"a": 100, "b": 0, "c": 0}


def test_plain_compensation_is_cut_off_at_the_rollback_window(store: Store) -> None:
    world = World()
    reg = transfer_registry(world)
    release = threading.Event()
    reg.add("compensation", "debit.hang", lambda ctx: release.wait(10))
    world.fail["do:convert"] = reject()
    saga = chain_saga(["debit", "convert"], rollback_window_s=0.5)
    steps = list(saga.steps)
    steps[0] = steps[0].model_copy(update={"compensation": "debit.hang"})
    engine = Engine(reg, store, heartbeat=False)
    started = time.monotonic()
    result = engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    elapsed = time.monotonic() - started
    release.set()
    engine.close()
    assert result.status is SagaStatus.ESCALATED
    assert elapsed < 5  # cut at the window, not left to hang for 10 s
    assert engine.inspect(result.saga_id).step("debit").status is \
        StepStatus.COMPENSATION_FAILED


# -- the journal is fenced ------------------------------------------------------------------


def test_journal_writes_are_fenced_and_blocked_keys_refused(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    sid = engine.run(chain_saga()).saga_id
    engine.close()
    token = int(store.load(sid)[0]["lease_token"])
    mine = store.journal(sid, token)
    with pytest.raises(LeaseLost, match="is compensated"):  # a saga at rest sends nothing
        mine.put(JournalRecord("k0", "evm.tx", "0xabc", 6, True, {}))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET status='compensating' WHERE id = :s"),
                     {"s": sid})
    record = JournalRecord("k1", "evm.tx", "0xabc", 7, True, {"hash": "0x1"})
    mine.put(record)
    assert mine.get("k1") == record
    assert mine.max_seq("evm.tx", "0xabc") == 7
    assert mine.block("k1") == record  # already there: block reports it
    assert mine.block("k2") is None  # tombstoned now
    with pytest.raises(Fenced, match="blocked"):
        mine.put(JournalRecord("k2", "evm.tx", "0xabc", 8, True, {}))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET lease_token = lease_token + 1 WHERE id = :s"),
                     {"s": sid})
    with pytest.raises(LeaseLost, match="must not be sent"):
        mine.put(JournalRecord("k3", "evm.tx", "0xabc", 9, True, {}))
    assert mine.get("k3") is None


# -- leases: the store's clock, heartbeats as progress, lost leases stop the saga -----------


class _Skewed(SystemClock):
    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return time.time() + self.offset_s


def test_a_worker_with_a_fast_clock_cannot_take_a_live_lease(db_url: str) -> None:
    store = Store.open(db_url)  # leases on database time
    world = World()
    gate = threading.Event()
    reg = transfer_registry(world)
    reg.add("action", "credit.wait", lambda ctx: gate.wait(10) and world.effect(
        ctx, "do:credit", {"c": 10}))
    saga = chain_saga()
    steps = list(saga.steps)
    steps[2] = steps[2].model_copy(update={"action": "credit.wait"})
    owner = Engine(reg, store, owner="owner", lease_s=5)
    runner = threading.Thread(target=owner.run,
                              args=(saga.model_copy(update={"steps": tuple(steps)}),),
                              kwargs={"saga_id": "live-one"})
    runner.start()
    try:
        _wait_for(lambda: store.load("live-one")[1][2]["status"] == "running")
        ahead = Worker(reg, store, clock=_Skewed(60.0), lease_s=5, stall_after_s=30)
        assert ahead.run_once() == []  # 60 s ahead, yet the lease is live on the DB clock
        assert store.load("live-one")[0]["lease_owner"] == "owner"
    finally:
        gate.set()
        runner.join(10)
        owner.close()
    assert store.load("live-one")[0]["status"] == "completed"


def test_heartbeats_count_as_progress(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    sid = engine.run(chain_saga()).saga_id
    engine.close()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET status='running' WHERE id=:s"), {"s": sid})
    token = int(store.load(sid)[0]["lease_token"])
    clock.advance(1000)
    assert [r["id"] for r in store.stalled(300)] == [sid]
    assert store.heartbeat([(sid, token)], 30) == []
    assert store.stalled(300) == []  # the beat is progress
    assert store.heartbeat([(sid, token - 1)], 30) == [sid]  # a stale token learns it lost


def test_a_lost_lease_stops_the_saga_in_this_process(store: Store) -> None:
    world = World()
    reg = transfer_registry(world)
    started = threading.Event()

    async def credit_forever(ctx: StepContext) -> None:
        started.set()
        await asyncio.sleep(30)

    reg.add("action", "credit.forever", credit_forever)
    saga = chain_saga()
    steps = list(saga.steps)
    steps[2] = steps[2].model_copy(update={"action": "credit.forever"})
    owner = Engine(reg, store, owner="owner", lease_s=0.3)  # heartbeat every 0.1 s
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            owner.run(saga.model_copy(update={"steps": tuple(steps)}), saga_id="stolen")
        except LeaseLost as exc:
            outcome["lost"] = exc

    runner = threading.Thread(target=run)
    began = time.monotonic()
    runner.start()
    assert started.wait(10)
    store.claim("thief", 60, saga_id="stolen", force=True)
    runner.join(10)
    owner.close()
    assert "lost" in outcome and "taken over" in str(outcome["lost"])
    assert time.monotonic() - began < 5  # stopped at once, not after the 30 s step
    assert store.load("stolen")[0]["lease_owner"] == "thief"


# -- tampered plans -------------------------------------------------------------------------


def _tamper(store: Store, sid: str, *, rehash: bool) -> None:
    from reversa.core.canonical import sha256_hex

    row, _ = store.load(sid)
    plan = row["plan_json"].replace('"max_attempts":3', '"max_attempts":999')
    assert plan != row["plan_json"]
    values = {"p": plan, "s": sid, "h": sha256_hex(plan) if rehash else row["plan_hash"]}
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET plan_json=:p, plan_hash=:h, "
                          "status='running', lease_expires_at=NULL WHERE id=:s"), values)


@pytest.mark.parametrize("rehash", [False, True], ids=["hash-kept", "hash-recomputed"])
def test_a_tampered_plan_is_never_executed(store: Store, clock: FakeClock, rehash: bool) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    sid = engine.run(chain_saga()).saga_id
    engine.close()
    landed = list(world.landed)
    _tamper(store, sid, rehash=rehash)
    worker = Worker(transfer_registry(world), store, clock=clock)
    (result,) = worker.run_once()
    worker.engine.close()
    assert result.status is SagaStatus.ESCALATED
    assert world.landed == landed  # no handler ran
    (esc,) = engine.inspect(sid).escalations
    assert "plan tampered" in esc.reason
    with pytest.raises(PlanTampered):
        Engine(transfer_registry(world), store, clock=clock, heartbeat=False).dry_run(sid)
    with pytest.raises(PlanTampered):
        Engine(transfer_registry(world), store, clock=clock, heartbeat=False).resolve(
            esc.id, action="retry", author="ops")
    assert world.landed == landed


# -- helpers --------------------------------------------------------------------------------


def _ctx_for(store: Store, sid: str, step: str, *, token: int) -> StepContext:
    return StepContext(
        saga_id=sid, workflow="transfer", step=step, phase="action",  # type: ignore[arg-type]
        attempt=1, idempotency_key=idempotency_key(sid, step, "action"), input={}, params={},
        results={}, result=None, pre_state=None, deadline=None, clock=FakeClock(),
        services={}, action_key=idempotency_key(sid, step, "action"), fencing_token=token)


def _wait_for(cond: Any, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if cond():
                return
        except NotFound:
            pass  # not created yet
        time.sleep(0.02)
    raise AssertionError("condition not reached")
