"""Governance on a signed, witnessed store (every backend): held starts, a rejected
start, a four-eyes rollback of a completed saga, a rollback an operator asks of a
running saga, and a four-eyes resolution all leave a record that `reversa audit
verify` accepts; the approver's name is covered by the chain."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import text

from reversa import (
    Approval,
    Engine,
    FakeClock,
    FourEyes,
    Registry,
    SagaStatus,
    StepContext,
    Store,
    TransientError,
)
from reversa.core.evidence import generate_keys
from tests.audit.kit import audit_config, cli
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

POLICY = {"transfer": FourEyes(min_value={"GBP": 100})}
GBP500 = {"amount": 500, "currency": "GBP"}


def _engine(store: Store, clock: FakeClock, reg: Registry, owner: str) -> Engine:
    return Engine(reg, store, clock=clock, heartbeat=False, governance=POLICY, owner=owner)


def _asking_on_convert(store: Store, clock: FakeClock, world: World) -> Registry:
    """``convert`` asks, from another thread (a console), for its saga's rollback."""
    reg = transfer_registry(world)
    convert = reg.get("action", "convert")

    def ask(ctx: StepContext) -> Any:
        def operator() -> None:
            console = Engine(transfer_registry(world), store, clock=clock, heartbeat=False,
                             owner="console")
            console.request_rollback(ctx.saga_id, by="user:olga", reason="customer cancelled")
            console.close()

        thread = threading.Thread(target=operator)
        thread.start()
        thread.join()
        return convert(ctx)

    reg.add("action", "convert.x", ask)
    return reg


def _sagas(store: Store, clock: FakeClock) -> dict[str, str]:
    out: dict[str, str] = {}
    world = World()
    engine = _engine(store, clock, transfer_registry(world), "agent")
    held = engine.submit(chain_saga(), GBP500, by="agent:bot", approval_reason="new payee")
    assert isinstance(held, Approval)
    engine.approve(held.id, by="user:bob")
    assert engine.run_approved(held.saga_id).status is SagaStatus.COMPLETED
    out["started"] = held.saga_id
    refused = engine.submit(chain_saga(), GBP500, by="agent:bot", approval_reason="new payee")
    assert isinstance(refused, Approval)
    engine.reject(refused.id, by="user:bob", note="unknown payee")
    out["rejected"] = refused.saga_id
    done = engine.run(chain_saga(), GBP500)
    rollback = engine.request_rollback(done.saga_id, by="user:olga", reason="fraud suspected")
    assert isinstance(rollback, Approval)
    engine.approve(rollback.id, by="user:bob")
    assert store.load(done.saga_id)[0]["status"] == "compensated"
    out["rolled_back"] = done.saga_id
    engine.close()

    running = World()
    saga = chain_saga()
    steps = [s.model_copy(update={"action": "convert.x"}) if s.name == "convert" else s
             for s in saga.steps]
    flagged = Engine(_asking_on_convert(store, clock, running), store, clock=clock,
                     heartbeat=False, owner="agent").run(
        saga.model_copy(update={"steps": tuple(steps)}), {"amount": 5})
    assert flagged.status is SagaStatus.COMPENSATED
    out["flagged"] = flagged.saga_id

    stuck = World()
    stuck.fail["do:credit"] = reject()
    stuck.fail["undo:convert"] = [TransientError("FX venue down")] * FAST.max_attempts
    engine = _engine(store, clock, transfer_registry(stuck), "agent")
    escalated = engine.run(chain_saga(), GBP500)
    assert escalated.escalation_id is not None
    proposal = engine.resolve(escalated.escalation_id, action="retry", author="user:alice",
                              note="venue back")
    assert isinstance(proposal, Approval)
    engine.approve(proposal.id, by="user:bob", note="agreed")
    assert store.load(escalated.saga_id)[0]["status"] == "compensated"
    out["resolved"] = escalated.saga_id
    engine.close()
    return out


def test_governance_record_is_signed_witnessed_and_verifies(
    db_url: str, tmp_path: Path
) -> None:
    keys, witness = tmp_path / "keys", tmp_path / "witness"
    generate_keys(keys)
    clock = FakeClock()
    store = Store.open(db_url, clock=clock, audit=audit_config(keys, witness))
    try:
        sagas = _sagas(store, clock)
        assert store.checkpoint() is not None
        for saga_id in sagas.values():
            assert store.load(saga_id)[0]["audit_sig"], saga_id  # its head is signed
        events = {e["event"] for e in store.rows("audit", saga_id=sagas["flagged"])}
        assert "rollback_requested" in events
    finally:
        store.close()
    verify = ("audit", "verify", "--db", db_url, "--pubkey", str(keys / "reversa-audit.pub"),
              "--witness", str(witness))
    code, out, err = cli(*verify)
    assert code == 0, out + err

    # The approver's name is part of what the chain covers.
    store = Store.open(db_url)
    try:
        decided = [e for e in store.rows("audit", saga_id=sagas["resolved"])
                   if e["event"] == "approval_decided"]
        assert json.loads(decided[0]["detail_json"])["by"] == "user:bob"
        forged = decided[0]["detail_json"].replace("user:bob", "user:alice")
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE reversa_audit SET detail_json = :d WHERE id = :i"),
                         {"d": forged, "i": decided[0]["id"]})
    finally:
        store.close()
    code, out, _ = cli(*verify)
    assert code == 1 and sagas["resolved"] in out
