"""SIGKILL an EVM agent right after it broadcast its swap; a worker elsewhere reverses it.

Issue 9's acceptance test for the EVM journal, on SQLite and PostgreSQL. The
agent (a real process) runs scenario C against anvil and dies at its first
poll after broadcasting the A->B swap. A ``reversa worker`` in another process
and another working directory, on the same database, finds the swap through
the journal in the saga store and settles it: reversed when the network mined
it meanwhile, replaced at the same nonce when it is still pending. Checked on
chain: balances, allowances, receipts and nonces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reversa import SagaStatus, Store
from reversa.adapters.evm import LocalSigner, TxRecord, saga_transactions
from reversa.simulators.evm import UNIT, AnvilInclusion, AnvilNode, PrivateRelay, deploy_defi_world
from reversa.simulators.evm.anvil import ANVIL_INSTALL_HINT, find_anvil

pytestmark = [pytest.mark.chaos, pytest.mark.anvil]
ROOT = Path(__file__).resolve().parents[2]
AMOUNT_A = 10_000 * UNIT
NAMES = ("TKA", "TKB", "TKC", "pool1", "pool2", "router", "vault")


@pytest.fixture
def chain() -> Iterator[tuple[AnvilNode, Any, PrivateRelay]]:
    """A fresh anvil with the DeFi world and a private relay (a failure under CI without it)."""
    binary = find_anvil()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail(ANVIL_INSTALL_HINT)
        pytest.skip(ANVIL_INSTALL_HINT)
    with AnvilNode(binary) as node, PrivateRelay(AnvilInclusion(node)) as relay:
        yield node, deploy_defi_world(node), relay


def _env(node: AnvilNode, relay: PrivateRelay, world: Any, key: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "REVERSA_EVM_RPC": node.url,
            "REVERSA_EVM_RELAY": relay.url, "REVERSA_EVM_KEY": key,
            "REVERSA_EVM_WORLD": json.dumps({n: world.address(n) for n in NAMES}),
            "REVERSA_EVM_AMOUNT": str(AMOUNT_A)}


def _wait_for_lease_to_lapse(db: str, saga_id: str) -> None:
    store = Store.open(db)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (row,) = [r for r in store.list_sagas() if r["id"] == saga_id]
            if row["lease_expires_at"] is None or row["lease_expires_at"] < store.now():
                return
            time.sleep(0.1)
        raise AssertionError("the dead agent's lease never lapsed")
    finally:
        store.close()


@pytest.mark.parametrize("mined", [True, False], ids=["swap-mined", "swap-pending"])
def test_swap_broadcast_then_sigkill_is_recovered_from_the_store_journal(
        chain: tuple[AnvilNode, Any, PrivateRelay], db_url: str, tmp_path: Path,
        mined: bool) -> None:
    node, world, relay = chain
    signer = LocalSigner.generate()
    node.fund(signer.address, 10 * UNIT)
    world.mint("TKA", signer.address, AMOUNT_A)
    agent, router = signer.address, world.address("router")
    w3 = node.w3
    node.set_automine(False)  # blocks only when a wallet polls: the swap stays pending
    env = _env(node, relay, world, "0x" + bytes(signer._account.key).hex())
    saga_id = f"evm-crash-{'mined' if mined else 'pending'}"
    (tmp_path / "agent").mkdir()
    (tmp_path / "worker").mkdir()

    agent_proc = subprocess.run(
        [sys.executable, "-m", "tests.chaos.evm_harness", "run", db_url, saga_id],
        cwd=tmp_path / "agent", env=env, capture_output=True, text=True, timeout=180)
    assert agent_proc.returncode == -signal.SIGKILL, agent_proc.stdout + agent_proc.stderr[-3000:]

    # What the dead agent left: the swap journaled in the saga store, in anvil's mempool.
    store = Store.open(db_url)
    (row,) = [r for r in store.list_sagas() if r["id"] == saga_id]
    assert row["status"] == "running"
    swaps = [tx for tx in saga_transactions(store, saga_id) if tx.kind == "swap"]
    assert len(swaps) == 1
    swap = swaps[0]
    pending = node.rpc("txpool_content")["pending"]
    assert any(tx["hash"] == swap.hash for txs in pending.values() for tx in txs.values())
    if mined:
        node.mine(1)  # the network moves on without the agent
        assert w3.eth.get_transaction_receipt(swap.hash)["status"] == 1
        assert world.balance("TKB", agent) > 0

    _wait_for_lease_to_lapse(db_url, saga_id)
    worker = subprocess.run(
        [sys.executable, "-m", "reversa", "worker", "--db", db_url, "--once",
         "--app", "tests.chaos.evm_harness:registry",
         "--services", "tests.chaos.evm_harness:services"],
        cwd=tmp_path / "worker", env=env, capture_output=True, text=True, timeout=180)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    (row,) = [r for r in store.list_sagas() if r["id"] == saga_id]
    assert row["status"] == SagaStatus.COMPENSATED.value, worker.stdout[-3000:]
    (rollback,) = store.rows("rollbacks", saga_id=saga_id)
    entries = {c["step"]: c for c in json.loads(rollback["record_json"])["compensations"]}
    txs = saga_transactions(store, saga_id)
    assert store.verify_audit().ok
    store.close()

    # On chain. Nothing is left pending, and the nonces have no gap.
    head_nonce = w3.eth.get_transaction_count(agent, "latest")
    assert w3.eth.get_transaction_count(agent, "pending") == head_nonce
    assert head_nonce == max(tx.nonce for tx in txs if not tx.rejected) + 1
    assert world.balance("TKB", agent) == world.balance("TKC", agent) == 0
    for symbol in ("TKA", "TKB"):
        assert world.allowance(symbol, agent, router) == 0, symbol
    if mined:
        # The worker found the mined swap in the journal and reversed it privately.
        assert entries["swap_ab"]["in_doubt"] == "happened", entries["swap_ab"]
        reverse = _one(txs, "reverse_swap")
        assert reverse.route == "private" and reverse.hash in relay.received
        assert _receipt(w3, reverse)["status"] == 1
        assert AMOUNT_A - world.balance("TKA", agent) <= AMOUNT_A * 100 // 10_000
    else:
        # The worker found the pending swap and replaced it at its nonce: the swap
        # can never be mined, and token A never left the account.
        assert entries["swap_ab"]["in_doubt"] == "not_happened", entries["swap_ab"]
        cancel = _one(txs, "cancel")
        assert cancel.replaces == swap.hash and cancel.nonce == swap.nonce
        assert _receipt(w3, cancel)["status"] == 1 and _receipt(w3, cancel)["to"] == agent
        assert _status(w3, swap) is None
        assert world.balance("TKA", agent) == AMOUNT_A
    assert entries["approve_a"]["outcome"] == "compensated"


def _one(txs: list[TxRecord], kind: str) -> TxRecord:
    found = [tx for tx in txs if tx.kind == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


def _receipt(w3: Any, tx: TxRecord) -> Any:
    receipt = w3.eth.get_transaction_receipt(tx.hash)
    assert receipt is not None, tx
    return receipt


def _status(w3: Any, tx: TxRecord) -> Any:
    from web3.exceptions import TransactionNotFound

    try:
        return w3.eth.get_transaction_receipt(tx.hash)
    except TransactionNotFound:
        return None
