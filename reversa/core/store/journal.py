"""The effect journal: write-ahead records of what operations sent, in the saga store.

An operation that must remember an effect before making it (the EVM adapter
journals each signed transaction before broadcasting it) writes it here, so a
probe, block or compensation in any process, on any host that reaches the same
database, finds it by key after a crash. Each write commits at once and is
fenced: it succeeds only while the writer still holds the saga's lease, so a
former owner that lost the lease cannot journal, and therefore cannot send.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ..canonical import canonical_json
from ..context import JournalRecord
from ..errors import Fenced, LeaseLost
from . import schema as t

if TYPE_CHECKING:
    from .store import Store

__all__ = ["TOMBSTONE", "StoreJournal"]

_AT_REST = frozenset({"completed", "compensated", "failed", "resolved"})

TOMBSTONE = "tombstone"
"""``kind`` of a record that blocks its key: nothing may be journaled under it."""


class StoreJournal:
    """:class:`~reversa.core.context.EffectJournal` of one saga, fenced by its lease token."""

    def __init__(self, store: Store, saga_id: str, token: int) -> None:
        self.store = store
        self.saga_id = saga_id
        self.token = token

    def get(self, key: str) -> JournalRecord | None:
        """The record stored under ``key`` (by any saga), if any; None for a tombstone."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(t.journal).where(t.journal.c.key == key)).mappings().first()
        return None if row is None or row["kind"] == TOMBSTONE else _record(row)

    def put(self, record: JournalRecord) -> None:
        """Insert or replace ``record``; committed before returning.

        Raises:
            LeaseLost: The saga's lease token moved on: this process lost it.
        """
        with self.store._tx(write=True) as conn:
            self._fence(conn, record.key)
            existing = conn.execute(select(t.journal.c.kind).where(
                t.journal.c.key == record.key)).scalar()
            if existing == TOMBSTONE:
                raise Fenced(
                    f"journal key {record.key} was blocked by a rollback that recorded its effect "
                    "as never happened; the effect must not be sent now", code="key_blocked",
                    details={"key": record.key})
            self._upsert(conn, record, exists=existing is not None)

    def block(self, key: str) -> JournalRecord | None:
        """Atomically: return the record under ``key``, or tombstone the key.

        After a tombstone, :meth:`put` under that key fails, so an operation that
        journals before it sends (as it must) can no longer send that effect,
        whichever process or thread tries. This is the journal's half of an
        operation's ``block`` hook.

        Raises:
            LeaseLost: This process no longer holds the saga's lease.
        """
        with self.store._tx(write=True) as conn:
            self._fence(conn, key)
            row = conn.execute(select(t.journal).where(t.journal.c.key == key)).mappings().first()
            if row is not None and row["kind"] != TOMBSTONE:
                return _record(row)
            if row is None:
                self._upsert(conn, JournalRecord(key, TOMBSTONE, "", None, False, {}),
                             exists=False)
        return None

    def _fence(self, conn: Any, key: str) -> None:
        # The fence and the write share one transaction: lock the saga row.
        sagas = t.sagas.c
        fence = select(sagas.lease_token, sagas.status).where(sagas.id == self.saga_id)
        if self.store.dialect == "postgresql":
            fence = fence.with_for_update()
        row = conn.execute(fence).first()
        current, status = (None, None) if row is None else (row[0], row[1])
        if status in _AT_REST:
            # A saga at rest sends nothing: its record is final.
            raise LeaseLost(
                f"saga {self.saga_id} is {status}; journal write of {key!r} refused, so the "
                "effect it records must not be sent", details={"saga": self.saga_id})
        if current != self.token:
            raise LeaseLost(
                f"saga {self.saga_id}: lease token {self.token} is no longer current "
                f"(now {current}); journal write of {key!r} refused, so the effect it records "
                "must not be sent", details={"saga": self.saga_id})

    def _upsert(self, conn: Any, record: JournalRecord, *, exists: bool) -> None:
        now = time.time()
        values: dict[str, Any] = {
            "saga_id": self.saga_id, "kind": record.kind, "ref": record.ref, "seq": record.seq,
            "active": record.active, "data_json": canonical_json(dict(record.data)),
            "token": self.token, "updated_at": now}
        if exists:
            conn.execute(t.journal.update().where(t.journal.c.key == record.key)
                         .values(**values))
        else:
            conn.execute(t.journal.insert().values(key=record.key, created_at=now, **values))

    def max_seq(self, kind: str, ref: str) -> int | None:
        """Highest ``seq`` of active records of ``kind`` for ``ref``, across all sagas."""
        j = t.journal.c
        with self.store.engine.connect() as conn:
            value = conn.execute(select(func.max(j.seq)).where(
                j.kind == kind, j.ref == ref, j.active.is_(True))).scalar()
        return None if value is None else int(value)


def _record(row: Any) -> JournalRecord:
    return JournalRecord(key=row["key"], kind=row["kind"], ref=row["ref"], seq=row["seq"],
                         active=bool(row["active"]), data=json.loads(row["data_json"]))
