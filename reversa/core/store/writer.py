"""The hot write path: fixed SQL on a pooled DB-API connection, one commit per flush.

Every step passes through here once or twice, so it skips SQLAlchemy's
statement compilation and result machinery (measured at about 40% of the CPU
per step) and runs hand-written statements with the driver's own parameter
style. SQLAlchemy still owns the pool, the schema and every other query.

It is also where the audit record is made complete: the last entry of each
commit carries the state record of what the commit wrote (see
``reversa.core.evidence.records``), the new head is signed when a signing key
is configured, and declared-sensitive fields are replaced by salted digests
before anything is written.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from ..audit import entry_hash
from ..canonical import canonical_json, sha256_hex
from ..errors import LeaseLost, StoreError
from ..eventlog import STATE_KEY, adopt, state_change
from ..evidence.records import (
    escalation_digest,
    head_message,
    rollback_digest,
    saga_fields,
    step_digest_values,
)
from ..evidence.signing import Signer
from ..live import AuditEvent, LiveSaga
from ..sensitive import redact, redaction_marker
from ..states import AT_REST_SAGA
from .relations import statements

__all__ = ["Writer", "Written"]

_SAGA_SET = ("status", "updated_at", "failed_step", "error", "rollback_started_at",
             "checkpoint", "resumes", "audit_seq", "audit_head", "pre_state_json",
             "lease_owner")
_STEP_SET = ("status", "attempts", "comp_attempts", "result_json", "comp_result_json",
             "state_json", "error", "outcome", "started_at", "finished_at", "comp_started_at",
             "comp_finished_at", "generation")
_AUDIT_COLS = ("saga_id", "seq", "ts", "step", "phase", "attempt", "event", "outcome",
               "detail_json", "state_json", "prev_hash", "hash")
_SAGA_COLS = ("id", "workflow", "status", "plan_hash", "plan_json", "input_json",
              "pre_state_json", "created_at", "updated_at", "resumes", "lease_owner",
              "lease_token", "lease_expires_at", "audit_seq", "audit_head", "app", "services")
_ROLLBACK_COLS = ("saga_id", "failed_step", "scope", "outcome", "detected_at", "finished_at",
                  "duration_s", "record_json", "predicate_ok")
_ESCALATION_COLS = ("saga_id", "created_at", "reason", "report_json", "status")
_STATE_EVENT = "state_recorded"
"""The entry added to a commit that changed recorded state but logged no event."""


class Writer:
    """Fenced, single-commit writes of a saga's state, audit entries and records.

    Args:
        engine: The store's SQLAlchemy engine (its pool is used directly).
        now_sql: SQL for database time, or None when a clock is injected.
        signer: Signs each new chain head (None: heads are left unsigned).
        redaction_key: Salt of the digests that replace declared-sensitive
            fields (None: bare ``[redacted]`` markers).
        sign_interval_s: Sign a live saga's head at most this often (0: every
            commit). A saga coming to rest is always signed in its last commit.
    """

    def __init__(
        self,
        engine: Engine,
        now_sql: str | None,
        signer: Signer | None = None,
        redaction_key: bytes | None = None,
        sign_interval_s: float = 0.0,
    ) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.signer = signer
        self.redaction_key = redaction_key
        self.sign_interval_s = sign_interval_s
        p = "?" if self.sqlite else "%s"
        self._dbapi_error: type[BaseException] = engine.dialect.loaded_dbapi.Error
        self.integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError
        # Leases are judged on the store's clock (database time), so the expiry a
        # commit extends to is computed by the database too, never by the caller.
        lease = f"{now_sql} + {p}" if now_sql is not None else p
        self.db_time = now_sql is not None
        sets = ", ".join(f"{c} = {p}" for c in _SAGA_SET)
        where = f"WHERE id = {p} AND lease_token = {p} AND audit_seq = {p}"
        # An operator's rollback request is set by others: only cleared (once
        # consumed) here, and read back with every commit, so the owner sees it
        # at its next step boundary without a query of its own.
        consume = f"rollback_requested = CASE WHEN {p} = 1 THEN NULL ELSE rollback_requested END"
        self.saga_update = (
            f"UPDATE reversa_sagas SET {sets}, lease_expires_at = {lease}, {consume} {where} "
            "RETURNING rollback_requested")
        # A commit that signs the head replaces the signature; others leave the last
        # one in place (it still covers the prefix of the chain it signed).
        self.saga_update_signed = (
            f"UPDATE reversa_sagas SET {sets}, audit_key = {p}, audit_sig = {p}, "
            f"lease_expires_at = {lease}, {consume} {where} RETURNING rollback_requested")
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
        self.extra = statements(p)
        # SQLite connections of a file database are kept checked out between
        # transactions: the pool's checkout and return around every commit (fairy
        # bookkeeping, reset-on-return) cost about 5 % of a step's instructions.
        # PostgreSQL's go back to the pool, whose pre-ping notices a server restart.
        self._keep = self.sqlite and isinstance(engine.pool, QueuePool)
        self._idle: list[Any] = []
        self._generation = 0
        self._pid = os.getpid()
        if self._keep:
            # Engine.dispose() promises that no idle connection holds the database
            # any more (tests replace the file, operators restore backups): the kept
            # ones are closed with the pool's.
            event.listen(engine, "engine_disposed", self._disposed)

    def read_row(self, url: str, statement: str, params: tuple[Any, ...]
                 ) -> tuple[Any, ...] | None:
        """The first row of a read statement (one of :attr:`extra`), on a pooled connection.

        A single statement reads a consistent snapshot on its own, so no explicit
        transaction is opened: this is the price of a read the engine makes for
        every saga (SQLAlchemy's execution path costs several times the query).

        Raises:
            StoreError: The database failed (retryable unless a constraint did).
        """
        with self.transaction(url, read=True) as cur:
            cur.execute(self.extra[statement], params)
            row = cur.fetchone()
        return None if row is None else tuple(row)

    @contextmanager
    def transaction(self, url: str, *, read: bool = False) -> Iterator[Any]:
        """A DB-API cursor inside one transaction (``BEGIN IMMEDIATE`` on SQLite).

        ``read``: for a single read statement, which sees a consistent snapshot on
        its own; no explicit ``BEGIN`` (the commit ends PostgreSQL's implicit one).
        """
        raw, generation = self._checkout()
        cur = raw.cursor()
        reusable = False
        try:
            if self.sqlite and not read:
                cur.execute("BEGIN IMMEDIATE")
            yield cur
            raw.commit()
            reusable = True
        except self._dbapi_error as exc:
            _rollback(raw)
            # A constraint violation is the same on every retry; anything else (a lost
            # connection, a busy database) may pass.
            hint = ("check that the database is reachable" if read else
                    "the transaction was rolled back and nothing of it was recorded")
            raise StoreError(f"database error on {url}: {exc}; {hint}",
                             retryable=not isinstance(exc, self.integrity_error)) from exc
        except BaseException:
            # Not the database's failure (a lost lease, an interrupt): once rolled
            # back, the connection is as good as before.
            reusable = _rollback(raw)
            raise
        finally:
            cur.close()
            self._checkin(raw, generation, reusable)

    def _checkout(self) -> tuple[Any, int]:
        generation = self._generation
        if self._idle and self._pid == os.getpid():
            with suppress(IndexError):  # another thread took the last one meanwhile
                return self._idle.pop(), generation
        return self.engine.raw_connection(), generation

    def _checkin(self, raw: Any, generation: int, reusable: bool) -> None:
        # A connection that failed goes back to the pool, which decides its fate; so
        # does one in use while the engine was disposed, and one inherited across
        # fork() is never used by the child.
        if (reusable and self._keep and generation == self._generation
                and len(self._idle) < 2 and self._pid == os.getpid()):
            self._idle.append(raw)
        else:
            raw.close()

    def release(self, *, invalidate: bool = False) -> None:
        """Return the connections kept between transactions to the pool.

        ``invalidate`` closes their driver connections instead of pooling them.
        """
        while self._idle:
            with suppress(IndexError):
                raw = self._idle.pop()
                with suppress(Exception):
                    if invalidate:
                        raw.invalidate()
                    raw.close()

    def _disposed(self, _engine: Engine) -> None:
        self._generation += 1
        self.release(invalidate=True)

    def create(self, cur: Any, live: LiveSaga, app: str | None) -> dict[str, Any]:
        """Insert the saga row (plan, hash, input, pre-state) and its steps.

        Returns:
            The ``created`` part of the first commit's state record.
        """
        data = live.input
        if live.plan.redact_input:
            data = redact(data, live.plan.redact_input,
                          redaction_marker(self.redaction_key, live.id))
        input_json = canonical_json(data)
        cur.execute(self.saga_insert, (
            live.id, live.plan.saga.workflow, live.status.value, live.plan.hash,
            live.plan.canonical, input_json, _dump(live.pre_state),
            live.created_at, live.updated_at, 0, live.lease_owner, live.token,
            live.lease_expires_at, 0, live.plan.hash, app, live.services))
        cur.executemany(self.step_insert, [
            (live.id, s.name, s.position, "pending", 0, 0) for s in live.steps.values()])
        for step in live.steps.values():
            step.dirty = step.dirty or step.status.value != "pending"
        return {"workflow": live.plan.saga.workflow, "plan_hash": live.plan.hash,
                "input": sha256_hex(input_json), "created_at": float(live.created_at),
                "app": app, "steps": {s.name: s.position for s in live.steps.values()}}

    def write(
        self,
        cur: Any,
        live: LiveSaga,
        now: float,
        escalation: dict[str, Any] | None,
        rollback: dict[str, Any] | None,
        lease: float | None,
        created: dict[str, Any] | None = None,
    ) -> Written:
        """Append queued audit entries and write dirty state, fenced by lease and sequence.

        ``lease`` is the lease length (database time) or the absolute expiry
        (injected store clock); None releases the lease. ``created`` is the
        creation record returned by :meth:`create` in the same transaction.

        Raises:
            LeaseLost: The lease token (or audit sequence) moved on: another
                worker owns the saga. The caller's transaction rolls back.
            StoreError: The signer failed (nothing of the commit is recorded).
        """
        plan = live.plan
        secret = plan.redact_results
        mark = redaction_marker(self.redaction_key, live.id) if secret else None
        dirty = [s for s in live.steps.values() if s.dirty]
        step_rows = []
        steps_state = {}
        for s in dirty:
            result, comp = s.result, s.comp_result
            paths = secret.get(s.name) if mark is not None else None
            if paths and mark is not None:
                result, comp = redact(result, paths, mark), redact(comp, paths, mark)
            values = (s.position, s.status.value, s.attempts, s.comp_attempts, _dump(result),
                      _dump(comp), _dump(s.state), s.error, s.outcome, s.started_at,
                      s.finished_at, s.comp_started_at, s.comp_finished_at)
            # The generation is not part of the chain's step digest (a format
            # auditors already verify); it only selects the keys of the step's effect.
            step_rows.append((*values[1:], s.generation, live.id, s.name))
            steps_state[s.name] = [s.status.value, step_digest_values(values)]
        pre_json = _dump(live.pre_state)
        fields = saga_fields({
            "status": live.status.value, "failed_step": live.failed_step, "error": live.error,
            "rollback_started_at": live.rollback_started_at, "checkpoint": live.checkpoint,
            "resumes": live.resumes, "pre_state_json": pre_json})
        fields_json = canonical_json(fields)
        # The state record's JSON is assembled in canonical (sorted-key) order from
        # parts, so the saga fields are serialised once per commit.
        state: dict[str, str] = {"saga": fields_json}
        if steps_state:
            state["steps"] = canonical_json(steps_state)
        if created is not None:
            state["created"] = canonical_json(created)
        rollback_row = None
        if rollback is not None:
            rollback_row = (live.id, rollback.get("failed_step"), rollback["scope"],
                            rollback["outcome"], rollback["detected_at"],
                            rollback["finished_at"], rollback["duration_s"],
                            canonical_json(rollback), rollback.get("predicate", {}).get("ok"))
            state["rollback"] = canonical_json(rollback_digest(dict(zip(
                _ROLLBACK_COLS, rollback_row, strict=True))))
        escalation_row = None
        if escalation is not None:
            report = escalation["report"]
            if mark is not None:
                report = _redact_report(report, secret, mark)
            escalation_row = (live.id, now, escalation["reason"], canonical_json(report),
                              "open")
            state["escalation"] = canonical_json(escalation_digest(dict(zip(
                _ESCALATION_COLS, escalation_row, strict=True))))
        # The change as values (event sourcing: the log alone rebuilds the saga),
        # redacted exactly as the rows are.
        change = state_change(live, _scrubber(secret, mark),
                              self._input_scrubber(live) if created is not None else None)
        events = live.events
        if not events and (len(state) > 1 or fields_json != live.audited or change):
            events = [AuditEvent(None, "saga", 0, _STATE_EVENT, "ok")]
        state_json = "{" + ",".join(f'"{k}":{state[k]}' for k in sorted(state)) + "}"
        old_seq = live.seq
        seq, head = old_seq, live.head
        rows = []
        last = len(events) - 1
        for index, ev in enumerate(events):
            seq += 1
            detail = ev.detail
            if mark is not None and ev.step in secret and "result" in detail:
                detail = {**detail, "result": redact(detail["result"], secret[ev.step], mark)}
            if change and index == last:
                detail = {**detail, STATE_KEY: change}
            entry = {"saga_id": live.id, "seq": seq, "ts": now, "step": ev.step,
                     "phase": ev.phase, "attempt": ev.attempt, "event": ev.event,
                     "outcome": ev.outcome, "detail_json": canonical_json(detail),
                     "state_json": state_json if index == last else None}
            digest = entry_hash(head, entry)
            rows.append((*(entry[c] for c in _AUDIT_COLS[:-2]), head, digest))
            head = digest
        at_rest = live.status in AT_REST_SAGA
        common = (live.status.value, now, live.failed_step, live.error, live.rollback_started_at,
                  live.checkpoint, live.resumes, seq, head, pre_json,
                  # The end state and the lease release share one commit.
                  None if at_rest else live.lease_owner)
        fence = (None if at_rest else lease, 1 if live.consume_request else 0, live.id,
                 live.token, old_seq)
        sign = False
        sign_clock: float | None = None
        if rows and self.signer is not None:
            # An Ed25519 signature is a sizeable share of a commit's CPU: a running
            # saga is signed once per interval (its first interval counted from its
            # first commit here), and always in the commit that brings it to rest.
            now_mono = time.monotonic()
            since = live.signed_at
            sign = at_rest or self.sign_interval_s == 0 or (
                since is not None and now_mono - since >= self.sign_interval_s)
            sign_clock = now_mono if sign or since is None else None
        # The saga row goes first: a stale writer fails here, before anything else.
        if sign:
            cur.execute(self.saga_update_signed, (*common, *self._sign(live.id, seq, head),
                                                  *fence))
        else:
            cur.execute(self.saga_update, (*common, *fence))
        returned = cur.fetchone()
        if returned is None:
            raise LeaseLost(
                f"saga {live.id}: lease token {live.token} is no longer current (another "
                "worker took the saga over); this worker stops touching it",
                details={"saga": live.id, "token": live.token})
        if step_rows:
            cur.executemany(self.step_update, step_rows)
        if rows:
            cur.executemany(self.audit_insert, rows)
        escalation_id = None
        if escalation_row is not None:
            cur.execute(self.escalation_insert, escalation_row)
            escalation_id = cur.lastrowid if self.sqlite else cur.fetchone()[0]
        if rollback_row is not None:
            cur.execute(self.rollback_insert, rollback_row)
        for statement, params in live.rows:
            cur.execute(self.extra[statement], params)
        return Written(seq, head, int(escalation_id) if escalation_id is not None else None,
                       fields_json, at_rest, sign_clock, returned[0])

    def _input_scrubber(self, live: LiveSaga) -> Callable[[Any], Any]:
        paths = live.plan.redact_input
        if not paths:
            return lambda data: data
        mark = redaction_marker(self.redaction_key, live.id)
        return lambda data: redact(data, paths, mark)

    def _sign(self, saga_id: str, seq: int, head: str) -> tuple[str, str]:
        assert self.signer is not None
        try:
            signature = self.signer.sign(head_message(saga_id, seq, head))
        except Exception as exc:
            # The signer's own message is not repeated: a KMS client may quote credentials.
            raise StoreError(
                f"audit signing failed ({type(exc).__name__}); nothing of this commit was "
                "recorded; check the signing key or the key service", retryable=True,
            ) from None
        return self.signer.key_id, f"{seq}:{base64.b64encode(signature).decode()}"

    @staticmethod
    def committed(live: LiveSaga, written: Written) -> None:
        """Adopt the written state once the transaction has committed."""
        live.seq, live.head = written.seq, written.head
        live.audited = written.audited
        if written.signed_at is not None:
            live.signed_at = written.signed_at
        live.events.clear()
        live.rows.clear()
        adopt(live)
        for s in live.steps.values():
            s.dirty = False
        live.consume_request = False
        if written.rollback_request is not None:
            live.rollback_request = json.loads(written.rollback_request)


@dataclass(frozen=True, slots=True)
class Written:
    """What a committed write changed: the chain's new end, and an escalation id.

    Attributes:
        seq: Entries in the saga's chain now.
        head: The chain's head hash now.
        escalation_id: The escalation inserted, if any.
        audited: The saga fields recorded in the chain (canonical JSON).
        at_rest: The saga ended (or escalated) in this commit.
        signed_at: Monotonic time the saga's signing interval restarts from (set
            when this commit signed the head, or was the saga's first here).
        rollback_request: An operator's rollback request pending on the saga row
            (JSON), if any.
    """

    seq: int
    head: str
    escalation_id: int | None
    audited: str | None = None
    at_rest: bool = False
    signed_at: float | None = None
    rollback_request: str | None = None


def _scrubber(secret: Mapping[str, Any], mark: Any) -> Callable[[str, Any], Any]:
    """Redact a step's result as its row is redacted (identity when nothing is secret)."""
    if mark is None:
        return lambda step, value: value
    return lambda step, value: redact(value, secret[step], mark) if step in secret else value


def _redact_report(
    report: dict[str, Any], secret: dict[str, Any], mark: Any
) -> dict[str, Any]:
    # An escalation report lists each step's result: the same paths apply.
    steps = report.get("steps")
    if not isinstance(steps, list):
        return report
    out = []
    for item in steps:
        paths = secret.get(str(item.get("step"))) if isinstance(item, dict) else None
        if paths and "result" in item:
            item = {**item, "result": redact(item["result"], paths, mark)}
        out.append(item)
    return {**report, "steps": out}


def _insert(table: str, cols: tuple[str, ...], p: str) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"


def _dump(value: Any) -> str | None:
    return None if value is None else canonical_json(value)


def _rollback(raw: Any) -> bool:
    """Roll back; False when that failed too (the connection is then not reused)."""
    # A failed rollback leaves a broken connection that the pool discards anyway.
    try:
        raw.rollback()
    except Exception:
        return False
    return True
