"""The hot write path: fixed SQL on a pooled DB-API connection, one commit per flush.

Every step passes through here once or twice, so it skips SQLAlchemy's
statement compilation and result machinery (measured at about 40% of the CPU
per step) and runs hand-written statements with the driver's own parameter
style. SQLAlchemy still owns the pool, the schema and every other query.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from ..audit import entry_hash
from ..canonical import canonical_json
from ..errors import LeaseLost, StoreError
from ..live import LiveSaga
from ..states import AT_REST_SAGA

__all__ = ["Writer"]

_SAGA_SET = ("status", "updated_at", "failed_step", "error", "rollback_started_at",
             "checkpoint", "resumes", "audit_seq", "audit_head", "pre_state_json",
             "lease_owner")
_STEP_SET = ("status", "attempts", "comp_attempts", "result_json", "comp_result_json",
             "state_json", "error", "outcome", "started_at", "finished_at", "comp_started_at",
             "comp_finished_at")
_AUDIT_COLS = ("saga_id", "seq", "ts", "step", "phase", "attempt", "event", "outcome",
               "detail_json", "prev_hash", "hash")
_SAGA_COLS = ("id", "workflow", "status", "plan_hash", "plan_json", "input_json",
              "pre_state_json", "created_at", "updated_at", "resumes", "lease_owner",
              "lease_token", "lease_expires_at", "audit_seq", "audit_head", "app", "services")
_ROLLBACK_COLS = ("saga_id", "failed_step", "scope", "outcome", "detected_at", "finished_at",
                  "duration_s", "record_json", "predicate_ok")
_ESCALATION_COLS = ("saga_id", "created_at", "reason", "report_json", "status")


class Writer:
    """Fenced, single-commit writes of a saga's state, audit entries and records."""

    def __init__(self, engine: Engine, now_sql: str | None) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        p = "?" if self.sqlite else "%s"
        self._dbapi_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        # Leases are judged on the store's clock (database time), so the expiry a
        # commit extends to is computed by the database too, never by the caller.
        lease = f"{now_sql} + {p}" if now_sql is not None else p
        self.db_time = now_sql is not None
        self.saga_update = (
            f"UPDATE reversa_sagas SET {', '.join(f'{c} = {p}' for c in _SAGA_SET)}, "
            f"lease_expires_at = {lease}, "
            # An operator's rollback request is set by others: only cleared (once
            # consumed) here, and read back with every commit, so the owner sees it
            # at its next step boundary without a query of its own.
            f"rollback_requested = CASE WHEN {p} = 1 THEN NULL ELSE rollback_requested END "
            f"WHERE id = {p} AND lease_token = {p} AND audit_seq = {p} "
            "RETURNING rollback_requested")
        self.step_update = (
            f"UPDATE reversa_steps SET {', '.join(f'{c} = {p}' for c in _STEP_SET)} "
            f"WHERE saga_id = {p} AND name = {p}")
        self.audit_insert = _insert("reversa_audit", _AUDIT_COLS, p)
        self.saga_insert = _insert("reversa_sagas", _SAGA_COLS, p)
        self.step_insert = _insert(
            "reversa_steps", ("saga_id", "name", "position", "status", "attempts",
                              "comp_attempts"), p)
        self.rollback_insert = _insert("reversa_rollbacks", _ROLLBACK_COLS, p)
        self.escalation_insert = _insert("reversa_escalations", _ESCALATION_COLS, p) + (
            "" if self.sqlite else " RETURNING id")

    @contextmanager
    def transaction(self, url: str) -> Iterator[Any]:
        """A DB-API cursor inside one transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        raw = self.engine.raw_connection()
        cur = raw.cursor()
        try:
            if self.sqlite:
                cur.execute("BEGIN IMMEDIATE")
            yield cur
            raw.commit()
        except self._dbapi_error as exc:
            _rollback(raw)
            raise StoreError(
                f"database error on {url}: {exc}; the transaction was rolled back and "
                "nothing of it was recorded", retryable=True) from exc
        except BaseException:
            _rollback(raw)
            raise
        finally:
            cur.close()
            raw.close()

    def create(self, cur: Any, live: LiveSaga, app: str | None) -> None:
        """Insert the saga row (plan, hash, input, pre-state) and its steps."""
        cur.execute(self.saga_insert, (
            live.id, live.plan.saga.workflow, live.status.value, live.plan.hash,
            live.plan.canonical, canonical_json(live.input), _dump(live.pre_state),
            live.created_at, live.updated_at, 0, live.lease_owner, live.token,
            live.lease_expires_at, 0, live.plan.hash, app, live.services))
        cur.executemany(self.step_insert, [
            (live.id, s.name, s.position, "pending", 0, 0) for s in live.steps.values()])
        for step in live.steps.values():
            step.dirty = step.dirty or step.status.value != "pending"

    def write(
        self,
        cur: Any,
        live: LiveSaga,
        now: float,
        escalation: dict[str, Any] | None,
        rollback: dict[str, Any] | None,
        lease: float | None,
    ) -> Written:
        """Append queued audit entries and write dirty state, fenced by lease and sequence.

        ``lease`` is the lease length (database time) or the absolute expiry
        (injected store clock); None releases the lease.

        Raises:
            LeaseLost: The lease token (or audit sequence) moved on: another
                worker owns the saga. The caller's transaction rolls back.
        """
        old_seq = live.seq
        seq, head = old_seq, live.head
        rows = []
        for ev in live.events:
            seq += 1
            entry = {"saga_id": live.id, "seq": seq, "ts": now, "step": ev.step,
                     "phase": ev.phase, "attempt": ev.attempt, "event": ev.event,
                     "outcome": ev.outcome, "detail_json": canonical_json(ev.detail)}
            digest = entry_hash(head, entry)
            rows.append((*(entry[c] for c in _AUDIT_COLS[:-2]), head, digest))
            head = digest
        at_rest = live.status in AT_REST_SAGA
        # The saga row goes first: a stale writer fails here, before anything else.
        cur.execute(self.saga_update, (
            live.status.value, now, live.failed_step, live.error, live.rollback_started_at,
            live.checkpoint, live.resumes, seq, head, _dump(live.pre_state),
            # The end state and the lease release share one commit.
            None if at_rest else live.lease_owner, None if at_rest else lease,
            1 if live.consume_request else 0, live.id, live.token, old_seq))
        returned = cur.fetchone()
        if returned is None:
            raise LeaseLost(
                f"saga {live.id}: lease token {live.token} is no longer current (another "
                "worker took the saga over); this worker stops touching it",
                details={"saga": live.id, "token": live.token})
        dirty = [s for s in live.steps.values() if s.dirty]
        if dirty:
            cur.executemany(self.step_update, [(
                s.status.value, s.attempts, s.comp_attempts, _dump(s.result),
                _dump(s.comp_result), _dump(s.state), s.error, s.outcome, s.started_at,
                s.finished_at, s.comp_started_at, s.comp_finished_at, live.id, s.name)
                for s in dirty])
        if rows:
            cur.executemany(self.audit_insert, rows)
        escalation_id = None
        if escalation is not None:
            cur.execute(self.escalation_insert, (
                live.id, now, escalation["reason"], canonical_json(escalation["report"]),
                "open"))
            escalation_id = cur.lastrowid if self.sqlite else cur.fetchone()[0]
        if rollback is not None:
            cur.execute(self.rollback_insert, (
                live.id, rollback.get("failed_step"), rollback["scope"], rollback["outcome"],
                rollback["detected_at"], rollback["finished_at"], rollback["duration_s"],
                canonical_json(rollback), rollback.get("predicate", {}).get("ok")))
        return Written(seq, head, int(escalation_id) if escalation_id is not None else None,
                       returned[0])

    @staticmethod
    def committed(live: LiveSaga, written: Written) -> None:
        """Adopt the written state once the transaction has committed."""
        live.seq, live.head = written.seq, written.head
        live.events.clear()
        for s in live.steps.values():
            s.dirty = False
        live.consume_request = False
        if written.rollback_request is not None:
            live.rollback_request = json.loads(written.rollback_request)


@dataclass(frozen=True, slots=True)
class Written:
    """What a committed write changed: the chain's new end, and an escalation id."""

    seq: int
    head: str
    escalation_id: int | None
    rollback_request: str | None = None
    """An operator's rollback request pending on the saga row (JSON), if any."""


def _insert(table: str, cols: tuple[str, ...], p: str) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"


def _dump(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _rollback(raw: Any) -> None:
    # A failed rollback leaves a broken connection that the pool discards anyway.
    with suppress(Exception):
        raw.rollback()
