"""A store with signed, witnessed sagas of every kind, and the attacker's tools."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from reversa import Engine, FakeClock, SagaStatus, Store, TransientError
from reversa.core.audit import entry_hash
from reversa.core.canonical import sha256_hex
from reversa.core.evidence import AuditConfig, DirWitness, generate_keys, load_signer
from reversa.core.store import schema as t
from tests.core.kit import World, chain_saga, reject, transfer_registry

TABLES = [tbl.name for tbl in t.metadata.sorted_tables if tbl.name != "reversa_schema"]


@dataclass
class Evidence:
    """A signed and witnessed store, its key files and the sagas it holds."""

    store: Store
    url: str
    keys: Path
    witness: Path
    clock: FakeClock
    sagas: dict[str, str] = field(default_factory=dict)
    older_copy: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def pub(self) -> Path:
        return self.keys / "reversa-audit.pub"

    @property
    def key(self) -> Path:
        return self.keys / "reversa-audit.key"

    def sql(self, statement: str, **params: Any) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(text(statement), params)

    def verify_cli(self, *extra: str) -> tuple[int, str, str]:
        return cli("audit", "verify", "--db", self.url, "--pubkey", str(self.pub),
                   "--witness", str(self.witness), *extra)


def audit_config(keys: Path, witness: Path) -> AuditConfig:
    return AuditConfig(signer=load_signer(str(keys / "reversa-audit.key")),
                       witnesses=(DirWitness(witness),), background=False)


def build(url: str, tmp: Path) -> Evidence:
    """Sagas that completed, compensated, escalated and were resolved; two checkpoints."""
    keys, witness = tmp / "keys", tmp / "witness"
    generate_keys(keys)
    clock = FakeClock()
    store = Store.open(url, clock=clock, audit=audit_config(keys, witness))
    ev = Evidence(store, url, keys, witness, clock)
    ev.sagas["completed"] = run_saga(store, clock, World())
    failing = World()
    failing.fail["do:credit"] = reject("beneficiary bank rejected the credit")
    ev.sagas["compensated"] = run_saga(store, clock, failing)
    stuck = World()
    stuck.fail["do:credit"] = reject()
    stuck.fail["undo:debit"] = [TransientError("ledger down")] * 3
    engine = Engine(transfer_registry(stuck), store, clock=clock, heartbeat=False)
    escalated = engine.run(chain_saga())
    assert escalated.status is SagaStatus.ESCALATED and escalated.escalation_id is not None
    resolved = engine.resolve(escalated.escalation_id, action="retry", author="ops@bank",
                              note="ledger back up")
    assert resolved.status is SagaStatus.COMPENSATED
    engine.close()
    ev.sagas["resolved"] = escalated.saga_id
    assert store.checkpoint() is not None
    ev.older_copy = dump(store)
    ev.sagas["later"] = run_saga(store, clock, World())
    assert store.checkpoint() is not None
    return ev


def run_saga(store: Store, clock: FakeClock, world: World) -> str:
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    try:
        return engine.run(chain_saga(), {"amount": 10, "to": "c"}).saga_id
    finally:
        engine.close()


def dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Every row of every Reversa table (an 'older copy' of the database)."""
    with store.engine.connect() as conn:
        return {name: [dict(r) for r in conn.execute(text(f"SELECT * FROM {name}")).mappings()]
                for name in TABLES}


def restore(store: Store, copy: dict[str, list[dict[str, Any]]]) -> None:
    """Put an older copy back in place of the whole database."""
    with store.engine.begin() as conn:
        for name in TABLES:
            conn.execute(text(f"DELETE FROM {name}"))
        for name in TABLES:
            for row in copy[name]:
                cols = ", ".join(row)
                conn.execute(text(f"INSERT INTO {name} ({cols}) VALUES "
                                  f"({', '.join(':' + c for c in row)})"), row)


def rechain(ev: Evidence, saga_id: str, edit: Callable[[list[dict[str, Any]]], None],
            *, anchor: str | None = None) -> None:
    """What an attacker with write access does: edit entries, recompute the chain and head."""
    rows = ev.store.rows("audit", saga_id=saga_id)
    edit(rows)
    (saga,) = ev.store.rows("sagas", id=saga_id)
    prev = anchor or saga["plan_hash"]
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = entry_hash(prev, row)
    with ev.store.engine.begin() as conn:
        for row in rows:
            conn.execute(text("UPDATE reversa_audit SET seq = :seq, outcome = :outcome, "
                              "detail_json = :detail_json, state_json = :state_json, "
                              "prev_hash = :prev_hash, hash = :hash WHERE id = :id"), row)
        conn.execute(text("UPDATE reversa_sagas SET audit_head = :h, audit_seq = :n "
                          "WHERE id = :s"), {"h": prev, "n": len(rows), "s": saga_id})


def replace_plan(ev: Evidence, saga_id: str) -> None:
    """Swap the plan and its hash, fix every place the chain names the hash, re-chain."""
    (saga,) = ev.store.rows("sagas", id=saga_id)
    plan = json.loads(saga["plan_json"])
    plan["saga"]["steps"][2]["params"] = {"to": "attacker"}
    from reversa.core.canonical import canonical_json

    new_text = canonical_json(plan)
    new_hash = sha256_hex(new_text)
    old_hash = saga["plan_hash"]
    ev.sql("UPDATE reversa_sagas SET plan_json = :p, plan_hash = :h WHERE id = :s",
           p=new_text, h=new_hash, s=saga_id)

    def swap(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            row["detail_json"] = row["detail_json"].replace(old_hash, new_hash)
            if row["state_json"]:
                row["state_json"] = row["state_json"].replace(old_hash, new_hash)

    rechain(ev, saga_id, swap, anchor=new_hash)


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``reversa ARGS`` in this process; returns (exit code, stdout, stderr)."""
    from reversa.cli import audit as audit_cli
    from reversa.cli import common
    from reversa.cli.main import main

    opened: list[Store] = []
    real = common.open_store

    def tracked(db: str | None, **kw: Any) -> Store:
        store = real(db, **kw)
        opened.append(store)
        return store

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(audit_cli, "open_store", tracked)
        mp.setattr(common.console, "file", out)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as done:
                code = int(done.code or 0)
    for store in opened:
        store.close()
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def evidence_store(url: str, tmp: Path) -> Iterator[Evidence]:
    ev = build(url, tmp)
    try:
        yield ev
    finally:
        ev.store.close()
