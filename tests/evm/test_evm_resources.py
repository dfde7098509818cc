"""EVM resources (issue 15): allowances and positions link sagas and are held.

Saga A grants the router an allowance; saga B swaps through it (consuming the
allowance A produced); then A's later step fails. With ``on_dependents=block``
A escalates naming B, and while A is escalated its allowance is held: a third
saga touching it is refused before anything is signed. Effects are counted at
the chain (the agent's transaction count, the allowance on the token), on
SQLite and PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reversa import (
    Engine,
    FakeClock,
    PermanentError,
    Phase,
    Retry,
    Saga,
    SagaStatus,
    Step,
    StepContext,
)
from reversa.adapters.evm import ApproveOp, SwapOp, VaultDepositOp
from reversa.adapters.evm.resources import ALLOWANCE, POSITION
from reversa.core.context import idempotency_key
from reversa.core.model import OnDependents
from reversa.demos.evm.rig import EvmRig
from reversa.simulators.evm import UNIT

FAST = Retry(max_attempts=1)
AMOUNT = 100 * UNIT


def _sent(rig: EvmRig) -> int:
    """Transactions from the agent that reached the chain."""
    return int(rig.chain.w3.eth.get_transaction_count(rig.agent))


def _grant(rig: EvmRig, *, fail: bool, **saga: Any) -> Saga:
    a = rig.addresses
    steps = [rig.registry.step("grant", rig.handlers.approve, retry=FAST, params={
        "token": a["TKA"], "spender": a["router"], "amount": AMOUNT})]
    if fail:
        steps.append(Step(name="boom", action="test.boom", compensation="test.noop",
                          depends_on=("grant",), retry=FAST))
    return Saga.chain("grant", steps, on_dependents=OnDependents.BLOCK, snapshot="test.nothing",
                      **saga)


def _trade(rig: EvmRig) -> Saga:
    a = rig.addresses
    swap = rig.registry.step("swap", rig.handlers.swap, retry=FAST, params={
        "router": a["router"], "pool": a["pool1"], "token_in": a["TKA"],
        "token_out": a["TKB"], "amount_in": AMOUNT, "max_slippage_bps": 500})
    return Saga.chain("trade", [swap], snapshot="test.nothing")


def _wire(rig: EvmRig, before_boom: Callable[[], Any]) -> None:
    async def boom(ctx: StepContext) -> None:
        await before_boom()
        raise PermanentError("downstream rejected the grant")

    rig.registry.add("action", "test.boom", boom)
    rig.registry.add("compensation", "test.noop", lambda ctx: None)
    rig.registry.add("snapshot", "test.nothing", lambda ctx: {})


def test_a_swap_spending_anothers_allowance_is_linked_and_the_allowance_held(
        rig_factory: Callable[..., EvmRig], engine_for: Callable[[EvmRig], Engine]) -> None:
    rig = rig_factory(deep=True)
    out: dict[str, Any] = {}

    async def run_b() -> None:
        out["b"] = await engine.run_async(_trade(rig))

    _wire(rig, run_b)
    engine = engine_for(rig)
    a = engine.run(_grant(rig, fail=True))
    b = out["b"]
    assert b.status is SagaStatus.COMPLETED, b.error
    agent, tka, router = rig.agent.lower(), rig.addresses["TKA"].lower(), \
        rig.addresses["router"].lower()
    granted = f"{ALLOWANCE}:{tka}:{agent}:{router}"

    # The link, recorded in the store and in both chains.
    links = engine.store.relations.links(a.saga_id)
    assert [(lk["consumer_saga"], lk["provider_saga"], lk["resource"]) for lk in links] == [
        (b.saga_id, a.saga_id, granted)]
    assert "consumes" in [e.event for e in engine.audit(b.saga_id)]
    assert "consumed_by" in [e.event for e in engine.audit(a.saga_id)]
    # B's swap declared its positions too: TKA consumed, TKB produced.
    declared = {(r["rkey"], r["role"]) for r in engine.store.relations.sharing(
        [f"{POSITION}:{tka}:{agent}", f"{POSITION}:{rig.addresses['TKB'].lower()}:{agent}"],
        a.saga_id, completed_since=0.0)}
    assert declared == {(f"{POSITION}:{tka}:{agent}", "consumes"),
                        (f"{POSITION}:{rig.addresses['TKB'].lower()}:{agent}", "produces")}

    # A (block policy) escalates naming B; nothing of A was undone on chain.
    assert a.status is SagaStatus.ESCALATED
    assert any(b.saga_id in e.reason for e in engine.inspect(a.saga_id).escalations)

    # While A is escalated its allowance is held: a new grant is refused, naming A,
    # and its transaction never reaches the chain.
    sent, allowance = _sent(rig), rig.world.allowance("TKA", rig.agent, rig.addresses["router"])
    refused = engine.run(_grant(rig, fail=False, hold_wait_s=0))
    assert refused.status is SagaStatus.FAILED
    assert refused.error is not None and a.saga_id in refused.error
    assert "held" in refused.error and granted in refused.error
    assert _sent(rig) == sent
    assert rig.world.allowance("TKA", rig.agent, rig.addresses["router"]) == allowance


def _ctx(rig: EvmRig, **params: Any) -> StepContext:
    """The context a step of the operation gets (only params and services matter here)."""
    key = idempotency_key("saga", "step", "action")
    return StepContext(
        saga_id="saga", workflow="w", step="step", phase=Phase.ACTION, attempt=1,
        idempotency_key=key, input={}, params=params, results={}, result=None,
        pre_state=None, deadline=None, clock=FakeClock(), services=rig.services(),
        action_key=key)


def test_each_operation_declares_its_allowance_and_positions(rig: EvmRig) -> None:
    a, me = {k: v.lower() for k, v in rig.addresses.items()}, rig.agent.lower()

    def declared(op: Any, **params: Any) -> set[tuple[str, str]]:
        return {(r.key, r.role.value) for r in op.resources(_ctx(rig, **params))}

    swap = {"router": rig.addresses["router"], "pool": a["pool1"],
            "token_in": rig.addresses["TKA"], "token_out": a["TKB"], "amount_in": 1}
    assert declared(SwapOp(), **swap) == {
        (f"{POSITION}:{a['TKA']}:{me}", "consumes"), (f"{POSITION}:{a['TKB']}:{me}", "produces"),
        (f"{ALLOWANCE}:{a['TKA']}:{me}:{a['router']}", "consumes")}
    # Granting exactly what it spends in the step: nobody else can use that grant.
    assert (f"{ALLOWANCE}:{a['TKA']}:{me}:{a['router']}", "touches") in declared(
        SwapOp(), **swap, approve="exact")
    deposit = {"vault": a["vault"], "token": a["TKC"], "amount": 1}
    assert declared(VaultDepositOp(), **deposit) == {
        (f"{POSITION}:{a['TKC']}:{me}", "consumes"), (f"{POSITION}:{a['vault']}:{me}", "produces"),
        (f"{ALLOWANCE}:{a['TKC']}:{me}:{a['vault']}", "touches")}
    assert (f"{ALLOWANCE}:{a['TKC']}:{me}:{a['vault']}", "consumes") in declared(
        VaultDepositOp(), **deposit, approve="none")
    assert declared(ApproveOp(), token=a["TKA"], spender=a["router"], amount=1) == {
        (f"{ALLOWANCE}:{a['TKA']}:{me}:{a['router']}", "produces")}
