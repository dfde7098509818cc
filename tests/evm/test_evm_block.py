"""Probe-and-block on the in-process chain: the EVM half of the effect boundary.

An in-doubt step is blocked before the rollback decides: each journal key the
action may use is tombstoned in the saga store unless a transaction was
journaled there, and a journaled one is settled on chain (a pending one by a
same-nonce replacement). Counted on chain: nonces, allowances, balances.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from reversa import Fence, Fenced, LeaseLost, Probe, SagaStatus, StepContext, Store
from reversa.adapters.evm import ApproveOp, SwapOp, TxScope, TxState
from reversa.core.errors import OutcomeUnknown, PermanentError, TransientError
from reversa.demos.evm.rig import EvmRig
from reversa.simulators.evm import UNIT


def nonce(rig: EvmRig, block: str = "pending") -> int:
    return int(rig.chain.w3.eth.get_transaction_count(rig.agent, block))


def approve_ctx(rig: EvmRig, held: StepContext, amount: int = 5) -> StepContext:
    return replace(held, params={"token": rig.world.address("TKB"),
                                 "spender": rig.world.address("router"), "amount": amount})


def router_allowance(rig: EvmRig, symbol: str = "TKB") -> int:
    return rig.world.allowance(symbol, rig.agent, rig.world.address("router"))


def revoke_call(rig: EvmRig, symbol: str = "TKB") -> tuple[str, str]:
    token = rig.world.tokens[symbol]
    return token.address, token.encode_abi("approve", [rig.world.address("router"), 0])


def test_pending_action_is_replaced_and_the_replacement_wins(rig: EvmRig,
                                                            held: StepContext) -> None:
    op, ctx = ApproveOp(), approve_ctx(rig, held)
    rig.chain.pause()  # congested: the approval stays pending, the step is in doubt
    with pytest.raises(OutcomeUnknown):
        asyncio.run(op.execute(ctx))
    scope = TxScope.of(ctx)
    original = scope.journal.get(f"{ctx.action_key}/approve")
    assert original is not None and rig.wallet.status(original).state is TxState.PENDING
    rig.chain.resume()

    assert asyncio.run(op.block(ctx)) is Probe.NOT_HAPPENED
    cancel = scope.journal.get(original.key + "/cancel")
    assert cancel is not None and cancel.nonce == original.nonce
    assert cancel.replaces == original.hash and cancel.route == "private"
    assert rig.wallet.status(cancel).state is TxState.CONFIRMED
    assert rig.wallet.status(original).state is TxState.REPLACED
    assert nonce(rig, "latest") == original.nonce + 1  # the replacement consumed the nonce
    assert router_allowance(rig) == 0
    # A late retry of the action under the same key re-evaluates the journaled
    # transaction (now replaced for good) instead of signing a new one.
    with pytest.raises(PermanentError) as info:
        asyncio.run(op.execute(ctx))
    assert info.value.code == "replaced"
    assert nonce(rig) == original.nonce + 1 and router_allowance(rig) == 0


def test_confirmed_action_happened_with_its_result(rig: EvmRig, held: StepContext) -> None:
    op = SwapOp()
    ctx = replace(held, params={
        "router": rig.world.address("router"), "pool": rig.world.address("pool1"),
        "token_in": rig.world.address("TKA"), "token_out": rig.world.address("TKB"),
        "amount_in": 1_000 * UNIT, "approve": "exact", "zero_first": True})
    done = asyncio.run(op.execute(ctx))
    sent = nonce(rig)

    verdict = asyncio.run(op.block(ctx))
    assert isinstance(verdict, tuple) and verdict[0] is Probe.HAPPENED
    rebuilt = verdict[1]
    assert rebuilt["amount_out"] == done["amount_out"] > 0
    assert rebuilt["amount_in"] == 1_000 * UNIT and rebuilt["recovered_from"] == "receipt"
    assert nonce(rig) == sent  # settling a confirmed swap sends nothing
    assert rig.world.balance("TKB", rig.agent) == done["amount_out"]
    # The labels the action never used are tombstoned: nothing can be sent under them.
    to, data = revoke_call(rig, "TKA")
    with pytest.raises(Fenced):
        asyncio.run(rig.wallet.send(TxScope.of(ctx), f"{ctx.action_key}/cleanup", "revoke",
                                    to, data, rollback=True))
    assert nonce(rig) == sent


def test_unjournaled_action_is_tombstoned_and_a_late_send_refused(
        rig: EvmRig, held: StepContext) -> None:
    op, ctx = ApproveOp(), approve_ctx(rig, held)
    assert asyncio.run(op.block(ctx)) is Probe.NOT_HAPPENED
    # The late request (a timed-out thread, a paused owner's retry) arrives now.
    with pytest.raises(Fenced) as info:
        asyncio.run(op.execute(ctx))
    assert info.value.code == "key_blocked"
    assert nonce(rig) == 0 and router_allowance(rig) == 0  # nothing reached the chain


def test_refused_transaction_slot_is_skipped_and_the_next_one_blocked(
        rig: EvmRig, scope: TxScope) -> None:
    assert rig.relay is not None
    token, data = revoke_call(rig)
    rig.relay.available = False  # every route refuses the reverse swap outright
    with pytest.raises(TransientError):
        asyncio.run(rig.wallet.send(scope, "k", "reverse_swap", token, data, rollback=True))
    refused = scope.journal.get("k")
    assert refused is not None and refused.rejected
    rig.relay.available = True

    settled = asyncio.run(rig.wallet.block(scope, "k"))
    assert settled.happened is False and settled.how == "blocked"
    with pytest.raises(Fenced):
        asyncio.run(rig.wallet.send(scope, "k", "reverse_swap", token, data, rollback=True))
    assert nonce(rig) == 0


def test_former_owner_cannot_journal_so_cannot_broadcast(rig: EvmRig, held: StepContext,
                                                         store: Store) -> None:
    # Another worker takes the saga over: the lease token (fencing epoch) moves on.
    (taken,) = store.claim("new-owner", 30, saga_id=held.saga_id, force=True,
                           statuses=[SagaStatus.COMPLETED])
    assert taken[1] > held.fencing_token
    with pytest.raises(LeaseLost):
        asyncio.run(ApproveOp().execute(approve_ctx(rig, held)))
    assert nonce(rig) == 0 and router_allowance(rig) == 0


def test_relay_refuses_a_stale_fence_without_falling_back_to_public(
        rig: EvmRig, scope: TxScope) -> None:
    assert rig.relay is not None and scope.fence is not None
    token, data = revoke_call(rig)
    newer = replace(scope, fence=Fence(scope.fence.saga_id, scope.fence.epoch + 1))
    sent = asyncio.run(rig.wallet.send(newer, "new", "revoke", token, data, rollback=True))
    assert sent.record.route == "private"
    before = nonce(rig)
    # Revocations may fall back to the public mempool, but not a fenced-out owner.
    with pytest.raises(Fenced):
        asyncio.run(rig.wallet.send(scope, "old", "revoke", token, data, rollback=True))
    assert rig.relay.gate.refused == 1
    assert nonce(rig) == before
    assert sorted(rig.relay.received) == [sent.record.hash]


def test_probe_reads_the_store_journal(rig: EvmRig, held: StepContext) -> None:
    op, ctx = ApproveOp(), approve_ctx(rig, held)
    assert op.probe(ctx) is Probe.NOT_HAPPENED
    asyncio.run(op.execute(ctx))
    assert op.probe(ctx) is Probe.HAPPENED
    assert router_allowance(rig) == 5
