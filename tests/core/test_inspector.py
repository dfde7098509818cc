"""Inspecting from Python: read-only, registry-free, on typed SQLModel read models."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlmodel import SQLModel, select

from reversa import (
    ConfigError,
    Engine,
    FakeClock,
    Inspector,
    NotFound,
    SagaStatus,
    SchemaError,
    Store,
    StoreError,
    TransientError,
)
from reversa.core.store import MIGRATIONS, read_models, schema
from reversa.core.store.read_models import SagaRecord
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry


def _history(store: Store) -> dict[str, str]:
    """One compensated saga and one escalated saga, started by a registry-bearing engine."""
    world = World()
    world.fail["do:credit"] = reject()
    engine = Engine(transfer_registry(world), store, clock=FakeClock(), heartbeat=False)
    done = engine.run(chain_saga(app="tests.core.kit:transfer_registry"))
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    stuck = engine.run(chain_saga())
    engine.close()
    assert (done.status, stuck.status) == (SagaStatus.COMPENSATED, SagaStatus.ESCALATED)
    return {"done": done.saga_id, "stuck": stuck.saga_id}


def test_everything_is_readable_without_a_registry(db_url: str) -> None:
    writer = Store.open(db_url)
    ids = _history(writer)
    with Inspector.open(db_url) as inspector:
        listed = inspector.sagas()
        assert {s.id for s in listed} == set(ids.values())
        (stuck,) = inspector.sagas(status=["escalated"])
        assert stuck.id == ids["stuck"] and stuck.status is SagaStatus.ESCALATED
        assert inspector.sagas(workflow="nope") == []
        assert inspector.count() == 2 and inspector.count("compensated") == 1
        assert inspector.record(ids["done"]).app == "tests.core.kit:transfer_registry"
        view = inspector.saga(ids["done"])
        assert [s.name for s in view.steps] == ["debit", "convert", "credit"]
        assert view.step("debit").history[0].outcome == "ok"
        assert view.rollbacks[0].predicate_ok is True
        assert inspector.steps(ids["done"]) == view.steps
        (escalation,) = inspector.escalations(status="open")
        assert escalation.saga_id == ids["stuck"]
        assert inspector.escalation(escalation.id).report["steps"]
        entries = inspector.audit(ids["stuck"])
        assert entries[0].event == "plan_recorded" and entries[0].seq == 1
        assert entries[-1].hash == inspector.record(ids["stuck"]).audit_head
        assert [r.saga_id for r in inspector.rollbacks()] == [ids["done"], ids["stuck"]]
        assert inspector.verify_audit().ok
        with pytest.raises(NotFound):
            inspector.escalation(999)
        with pytest.raises(ConfigError, match="unknown saga status 'bogus'"):
            inspector.sagas(status=["bogus"])
        # The read models serve typed queries of one's own.
        with inspector.session() as session:
            rows = session.exec(select(SagaRecord).where(SagaRecord.status == "escalated"))
            assert [r.id for r in rows] == [ids["stuck"]]
    writer.close()


def test_saga_ids_resolve_from_a_unique_prefix(store: Store) -> None:
    engine = Engine(transfer_registry(World()), store, clock=FakeClock(), heartbeat=False)
    for sid in ("abc-1", "abd-1", "abd-2", "x_1", "xy1"):
        engine.run(chain_saga(), saga_id=sid)
    inspector = Inspector(store)
    assert inspector.resolve_id("abc") == "abc-1"
    assert inspector.saga("abc").id == "abc-1"
    assert inspector.resolve_id("abd-2") == "abd-2"  # an exact id is never ambiguous
    with pytest.raises(ConfigError, match="'abd' matches 2 sagas"):
        inspector.resolve_id("abd")
    with pytest.raises(NotFound, match="no saga 'zz'"):
        inspector.saga("zz")
    assert inspector.resolve_id("x_") == "x_1"  # LIKE wildcards in a prefix are literal
    with pytest.raises(ConfigError):
        inspector.resolve_id("")


def test_read_models_stay_out_of_every_schema_metadata() -> None:
    # A user's SQLModel.metadata.create_all() must never create or alter Reversa tables,
    # and the migrations own the schema alone.
    assert not [name for name in SQLModel.metadata.tables if name.startswith("reversa_")]
    assert read_models.read_metadata is not schema.metadata
    assert set(schema.metadata.tables) == {
        "reversa_sagas", "reversa_steps", "reversa_audit", "reversa_escalations",
        "reversa_rollbacks", "reversa_schema", "reversa_journal",  # effect journal (issue 9)
        "reversa_heads", "reversa_checkpoints", "reversa_audit_meta",  # evidence (issue 11)
        "reversa_resources", "reversa_links", "reversa_notes", "reversa_sla_calls",  # issue 15
        "reversa_approvals", "reversa_outbox",  # governance (issue 12)
        "reversa_users", "reversa_sessions", "reversa_api_tokens",  # console (issue 12)
    }
    for name, table in read_models.read_metadata.tables.items():
        mapped = schema.metadata.tables[name]
        assert {c.name for c in table.columns} == {c.name for c in mapped.columns}, name
        for column in table.columns:
            assert column.nullable == mapped.columns[column.name].nullable, (name, column.name)


def test_missing_sqlite_file_is_never_created(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="check --db / REVERSA_DB"):
        Inspector.open(tmp_path / "typo.db")
    with pytest.raises(NotFound):
        Store.open(tmp_path / "typo.db", read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_the_schema_is_refused_untouched(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    with pytest.raises(NotFound, match="no Reversa schema"):
        Inspector.open(db_url)
    probe = Store.open(db_url, migrate=False)
    with probe.engine.connect() as conn:
        assert schema.schema_version(conn) == 0  # nothing was created
    probe.close()


def test_an_older_schema_is_refused_not_upgraded(db_url: str) -> None:
    old = Store.open(db_url, migrate=False)
    old.migrate(target=len(MIGRATIONS) - 1)
    with pytest.raises(SchemaError, match="run `reversa db-upgrade`"):
        Inspector.open(db_url)
    with old.engine.connect() as conn:
        assert schema.schema_version(conn) == len(MIGRATIONS) - 1
    with old.engine.begin() as conn:
        conn.execute(text("INSERT INTO reversa_schema (version, applied_at) VALUES (99, 0)"))
    with pytest.raises(SchemaError, match="upgrade Reversa"):
        Inspector.open(db_url)
    old.close()


def test_a_read_only_store_cannot_write(db_url: str) -> None:
    Store.open(db_url).close()
    reader = Store.open(db_url, read_only=True)
    with pytest.raises(StoreError), reader._tx() as conn:
        conn.execute(text("DELETE FROM reversa_schema"))
    with pytest.raises(ConfigError, match="read-only"):
        reader.migrate()
    reader.close()
    with Store.open(db_url).engine.connect() as conn:
        assert schema.schema_version(conn) == len(MIGRATIONS)


def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    store = Store.open(db)
    ids = _history(store)
    # Another process holds the write lock (BEGIN IMMEDIATE) for as long as it likes.
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    done: dict[str, Any] = {}

    def read() -> None:
        try:
            Store.open(db).close()  # already migrated: opening takes no write lock either
            done["list"] = store.list_sagas()
            done["rows"] = store.rows("escalations")
            done["view"] = Inspector(store).saga(ids["stuck"])
            done["audit"] = store.verify_audit().ok
        except BaseException as exc:  # reported to the test thread below
            done["error"] = exc

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # Reads that took the write lock would wait out the 30 s busy timeout here.
    reader.join(timeout=10)
    writer.execute("ROLLBACK")
    writer.close()
    assert not reader.is_alive(), "a read waited for the writer's lock"
    assert "error" not in done and done["audit"] is True and len(done["list"]) == 2
    store.close()


def test_sqlite_writes_take_the_lock_up_front_and_reads_do_not(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.db")
    _history(store)
    begins: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    store.list_sagas()
    Inspector(store).sagas()
    assert begins and set(begins) == {"BEGIN"}
    begins.clear()
    store.claim("w", 1.0)
    store.heartbeat([("nope", 1)], 1.0)
    assert begins == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
    store.close()


def test_the_concepts_example_runs_as_written(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "concepts.md").read_text()
    section = doc.split("## 8. Inspecting sagas from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    proc = subprocess.run([sys.executable, "-c", code.group(1)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
