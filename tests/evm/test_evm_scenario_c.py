"""AG-384 scenario C through the engine on the in-process chain."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from reversa import SagaStatus, Store
from reversa.adapters.evm import Confirmations, TxState, saga_transactions
from reversa.demos.evm.rig import EvmRig
from reversa.simulators.evm import UNIT


def whale_moves_pool1_after_our_swap(rig: EvmRig, amount: int) -> None:
    """Another trader dumps B into pool 1 right after the agent's A→B swap lands."""

    def hook(chain: Any, number: int) -> None:
        if rig.extra.get("moved") or rig.world.balance("TKB", rig.agent) == 0:
            return
        rig.extra["moved"] = True
        chain.set_auto_mine(True)
        rig.world.trade("pool1", "TKB", amount)
        chain.set_auto_mine(False)

    rig.chain.on_block(hook)


def test_scenario_c_rolls_back_privately_within_bound(rig: EvmRig, store: Store,
                                                      engine_for: Any) -> None:
    start = rig.holdings()
    saga, data = rig.scenario_c()
    result = engine_for(rig).run(saga, data)

    assert result.status is SagaStatus.COMPENSATED
    assert result.failed_step == "swap_bc" and "insufficient liquidity" in (result.error or "")
    record = result.rollback
    assert record is not None and record["predicate"]["ok"] is True
    comps = {c["step"]: c for c in record["compensations"]}
    assert list(comps) == ["swap_ab", "approve_a"]  # reverse swap first, then revocation
    reverse = comps["swap_ab"]["result"]
    assert reverse["route"] == "private"
    assert all(tx["route"] == "private" for tx in reverse["txs"])
    assert {tx["tx"] for tx in reverse["txs"]} <= set(rig.relay.received)  # type: ignore[union-attr]
    assert reverse["received"] >= reverse["min_out"]
    assert 0 < reverse["loss_bps"] < 100
    assert comps["approve_a"]["result"]["revoke"]["route"] == "private"
    # Gas of every compensation was estimated before (dry-run) and recorded after.
    dry = {f["step"]: f for f in record["dry_run"]["steps"]}
    assert dry["approve_a"]["cost"]["unit"] == "gas" and dry["approve_a"]["cost"]["amount"] > 0
    assert dry["swap_ab"]["cost"]["detail"]["gas"] > 0
    assert dry["swap_ab"]["cost"]["acceptable"] is True
    assert reverse["gas_used"] > 0 and comps["approve_a"]["result"]["revoke"]["gas_used"] > 0
    # The domain's own end state, not just the saga status.
    end = rig.holdings()
    assert all(v == 0 for k, v in end.items() if "->" in k), end
    assert end["TKB"] == end["TKC"] == end["shares"] == 0
    assert start["TKA"] - end["TKA"] == reverse["loss"]
    assert start["TKA"] - end["TKA"] <= start["TKA"] * 100 // 10_000
    assert store.verify_audit().ok


def test_market_moved_past_the_bound_escalates_with_state_report(
    rig: EvmRig, store: Store, engine_for: Any
) -> None:
    whale_moves_pool1_after_our_swap(rig, 50_000 * UNIT)
    saga, data = rig.scenario_c()
    engine = engine_for(rig)
    result = engine.run(saga, data)

    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    record = result.rollback
    assert record is not None
    dry = {f["step"]: f for f in record["dry_run"]["steps"]}
    assert dry["swap_ab"]["cost"]["acceptable"] is False
    assert "market moved past the bound" in dry["swap_ab"]["cost"]["reason"]
    assert dry["swap_ab"]["cost"]["detail"]["quote"] < dry["swap_ab"]["cost"]["detail"]["min_out"]
    # Nothing traded at any price: the B position waits for a human...
    assert rig.world.balance("TKB", rig.agent) == data_swap_out(engine, result.saga_id)
    assert record["compensations"] == []
    # ...but the safe state revoked the standing max approval first.
    assert record["safe_state"]["ok"] is True
    revoked = record["safe_state"]["result"]["revoked"]
    assert [r["spender"] for r in revoked] == [rig.world.address("router")]
    assert rig.world.allowance("TKA", rig.agent, rig.world.address("router")) == 0
    # The state report a human gets: what ran, what remains, the chain state now.
    escalation = store.rows("escalations", id=result.escalation_id)[0]
    assert "rollback infeasible" in escalation["reason"]
    assert record["post_state"]["balances"]["TKB"] > 0
    assert store.verify_audit().ok


def data_swap_out(engine: Any, saga_id: str) -> int:
    view = engine.inspect(saga_id)
    step = next(s for s in view.steps if s.name == "swap_ab")
    return int(step.result["amount_out"])


