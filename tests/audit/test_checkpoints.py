"""Checkpoints: at saga end, periodically and at close; witnessed in order, never rewritten."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from reversa import ConfigError, FakeClock, Store
from reversa.core.evidence import (
    AuditConfig,
    Checkpoint,
    DirWitness,
    WitnessConflict,
    Witnessed,
    WitnessError,
    generate_keys,
    load_signer,
    load_verifier,
)
from reversa.core.evidence.checkpoints import Leaf
from reversa.core.evidence.merkle import verify_inclusion
from tests.audit.kit import audit_config, cli, run_saga
from tests.core.kit import World


def _wait_for(predicate: object, timeout_s: float = 30.0) -> bool:
    # Polls a background thread's outcome; the bound is generous on purpose
    # (a correctness check, not a timing assertion).
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def _files(witness: Path) -> list[Path]:
    return sorted(witness.rglob("*.json"))


def test_a_saga_end_is_checkpointed_by_the_background_thread(db_url: str,
                                                               tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    config = replace(audit_config(tmp_path / "keys", tmp_path / "w"), background=True,
                     gap_s=0.01, interval_s=None)
    clock = FakeClock()
    store = Store.open(db_url, clock=clock, audit=config)
    try:
        sid = run_saga(store, clock, World())
        assert _wait_for(lambda: len(_files(tmp_path / "w")) == 1)
        statement = Checkpoint.from_json(_files(tmp_path / "w")[0].read_text())
        assert statement.size == 1 and statement.verify(load_verifier(
            tmp_path / "keys" / "reversa-audit.pub"))
        (head,) = store.rows("heads")
        (saga,) = store.rows("sagas", id=sid)
        assert (head["seq"], head["head"]) == (saga["audit_seq"], saga["audit_head"])
    finally:
        store.close()


def test_heads_that_changed_are_sealed_every_interval(db_url: str, tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    plain = Store.open(db_url, clock=clock, audit=AuditConfig())
    run_saga(plain, clock, World())  # written before the witness was configured
    plain.close()
    config = replace(audit_config(tmp_path / "keys", tmp_path / "w"), background=True,
                     interval_s=0.05)
    store = Store.open(db_url, clock=clock, audit=config)
    try:
        assert _wait_for(lambda: len(_files(tmp_path / "w")) == 1)
    finally:
        store.close()
    assert len(_files(tmp_path / "w")) == 1  # nothing changed since: no new checkpoint


def test_closing_the_store_seals_the_last_heads(db_url: str, tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    store = Store.open(db_url, clock=clock, audit=audit_config(tmp_path / "keys",
                                                                  tmp_path / "w"))
    run_saga(store, clock, World())
    assert _files(tmp_path / "w") == []
    store.close()
    (only,) = _files(tmp_path / "w")
    assert stat.S_IMODE(only.stat().st_mode) == 0o444  # written once, read-only


def test_a_witness_never_takes_another_statement_under_a_number(tmp_path: Path) -> None:
    signer = load_signer(str(generate_keys(tmp_path / "k")["private"]))
    witness = DirWitness(tmp_path / "w")
    first = Checkpoint("log1", 1, 3, "00" * 32, 1.0, None, "", "").signed(signer)
    witness.publish(first)
    witness.publish(first)  # the same statement again: idempotent
    with pytest.raises(WitnessConflict, match="restored"):
        witness.publish(replace(first, size=4).signed(signer))
    assert [w.statement for w in witness.read("log1")] == [first]


class FlakyWitness:
    """A witness that is down for its first call (a network share, a chain)."""

    def __init__(self, inner: DirWitness) -> None:
        self.inner, self.name, self.down = inner, "flaky", True

    def publish(self, checkpoint: Checkpoint) -> None:
        if self.down:
            self.down = False
            raise WitnessError("witness unreachable")
        self.inner.publish(checkpoint)

    def latest(self, log: str) -> int:
        return self.inner.latest(log)

    def read(self, log: str) -> Sequence[Witnessed]:
        return self.inner.read(log)


def test_a_checkpoint_a_witness_missed_is_published_by_the_next(db_url: str,
                                                                 tmp_path: Path) -> None:
    signer = load_signer(str(generate_keys(tmp_path / "k")["private"]))
    flaky = FlakyWitness(DirWitness(tmp_path / "w"))
    clock = FakeClock()
    store = Store.open(db_url, clock=clock,
                       audit=AuditConfig(signer=signer, witnesses=(flaky,), background=False))
    try:
        run_saga(store, clock, World())
        with pytest.raises(WitnessError, match="unreachable"):
            store.checkpoint()
        run_saga(store, clock, World())
        assert store.checkpoint().number == 2
        assert [w.number for w in flaky.read(flaky.inner.logs()[0])] == [1, 2]
        assert store.verify_audit(verifiers=[signer.verifier], witnesses=[flaky.inner]).ok
    finally:
        store.close()


def test_concurrent_checkpointers_never_fork_the_log(db_url: str, tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    stores = [Store.open(db_url, clock=clock, audit=audit_config(tmp_path / "keys",
                                                                    tmp_path / "w"))
              for _ in range(2)]
    errors: list[BaseException] = []

    def work(store: Store) -> None:
        try:
            for _ in range(4):
                run_saga(store, clock, World())
                store.checkpoint()
        except BaseException as exc:  # reported below, with the failing thread's error
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        files = _files(tmp_path / "w")
        numbers = [json.loads(p.read_text())["number"] for p in files]
        assert numbers == list(range(1, len(files) + 1))
        # A saga in flight when the other thread sealed has an earlier head sealed
        # too; the last seal of each is its final head.
        last = {h["saga_id"]: h for h in stores[0].rows("heads")}
        sagas = {s["id"]: s for s in stores[0].rows("sagas")}
        assert len(sagas) == 8 and set(last) == set(sagas)
        assert all(last[i]["head"] == sagas[i]["audit_head"] for i in sagas)
        report = stores[0].verify_audit(verifiers=[load_verifier(
            tmp_path / "keys" / "reversa-audit.pub")], witnesses=[DirWitness(tmp_path / "w")])
        assert report.ok, report.problems
    finally:
        for store in stores:
            store.close()


def test_proof_cli_proves_a_sealed_saga(db_url: str, tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    clock = FakeClock()
    store = Store.open(db_url, clock=clock, audit=audit_config(tmp_path / "keys",
                                                                  tmp_path / "w"))
    try:
        ids = [run_saga(store, clock, World()) for _ in range(3)]
        code, _, err = cli("audit", "proof", ids[1], "--db", db_url)
        assert code == 1 and "in no checkpoint yet" in err and err.count("\n") == 1
        store.checkpoint()
        code, out, _ = cli("audit", "proof", ids[1], "--db", db_url, "--json")
        assert code == 0
        proof = json.loads(out)
        leaf = proof["leaf"]
        statement = Checkpoint.from_json(json.dumps(proof["checkpoint"]))
        assert statement.verify(load_verifier(tmp_path / "keys" / "reversa-audit.pub"))
        hashed = Leaf(leaf["index"], leaf["saga"], leaf["seq"], leaf["head"],
                      leaf["plan_hash"], statement.number).hash()
        assert verify_inclusion(hashed, leaf["index"], statement.size,
                                [bytes.fromhex(p) for p in proof["path"]],
                                bytes.fromhex(statement.root))
        code, _, err = cli("audit", "proof", "nope", "--db", db_url)
        assert code == 2 and "no saga 'nope'" in err
    finally:
        store.close()


def test_checkpoint_without_a_witness_is_a_one_line_error(db_url: str) -> None:
    store = Store.open(db_url, audit=AuditConfig())
    try:
        with pytest.raises(ConfigError, match="no witness is configured"):
            store.checkpoint()
    finally:
        store.close()
    code, _, err = cli("audit", "checkpoint", "--db", db_url)
    assert code == 2 and err.startswith("error: no witness is configured")
