"""Tables and versioned migrations.

The schema is SQLAlchemy Core (the hot path issues fixed, cached statements,
never ORM round trips). Migrations are an ordered list applied inside one
transaction each and recorded in ``reversa_schema``; an existing database
upgrades in place without touching its records.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)

from ..errors import SchemaError

__all__ = ["MIGRATIONS", "api_tokens", "approvals", "audit_meta", "checkpoints", "heads",
           "journal", "links", "metadata", "migrate", "notes", "outbox", "resources",
           "schema_version", "sessions", "sla_calls", "users"]

metadata = MetaData()

def _sagas_table(meta: MetaData, *, version: int) -> Table:
    columns: list[Column[Any]] = [
        Column("id", String(64), primary_key=True),
        Column("workflow", String(128), nullable=False),
        Column("status", String(32), nullable=False),
        Column("plan_hash", String(64), nullable=False),
        Column("plan_json", Text, nullable=False),
        Column("input_json", Text, nullable=False),
        Column("pre_state_json", Text),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Column("failed_step", String(128)),
        Column("error", Text),
        Column("rollback_started_at", Float),
        Column("checkpoint", String(128)),
        Column("resumes", Integer, nullable=False, default=0),
        Column("lease_owner", String(256)),
        Column("lease_token", Integer, nullable=False, default=0),
        Column("lease_expires_at", Float),
        Column("audit_seq", Integer, nullable=False, default=0),
        Column("audit_head", String(64), nullable=False),
        # Import path of the registry the saga's handlers come from ("pkg.mod:attr").
        Column("app", String(256)),
    ]
    if version >= 5:
        # Import path of the factory of the services its handlers were given.
        columns.append(Column("services", String(256)))
    if version >= 6:
        # The last heartbeat: progress for the watchdog, on the store's clock.
        columns.append(Column("heartbeat_at", Float))
    if version >= 7:
        # Signature of (id, audit_seq, audit_head) by the audit key, and that key's id.
        columns += [Column("audit_key", String(64)), Column("audit_sig", Text)]
    if version >= 8:
        # An operator's pending rollback request (JSON: by, reason, at, approval),
        # set by anyone, consumed by the saga's owner at its next step boundary.
        columns.append(Column("rollback_requested", Text))
    return Table("reversa_sagas", meta, *columns)


sagas = _sagas_table(metadata, version=8)


def _steps_table(meta: MetaData, *, version: int) -> Table:
    columns: list[Column[Any]] = [
        Column("saga_id", String(64), primary_key=True),
        Column("name", String(128), primary_key=True),
        Column("position", Integer, nullable=False),
        Column("status", String(32), nullable=False),
        Column("attempts", Integer, nullable=False, default=0),
        Column("comp_attempts", Integer, nullable=False, default=0),
        Column("result_json", Text),
        Column("comp_result_json", Text),
        Column("error", Text),
        Column("outcome", String(64)),
        Column("started_at", Float),
        Column("finished_at", Float),
        Column("comp_started_at", Float),
        Column("comp_finished_at", Float),
    ]
    if version >= 3:
        # Snapshot taken when a checkpoint step completed (rollback-to-checkpoint baseline).
        columns.append(Column("state_json", Text))
    if version >= 8:
        # The checkpoint-resume generation of the step's effect (its keys carry it).
        columns.append(Column("generation", Integer, nullable=False, server_default="0"))
    return Table("reversa_steps", meta, *columns)


steps = _steps_table(metadata, version=8)

audit = Table(
    "reversa_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("step", String(128)),
    Column("phase", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("event", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("detail_json", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # The state record of the commit this entry ends (see reversa.core.evidence.records).
    Column("state_json", Text),
    UniqueConstraint("saga_id", "seq", name="uq_reversa_audit_saga_seq"),
)


def _escalations_table(meta: MetaData, *, kind: bool) -> Table:
    columns: list[Column[Any]] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("saga_id", String(64), nullable=False, index=True),
        Column("created_at", Float, nullable=False),
        Column("reason", Text, nullable=False),
        Column("report_json", Text, nullable=False),
        Column("status", String(16), nullable=False),
        Column("resolution", String(32)),
        Column("resolved_by", String(256)),
        Column("resolved_at", Float),
        Column("note", Text),
    ]
    if kind:
        # Added by _cross_saga: rollback (the saga is escalated) or an advisory
        # one the saga's state does not change for: feasibility, drift.
        columns.append(Column("kind", String(16), nullable=False, server_default="rollback"))
    return Table("reversa_escalations", meta, *columns)


escalations = _escalations_table(metadata, kind=True)

rollbacks = Table(
    "reversa_rollbacks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("failed_step", String(128)),
    Column("scope", String(160), nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detected_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("record_json", Text, nullable=False),
    Column("predicate_ok", Boolean),
)

journal = Table(
    "reversa_journal",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("ref", String(256), nullable=False),
    Column("seq", Integer),
    Column("active", Boolean, nullable=False),
    Column("data_json", Text, nullable=False),
    Column("token", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

resources = Table(
    "reversa_resources",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("step", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("rid", String(320), nullable=False),
    Column("rkey", String(400), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

links = Table(
    "reversa_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("consumer_saga", String(64), nullable=False, index=True),
    Column("consumer_step", String(128), nullable=False),
    Column("provider_saga", String(64), nullable=False, index=True),
    Column("provider_step", String(128)),
    Column("resource", String(400)),
    Column("how", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

notes = Table(
    "reversa_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("event", String(64), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("detail_json", Text, nullable=False),
)

sla_calls = Table(
    "reversa_sla_calls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(256), nullable=False),
    Column("saga_id", String(64), nullable=False),
    Column("step", String(128), nullable=False),
    Column("started_at", Float, nullable=False, index=True),
    Column("duration_s", Float, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("available", Boolean, nullable=False),
    Column("code", String(64)),
    Column("promised_latency_s", Float, nullable=False),
    Column("promised_availability", Float, nullable=False),
)

heads = Table(
    # The checkpoint log: every sealed saga head, in the order checkpoints
    # sealed them (the leaves of the RFC 6962 tree whose roots are witnessed).
    "reversa_heads",
    metadata,
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("seq", Integer, nullable=False),
    Column("head", String(64), nullable=False),
    Column("plan_hash", String(64), nullable=False),
    Column("checkpoint", Integer, nullable=False),
)

checkpoints = Table(
    "reversa_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("root", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("frontier_json", Text, nullable=False),
    Column("statement_json", Text, nullable=False),
)

audit_meta = Table(
    "reversa_audit_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

approvals = Table(
    "reversa_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("saga_id", String(64), nullable=False, index=True),
    Column("workflow", String(128), nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("decisions_json", Text, nullable=False),
    Column("required", Integer, nullable=False),
    Column("decided_at", Float),
    # What executing it did (or why it could not), once decided.
    Column("outcome", Text),
    # Optimistic concurrency: every decision bumps it, a stale one is refused.
    Column("version", Integer, nullable=False),
)

outbox = Table(
    "reversa_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(64), nullable=False),
    Column("saga_id", String(64), nullable=False),
    Column("workflow", String(128), nullable=False),
    Column("payload_json", Text, nullable=False),
    Column("idempotency_key", String(256), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float),
    Column("delivered_at", Float),
    Column("last_error", Text),
    # Webhooks (by name) that already acknowledged it: a retry skips them.
    Column("delivered_to", Text, nullable=False),
)

# The review console's accounts (reversa.console): who may look and act. Secrets are
# never stored in clear: passwords as argon2 hashes, session ids and API-token secrets
# as SHA-256 digests (both are 256-bit random values, so a fast hash suffices).
users = Table(
    "reversa_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

sessions = Table(
    "reversa_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_name", String(64), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)

api_tokens = Table(
    "reversa_api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(64), nullable=False, index=True),
    Column("label", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("used_at", Float),
    Column("revoked_at", Float),
)

schema_table = Table(
    "reversa_schema",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)


def _v1(conn: Connection) -> None:
    # The tables exactly as version 1 shipped them; later columns come from
    # their own migrations so that old databases and new ones converge.
    v1 = MetaData()
    v1_sagas, v1_steps = _sagas_table(v1, version=1), _steps_table(v1, version=1)
    v1_escalations = _escalations_table(v1, kind=False)
    for table in (v1_sagas, v1_steps, audit, v1_escalations, rollbacks):
        table.create(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    # The watchdog and workers scan live sagas by status and staleness; list
    # filters by workflow and age. Added after v1, so upgrades build them in place.
    # Plain DDL on purpose: an Index() object would attach itself to the Table and
    # then be created by _v1 on fresh databases too.
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_sagas_status_updated "
                      "ON reversa_sagas (status, updated_at)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_sagas_workflow_created "
                      "ON reversa_sagas (workflow, created_at)"))


def _v3(conn: Connection) -> None:
    # Checkpoint snapshots (the baseline of a rollback-to-checkpoint predicate).
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_steps")}
    if "state_json" not in columns:
        conn.execute(text("ALTER TABLE reversa_steps ADD COLUMN state_json TEXT"))


def _v4(conn: Connection) -> None:
    # (status, updated_at) was rewritten by every commit, since updated_at moves on
    # each write: measurable on the per-step fsync. Live sagas are few, so an
    # index on status alone serves the watchdog and claim scans as well.
    conn.execute(text("DROP INDEX IF EXISTS ix_reversa_sagas_status_updated"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_sagas_status "
                      "ON reversa_sagas (status)"))


def _v5(conn: Connection) -> None:
    # Where a saga's services come from, next to its registry (``app``), so a
    # reviewer's retry or dry-run can rebuild both without flags.
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_sagas")}
    if "services" not in columns:
        conn.execute(text("ALTER TABLE reversa_sagas ADD COLUMN services VARCHAR(256)"))


def _v6(conn: Connection) -> None:
    # Heartbeats count as progress for the watchdog (a long step of a live owner is
    # not stalled), and the effect journal moves into the saga store: one durable
    # store, one transaction discipline (the EVM write-ahead journal lived in a
    # separate SQLite file before).
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_sagas")}
    if "heartbeat_at" not in columns:
        conn.execute(text("ALTER TABLE reversa_sagas ADD COLUMN heartbeat_at FLOAT"))
    journal.create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_journal_kind_ref "
                      "ON reversa_journal (kind, ref, seq)"))


def _v7(conn: Connection) -> None:
    # Evidence an auditor accepts: state records in the chain, signed heads, and
    # the checkpoint log whose roots an external witness keeps. The log id names
    # this database in the witness; a restored copy keeps it (and is caught).
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_audit")}
    if "state_json" not in columns:
        conn.execute(text("ALTER TABLE reversa_audit ADD COLUMN state_json TEXT"))
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_sagas")}
    if "audit_key" not in columns:
        conn.execute(text("ALTER TABLE reversa_sagas ADD COLUMN audit_key VARCHAR(64)"))
    if "audit_sig" not in columns:
        conn.execute(text("ALTER TABLE reversa_sagas ADD COLUMN audit_sig TEXT"))
    for table in (heads, checkpoints, audit_meta):
        table.create(conn, checkfirst=True)
    if conn.execute(text("SELECT COUNT(*) FROM reversa_audit_meta WHERE name = 'log_id'")
                    ).scalar() == 0:
        conn.execute(audit_meta.insert().values(name="log_id", value=uuid.uuid4().hex))


def _v8(conn: Connection) -> None:
    # Governance: approvals (start, resolution, rollback), the notification outbox
    # written in the same commit as the event it announces, the operator's
    # rollback flag, and a partial index so metrics count compensation failures
    # without scanning the log (only failure rows enter it: the per-step audit
    # insert pays nothing).
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_sagas")}
    if "rollback_requested" not in columns:
        conn.execute(text("ALTER TABLE reversa_sagas ADD COLUMN rollback_requested TEXT"))
    approvals.create(conn, checkfirst=True)
    outbox.create(conn, checkfirst=True)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_approvals_status "
                      "ON reversa_approvals (status)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_outbox_due "
                      "ON reversa_outbox (delivered_at, next_attempt_at)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reversa_audit_comp_failures "
                      "ON reversa_audit (event) WHERE event IN "
                      "('compensation_failed', 'compensation_attempt_failed')"))



def _step_generation(conn: Connection) -> None:
    # Each step remembers the generation its effect belongs to: after a checkpoint
    # resume, the steps before the checkpoint keep the keys they ran under, and only
    # re-run steps move to the new generation's keys.
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_steps")}
    if "generation" not in columns:
        conn.execute(text("ALTER TABLE reversa_steps ADD COLUMN generation INTEGER NOT NULL "
                          "DEFAULT 0"))



def _cross_saga(conn: Connection) -> None:
    # Sagas stop being islands (issue 15): the resources steps act on, the links
    # between sagas that consume each other's effects, audit entries waiting for a
    # live chain's owner, SLA measurements of compensation endpoints, and advisory
    # escalations (feasibility, drift) that do not change a saga's state.
    columns = {c["name"] for c in inspect(conn).get_columns("reversa_escalations")}
    if "kind" not in columns:
        conn.execute(text("ALTER TABLE reversa_escalations ADD COLUMN kind VARCHAR(16) "
                          "NOT NULL DEFAULT 'rollback'"))
    for table in (resources, links, notes, sla_calls):
        table.create(conn, checkfirst=True)


def _console_users(conn: Connection) -> None:
    # Console users, their login sessions and machine API tokens live next to the
    # sagas they govern: one store to back up, one place to audit.
    for table in (users, sessions, api_tokens):
        table.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _step_generation, _cross_saga, _console_users]
"""Migration ``i`` brings the schema to version ``i + 1``."""


def schema_version(conn: Connection) -> int:
    """Current schema version (0 for an empty database)."""
    if not inspect(conn).has_table("reversa_schema"):
        return 0
    value = conn.execute(text("SELECT MAX(version) FROM reversa_schema")).scalar()
    return int(value or 0)


def migrate(conn: Connection, now: float, target: int | None = None) -> tuple[int, int]:
    """Apply pending migrations up to ``target`` (default: latest).

    Returns:
        (version before, version after).

    Raises:
        SchemaError: The database is newer than this code.
    """
    head = len(MIGRATIONS)
    goal = head if target is None else target
    if not inspect(conn).has_table("reversa_schema"):
        schema_table.create(conn)
    before = schema_version(conn)
    if before > head:
        raise SchemaError(
            f"database schema is version {before} but this Reversa knows up to {head}; "
            "upgrade Reversa before pointing it at this database"
        )
    for version in range(before + 1, goal + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(schema_table.insert().values(version=version, applied_at=now))
    return before, max(before, goal)
