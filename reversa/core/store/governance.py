"""Approval and outbox rows, written in the same commit as the saga state they go with.

An approval, a decision on one, and the notification announcing either are
*side writes*: queued on the saga (``LiveSaga.side``) and applied inside that
saga's fenced write, so the approval row, the audit entries that record it,
the saga's transition and the outbox row commit together or not at all.
Decisions are optimistic: a decision carries the version it was made on, and a
concurrent one makes the whole commit fail instead of overwriting it.

Everything here runs on the writer's DB-API cursor (fixed SQL, the driver's
own parameter style), like the rest of the saga write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json
from ..context import idempotency_key
from ..errors import ConfigError, LeaseLost, NotFound
from ..live import AuditEvent

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "DecideApproval",
    "NewApproval",
    "Notify",
    "approval_row",
    "flag_rollback",
    "outbox_key",
    "side_transaction",
]

_APPROVAL_COLS = ("kind", "status", "saga_id", "workflow", "requested_by", "requested_at",
                  "reason", "payload_json", "decisions_json", "required", "version")
_OUTBOX_COLS = ("event", "saga_id", "workflow", "payload_json", "idempotency_key",
                "created_at", "attempts", "next_attempt_at", "delivered_to")


def outbox_key(event: str, saga_id: str, ref: int | str) -> str:
    """The idempotency key of one notification: the same on every re-send.

    Built by the one key function, so saga ids with separators never collide.
    """
    return idempotency_key(saga_id, event, str(ref))


class _Sql:
    def __init__(self, sqlite: bool) -> None:
        p = "?" if sqlite else "%s"
        cols = ", ".join(_APPROVAL_COLS)
        self.insert_approval = (f"INSERT INTO reversa_approvals ({cols}) VALUES "
                                f"({', '.join([p] * len(_APPROVAL_COLS))}) RETURNING id")
        self.decide = (f"UPDATE reversa_approvals SET status = {p}, decisions_json = {p}, "
                       f"decided_at = {p}, outcome = {p}, version = version + 1 "
                       f"WHERE id = {p} AND version = {p}")
        self.insert_outbox = (f"INSERT INTO reversa_outbox ({', '.join(_OUTBOX_COLS)}) VALUES "
                              f"({', '.join([p] * len(_OUTBOX_COLS))})")
        self.flag = (f"UPDATE reversa_sagas SET rollback_requested = {p} WHERE id = {p} AND "
                     f"status = {p} AND rollback_requested IS NULL")
        self.saga = f"SELECT status, rollback_requested FROM reversa_sagas WHERE id = {p}"


_SQL = {True: _Sql(True), False: _Sql(False)}


def sql_for(cur_is_sqlite: bool) -> _Sql:
    """The statements in the driver's parameter style."""
    return _SQL[cur_is_sqlite]


@dataclass
class Notify:
    """A notification to queue in the outbox (same commit as its event)."""

    event: str
    saga_id: str
    workflow: str
    ref: int | str
    data: dict[str, Any]

    def apply(self, cur: Any, sqlite: bool, now: float) -> None:
        """Insert the outbox row."""
        key = outbox_key(self.event, self.saga_id, self.ref)
        body = {"event": self.event, "idempotency_key": key, "saga_id": self.saga_id,
                "workflow": self.workflow, "at": now, "data": self.data}
        cur.execute(sql_for(sqlite).insert_outbox, (
            self.event, self.saga_id, self.workflow, canonical_json(body), key, now, 0, now,
            "[]"))


@dataclass
class NewApproval:
    """A pending approval to insert; its id is written into ``events`` before they are hashed."""

    kind: str
    saga_id: str
    workflow: str
    requested_by: str
    reason: str
    payload: dict[str, Any]
    required: int
    events: list[AuditEvent] = field(default_factory=list)
    id: int | None = None

    def apply(self, cur: Any, sqlite: bool, now: float) -> None:
        """Insert the row, stamp its id on the audit events, queue ``approval.requested``."""
        cur.execute(sql_for(sqlite).insert_approval, (
            self.kind, "pending", self.saga_id, self.workflow, self.requested_by, now,
            self.reason, canonical_json(self.payload), "[]", self.required, 0))
        self.id = int(cur.fetchone()[0])
        for event in self.events:
            event.detail["approval"] = self.id
        Notify("approval.requested", self.saga_id, self.workflow, self.id, {
            "approval": self.id, "kind": self.kind, "requested_by": self.requested_by,
            "reason": self.reason, "required": self.required, "payload": self.payload,
        }).apply(cur, sqlite, now)


