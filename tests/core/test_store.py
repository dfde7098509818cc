"""Durable store: WAL defaults, versioned migrations, fencing, exclusive claims."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from reversa import Engine, FakeClock, LeaseLost, SagaStatus, SchemaError, Store
from reversa.core.engine.recovery import load_live
from reversa.core.store import MIGRATIONS, schema_version
from tests.core.kit import World, chain_saga, reject, transfer_registry


def test_sqlite_defaults_to_wal_and_full_sync(tmp_path: object) -> None:
    store = Store.open(f"{tmp_path}/x.db")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


def test_reversa_db_env_and_plain_paths(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVERSA_DB", f"{tmp_path}/env.db")
    store = Store.open()
    assert store.url.endswith("env.db") and store.dialect == "sqlite"
    store.close()


def _downgrade_to_v1(store: Store) -> None:
    """Reshape a database into what version 1 of the schema looked like."""
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE reversa_steps DROP COLUMN state_json"))
        conn.execute(text("ALTER TABLE reversa_sagas DROP COLUMN services"))
        conn.execute(text("DROP INDEX ix_reversa_sagas_status"))
        conn.execute(text("DROP INDEX ix_reversa_sagas_workflow_created"))
        conn.execute(text("DELETE FROM reversa_schema WHERE version > 1"))


def test_existing_database_upgrades_in_place(db_url: str) -> None:
    old = Store.open(db_url)
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), old, clock=FakeClock(), heartbeat=False)
    result = engine.run(chain_saga())
    engine.close()
    # A v1 database holding real records...
    _downgrade_to_v1(old)
    before = old.rows("audit", saga_id=result.saga_id)
    # ...is upgraded to the latest version without losing them.
    assert old.migrate() == (1, len(MIGRATIONS))
    with old.engine.connect() as conn:
        assert schema_version(conn) == len(MIGRATIONS)
    assert old.rows("audit", saga_id=result.saga_id) == before
    assert old.verify_audit().ok
    assert old.rows("sagas")[0]["services"] is None  # v5 added the column in place
    assert Store.open(db_url).migrate() == (len(MIGRATIONS), len(MIGRATIONS))  # idempotent
    old.close()


def test_newer_schema_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO reversa_schema (version, applied_at) VALUES (99, 0)"))
    with pytest.raises(SchemaError, match="upgrade Reversa"):
        store.migrate()


def test_stale_writer_is_fenced_out(store: Store, clock: FakeClock) -> None:

    world = World()
    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)
    first = Engine(reg, store, clock=clock, owner="w1", lease_s=10, heartbeat=False)
    result = first.run(chain_saga())
    assert result.status is SagaStatus.COMPENSATED
    # Fabricate the race: w1 holds token T, w2 takes the saga over (T+1).
    row, _ = store.load(result.saga_id)
    stale = load_live(first._rt, result.saga_id, row["lease_token"])
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE reversa_sagas SET status='running' WHERE id=:s"),
                     {"s": result.saga_id})
    clock.advance(100)
    claimed = store.claim("w2", 10, saga_id=result.saga_id)
    assert claimed and claimed[0][1] == row["lease_token"] + 1
    stale.log("late_write", "stale")
    with pytest.raises(LeaseLost, match="no longer current"):
        store.flush(stale, clock.now())
    events = [e["event"] for e in store.rows("audit", saga_id=result.saga_id)]
    assert "late_write" not in events  # nothing of the stale write landed
    first.close()


def test_claim_hands_a_saga_to_one_worker_only(store: Store, clock: FakeClock) -> None:

    world = World()

    class Crash(BaseException):
        pass

    reg = transfer_registry(world)
    reg.add("action", "credit.crash", lambda ctx: (_ for _ in ()).throw(Crash()))
    saga = chain_saga()
    steps = [*saga.steps[:2], saga.steps[2].model_copy(update={"action": "credit.crash"})]
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    assert store.claim("w1", 5) == []  # lease still live
    clock.advance(6)
    got = store.claim("w1", 5) + store.claim("w2", 5)
    assert len(got) == 1


def test_cross_saga_migration_upgrades_in_place(db_url: str) -> None:
    from reversa.core.store.schema import _cross_saga

    store = Store.open(db_url)
    world = World()
    world.fail["undo:debit"] = [reject()] * 10  # the rollback escalates: an escalation row
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    world.fail["do:credit"] = reject()
    escalated = engine.run(chain_saga())
    engine.close()
    assert escalated.status is SagaStatus.ESCALATED
    # The database as it was before the migration (its number is wherever it sits).
    before = MIGRATIONS.index(_cross_saga)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE reversa_escalations DROP COLUMN kind"))
        for table in ("reversa_resources", "reversa_links", "reversa_notes",
                      "reversa_sla_calls"):
            conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text(f"DELETE FROM reversa_schema WHERE version > {before}"))
    assert store.migrate() == (before, len(MIGRATIONS))
    (row,) = store.rows("escalations", saga_id=escalated.saga_id)
    assert row["kind"] == "rollback"  # existing escalations are rollback ones
    assert store.relations.links(escalated.saga_id) == []
    assert store.relations.held() == [] and store.relations.sla_calls(0.0) == []
    assert store.verify_audit().ok
    store.close()
