"""Integration tests on a real anvil node: mining, reorgs, replacement, finality, MEV.

anvil comes from ``scripts/setup-anvil.sh``. Without it these tests skip with
the install hint, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reversa import Engine, FakeClock, Registry, SagaStatus, Store, SystemClock
from reversa.adapters.evm import (
    Confirmations,
    EvmNetwork,
    EvmWallet,
    FinalityTag,
    LocalSigner,
    NonceManager,
    PrivateEndpoint,
    SubmissionPolicy,
    TxJournal,
    TxScope,
    TxState,
    register_evm,
    saga_transactions,
)
from reversa.core.errors import OutcomeUnknown
from reversa.demos.evm.rig import EvmRig
from reversa.simulators.evm import (
    UNIT,
    AnvilInclusion,
    AnvilNode,
    GatedMiner,
    MevSearcher,
    PrivateRelay,
    deploy_defi_world,
)
from tests.evm.conftest import hold_saga

pytestmark = pytest.mark.anvil


@pytest.fixture(scope="module")
def node(anvil_binary: str) -> Iterator[dict[str, Any]]:
    with AnvilNode(anvil_binary) as started:
        world = deploy_defi_world(started)
        yield {"node": started, "world": world, "snapshot": started.snapshot()}


@pytest.fixture
def anvil(node: dict[str, Any]) -> Iterator[tuple[AnvilNode, Any]]:
    yield node["node"], node["world"]
    # Back to the deployed state, automine on, for the next test (a snapshot
    # is consumed by reverting to it, so take a new one).
    node["node"].set_automine(True)
    node["node"].revert(node["snapshot"])
    node["snapshot"] = node["node"].snapshot()


def anvil_rig(node: AnvilNode, world: Any, *, confirmations: Any = None,
              on_poll: Any = None, submission: SubmissionPolicy | None = None,
              poll_interval_s: float = 0.05, confirm_timeout_s: float = 10.0) -> EvmRig:
    signer = LocalSigner.generate()
    node.fund(signer.address, 10 * UNIT)
    world.mint("TKA", signer.address, 10_000 * UNIT)
    relay = PrivateRelay(AnvilInclusion(node)).start()
    network = EvmNetwork("anvil", node.w3, confirmation=confirmations or Confirmations(1),
                         private=PrivateEndpoint(relay.url),
                         submission=submission or SubmissionPolicy(), on_poll=on_poll,
                         poll_interval_s=poll_interval_s, confirm_timeout_s=confirm_timeout_s)
    registry = Registry()
    return EvmRig(node, world, signer, EvmWallet(network, signer), relay, registry,
                  register_evm(registry), 10_000 * UNIT)


def test_scenario_c_on_anvil(anvil: tuple[AnvilNode, Any], store: Store,
                            clock: FakeClock) -> None:
    node, world = anvil
    rig = anvil_rig(node, world)
    try:
        saga, data = rig.scenario_c()
        result = Engine(rig.registry, store, clock=clock, services=rig.services(),
                        heartbeat=False).run(saga, data)
        assert result.status is SagaStatus.COMPENSATED, result.error
        reverse = result.rollback["compensations"][0]["result"]  # type: ignore[index]
        assert reverse["route"] == "private" and reverse["loss_bps"] < 100
        assert {t["tx"] for t in reverse["txs"]} <= set(rig.relay.received)  # type: ignore[union-attr]
        end = rig.holdings()
        assert all(v == 0 for k, v in end.items() if "->" in k)
        assert end["TKB"] == end["TKC"] == 0
    finally:
        rig.close()


def test_reorg_on_anvil_returns_step_to_doubt(anvil: tuple[AnvilNode, Any],
                                              store: Store, clock: FakeClock) -> None:
    node, world = anvil
    node.set_automine(False)  # blocks only when the wallet's poll asks for one
    dropped: list[int] = []

    def on_poll() -> None:
        # The swap as the saga journaled it in the store, read while the saga runs.
        swaps = [tx for tx in saga_transactions(store, "anvil-reorg") if tx.kind == "swap"]
        record = swaps[0] if swaps else None
        if record is not None and not dropped:
            status = rig.wallet.status(record)
            if status.state is TxState.MINED and status.confirmations == 2:
                node.reorg(2)  # anvil_reorg: the tx's block is replaced
                dropped.append(status.block or 0)
                return
        node.mine(1)

    rig = anvil_rig(node, world, confirmations=Confirmations(3), on_poll=on_poll)
    try:
        saga, data = rig.scenario_c()
        result = Engine(rig.registry, store, clock=clock, services=rig.services(),
                        heartbeat=False).run(saga, data, saga_id="anvil-reorg")
        assert dropped, "the reorg never happened"
        swap = next(t for t in result.results["swap_ab"]["txs"] if t["kind"] == "swap")
        assert swap["reorgs"] == 1 and swap["resent"] >= 1
        assert result.status is SagaStatus.COMPENSATED
    finally:
        rig.close()


def test_pending_tx_cancelled_by_replacement_on_anvil(anvil: tuple[AnvilNode, Any],
                                                      store: Store, clock: FakeClock,
                                                      tmp_path: Path) -> None:
    node, world = anvil
    node.set_automine(False)  # nothing is mined: the approval stays pending
    rig = anvil_rig(node, world, confirm_timeout_s=0.5)
    scope = TxScope.of(hold_saga(store, clock, rig.services()))
    try:
        token = world.tokens["TKB"]
        data = token.encode_abi("approve", [world.address("router"), 5])
        with pytest.raises(OutcomeUnknown):
            asyncio.run(rig.wallet.send(scope, "k", "approve", token.address, data,
                                        rollback=False))
        original = scope.journal.get("k")
        assert original is not None
        pool = node.rpc("txpool_content")["pending"]
        assert any(original.hash in str(v) for v in pool.values())
        # A fresh process with an empty store learns the pending nonce from the node.
        empty = Store.open(f"sqlite:///{tmp_path}/empty.db")
        blank = TxJournal(hold_saga(empty, clock, {}).require_journal())
        assert NonceManager().reserve(node.w3, rig.agent, blank) == original.nonce + 1
        empty.close()
        settled = asyncio.run(rig.wallet.settle(scope, "k"))
        assert settled.how == "cancelled" and settled.cancel is not None
        assert settled.cancel["nonce"] == original.nonce
        assert rig.wallet.status(original).state is TxState.REPLACED
        assert world.allowance("TKB", rig.agent, world.address("router")) == 0
    finally:
        rig.close()


def test_finality_tag_waits_for_the_finalized_block(anvil: tuple[AnvilNode, Any],
                                                    store: Store, clock: FakeClock) -> None:
    node, world = anvil
    node.set_automine(False)
    polls: list[int] = []

    def on_poll() -> None:
        polls.append(1)
        node.mine(16)

    rig = anvil_rig(node, world, confirmations=FinalityTag("finalized"), on_poll=on_poll)
    scope = TxScope.of(hold_saga(store, clock, rig.services()))
    try:
        token = world.tokens["TKB"]
        data = token.encode_abi("approve", [world.address("router"), 7])
        sent = asyncio.run(rig.wallet.send(scope, "k", "approve", token.address, data,
                                           rollback=False))
        finalized = int(node.w3.eth.get_block("finalized")["number"])
        assert sent.status.block is not None and finalized >= sent.status.block
        assert len(polls) > 1  # not confirmed merely by being mined
    finally:
        rig.close()


def test_mev_searcher_sandwiches_public_rollback_not_private(store: Store,
                                                           anvil_binary: str) -> None:
    with AnvilNode(anvil_binary) as node:
        world = deploy_defi_world(node)
        searcher_account = node.accounts[2]
        for symbol in ("TKA", "TKB"):
            world.mint(symbol, searcher_account, 2_000_000 * UNIT)
        searcher = MevSearcher(node, world, searcher_account)
        searcher.prepare()
        base = node.snapshot()
        losses: dict[str, int] = {}
        victims: dict[str, str] = {}
        # A public mempool with a block time; a block is mined only once the
        # searcher has looked at everything in it.
        with searcher, GatedMiner(node, searcher, block_s=1.0) as miner:
            for route in ("public", "private"):
                policy = SubmissionPolicy(forward_private=True,
                                          rollback_private=route == "private")
                rig = anvil_rig(node, world, submission=policy, confirm_timeout_s=30,
                                on_poll=miner.tick)
                try:
                    saga, data = rig.scenario_c(max_loss_bps=300)
                    engine = Engine(rig.registry, store, clock=SystemClock(),
                                    services=rig.services(), heartbeat=False)
                    result = engine.run(saga, data)
                    assert result.status is SagaStatus.COMPENSATED, (
                        result.rollback or {}).get("escalation_reason")
                    reverse = result.rollback["compensations"][0]["result"]  # type: ignore[index]
                    assert reverse["route"] == route
                    losses[route] = reverse["loss_bps"]
                    victims[route] = next(t["tx"] for t in reverse["txs"]
                                          if t["kind"] == "reverse_swap")
                finally:
                    rig.close()
        node.set_automine(True)
        node.revert(base)
    assert miner.missed == 0
    sandwiched = {s.victim for s in searcher.sandwiches}
    assert victims["public"] in sandwiched
    assert victims["private"] not in searcher.observed
    # Sent privately the reversal pays only fees and price impact (~60 bps here);
    # sent publicly the searcher takes it down to the slippage bound.
    assert losses["private"] < 100
    assert losses["public"] > losses["private"] + 100, losses