def test_pending_step_is_blocked_by_replacement(rig_factory: Any, store: Store,
                                                engine_for: Any) -> None:
    rig = rig_factory(confirm_timeout_s=1.0)
    rig.chain.pause()  # the approval sits in the mempool: its step ends in doubt
    # The stall ends with the first block a producer builds (the relay's, holding
    # the replacement).
    rig.chain.on_block(lambda chain, number: chain.resume())
    saga, data = rig.scenario_c()
    result = engine_for(rig).run(saga, data)

    assert result.status is SagaStatus.COMPENSATED, result.error
    (entry,) = result.rollback["compensations"]  # type: ignore[index]
    # The block found the approval pending, replaced it at the same nonce, and
    # the replacement won: it never happened and now never can.
    assert entry["step"] == "approve_a" and entry["in_doubt"] == "not_happened", entry
    assert entry["outcome"] == "nothing_to_undo"
    txs = saga_transactions(store, result.saga_id)
    (original,) = [tx for tx in txs if tx.kind == "approve"]
    (cancel,) = [tx for tx in txs if tx.kind == "cancel"]
    assert cancel.replaces == original.hash and cancel.nonce == original.nonce
    assert cancel.to == rig.agent and cancel.route == "private"
    assert rig.wallet.status(original).state is TxState.REPLACED
    assert rig.wallet.status(cancel).state is TxState.CONFIRMED
    # On chain: the nonce was consumed by the replacement, no allowance stands.
    assert rig.chain.w3.eth.get_transaction_count(rig.agent) == original.nonce + 1
    assert rig.world.allowance("TKA", rig.agent, rig.world.address("router")) == 0


def test_reorg_dropping_a_step_tx_is_reevaluated(rig_factory: Any, store: Store,
                                                 engine_for: Any) -> None:
    rig = rig_factory(deep=True, confirmations=3)
    done: list[str] = []

    def reorg_swap(chain: Any, number: int) -> None:
        # The swap as the saga journaled it in the store, read while the saga runs.
        records = [tx for tx in saga_transactions(store, "reorg-1") if tx.kind == "swap"]
        for record in records:
            status = rig.wallet.status(record)
            if not done and status.state is TxState.MINED and status.confirmations == 2:
                done.extend(chain.reorg(2))

    saga, data = rig.scenario_c()
    engine = engine_for(rig)
    rig.chain.on_block(reorg_swap)
    result = engine.run(saga, data, saga_id="reorg-1")

    assert result.status is SagaStatus.COMPLETED
    swap_tx = next(t for t in result.results["swap_ab"]["txs"] if t["kind"] == "swap")
    assert swap_tx["tx"] in done  # the reorg really dropped it
    assert swap_tx["reorgs"] == 1 and swap_tx["resent"] >= 1
    assert rig.world.shares(rig.agent) == result.results["deposit_c"]["shares"] > 0


def test_private_key_never_reaches_db_audit_logs_or_errors(
    rig_factory: Any, tmp_path: Path, store: Store, engine_for: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rig = rig_factory(confirm_timeout_s=1.0)
    key_hex = bytes(rig.signer._account.key).hex()
    saga, data = rig.scenario_c()
    engine = engine_for(rig)
    results = [engine.run(saga, data)]
    rig.chain.pause()
    results.append(engine.run(saga, data))  # an in-doubt run with errors and escalations
    rig.chain.resume()
    texts = [repr(r) for r in results] + [caplog.text, repr(rig.wallet), repr(rig.signer)]
    texts += [repr(store.rows(table)) for table in
              ("sagas", "steps", "audit", "escalations", "rollbacks", "journal")]
    # The journal holds the signed transactions (public data), never the key.
    assert any(row["kind"] == "evm.tx" for row in store.rows("journal"))
    for text in texts:
        assert key_hex not in text.lower()
    store.close()
    for path in tmp_path.iterdir():
        if path.is_file():
            assert key_hex.encode() not in path.read_bytes().lower()
            assert bytes(rig.signer._account.key) not in path.read_bytes()
    # Errors raised by the adapter carry no key material either.
    from reversa.adapters.evm import LocalSigner

    with pytest.raises(Exception) as info:
        LocalSigner(key_hex[:-2] + "zz")
    assert key_hex[:16] not in str(info.value) and key_hex[:16] not in repr(info.value)


def test_confirmations_policy_applies_per_network(rig_factory: Any, store: Store,
                                                 engine_for: Any) -> None:
    rig = rig_factory(deep=True, confirmations=4)
    saga, data = rig.scenario_c()
    result = engine_for(rig).run(saga, data)
    assert result.status is SagaStatus.COMPLETED
    assert rig.wallet.network.confirmation == Confirmations(4)
    head = rig.chain.w3.eth.block_number
    for step in result.results.values():
        for tx in step["txs"]:
            assert head - tx["block"] + 1 >= 4
