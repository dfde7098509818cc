"""Durable store: WAL defaults, versioned migrations, fencing, exclusive claims."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

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


def _orphans(store: Store, clock: FakeClock, n: int) -> list[str]:
    """``n`` sagas whose owner died mid-run (their leases lapse on ``clock``)."""

    class Crash(BaseException):
        pass

    world = World(balances={"a": 10_000, "b": 0, "c": 0})
    reg = transfer_registry(world)
    reg.add("action", "credit.crash", lambda ctx: (_ for _ in ()).throw(Crash()))
    saga = chain_saga()
    steps = [*saga.steps[:2], saga.steps[2].model_copy(update={"action": "credit.crash"})]
    saga = saga.model_copy(update={"steps": tuple(steps)})
    engine = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    ids = []
    for i in range(n):
        with pytest.raises(Crash):
            engine.run(saga, saga_id=f"orphan-{i}")
        ids.append(f"orphan-{i}")
    engine.close()
    return ids


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; return their results."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_stale_writers_are_fenced_out_in_a_real_race(store: Store, clock: FakeClock) -> None:
    (sid,) = _orphans(store, clock, 1)
    clock.advance(10)
    registry = transfer_registry(World())
    registry.add("action", "credit.crash", registry.get("action", "credit"))
    reader = Engine(registry, store, clock=clock, heartbeat=False)

    def take_over_and_write(i: int) -> int | None:
        # Each thread takes the saga from whoever holds it (as the watchdog does), then
        # writes as its owner: only a write under the current token may land.
        claimed = store.claim(f"w{i}", 30, saga_id=sid, force=True)
        if not claimed:
            return None  # PostgreSQL: another claim held the row (SKIP LOCKED)
        token = claimed[0][1]
        live = load_live(reader._rt, sid, token)
        live.log("owner_write", f"w{i}", token=token)
        store.flush(live, clock.now())
        return token

    lost = 0
    for _ in range(20):  # until the race really produced stale writers
        outcomes = _race(8, take_over_and_write)
        assert all(o is None or isinstance(o, int | LeaseLost) for o in outcomes), outcomes
        lost += sum(isinstance(o, LeaseLost) for o in outcomes)
        if lost:
            break
    reader.close()
    assert lost, "the threads never overlapped: no stale writer was produced"
    landed = [json.loads(e["detail_json"])["token"] for e in store.rows("audit", saga_id=sid)
              if e["event"] == "owner_write"]
    # A write lands only under the token current at its commit: never an older one after
    # a newer one, never twice under one token.
    assert landed == sorted(set(landed))
    row, _ = store.load(sid)
    assert row["lease_token"] >= max(landed)
    assert store.verify_audit().ok


def test_claims_hand_each_saga_to_one_worker_only_in_a_real_race(
    store: Store, clock: FakeClock
) -> None:
    ids = _orphans(store, clock, 6)
    clock.advance(10)

    def claim_all(i: int) -> list[str]:
        mine: list[str] = []
        while claimed := store.claim(f"w{i}", 30, limit=1):
            mine.extend(sid for sid, _ in claimed)
        return mine

    outcomes = _race(8, claim_all)
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    claimed = [sid for mine in outcomes for sid in mine]
    assert sorted(claimed) == ids  # every saga claimed, none twice
    owners = {r["id"]: r["lease_owner"] for r in store.rows("sagas")}
    assert all(sid in outcomes[int(owners[sid][1:])] for sid in ids)
    assert store.claim("late", 30) == []  # leases are live now


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


def test_a_heartbeat_never_calls_an_unrecorded_saga_lost(store: Store, clock: FakeClock) -> None:
    # A saga's first step may wait (a held resource) before its first commit creates its
    # row: there is nothing to extend yet, and nobody else can own it.
    assert store.heartbeat([("not-recorded-yet", 1)], 5) == []
    (sid,) = _orphans(store, clock, 1)
    clock.advance(10)
    (taken,) = store.claim("w2", 30, saga_id=sid, force=True)
    assert store.heartbeat([(sid, taken[1] - 1)], 5) == [sid]  # a recorded saga moved on
    assert store.heartbeat([(sid, taken[1])], 5) == []



@pytest.mark.edits_records
def test_the_sqlite_writer_keeps_its_connection_and_gives_failed_ones_back(
        store: Store, clock: FakeClock) -> None:
    """File SQLite: the writer's connection stays checked out between commits (no pool
    round trip per commit); a transaction the database failed returns its connection
    to the pool; ``close`` returns the kept one. PostgreSQL's always go back to the
    pool, whose pre-ping notices a restarted server."""
    pool = store.engine.pool
    kept = 1 if store.dialect == "sqlite" else 0
    engine = Engine(transfer_registry(World()), store, clock=clock, heartbeat=False)
    assert engine.run(chain_saga(), saga_id="kept-1").status is SagaStatus.COMPLETED
    assert pool.checkedout() == kept
    assert engine.run(chain_saga(), saga_id="kept-2").status is SagaStatus.COMPLETED
    assert pool.checkedout() == kept  # the same one again, not one more per commit
    # The database refuses the rollback record: that commit fails as a whole.
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON reversa_rollbacks "
                                 "BEGIN SELECT RAISE(ABORT, 'boom'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                                 "RAISE EXCEPTION 'boom'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON reversa_rollbacks "
                                 "FOR EACH ROW EXECUTE FUNCTION boom()")
    world = World(fail={"do:credit": ValueError("declined")})
    failing = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    with pytest.raises(Exception, match="boom"):
        failing.run(chain_saga(), saga_id="kept-3")
    failing.close()
    assert pool.checkedout() == 0  # given back, not kept
    assert world.landed == ["do:debit", "do:convert", "undo:convert", "undo:debit"]
    assert engine.run(chain_saga(), saga_id="kept-4").status is SagaStatus.COMPLETED
    assert pool.checkedout() == kept
    # Engine.dispose() leaves no idle connection holding the database (a restored
    # backup copied over the file is then what the next connection opens).
    drivers = [c.dbapi_connection for c in store._writer._idle]
    store.engine.dispose()
    for driver in drivers:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            driver.execute("SELECT 1")
    assert engine.run(chain_saga(), saga_id="kept-5").status is SagaStatus.COMPLETED
    assert store.engine.pool.checkedout() == kept  # the new pool's
    engine.close()
    store.close()
    assert store.engine.pool.checkedout() == 0
