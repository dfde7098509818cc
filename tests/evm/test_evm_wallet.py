"""The wallet on the in-process chain: idempotent sends, nonces, replacement, reorgs, routes.

Transactions are journaled in the test's saga store (SQLite and PostgreSQL),
through the journal of a saga in flight (the ``scope`` fixture).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from reversa import FakeClock, Store
from reversa.adapters.evm import (
    EvmWallet,
    NonceManager,
    SubmissionPolicy,
    TxJournal,
    TxScope,
    TxState,
)
from reversa.core.errors import OutcomeUnknown, PermanentError, TransientError
from reversa.demos.evm.rig import EvmRig
from tests.evm.conftest import hold_saga


def approve_data(rig: EvmRig, symbol: str, amount: int) -> tuple[str, str]:
    token = rig.world.tokens[symbol]
    return token.address, token.encode_abi("approve", [rig.world.address("router"), amount])


def send(rig: EvmRig, scope: TxScope, key: str, amount: int = 5, *, kind: str = "approve",
         rollback: bool = False) -> Any:
    to, data = approve_data(rig, "TKB", amount)
    return asyncio.run(rig.wallet.send(scope, key, kind, to, data, rollback=rollback))


def test_send_waits_for_the_confirmation_policy(rig: EvmRig, scope: TxScope) -> None:
    sent = send(rig, scope, "k1")
    assert sent.status.state is TxState.CONFIRMED
    assert sent.status.confirmations >= 2  # the rig's policy is Confirmations(2)
    assert rig.world.allowance("TKB", rig.agent, rig.world.address("router")) == 5


def test_same_key_never_signs_twice(rig: EvmRig, scope: TxScope) -> None:
    first = send(rig, scope, "k1", 5)
    again = send(rig, scope, "k1", 7)  # different data: the journaled tx is re-evaluated
    assert again.record.hash == first.record.hash
    assert rig.chain.w3.eth.get_transaction_count(rig.agent) == 1
    assert rig.world.allowance("TKB", rig.agent, rig.world.address("router")) == 5


def test_nonce_manager_learns_after_a_crash(rig: EvmRig, scope: TxScope, store: Store,
                                            clock: FakeClock, tmp_path: Any) -> None:
    send(rig, scope, "k1")
    # A journaled transaction that a crash left unsent keeps its nonce slot.
    to, data = approve_data(rig, "TKB", 9)
    orphan = rig.wallet._sign(scope.journal, "k2", "approve", to, data)
    assert orphan.nonce == 1
    assert rig.chain.w3.eth.get_transaction_count(rig.agent, "pending") == 1
    # A new process, another saga: a fresh wallet learns it from the saga store.
    other = TxScope.of(hold_saga(store, clock, rig.services()))
    fresh = EvmWallet(rig.wallet.network, rig.signer)
    assert fresh.nonces.reserve(rig.chain.w3, rig.agent, other.journal) == 2
    # With an empty store it still learns the chain's count instead of starting at 0.
    empty = Store.open(f"sqlite:///{tmp_path}/empty.db")
    try:
        blank = TxJournal(hold_saga(empty, FakeClock(), rig.services()).require_journal())
        assert NonceManager().reserve(rig.chain.w3, rig.agent, blank) == 1
    finally:
        empty.close()


def test_estimate_revert_sends_nothing(rig: EvmRig, scope: TxScope) -> None:
    router = rig.world.router
    data = router.encode_abi("swap_exact_in", [rig.world.address("pool1"),
                                               rig.world.address("TKA"), 10**30, 0, 2**60])
    with pytest.raises(PermanentError) as info:
        asyncio.run(rig.wallet.send(scope, "k", "swap", router.address, data, rollback=False))
    assert info.value.code == "reverted"
    assert scope.journal.get("k") is None
    assert rig.chain.w3.eth.get_transaction_count(rig.agent, "pending") == 0


def test_pending_transaction_is_cancelled_by_same_nonce_replacement(rig: EvmRig,
                                                                   scope: TxScope) -> None:
    rig.chain.pause()  # congested: nothing gets mined
    with pytest.raises(OutcomeUnknown):
        send(rig, scope, "k1")
    original = scope.journal.get("k1")
    assert original is not None and rig.wallet.status(original).state is TxState.PENDING
    rig.chain.resume()
    settled = asyncio.run(rig.wallet.settle(scope, "k1"))
    assert settled.happened is False and settled.how == "cancelled"
    cancel = scope.journal.get("k1/cancel")
    assert cancel is not None
    assert cancel.nonce == original.nonce and cancel.to == rig.agent
    bump = rig.wallet.network.fees.replacement_bump_bps
    assert cancel.tip * 10_000 >= original.tip * (10_000 + bump)
    assert cancel.max_fee * 10_000 >= original.max_fee * (10_000 + bump)
    assert rig.wallet.status(original).state is TxState.REPLACED
    assert rig.world.allowance("TKB", rig.agent, rig.world.address("router")) == 0
    assert settled.cancel is not None and settled.cancel["route"] == "private"


class BlockAfterReceiptLookup:
    """A web3 whose node mines the next block right after a receipt lookup, once.

    On a live node blocks land between the separate questions a status check
    asks; this puts one in the worst place, deterministically.
    """

    def __init__(self, chain: Any) -> None:
        self._w3 = chain.w3
        self._chain = chain
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._w3, name)

    @property
    def eth(self) -> Any:
        outer = self

        class Eth:
            def __getattr__(self, name: str) -> Any:
                return getattr(outer._w3.eth, name)

            def get_transaction_receipt(self, tx_hash: Any) -> Any:
                try:
                    return outer._w3.eth.get_transaction_receipt(tx_hash)
                finally:
                    if outer.armed:
                        outer.armed = False
                        outer._chain.mine()

        return Eth()


def test_own_tx_mined_mid_evaluation_is_not_reported_replaced(rig: EvmRig,
                                                             scope: TxScope) -> None:
    rig.chain.pause()  # keep it pending until the block lands mid-evaluation
    with pytest.raises(OutcomeUnknown):
        send(rig, scope, "k1")
    record = scope.journal.get("k1")
    assert record is not None and rig.wallet.status(record).state is TxState.PENDING
    rig.chain.resume()
    rig.wallet.network.w3 = BlockAfterReceiptLookup(rig.chain)
    # Its own block used the nonce: that is mined, not "replaced by another transaction".
    assert rig.wallet.status(record).state is TxState.MINED
    rig.wallet.network.w3 = BlockAfterReceiptLookup(rig.chain)
    sent = asyncio.run(rig.wallet.wait(scope, record, rollback=True))
    assert sent.status.state is TxState.CONFIRMED and sent.record.hash == record.hash
    assert rig.world.allowance("TKB", rig.agent, rig.world.address("router")) == 5


def test_reorg_that_drops_a_mined_tx_returns_it_to_doubt_and_it_is_resent(
        rig: EvmRig, scope: TxScope) -> None:
    rig.wallet.network.confirmation = replace(rig.wallet.network.confirmation, blocks=3)
    dropped: list[list[str]] = []

    def reorg_once(chain: Any, number: int) -> None:
        record = scope.journal.get("k1")
        if dropped or record is None:
            return
        status = rig.wallet.status(record)
        # Once the wallet has seen it mined (1 confirmation at its last poll),
        # replace every block from the tx's block up.
        if status.state is TxState.MINED and status.confirmations == 2:
            dropped.append(chain.reorg(status.confirmations))

    rig.chain.on_block(reorg_once)
    sent = send(rig, scope, "k1")
    assert dropped and sent.record.hash in dropped[0]
    assert sent.reorgs == 1 and sent.resent >= 1
    assert sent.status.state is TxState.CONFIRMED
    assert rig.world.allowance("TKB", rig.agent, rig.world.address("router")) == 5


def test_reorged_tx_that_never_comes_back_is_in_doubt_not_assumed(rig: EvmRig,
                                                                 scope: TxScope) -> None:
    rig.wallet.network.confirmation = replace(rig.wallet.network.confirmation, blocks=3)

    def reorg_and_stall(chain: Any, number: int) -> None:
        record = scope.journal.get("k1")
        status = rig.wallet.status(record) if record is not None else None
        if status is not None and status.state is TxState.MINED and status.confirmations == 2:
            chain.reorg(2)
            chain.pause()
            rig.chain.clear_hooks()

    rig.chain.on_block(reorg_and_stall)
    # The resent copy sits pending on a stalled chain: the outcome is unknown.
    with pytest.raises(OutcomeUnknown) as info:
        send(rig, scope, "k1")
    assert info.value.details["reorgs"] == 1


def test_rollback_tx_needs_a_private_route_unless_policy_allows_fallback(
        rig_factory: Any, scope: TxScope) -> None:
    rig = rig_factory(private=False)
    with pytest.raises(PermanentError) as info:
        send(rig, scope, "k1", kind="reverse_swap", rollback=True)
    assert info.value.code == "no_private_route"
    # Revocations may fall back to the public mempool under the default policy.
    sent = send(rig, scope, "k2", 0, kind="revoke", rollback=True)
    assert sent.record.route == "public"


def test_relay_outage_falls_back_only_where_policy_allows(rig: EvmRig, scope: TxScope) -> None:
    assert rig.relay is not None
    rig.relay.available = False
    with pytest.raises(TransientError):
        send(rig, scope, "k1", kind="reverse_swap", rollback=True)
    refused = scope.journal.get("k1")
    assert refused is not None and refused.rejected
    sent = send(rig, scope, "k2", 0, kind="revoke", rollback=True)
    assert sent.record.route == "public"
    rig.relay.available = True
    sent = send(rig, scope, "k3", 1, kind="reverse_swap", rollback=True)
    assert sent.record.route == "private" and sent.record.hash in rig.relay.received
    # The refused one is signed again in its key's next slot, never over it.
    again = send(rig, scope, "k1", 2, kind="reverse_swap", rollback=True)
    assert again.record.key == "k1~2" and again.record.hash != refused.hash
    assert scope.journal.get("k1") == refused


def test_forward_transactions_are_public_by_default_and_private_on_request(
        rig_factory: Any, scope: TxScope) -> None:
    assert send(rig_factory(), scope, "k0").record.route == "public"
    rig = rig_factory(submission=SubmissionPolicy(forward_private=True))
    sent = send(rig, scope, "k1")
    assert sent.record.route == "private"
    assert rig.relay is not None and rig.relay.received == [sent.record.hash]
