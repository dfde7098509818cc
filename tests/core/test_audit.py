"""Tamper evidence (AG-166 4.7, AG-384 4.5): edits, deletions, insertions, reordering."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from sqlalchemy import text

from reversa import Engine, FakeClock, Registry, SagaStatus, Store
from tests.core.kit import World, chain_saga, reject, transfer_registry


@pytest.fixture
def saga_id(store: Store) -> str:
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    result = engine.run(chain_saga())
    engine.close()
    assert result.status is SagaStatus.COMPENSATED
    return result.saga_id


def _exec(store: Store, sql: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def _ids(store: Store, saga_id: str) -> list[int]:
    return [r["id"] for r in store.rows("audit", saga_id=saga_id)]


def test_untouched_log_verifies(store: Store, saga_id: str) -> None:
    report = store.verify_audit()
    assert report.ok and report.entries == len(_ids(store, saga_id)) and report.sagas == 1
    entries = Engine(Registry(), store, heartbeat=False).audit(saga_id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].event == "plan_recorded" and entries[-1].event == "saga_compensated"
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_edited_entry_is_named(store: Store, saga_id: str) -> None:
    target = _ids(store, saga_id)[4]
    _exec(store, "UPDATE reversa_audit SET outcome = 'ok' WHERE id = :i", i=target)
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "edited" and problem.entry_id == target
    assert problem.seq == 5


def test_edited_detail_is_named(store: Store, saga_id: str) -> None:
    target = _ids(store, saga_id)[2]
    _exec(store, "UPDATE reversa_audit SET detail_json = '{}' WHERE id = :i", i=target)
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "edited" and problem.entry_id == target


def test_deleted_entry_is_named(store: Store, saga_id: str) -> None:
    ids = _ids(store, saga_id)
    _exec(store, "DELETE FROM reversa_audit WHERE id = :i", i=ids[3])
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "deleted" and problem.seq == 4


def test_deleted_tail_is_caught(store: Store, saga_id: str) -> None:
    ids = _ids(store, saga_id)
    _exec(store, "DELETE FROM reversa_audit WHERE id = :i", i=ids[-1])
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "truncated"


def test_inserted_entry_is_named(store: Store, saga_id: str) -> None:
    rows = store.rows("audit", saga_id=saga_id)
    # Forge an entry in the middle: renumber the tail to make room for it.
    _exec(store, "UPDATE reversa_audit SET seq = seq + 1000 WHERE saga_id = :s AND seq >= 3",
          s=saga_id)
    _exec(store, "UPDATE reversa_audit SET seq = seq - 999 WHERE saga_id = :s AND seq >= 1000",
          s=saga_id)
    forged = dict(rows[1])
    forged.pop("id")
    forged["seq"] = 3
    forged["event"] = "step_completed"
    cols = ", ".join(forged)
    _exec(store, f"INSERT INTO reversa_audit ({cols}) VALUES "
          f"({', '.join(':' + c for c in forged)})", **forged)
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.seq == 3
    assert problem.kind in {"inserted", "edited", "reordered"}


def test_reordered_entries_are_named(store: Store, saga_id: str) -> None:
    ids = _ids(store, saga_id)
    a, b = ids[2], ids[3]
    # Swap the two rows' positions in the log, keeping their contents.
    _exec(store, "UPDATE reversa_audit SET id = -1 WHERE id = :a", a=a)
    _exec(store, "UPDATE reversa_audit SET id = :a WHERE id = :b", a=a, b=b)
    _exec(store, "UPDATE reversa_audit SET id = :b WHERE id = -1", b=b)
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "reordered" and problem.seq == 3


def test_edited_plan_is_caught(store: Store, saga_id: str) -> None:
    _exec(store, "UPDATE reversa_sagas SET plan_json = replace(plan_json, 'debit', 'debet')")
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "plan_edited"


def test_deleted_saga_record_is_caught(store: Store, saga_id: str) -> None:
    _exec(store, "DELETE FROM reversa_sagas WHERE id = :s", s=saga_id)
    problem = store.verify_audit().first_bad
    assert problem is not None and problem.kind == "deleted" and problem.saga_id == saga_id


def test_cli_audit_verify_exits_nonzero_naming_the_entry(store: Store, saga_id: str) -> None:
    ok = subprocess.run([sys.executable, "-m", "reversa", "audit", "verify", "--db",
                         _cli_db(store)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    target = _ids(store, saga_id)[1]
    _exec(store, "UPDATE reversa_audit SET ts = ts + 1 WHERE id = :i", i=target)
    bad = subprocess.run([sys.executable, "-m", "reversa", "audit", "verify", "--db",
                          _cli_db(store)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert f"row id {target}" in bad.stdout and "edited" in bad.stdout


def _cli_db(store: Store) -> str:
    return store.engine.url.render_as_string(hide_password=False)
