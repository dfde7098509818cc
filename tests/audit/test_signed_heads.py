"""When heads are signed: every commit, or once per interval and always at rest."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reversa import Engine, FakeClock, Registry, Saga, Step, StepContext, Store
from reversa.core.canonical import canonical_json
from reversa.core.evidence import AuditConfig, Ed25519Signer
from tests.audit.kit import evidence_store, rechain


def _observing_registry(store: Store, seen: list[dict[str, Any]]) -> Registry:
    reg = Registry()

    @reg.action("look")
    def look(ctx: StepContext) -> None:
        (row,) = store.rows("sagas", id=ctx.saga_id)
        seen.append({"seq": row["audit_seq"], "sig": row["audit_sig"]})

    reg.add("compensation", "noop", lambda ctx: None)
    reg.add("predicate", "ok", lambda ctx: True)
    return reg


def _saga() -> Saga:
    return Saga.chain("look", [Step(name=f"s{i}", action="look", compensation="noop")
                               for i in range(3)], predicate="ok")


@pytest.mark.parametrize(("interval", "signed_while_running"), [(0.0, True), (3600.0, False)])
def test_running_heads_are_signed_per_interval_and_always_at_rest(
    db_url: str, interval: float, signed_while_running: bool
) -> None:
    signer = Ed25519Signer.generate()
    store = Store.open(db_url, clock=FakeClock(),
                       audit=AuditConfig(signer=signer, sign_interval_s=interval))
    seen: list[dict[str, Any]] = []
    try:
        result = Engine(_observing_registry(store, seen), store, clock=FakeClock(),
                        heartbeat=False).run(_saga())
        (row,) = store.rows("sagas", id=result.saga_id)
    finally:
        store.close()
    if signed_while_running:  # each step's intent commit carried a fresh signature
        assert all(s["sig"].split(":")[0] == str(s["seq"]) for s in seen)
    else:
        assert all(s["sig"] is None for s in seen)
    assert row["audit_sig"].split(":")[0] == str(row["audit_seq"])  # at rest: always
    report = Store.open(db_url).verify_audit(verifiers=[signer.verifier])
    assert report.ok, report.problems


def test_an_entry_appended_after_the_last_signature_is_named(db_url: str, tmp_path: Path) -> None:
    with evidence_store(db_url, tmp_path) as ev:
        sid = ev.sagas["later"]
        # A forged last entry, chained properly and the head moved to it.
        rows = ev.store.rows("audit", saga_id=sid)
        extra = dict(rows[-1])
        extra.pop("id")
        extra["seq"] = len(rows) + 1
        cols = ", ".join(extra)
        ev.sql(f"INSERT INTO reversa_audit ({cols}) VALUES "
               f"({', '.join(':' + c for c in extra)})", **extra)
        rechain(ev, sid, lambda rows: rows[-1].update(event="note", state_json=None))
        code, out, _ = ev.verify_cli()
        assert code == 1 and "[unsigned]" in out


def test_state_records_are_canonical_json(tmp_path: Path) -> None:
    with evidence_store(f"sqlite:///{tmp_path}/r.db", tmp_path) as ev:
        records = [r["state_json"] for r in ev.store.rows("audit") if r["state_json"]]
    assert records and all(canonical_json(json.loads(r)) == r for r in records)


def test_keyless_store_writes_no_signature_and_verify_says_so(db_url: str) -> None:
    store = Store.open(db_url, audit=replace(AuditConfig(), background=False))
    try:
        Engine(_observing_registry(store, []), store, heartbeat=False).run(_saga())
        assert all(r["audit_sig"] is None for r in store.rows("sagas"))
        report = store.verify_audit(verifiers=[Ed25519Signer.generate().verifier])
        assert [p.kind for p in report.problems] == ["unsigned"]
    finally:
        store.close()

