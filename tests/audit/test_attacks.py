"""Every attack of issue 11 on a signed, witnessed record: `audit verify` names it.

Each test first verifies the untouched record (exit 0), then attacks it as
someone with write access to the database would, with the public hash
algorithm in hand, then verifies again: exit 1 and the attack named. Runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reversa.core.evidence import DirWitness, load_verifier
from tests.audit.kit import (
    Evidence,
    cli,
    evidence_store,
    rechain,
    replace_plan,
    restore,
    run_saga,
)
from tests.core.kit import World


@pytest.fixture
def ev(db_url: str, tmp_path: Path) -> Iterator[Evidence]:
    with evidence_store(db_url, tmp_path) as built:
        yield built


def _edit_and_rechain(ev: Evidence) -> None:
    def edit(rows: list[dict[str, Any]]) -> None:
        # Claim the credit went to another account.
        row = next(r for r in rows if r["event"] == "step_completed")
        row["outcome"] = "ok:redirected"

    rechain(ev, ev.sagas["completed"], edit)


def _truncate_tail(ev: Evidence) -> None:
    sid = ev.sagas["compensated"]
    rows = ev.store.rows("audit", saga_id=sid)
    keep = rows[:-3]
    ev.sql("DELETE FROM reversa_audit WHERE saga_id = :s AND seq > :n", s=sid, n=len(keep))
    ev.sql("UPDATE reversa_sagas SET audit_seq = :n, audit_head = :h WHERE id = :s",
           n=len(keep), h=keep[-1]["hash"], s=sid)


def _edit_input(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_sagas SET input_json = :j WHERE id = :s",
           j=json.dumps({"amount": 1_000_000, "to": "attacker"}), s=ev.sagas["completed"])


def _edit_step(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_steps SET result_json = :r WHERE saga_id = :s AND name = 'credit'",
           r=json.dumps({"label": "do:credit", "delta": {"x": 10}}), s=ev.sagas["completed"])


def _edit_rollback(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_rollbacks SET duration_s = 0.001 WHERE saga_id = :s",
           s=ev.sagas["compensated"])


def _edit_status(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_sagas SET status = 'completed' WHERE id = :s",
           s=ev.sagas["compensated"])


def _edit_resolution(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_escalations SET resolved_by = 'intern', note = 'nothing to see' "
           "WHERE saga_id = :s", s=ev.sagas["resolved"])


def _delete_saga(ev: Evidence) -> None:
    sid = ev.sagas["completed"]
    for table in ("reversa_audit", "reversa_steps", "reversa_rollbacks", "reversa_escalations"):
        ev.sql(f"DELETE FROM {table} WHERE saga_id = :s", s=sid)
    ev.sql("DELETE FROM reversa_sagas WHERE id = :s", s=sid)


def _delete_saga_and_its_seals(ev: Evidence) -> None:
    _delete_saga(ev)
    ev.sql("DELETE FROM reversa_heads WHERE saga_id = :s", s=ev.sagas["completed"])


def _restore_older_copy(ev: Evidence) -> None:
    restore(ev.store, ev.older_copy)


ATTACKS: dict[str, tuple[Callable[[Evidence], None], str]] = {
    "edit an entry and recompute the chain and head": (_edit_and_rechain, "rechained"),
    "truncate the tail and update audit_seq/audit_head": (_truncate_tail, "truncated"),
    "replace the plan and its hash, then re-chain": (
        lambda ev: replace_plan(ev, ev.sagas["completed"]), "plan_replaced"),
    "edit input_json": (_edit_input, "input_edited"),
    "edit a step row": (_edit_step, "step_edited"),
    "edit a rollback record": (_edit_rollback, "rollback_edited"),
    "edit the saga status": (_edit_status, "saga_edited"),
    "edit an escalation's resolution": (_edit_resolution, "escalation_edited"),
    "delete a whole saga with its entries": (_delete_saga, "saga_deleted"),
    "delete a saga, its entries and its sealed heads": (_delete_saga_and_its_seals,
                                                        "log_edited"),
    "restore an older copy of the whole database": (_restore_older_copy, "restored"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_verify_names_the_attack(ev: Evidence, attack: str) -> None:
    code, out, err = ev.verify_cli()
    assert code == 0, out + err
    assert "audit record verified" in out
    run, kind = ATTACKS[attack]
    run(ev)
    code, out, err = ev.verify_cli()
    assert code == 1, out + err
    assert f"[{kind}]" in out, out
    assert err == ""


def test_only_the_key_or_the_witness_catch_a_thorough_rewrite(ev: Evidence) -> None:
    # The attacker re-chains and also rewrites the sealed heads in the database:
    # without the public key and a witness, only internal consistency can be
    # proven, and the report says so.
    sid = ev.sagas["completed"]
    _edit_and_rechain(ev)
    (saga,) = ev.store.rows("sagas", id=sid)
    ev.sql("UPDATE reversa_heads SET head = :h WHERE saga_id = :s", h=saga["audit_head"], s=sid)
    code, out, _ = cli("audit", "verify", "--db", ev.url)
    assert code == 0
    assert "signatures not checked" in out and "no witness given" in out
    code, out, _ = cli("audit", "verify", "--db", ev.url, "--pubkey", str(ev.pub))
    assert code == 1 and "[bad_signature]" in out
    code, out, _ = cli("audit", "verify", "--db", ev.url, "--witness", str(ev.witness))
    assert code == 1 and "[log_edited]" in out


def test_signatures_alone_catch_a_rewrite_of_a_saga_not_yet_sealed(ev: Evidence) -> None:
    # A saga written after the last checkpoint: its head signature is what protects it.
    ev.sql("DELETE FROM reversa_heads WHERE saga_id = :s", s=ev.sagas["later"])
    ev.sql("DELETE FROM reversa_checkpoints WHERE number = 2")
    shutil.rmtree(ev.witness)
    rechain(ev, ev.sagas["later"], lambda rows: rows[-1].update(outcome="forged"))
    code, out, _ = cli("audit", "verify", "--db", ev.url, "--pubkey", str(ev.pub))
    assert code == 1 and "[bad_signature]" in out


def test_a_stripped_signature_is_named(ev: Evidence) -> None:
    ev.sql("UPDATE reversa_sagas SET audit_sig = NULL, audit_key = NULL WHERE id = :s",
           s=ev.sagas["later"])
    code, out, _ = ev.verify_cli()
    assert code == 1 and "[unsigned]" in out


def test_a_rotated_key_needs_every_public_key(ev: Evidence, tmp_path: Path) -> None:
    other = tmp_path / "other"
    from reversa.core.evidence import generate_keys

    generate_keys(other)
    code, out, _ = cli("audit", "verify", "--db", ev.url, "--pubkey",
                       str(other / "reversa-audit.pub"))
    assert code == 1 and "[unknown_key]" in out
    code, out, _ = cli("audit", "verify", "--db", ev.url, "--pubkey",
                       str(other / "reversa-audit.pub"), "--pubkey", str(ev.pub))
    assert code == 0, out


def test_an_edited_witness_file_is_named(ev: Evidence) -> None:
    (log,) = DirWitness(ev.witness).logs()
    first = ev.witness / log / "000000000001.json"
    first.chmod(0o644)
    first.write_text(first.read_text().replace('"size":3', '"size":2'))
    code, out, _ = ev.verify_cli()
    assert code == 1 and "[witness_invalid]" in out


def test_the_api_reports_the_same(ev: Evidence) -> None:
    _truncate_tail(ev)
    report = ev.store.verify_audit(verifiers=[load_verifier(ev.pub)],
                                   witnesses=[DirWitness(ev.witness)])
    kinds = [p.kind for p in report.problems]
    # Named by the witnessed seal and by the signature, then by what the tables show.
    assert not report.ok and kinds[:2] == ["truncated", "truncated"] and "saga_edited" in kinds


def test_restoring_a_copied_sqlite_file_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/reversa.db"
    with evidence_store(url, tmp_path) as ev:
        copy = tmp_path / "backup.db"
        src, dst = sqlite3.connect(tmp_path / "reversa.db"), sqlite3.connect(copy)
        src.backup(dst)  # the nightly backup
        src.close()
        dst.close()
        run_saga(ev.store, ev.clock, World())
        assert ev.store.checkpoint() is not None
        assert ev.verify_cli()[0] == 0
        ev.store.engine.dispose()
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"reversa.db{suffix}").unlink(missing_ok=True)
        shutil.copy(copy, tmp_path / "reversa.db")
        code, out, err = ev.verify_cli()
        assert code == 1 and "[restored]" in out, out + err
