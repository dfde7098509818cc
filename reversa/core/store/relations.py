"""What connects sagas in the store: resources, links, notes, SLA measurements.

Rows a saga's engine produces (the resources a step declared, the links it
found, its SLA measurements) ride in that saga's next fenced commit
(:func:`statements`, executed by the writer). Everything else here is read by
the engine, the worker's jobs and the Inspector, or appends to a chain the
caller does not own (:meth:`Relations.note`), which is only done while no
process holds that saga's lease; otherwise the entry waits in
``reversa_notes`` for the chain's owner to append it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, insert, or_, select, update

from ..audit import entry_hash
from ..canonical import canonical_json
from ..evidence.records import escalation_digest, saga_fields
from . import schema as t

if TYPE_CHECKING:
    from .store import Store

__all__ = ["HOLDING", "Relations", "statements"]

HOLDING = ("compensating", "escalated")
"""Saga statuses in which a saga holds the resources its steps declared."""
STANDING = ("completed", "compensating", "compensation_failed", "escalated", "running")
"""Step statuses whose effect stands (or may): a consumer of it depends on it."""
LIVE_OR_DONE = ("running", "compensating", "escalated", "completed")
"""Saga statuses whose effects may still stand."""


def statements(p: str) -> dict[str, str]:
    """The writer's statements for rows that share a saga's commit, and the one read it
    makes for every rollback (``p``: paramstyle)."""
    def ins(table: str, cols: tuple[str, ...]) -> str:
        return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([p] * len(cols))})"

    return {
        # Read, not written: whether a saga has waiting entries or dependents at all.
        "rollback_inputs": f"SELECT (SELECT COUNT(*) FROM reversa_notes WHERE saga_id = {p}), "
                           f"(SELECT COUNT(*) FROM reversa_links WHERE provider_saga = {p})",
        "resource": ins("reversa_resources", ("saga_id", "step", "kind", "rid", "rkey", "role",
                                              "created_at")),
        "link": ins("reversa_links", ("consumer_saga", "consumer_step", "provider_saga",
                                      "provider_step", "resource", "how", "reason",
                                      "created_at")),
        "sla_call": ins("reversa_sla_calls", (
            "endpoint", "saga_id", "step", "started_at", "duration_s", "ok", "available", "code",
            "promised_latency_s", "promised_availability")),
        "note_done": f"DELETE FROM reversa_notes WHERE id = {p}",
    }


class Relations:
    """Queries across sagas (one per :class:`~reversa.core.store.Store`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- resources and holds ---------------------------------------------------------
    def sharing(self, keys: Sequence[str], saga_id: str, *,
                completed_since: float) -> list[dict[str, Any]]:
        """Other sagas' declared uses of the resources ``keys``, where they may matter.

        A row per (saga, step, resource): the saga's status and open escalation,
        the step's status, and the role. Sagas that are running, rolling back or
        escalated always count; completed ones only if they ended after
        ``completed_since`` (links to older ones are not made).
        """
        r, s, st, e = t.resources.c, t.sagas.c, t.steps.c, t.escalations.c
        escalation = (select(e.id).where(e.saga_id == r.saga_id, e.status == "open",
                                         e.kind == "rollback")
                      .order_by(e.id.desc()).limit(1).scalar_subquery())
        query = (
            select(r.saga_id, r.step, r.rkey, r.role, s.status.label("saga_status"),
                   s.workflow, st.status.label("step_status"), escalation.label("escalation"))
            .join(t.sagas, s.id == r.saga_id)
            .join(t.steps, and_(st.saga_id == r.saga_id, st.name == r.step))
            .where(r.rkey.in_(list(keys)), r.saga_id != saga_id,
                   s.status.in_(LIVE_OR_DONE),
                   or_(s.status != "completed", s.updated_at >= completed_since))
            .distinct())
        with self.store._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def held(self, limit: int = 500) -> list[dict[str, Any]]:
        """Every resource held now: by whom, in what state, since when."""
        r, s = t.resources.c, t.sagas.c
        query = (select(r.rkey, r.saga_id, s.workflow, s.status, s.updated_at).distinct()
                 .join(t.sagas, s.id == r.saga_id).where(s.status.in_(HOLDING))
                 .order_by(r.rkey).limit(limit))
        with self.store._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def resources_of(self, saga_id: str) -> list[dict[str, Any]]:
        """The resources a saga's steps declared."""
        r = t.resources.c
        query = (select(r.step, r.kind, r.rid, r.rkey, r.role).distinct()
                 .where(r.saga_id == saga_id).order_by(r.step, r.rkey))
        with self.store._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def exists(self, saga_id: str) -> bool:
        """Whether a saga with this id is recorded."""
        s = t.sagas.c
        with self.store._tx() as conn:
            return conn.execute(select(s.id).where(s.id == saga_id)).first() is not None

    # -- links -----------------------------------------------------------------------
    def links(self, saga_id: str) -> list[dict[str, Any]]:
        """Links in which ``saga_id`` is the consumer or the provider, oldest first."""
        lk = t.links.c
        query = (select(t.links).where(or_(lk.consumer_saga == saga_id,
                                           lk.provider_saga == saga_id)).order_by(lk.id))
        with self.store._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    def dependents(self, provider: str) -> list[dict[str, Any]]:
        """Links whose provider is ``provider``, with the consumer's current state."""
        lk, s, st = t.links.c, t.sagas.c, t.steps.c
        query = (
            select(lk.id, lk.consumer_saga, lk.consumer_step, lk.provider_step, lk.resource,
                   lk.how, lk.reason, s.status.label("saga_status"), s.workflow,
                   st.status.label("step_status"), s.lease_owner, s.lease_expires_at)
            .join(t.sagas, s.id == lk.consumer_saga)
            .join(t.steps, and_(st.saga_id == lk.consumer_saga, st.name == lk.consumer_step))
            .where(lk.provider_saga == provider).order_by(lk.id))
        with self.store._tx() as conn:
            return [dict(row) for row in conn.execute(query).mappings().all()]

    # -- entries for chains the caller does not own ----------------------------------
    def note(self, saga_id: str, event: str, outcome: str, detail: dict[str, Any]) -> bool:
        """Append an entry to ``saga_id``'s chain, now if nobody holds its lease.

        A chain is only ever extended by the holder of its saga's lease (its
        sequence number fences every write). A saga at rest, or handed back,
        holds none: the entry is appended in this transaction, with the row
        locked. Otherwise it waits in ``reversa_notes``; the owner appends it
        when it next loads or rolls back the saga, and the worker's jobs append
        the waiting ones of sagas that have come to rest.

        Returns:
            True when appended now, False when left for the owner.
        """
        with self.store._tx(write=True) as conn:
            if self._append(conn, saga_id, [(event, outcome, detail)]):
                return True
            conn.execute(insert(t.notes).values(
                saga_id=saga_id, created_at=self.store._tx_now(conn), event=event,
                outcome=outcome, detail_json=canonical_json(detail)))
            return False

    def rollback_inputs(
        self, saga_id: str, *, notes: bool = True
    ) -> tuple[list[tuple[int, str, str, dict[str, Any]]], list[dict[str, Any]]]:
        """What a rollback reads before it starts, in one transaction.

        Returns the entries waiting for ``saga_id``'s chain (with ``notes``) and
        the links whose provider it is (as :meth:`dependents`). Every rollback
        asks, and almost every saga has neither: one indexed count answers that,
        so a plain rollback pays one small read, not two full queries.
        """
        # Two counts: always exactly one row.
        waiting, linked = self.store._writer.read_row(self.store.url, "rollback_inputs",
                                                      (saga_id, saga_id)) or (0, 0)
        if not waiting and not linked:
            return [], []
        return (self.waiting(saga_id) if notes and waiting else [],
                self.dependents(saga_id) if linked else [])

    def waiting(self, saga_id: str) -> list[tuple[int, str, str, dict[str, Any]]]:
        """Entries waiting for ``saga_id``'s owner: (id, event, outcome, detail)."""
        n = t.notes.c
        with self.store._tx() as conn:
            rows = conn.execute(select(n.id, n.event, n.outcome, n.detail_json)
                                .where(n.saga_id == saga_id).order_by(n.id)).all()
        return [(int(i), str(ev), str(out), json.loads(d)) for i, ev, out, d in rows]

    def flush_waiting(self, limit: int = 100) -> int:
        """Append waiting entries of sagas nobody holds now; returns how many."""
        n, s = t.notes.c, t.sagas.c
        with self.store._tx() as conn:
            sagas = [r[0] for r in conn.execute(
                select(n.saga_id).distinct().join(t.sagas, s.id == n.saga_id)
                .where(s.lease_owner.is_(None)).limit(limit)).all()]
        done = 0
        for sid in sagas:
            with self.store._tx(write=True) as conn:
                rows = conn.execute(select(n.id, n.event, n.outcome, n.detail_json)
                                    .where(n.saga_id == sid).order_by(n.id)).all()
                entries = [(str(ev), str(out), json.loads(d)) for _, ev, out, d in rows]
                if rows and self._append(conn, sid, entries):
                    conn.execute(delete(t.notes).where(n.id.in_([r[0] for r in rows])))
                    done += len(rows)
        return done

    def _append(self, conn: Connection, saga_id: str,
                entries: Iterable[tuple[str, str, dict[str, Any]]],
                escalation: tuple[int, dict[str, Any]] | None = None) -> bool:
        """Append ``entries`` to an unleased saga's chain in ``conn``'s transaction.

        Keeps the evidence whole: with ``escalation`` (an advisory escalation row
        inserted in this transaction), the last entry carries a state record with
        its digest, as the writer's entries do for the escalations it opens; the
        new head is signed when the store signs its audit record.
        """
        s = t.sagas.c
        query = select(s.lease_owner, s.audit_seq, s.audit_head, s.status, s.failed_step,
                       s.error, s.rollback_started_at, s.checkpoint, s.resumes,
                       s.pre_state_json).where(s.id == saga_id)
        if self.store.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None or row["lease_owner"] is not None:
            return False
        seq, head = int(row["audit_seq"]), str(row["audit_head"])
        now = self.store._tx_now(conn)
        first = seq
        items = list(entries)
        for index, (event, outcome, detail) in enumerate(items):
            seq += 1
            state_json = None
            if escalation is not None and index == len(items) - 1:
                number, opened = escalation
                state_json = canonical_json({"saga": saga_fields(dict(row)), "advisory": {
                    str(number): escalation_digest(opened)}})
            entry = {"saga_id": saga_id, "seq": seq, "ts": now, "step": None, "phase": "saga",
                     "attempt": 0, "event": event, "outcome": outcome,
                     "detail_json": canonical_json(detail), "state_json": state_json}
            digest = entry_hash(head, entry)
            conn.execute(insert(t.audit).values(**entry, prev_hash=head, hash=digest))
            head = digest
        values: dict[str, Any] = {"audit_seq": seq, "audit_head": head}
        if self.store.audit.signer is not None:
            values["audit_key"], values["audit_sig"] = self.store._writer._sign(
                saga_id, seq, head)
        done = conn.execute(update(t.sagas).where(s.id == saga_id, s.audit_seq == first,
                                                  s.lease_owner.is_(None))
                            .values(**values)).rowcount
        if done != 1:  # pragma: no cover - the row is locked (or the database is SQLite's)
            raise RuntimeError(f"saga {saga_id}: chain moved while appending a note")
        return True

    # -- advisory escalations --------------------------------------------------------
    def open_advisory(self, saga_id: str, kind: str, reason: str,
                      report: dict[str, Any]) -> int | None:
        """Open a ``kind`` escalation for ``saga_id`` unless one is open already.

        The escalation and its entry in the saga's chain (``<kind>_escalation``,
        with the escalation's digest in a state record) share one transaction
        when no process holds the saga's lease; otherwise the entry waits for
        the chain's owner (see :meth:`note`).

        Returns:
            The new escalation's id, or None when one of that kind was open.
        """
        e = t.escalations.c
        with self.store._tx(write=True) as conn:
            if conn.execute(select(e.id).where(e.saga_id == saga_id, e.kind == kind,
                                               e.status == "open")).first() is not None:
                return None
            row = {"saga_id": saga_id, "created_at": self.store._tx_now(conn),
                   "reason": reason, "report_json": canonical_json(report), "status": "open",
                   "kind": kind}
            key = conn.execute(insert(t.escalations).values(**row)).inserted_primary_key
            assert key is not None
            escalation_id = int(key[0])
            entry = (f"{kind}_escalation", "opened", {"escalation": escalation_id,
                                                      "kind": kind, "reason": reason})
            if not self._append(conn, saga_id, [entry], escalation=(escalation_id, row)):
                conn.execute(insert(t.notes).values(
                    saga_id=saga_id, created_at=row["created_at"], event=entry[0],
                    outcome=entry[1], detail_json=canonical_json(entry[2])))
            return escalation_id

    def close_advisory(self, escalation_id: int, resolution: str, author: str,
                       note: str) -> float | None:
        """Close an open advisory escalation and chain its resolution, atomically.

        The row and the ``escalation_resolved`` entry (with ``resolved_at``) share
        one transaction; the entry waits for the chain's owner if the saga is
        leased (see :meth:`note`).

        Returns:
            When it was resolved, or None if it was not open.
        """
        e = t.escalations.c
        with self.store._tx(write=True) as conn:
            found = conn.execute(select(e.saga_id, e.kind).where(
                e.id == escalation_id, e.status == "open", e.kind != "rollback")).first()
            if found is None:
                return None
            saga_id, kind = str(found[0]), str(found[1])
            now = self.store._tx_now(conn)
            conn.execute(update(t.escalations).where(e.id == escalation_id).values(
                status="resolved", resolution=resolution, resolved_by=author,
                resolved_at=now, note=note))
            entry = ("escalation_resolved", resolution, {
                "escalation": escalation_id, "kind": kind, "author": author, "note": note,
                "resolved_at": now})
            if not self._append(conn, saga_id, [entry]):
                conn.execute(insert(t.notes).values(
                    saga_id=saga_id, created_at=now, event=entry[0], outcome=entry[1],
                    detail_json=canonical_json(entry[2])))
            return now

    # -- SLA measurements ------------------------------------------------------------
    def sla_calls(self, since: float, endpoints: Sequence[str] | None = None
                  ) -> list[dict[str, Any]]:
        """Measured compensation calls since ``since``, oldest first."""
        c = t.sla_calls.c
        query = select(t.sla_calls).where(c.started_at >= since)
        if endpoints is not None:
            query = query.where(c.endpoint.in_(list(endpoints)))
        with self.store._tx() as conn:
            return [dict(r) for r in conn.execute(query.order_by(c.id)).mappings().all()]

    # -- candidates of the worker's jobs ---------------------------------------------
    def recent(self, statuses: Sequence[str], since: float, *, limit: int,
               live: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Sagas in ``statuses`` updated since ``since``, plus any in ``live``."""
        s = t.sagas.c
        cond = and_(s.status.in_(list(statuses)), s.updated_at >= since)
        if live:
            cond = or_(cond, s.status.in_(list(live)))
        query = (select(s.id, s.workflow, s.status, s.updated_at, s.rollback_started_at,
                        s.plan_json).where(cond).order_by(s.updated_at.desc()).limit(limit))
        with self.store._tx() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]
