"""The durable store: SQLite (WAL) by default, PostgreSQL by URL.

Every write of a saga's state is *fenced*: the saga row is updated first with
``WHERE lease_token = :token AND audit_seq = :seq``, so a worker whose lease
was taken over (or that raced another writer) gets :class:`LeaseLost` and its
transaction rolls back. Step outcomes, the next step's intent and their audit
entries share one commit, which keeps the hot path at about one commit per
step without weakening durability.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..audit import AuditReport
from ..clock import Clock
from ..errors import ConfigError, LeaseLost, NotFound, SchemaError, StoreError
from ..evidence.config import AuditConfig
from ..live import LiveSaga
from ..states import AT_REST_SAGA, TERMINAL_SAGA, SagaStatus
from . import schema as t
from .engines import WRITE, postgres_engine, sqlite_engine
from .governance import Notify, apply_side
from .writer import Writer, Written

__all__ = ["Store", "resolve_url"]

DEFAULT_DB = "./reversa.db"
_RESOLVE = ("UPDATE reversa_escalations SET status = 'resolved', resolution = ?, "
            "resolved_by = ?, resolved_at = ?, note = ? WHERE id = ? AND status = 'open'")


def resolve_url(db: str | os.PathLike[str] | None = None) -> str:
    """Turn ``--db`` / ``REVERSA_DB`` / a path into an SQLAlchemy URL.

    A plain path means an SQLite file; ``postgresql://`` is routed to psycopg 3.
    """
    raw = str(db) if db is not None else os.environ.get("REVERSA_DB", DEFAULT_DB)
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    if raw.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


class Store:
    """Durable saga state, audit chain, escalations and rollback records.

    Create with :meth:`open`; one Store per process is enough and it is safe to
    share between threads.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        read_only: bool = False,
        clock: Clock | None = None,
        audit: AuditConfig | None = None,
    ) -> None:
        self.engine = engine
        self.read_only = read_only
        self.url = engine.url.render_as_string(hide_password=True)
        self.dialect = engine.dialect.name
        self.clock = clock
        """Injected time source for leases (tests); None means database time."""
        self.audit = audit or AuditConfig()
        """How this store signs and witnesses its audit record."""
        self._now_sql = None if clock is not None else _NOW_SQL[self.dialect]
        self._writer = Writer(engine, self._now_sql, self.audit.signer,
                              self.audit.redaction_key, self.audit.sign_interval_s)
        self._checkpointer: Any = None
        from .journal import StoreJournal
        from .relations import Relations

        self._journal_type = StoreJournal
        self.relations = Relations(self)
        """Queries across sagas: resources, links, notes, SLA measurements."""

    def now(self) -> float:
        """The store's clock: database time (or the injected clock), in epoch seconds.

        Leases are judged on this clock only, so a worker whose own clock runs
        ahead cannot take a lease that its owner still holds.
        """
        if self.clock is not None:
            return self.clock.now()
        with self.engine.connect() as conn:
            return float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())

    # -- lifecycle --------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        db: str | os.PathLike[str] | None = None,
        *,
        migrate: bool = True,
        synchronous: str = "FULL",
        read_only: bool = False,
        clock: Clock | None = None,
        audit: AuditConfig | None = None,
    ) -> Store:
        """Open (and by default create or upgrade) the store at ``db``.

        Args:
            db: SQLite path, or an SQLAlchemy URL (``sqlite:///...``,
                ``postgresql://...``). Defaults to ``$REVERSA_DB`` or ``./reversa.db``.
            migrate: Apply pending schema migrations.
            synchronous: SQLite ``synchronous`` pragma; ``FULL`` fsyncs every
                commit (the default: a crash never loses a recorded outcome).
            read_only: Open for inspection only: nothing is ever created,
                migrated or written. An SQLite file is opened read-only (a
                missing one is an error, never created); a PostgreSQL session is
                read-only; the schema must already be at this Reversa's version.
            clock: Time source for leases. Leave None in production: leases are
                then judged on database time, one clock for every worker. Tests
                inject a ``FakeClock`` (the same one their engines use).
            audit: Signing key and witnesses of the audit record. Default:
                :meth:`AuditConfig.from_env` (``REVERSA_SIGNING_KEY``,
                ``REVERSA_WITNESS_DIR``), so every writing command honours them.

        Raises:
            NotFound: ``read_only`` and there is no database file, or no
                Reversa schema in the database.
            SchemaError: The schema is newer than this Reversa, or (``read_only``)
                older: ``reversa db-upgrade`` upgrades it.
            StoreError: The database cannot be reached or read.
            ConfigError: Unsupported URL or pragma value, or an audit setting names a
                missing key or directory.
        """
        if audit is None:
            audit = AuditConfig.from_env()
        url = make_url(resolve_url(db))
        if url.get_backend_name() == "sqlite":
            engine = sqlite_engine(url, synchronous, read_only=read_only)
        elif url.get_backend_name() == "postgresql":
            engine = postgres_engine(url, read_only=read_only)
        else:
            raise ConfigError(
                f"unsupported database {url.get_backend_name()!r}; use an SQLite path or a "
                "postgresql:// URL"
            )
        store = cls(engine, read_only=read_only, clock=clock, audit=audit)
        try:
            if read_only:
                store.check_schema()
            elif migrate:
                store.migrate()
                store._start_checkpoints()
        except BaseException:
            engine.dispose()
            raise
        return store

    def _start_checkpoints(self) -> None:
        if not self.audit.witnesses or self._checkpointer is not None:
            return
        from ..evidence.checkpoints import Checkpointer

        assert self.audit.signer is not None  # AuditConfig refuses witnesses without one
        self._checkpointer = Checkpointer(
            self.engine, self.now, self.audit.signer, self.audit.witnesses,
            interval_s=self.audit.interval_s, gap_s=self.audit.gap_s,
            background=self.audit.background)

    def checkpoint(self) -> Any:
        """Seal every changed saga head into a signed checkpoint now and publish it.

        Returns:
            The new :class:`~reversa.core.evidence.Checkpoint`, or None when no
            head changed since the last one.

        Raises:
            ConfigError: No witness is configured.
            WitnessError: A witness refused the checkpoint.
        """
        self._start_checkpoints()
        if self._checkpointer is None:
            raise ConfigError("no witness is configured: set REVERSA_WITNESS_DIR (and "
                              "REVERSA_SIGNING_KEY) or pass AuditConfig(witnesses=...)")
        return self._checkpointer.seal()

    def migrate(self, target: int | None = None) -> tuple[int, int]:
        """Apply pending migrations; returns (version before, after)."""
        if self.read_only:
            raise ConfigError(f"{self.url} was opened read-only; open it writable to migrate")
        goal = len(t.MIGRATIONS) if target is None else target
        with self._tx() as conn:
            current = t.schema_version(conn)
        if goal <= current <= len(t.MIGRATIONS):
            # Up to date (every open but the first): no write lock, so opening a store
            # never waits for a writer busy on the same SQLite file.
            return current, current
        with self._tx(write=True) as conn:
            if self.dialect == "postgresql":
                # Serialise concurrent first starts of many workers on one database.
                conn.execute(text("SELECT pg_advisory_xact_lock(7263540001)"))
            return t.migrate(conn, time.time(), target)

    def check_schema(self) -> int:
        """Check, without changing anything, that the schema is this Reversa's; return it.

        Raises:
            NotFound: No Reversa schema (an empty or unrelated database).
            SchemaError: Older or newer than this Reversa.
        """
        head = len(t.MIGRATIONS)
        with self._tx() as conn:
            version = t.schema_version(conn)
        if version == 0:
            raise NotFound(
                f"no Reversa records in {self.url} (the database has no Reversa schema); check "
                "--db / REVERSA_DB, or create the schema with `reversa db-upgrade`")
        if version < head:
            raise SchemaError(
                f"database schema at {self.url} is version {version} but this Reversa reads "
                f"version {head}; run `reversa db-upgrade` (records are kept) and retry")
        if version > head:
            raise SchemaError(
                f"database schema at {self.url} is version {version} but this Reversa knows up "
                f"to {head}; upgrade Reversa before pointing it at this database")
        return version

    def close(self) -> None:
        """Seal the last heads into a checkpoint (if witnessed); release pooled connections."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._writer.release()
        self.engine.dispose()

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction: ``write`` ones take SQLite's write lock up front.

        Reads run in a deferred transaction, a consistent snapshot that (in WAL
        mode) neither waits for nor blocks a writer.
        """
        try:
            with self.engine.connect() as conn:
                if write:
                    conn.execution_options(**{WRITE: True})
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            # Every driver error is the store's (a closed connection is an
            # InterfaceError, not an OperationalError); only a constraint violation is
            # not worth retrying.
            raise StoreError(
                f"database error on {self.url}: {exc.orig}; check that the database is "
                f"reachable{'' if self.read_only else ' and writable'}",
                retryable=not isinstance(exc, IntegrityError),
            ) from exc

    # -- writes -----------------------------------------------------------------------
    def create(self, live: LiveSaga, app: str | None) -> None:
        """Insert a new saga with its plan, steps and first audit entries (one commit)."""
        live.app = app if app is not None else live.app
        self.write_batch([(live, live.updated_at, None, None)], single=True)

    def write_batch(
        self,
        items: Sequence[tuple[LiveSaga, float, dict[str, Any] | None, dict[str, Any] | None]],
        *,
        single: bool = False,
        lease_s: float = 30.0,
    ) -> list[Written | StoreError]:
        """Write several sagas' pending state in ONE commit (group commit).

        Each saga is written inside its own savepoint, so what concerns one saga
        only (a lost lease, a duplicate saga id, an escalation already resolved)
        rolls back only that saga's part: it is returned as that ``StoreError``
        (``LeaseLost``...) in its slot, and every other saga of the batch is
        recorded. ``single`` raises it instead. A saga not yet created is
        inserted first (plan, hash, input, pre-state) in the same commit.

        Raises:
            StoreError: The database failed; nothing of the batch was recorded.
                With ``single``, also the one saga's own error (``LeaseLost``...).
        """
        out: list[Written | StoreError] = []
        lease = lease_s if self.clock is None else self.clock.now() + lease_s
        with self._writer.transaction(self.url) as cur:
            for index, (live, now, escalation, rollback) in enumerate(items):
                if single:
                    out.append(self._write_one(cur, live, now, escalation, rollback, lease))
                    continue
                cur.execute(f"SAVEPOINT rv{index}")
                try:
                    out.append(self._write_one(cur, live, now, escalation, rollback, lease))
                except StoreError as own:
                    cur.execute(f"ROLLBACK TO SAVEPOINT rv{index}")
                    out.append(own)
                else:
                    cur.execute(f"RELEASE SAVEPOINT rv{index}")
        # Adopt new chain heads only once the commit succeeded.
        ended = False
        for (live, *_), written in zip(items, out, strict=True):
            if isinstance(written, Written):
                self._writer.committed(live, written)
                live.created = True
                live.resolution = None
                live.side.clear()
                ended = ended or written.at_rest
        if ended and self._checkpointer is not None:
            self._checkpointer.saga_ended()
        return out

    def _write_one(
        self,
        cur: Any,
        live: LiveSaga,
        now: float,
        escalation: dict[str, Any] | None,
        rollback: dict[str, Any] | None,
        lease: float,
    ) -> Written:
        created: dict[str, Any] | None = None
        if not live.created:
            try:
                created = self._writer.create(cur, live, live.app)
            except self._writer.integrity_error as exc:
                raise StoreError(
                    f"saga {live.id} already exists in {self.url}; start the new saga under "
                    "another id (or recover the existing one)", retryable=False,
                    code="duplicate_saga", details={"saga": live.id}) from exc
        sqlite = self.dialect == "sqlite"
        if live.side:
            apply_side(cur, sqlite, live.side, now, first=True)
        written = self._writer.write(cur, live, now, escalation, rollback, lease, created)
        if live.resolution is not None:
            self._resolve(cur, live.resolution, now)
        if live.side:
            apply_side(cur, sqlite, live.side, now, first=False)
        if escalation is not None or live.resolution is not None:
            self._announce(cur, live, escalation, written, now)
        return written

    def _announce(self, cur: Any, live: LiveSaga, escalation: dict[str, Any] | None,
                  written: Written, now: float) -> None:
        # The outbox row shares the commit of the event it announces: a crash
        # loses neither, and a dispatcher delivers it later (reversa.notify).
        workflow = live.plan.saga.workflow
        if live.resolution is not None:
            res = live.resolution
            Notify("escalation.resolved", live.id, workflow, res["escalation"], {
                "escalation": res["escalation"], "resolution": res["resolution"],
                "author": res["author"], "note": res["note"],
                "approved_by": res.get("approved_by", []),
            }).apply(cur, self.dialect == "sqlite", now)
        if escalation is not None and written.escalation_id is not None:
            Notify("escalation.opened", live.id, workflow, written.escalation_id, {
                "escalation": written.escalation_id, "reason": escalation["reason"],
                "failed_step": live.failed_step, "error": live.error,
                "steps_in_effect": [s["step"] for s in escalation["report"].get("steps", [])
                                    if s.get("effect_remains")],
            }).apply(cur, self.dialect == "sqlite", now)

    def _resolve(self, cur: Any, resolution: dict[str, Any], now: float) -> None:
        # Inside the saga's fenced write, so the escalation row, the audit entry
        # and the saga's new state commit together.
        cur.execute(
            _RESOLVE if self.dialect == "sqlite" else _RESOLVE.replace("?", "%s"),
            (resolution["resolution"], resolution["author"], resolution.get("resolved_at", now),
             resolution["note"], resolution["escalation"]))
        if cur.rowcount != 1:
            # A lost race, like a lost lease: this saga's part of the batch rolls back.
            raise LeaseLost(
                f"escalation #{resolution['escalation']} is no longer open (another reviewer "
                "resolved it); nothing of this resolution was recorded",
                details={"escalation": resolution["escalation"]})

    def flush(
        self,
        live: LiveSaga,
        now: float,
        *,
        escalation: dict[str, Any] | None = None,
        rollback: dict[str, Any] | None = None,
    ) -> int | None:
        """Write dirty steps, saga fields and queued audit events in one fenced commit.

        Returns:
            The id of the escalation inserted, if one was given.

        Raises:
            LeaseLost: Another worker owns the saga now; nothing was written.
        """
        (written,) = self.write_batch([(live, now, escalation, rollback)], single=True)
        assert isinstance(written, Written)  # single=True raises the saga's error instead
        return written.escalation_id

    # -- leases -----------------------------------------------------------------------
    def claim(
        self,
        owner: str,
        lease_s: float,
        *,
        saga_id: str | None = None,
        limit: int = 1,
        force: bool = False,
        statuses: Sequence[SagaStatus] | None = None,
    ) -> list[tuple[str, int]]:
        """Take over sagas that are live and whose lease expired (or a given one).

        Expiry is judged on the store's clock (:meth:`now`), never the caller's.
        Uses ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and ``BEGIN IMMEDIATE`` on
        SQLite, so no saga is ever handed to two workers; each claim bumps the
        fencing token (the lease epoch every later call carries).

        ``force`` takes a saga even from a live owner (the watchdog's remedy for a
        stalled one): the bumped token fences the old owner's writes out.

        Returns:
            (saga id, new fencing token) pairs.
        """
        wanted = statuses or [s for s in SagaStatus if s not in TERMINAL_SAGA]
        with self._tx(write=True) as conn:
            now = self._tx_now(conn)
            query = select(t.sagas.c.id, t.sagas.c.lease_token).where(
                t.sagas.c.status.in_([s.value for s in wanted]))
            if not force:
                query = query.where(
                    (t.sagas.c.lease_expires_at.is_(None)) | (t.sagas.c.lease_expires_at < now))
            if saga_id is not None:
                query = query.where(t.sagas.c.id == saga_id)
            query = query.order_by(t.sagas.c.updated_at).limit(limit)
            if self.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed: list[tuple[str, int]] = []
            for sid, token in conn.execute(query).all():
                done = conn.execute(
                    update(t.sagas)
                    .where(t.sagas.c.id == sid, t.sagas.c.lease_token == token)
                    .values(lease_owner=owner, lease_token=token + 1,
                            lease_expires_at=now + lease_s, heartbeat_at=now)
                ).rowcount
                if done == 1:
                    claimed.append((sid, token + 1))
        return claimed

    def heartbeat(self, leases: Sequence[tuple[str, int]], lease_s: float) -> list[str]:
        """Extend leases still held by ``lease_s`` of store time; return the ids lost.

        A heartbeat is progress: the watchdog does not take over a saga whose
        owner keeps beating, however long one step runs.
        """
        lost: list[str] = []
        with self._tx(write=True) as conn:
            now = self._tx_now(conn)
            for sid, token in leases:
                n = conn.execute(
                    update(t.sagas).where(t.sagas.c.id == sid, t.sagas.c.lease_token == token)
                    .values(lease_expires_at=now + lease_s, heartbeat_at=now)).rowcount
                if n != 1 and conn.execute(
                        select(t.sagas.c.id).where(t.sagas.c.id == sid)).first() is not None:
                    # A saga not recorded yet (its first step still waiting, e.g. for a
                    # held resource) has no row to extend: it is not lost.
                    lost.append(sid)
        return lost

    def release(self, saga_id: str, token: int) -> bool:
        """Give a lease up now (graceful shutdown) so another worker may continue."""
        with self._tx(write=True) as conn:
            return bool(conn.execute(
                update(t.sagas).where(t.sagas.c.id == saga_id, t.sagas.c.lease_token == token)
                .values(lease_owner=None, lease_expires_at=None)).rowcount)

    def journal(self, saga_id: str, token: int) -> Any:
        """The effect journal of one saga, fenced by its lease ``token``."""
        return self._journal_type(self, saga_id, token)

    def chain_anchor(self, saga_id: str) -> str | None:
        """The plan hash the saga's audit chain starts from (entry 1's previous hash)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(t.audit.c.prev_hash).where(
                t.audit.c.saga_id == saga_id, t.audit.c.seq == 1)).scalar()
        return None if value is None else str(value)

    def _tx_now(self, conn: Connection) -> float:
        if self.clock is not None:
            return self.clock.now()
        return float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())

    # -- reads ------------------------------------------------------------------------
    def load(self, saga_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Raw saga row and step rows (ordered by position)."""
        with self._tx() as conn:
            row = conn.execute(select(t.sagas).where(t.sagas.c.id == saga_id)).mappings().first()
            if row is None:
                raise NotFound(f"no saga {saga_id!r} in {self.url}; list them with "
                               "`reversa sagas list`")
            steps = conn.execute(select(t.steps).where(t.steps.c.saga_id == saga_id)
                                 .order_by(t.steps.c.position)).mappings().all()
        return dict(row), [dict(s) for s in steps]

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """All rows of a Reversa table matching equality filters, by primary key."""
        tbl = t.metadata.tables[f"reversa_{table}"]
        query = select(tbl)
        for col, value in where.items():
            query = query.where(tbl.c[col] == value)
        query = query.order_by(*tbl.primary_key.columns)
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def list_sagas(
        self,
        *,
        status: Sequence[str] | None = None,
        workflow: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Saga rows filtered by status, workflow and age, newest first."""
        s = t.sagas.c
        query = select(s.id, s.workflow, s.status, s.created_at, s.updated_at, s.failed_step,
                       s.lease_owner, s.lease_expires_at)
        if status:
            query = query.where(s.status.in_(list(status)))
        if workflow:
            query = query.where(s.workflow == workflow)
        if created_after is not None:
            query = query.where(s.created_at >= created_after)
        if created_before is not None:
            query = query.where(s.created_at <= created_before)
        query = query.order_by(s.created_at.desc(), s.id).limit(limit)
        with self._tx() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def count(self, status: str | None = None) -> int:
        """Number of sagas (with the given status)."""
        query = select(func.count()).select_from(t.sagas)
        if status:
            query = query.where(t.sagas.c.status == status)
        with self._tx() as conn:
            return int(conn.execute(query).scalar() or 0)

    def verify_audit(
        self,
        saga_id: str | None = None,
        *,
        verifiers: Iterable[Any] | None = None,
        witnesses: Sequence[Any] = (),
    ) -> AuditReport:
        """Verify the audit record and name every problem (see ``docs/audit.md``).

        Without keys or witnesses this proves the record is internally
        consistent: every chain recomputes and every table matches its chain.
        With the public key (``verifiers``) a rewritten, re-chained record is
        caught too; with a witness, a deleted saga or a restored database.

        Args:
            saga_id: One saga only.
            verifiers: Verifiers of the signing key(s) (``load_verifier(path)``).
            witnesses: Witnesses holding the checkpoints (``DirWitness(path)``).
        """
        from ..evidence.verify import verify_store

        return verify_store(self, saga_id=saga_id, verifiers=verifiers, witnesses=witnesses)

    def stalled(self, default_after_s: float) -> list[dict[str, Any]]:
        """Live sagas that made no progress (no commit, no heartbeat) for a while.

        Judged on the store's clock. Each row carries ``now`` (that clock's time).
        """
        # Sagas at rest wait for a human (escalated, awaiting approval) or for any
        # worker's claim (approved): none of them is a stalled run.
        live = [s.value for s in SagaStatus if s not in AT_REST_SAGA]
        s = t.sagas.c
        query = select(s.id, s.workflow, s.status, s.updated_at, s.heartbeat_at, s.plan_json,
                       s.rollback_started_at, s.lease_expires_at).where(s.status.in_(live))
        with self._tx() as conn:
            now = self._tx_now(conn)
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        out = []
        for row in rows:
            plan = json.loads(row.pop("plan_json"))["saga"]
            threshold = plan.get("stall_after_s") or default_after_s
            row["threshold_s"] = threshold
            row["rollback_window_s"] = plan.get("rollback_window_s")
            row["now"] = now
            progress = max(row["updated_at"], row.pop("heartbeat_at") or 0.0)
            row["idle_s"] = now - progress
            if row["idle_s"] >= threshold:
                out.append(row)
        return out


_NOW_SQL = {
    # julianday('now') carries milliseconds; 2440587.5 is the Julian day of the epoch.
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "CAST(extract(epoch from clock_timestamp()) AS double precision)",
}