@dataclass
class DecideApproval:
    """A decision on an approval (and its new status), refused if another came first."""

    approval_id: int
    version: int
    saga_id: str
    workflow: str
    kind: str
    status: str
    decisions: list[dict[str, Any]]
    decided: bool
    outcome: str | None = None

    def apply(self, cur: Any, sqlite: bool, now: float) -> None:
        """Update the row; queue ``approval.decided`` when it stops being pending.

        Raises:
            LeaseLost: Someone decided on it meanwhile; nothing is recorded.
        """
        cur.execute(sql_for(sqlite).decide, (
            self.status, canonical_json(self.decisions), now if self.decided else None,
            self.outcome, self.approval_id, self.version))
        if cur.rowcount != 1:
            raise LeaseLost(
                f"approval #{self.approval_id} was decided by someone else meanwhile; nothing "
                "of this decision was recorded: look at it again with `reversa approvals list`",
                details={"approval": self.approval_id})
        if self.decided:
            last = self.decisions[-1] if self.decisions else {}
            # Keyed by status too: a start is first approved, then executed.
            ref = f"{self.approval_id}.{self.status}"
            Notify("approval.decided", self.saga_id, self.workflow, ref, {
                "approval": self.approval_id, "kind": self.kind, "status": self.status,
                "by": last.get("by"), "verdict": last.get("verdict"), "note": last.get("note"),
                "outcome": self.outcome,
            }).apply(cur, sqlite, now)


def apply_side(cur: Any, sqlite: bool, side: list[Any], now: float, *, first: bool) -> None:
    """Apply queued side writes: new approvals ``first`` (before the audit entries are
    hashed, which carry their ids), then decisions and notifications."""
    for item in side:
        if isinstance(item, NewApproval) is first:
            item.apply(cur, sqlite, now)


@contextmanager
def side_transaction(store: Store) -> Iterator[tuple[Any, bool, float]]:
    """A write transaction on the writer's cursor, with the store's clock."""
    with store._writer.transaction(store.url) as cur:
        yield cur, store.dialect == "sqlite", store.now()


def flag_rollback(store: Store, saga_id: str, request: dict[str, Any],
                  approval: NewApproval | None) -> str:
    """Flag a running saga for rollback by its owner; returns the status it has.

    The flag (and the approval the rollback waits for, if any) commit together,
    only while the saga is ``running``: any other status is returned unchanged
    for the caller to act on.

    Raises:
        ConfigError: A rollback of it is already requested.
    """
    with side_transaction(store) as (cur, sqlite, now):
        sql = sql_for(sqlite)
        cur.execute(sql.saga if sqlite else sql.saga + " FOR UPDATE", (saga_id,))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no saga {saga_id!r} in {store.url}; list them with "
                           "`reversa sagas list`")
        status, flagged = row
        if status != "running":
            return str(status)
        if flagged is not None:
            raise ConfigError(f"a rollback of saga {saga_id} is already requested "
                              f"({flagged}); its owner rolls it back at its next step boundary")
        if approval is not None:
            approval.apply(cur, sqlite, now)
            request["approval"] = approval.id
        cur.execute(sql.flag, (canonical_json({**request, "at": now}), saga_id, "running"))
        return "flagged"


def decide_alone(store: Store, decision: DecideApproval) -> None:
    """Record a decision on its own (its saga is held by a live owner, who records
    it in the chain when it acts on the rollback request)."""
    with side_transaction(store) as (cur, sqlite, now):
        decision.apply(cur, sqlite, now)


def approval_row(store: Store, approval_id: int) -> dict[str, Any]:
    """The raw row of one approval.

    Raises:
        NotFound: No approval with that id.
    """
    rows = store.rows("approvals", id=approval_id)
    if not rows:
        raise NotFound(f"no approval #{approval_id} in {store.url}; list them with "
                       "`reversa approvals list`")
    return rows[0]
