"""Verify a whole store: every saga, the checkpoint log, and what the witnesses hold.

Per saga (see :mod:`.crosscheck`): the chain recomputes; the saga, step,
rollback and escalation rows and the input match the chain's state records;
the head is signed by a known key. Across sagas: every sealed head in the log
still exists with the same plan and chain prefix (a deleted saga, a truncated
or rewritten chain, a replaced plan are named); the log hashes to every root a
witness holds (a deleted or edited leaf is named); and the database is not
behind its witness (a restored older copy is named).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from ..audit import AuditProblem, AuditReport
from ..errors import NotFound
from ..store import schema as t
from .checkpoints import Leaf, load_leaves, log_id
from .crosscheck import SagaRecord, check_saga
from .merkle import Frontier
from .signing import Verifier
from .witness import Checkpoint, Witness, Witnessed, WitnessError

__all__ = ["Facts", "check_leaves", "check_witnessed", "load_records", "snapshot",
           "verify_store"]

_CHUNK = 200


@dataclass
class Facts:
    """What the log checks need to know of one saga."""

    plan_hash: str
    seq: int
    hashes: dict[int, str] = field(default_factory=dict)


def verify_store(
    store: Any,
    *,
    saga_id: str | None = None,
    verifiers: Iterable[Verifier] | None = None,
    witnesses: Sequence[Witness] = (),
) -> AuditReport:
    """Verify everything stored (or one saga) and name every problem found.

    Args:
        store: The :class:`~reversa.core.store.Store`.
        saga_id: Verify this saga only (the log checks are limited to it).
        verifiers: Public keys (or HMAC keys); None skips signature checks.
        witnesses: Witnesses to compare the checkpoint log with.

    Raises:
        NotFound: ``saga_id`` names no saga.
    """
    keys = None if verifiers is None else {v.key_id: v for v in verifiers}
    problems: list[AuditProblem] = []
    notes: list[str] = []
    checked = ["hash chains", "tables against the chains (input, saga, steps, rollbacks, "
               "escalations)"]
    with snapshot(store) as conn:
        leaves = load_leaves(conn)
        needed: dict[str, set[int]] = {}
        for leaf in leaves:
            needed.setdefault(leaf.saga_id, set()).add(leaf.seq)
        s = t.sagas.c
        query = select(t.sagas).order_by(s.created_at, s.id)
        if saga_id is not None:
            query = query.where(s.id == saga_id)
        sagas = [dict(r) for r in conn.execute(query).mappings().all()]
        if saga_id is not None and not sagas:
            raise NotFound(f"no saga {saga_id!r} in {store.url}")
        facts: dict[str, Facts] = {}
        entries = 0
        for start in range(0, len(sagas), _CHUNK):
            for rec in load_records(conn, sagas[start:start + _CHUNK]):
                entries += len(rec.entries)
                problems.extend(check_saga(rec, keys, notes))
                want = needed.get(rec.row["id"], set())
                facts[rec.row["id"]] = Facts(
                    rec.row["plan_hash"], int(rec.row["audit_seq"]),
                    {int(e["seq"]): e["hash"] for e in rec.entries if int(e["seq"]) in want})
        if saga_id is None:
            problems.extend(_orphans(conn, {r["id"] for r in sagas}))
        else:
            leaves = [leaf for leaf in leaves if leaf.saga_id == saga_id]
        problems.extend(check_leaves(leaves, facts))
        if leaves:
            checked.append(f"{len(leaves)} sealed head(s) in the checkpoint log")
        if saga_id is None:
            problems.extend(_against_witnesses(conn, witnesses, keys, checked, notes))
    if keys is not None:
        checked.append("head signatures (keys " + ", ".join(sorted(keys)) + ")")
    else:
        notes.append("signatures not checked: pass the public key (--pubkey) to detect a "
                     "rewritten and re-chained record")
    if not witnesses:
        notes.append("no witness given: a deleted saga or a restored database is detected "
                     "only against a witness (--witness DIR)")
    problems.sort(key=lambda p: _RANK.get(p.kind, 1))
    return AuditReport(ok=not problems, sagas=len(sagas), entries=entries, problems=problems,
                       checked=checked, notes=notes)


# What broke first in the story of an attack is named first: the chain or the
# log, then the tables, then the signatures that merely confirm it.
_RANK = {"unsigned": 2, "bad_signature": 2, "unknown_key": 2, "witness_invalid": 3,
         **dict.fromkeys(("edited", "deleted", "inserted", "reordered", "truncated",
                          "plan_edited", "rechained", "plan_replaced", "saga_deleted",
                          "restored", "log_edited"), 0)}


@contextmanager
def snapshot(store: Any) -> Iterator[Connection]:
    """A read transaction over one consistent view of the store."""
    # One consistent view for the whole verification: on PostgreSQL a
    # repeatable-read transaction (live writers would otherwise move the tables
    # between the queries); on SQLite the store's transactions already are.
    conn: Connection = store.engine.connect()
    try:
        if store.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.begin()
        yield conn
        conn.rollback()  # read-only: nothing to commit
    finally:
        conn.close()


def load_records(conn: Connection, sagas: list[dict[str, Any]]) -> list[SagaRecord]:
    """The rows of these sagas (steps, rollbacks, escalations, entries), in order."""
    ids = [r["id"] for r in sagas]
    by_id = {r["id"]: SagaRecord(row=r) for r in sagas}
    for table, attr, order in ((t.steps, "steps", t.steps.c.position),
                               (t.rollbacks, "rollbacks", t.rollbacks.c.id),
                               (t.escalations, "escalations", t.escalations.c.id),
                               (t.audit, "entries", t.audit.c.id)):
        query = select(table).where(table.c.saga_id.in_(ids)).order_by(order)
        for row in conn.execute(query).mappings():
            getattr(by_id[row["saga_id"]], attr).append(dict(row))
    return list(by_id.values())


def _orphans(conn: Connection, known: set[str]) -> list[AuditProblem]:
    out = []
    for table, what in ((t.audit, "log entries"), (t.steps, "step rows"),
                        (t.rollbacks, "rollback records"), (t.escalations, "escalations")):
        rows = conn.execute(select(table.c.saga_id, func.count()).group_by(table.c.saga_id)).all()
        for sid, count in rows:
            if sid not in known:
                first = None
                if table is t.audit:
                    first = conn.execute(select(func.min(t.audit.c.id)).where(
                        t.audit.c.saga_id == sid)).scalar()
                out.append(AuditProblem(
                    sid, "deleted", None, None if first is None else int(first),
                    f"{count} {what} exist for saga {sid} whose record was deleted"))
    return out


def check_leaves(leaves: Sequence[Leaf], facts: Mapping[str, Facts]) -> list[AuditProblem]:
    """Every sealed head must still be a prefix of its saga's chain, under the same plan."""
    out: list[AuditProblem] = []
    named: set[str] = set()
    for leaf in leaves:
        sid = leaf.saga_id
        if sid in named:
            continue
        have = facts.get(sid)
        where = f"checkpoint #{leaf.checkpoint} sealed its entry #{leaf.seq}"
        if have is None:
            problem = AuditProblem(sid, "saga_deleted", None, None,
                                   f"saga {sid} is gone from the database but {where}: the "
                                   "saga was deleted")
        elif have.plan_hash != leaf.plan_hash:
            problem = AuditProblem(sid, "plan_replaced", None, None,
                                   f"saga {sid}: its plan hash is {have.plan_hash[:16]}… but "
                                   f"{where} under plan {leaf.plan_hash[:16]}…: the plan was "
                                   "replaced and the chain recomputed")
        elif have.seq < leaf.seq:
            problem = AuditProblem(sid, "truncated", have.seq + 1, None,
                                   f"saga {sid}: its chain has {have.seq} entries but {where}: "
                                   "entries were removed from the end (and the head moved back)")
        elif have.hashes.get(leaf.seq) != leaf.head:
            problem = AuditProblem(sid, "rechained", leaf.seq, None,
                                   f"saga {sid}: its entry #{leaf.seq} hashes to "
                                   f"{str(have.hashes.get(leaf.seq))[:16]}… but {where} as "
                                   f"{leaf.head[:16]}…: entries were edited and the chain "
                                   "recomputed")
        else:
            continue
        named.add(sid)
        out.append(problem)
    return out


def _against_witnesses(
    conn: Connection,
    witnesses: Sequence[Witness],
    keys: Mapping[str, Verifier] | None,
    checked: list[str],
    notes: list[str],
) -> list[AuditProblem]:
    if not witnesses:
        return []
    name = log_id(conn)
    if name is None:
        return [AuditProblem("", "log_edited", None, None,
                             "the database's checkpoint log id is gone (reversa_audit_meta "
                             "was emptied): it cannot be matched with its witness")]
    stored = [Checkpoint.from_json(text) for text in conn.execute(
        select(t.checkpoints.c.statement_json).order_by(t.checkpoints.c.number)).scalars()]
    leaves = load_leaves(conn)
    out: list[AuditProblem] = []
    for witness in witnesses:
        try:
            held = list(witness.read(name))
        except WitnessError as exc:
            out.append(AuditProblem("", "witness_invalid", None, None, exc.message))
            continue
        if not held:
            others: list[str] = getattr(witness, "logs", list)()
            out.append(AuditProblem(
                "", "restored" if stored else "witness_invalid", None, None,
                f"witness {witness.name} holds no checkpoint of this database (log {name})"
                + (f" but holds log(s) {', '.join(others)}: the database's log id was changed "
                   "or this is another database" if others else
                   ": it was never witnessed, or the witness is not this database's")))
            continue
        out.extend(check_witnessed(held, stored, leaves, keys))
        checked.append(f"{len(held)} checkpoint(s) held by {witness.name}")
    unwitnessed = [c.number for c in stored
                   if all(c.number > w.latest(name) for w in witnesses)]
    if unwitnessed:
        notes.append(f"checkpoint(s) {unwitnessed} are in the database but not yet at any "
                     "witness (published by the next checkpoint)")
    return out


def check_witnessed(
    held: Sequence[Witnessed],
    stored: Sequence[Checkpoint],
    leaves: Sequence[Leaf],
    keys: Mapping[str, Verifier] | None,
) -> list[AuditProblem]:
    """Compare one witness's checkpoints with the database's log and checkpoints."""
    out: list[AuditProblem] = []

    def bad(kind: str, message: str) -> None:
        out.append(AuditProblem("", kind, None, None, message))

    source = held[0].source
    prev_digest: str | None = None
    for index, item in enumerate(held, start=1):
        if item.number != index:
            bad("witness_invalid", f"witness {source}: checkpoint #{index} is missing (the "
                f"next held is #{item.number}): a witness file was removed")
            break
        st = item.statement
        if st is not None:
            if st.prev != prev_digest:
                bad("witness_invalid", f"witness {source}: checkpoint #{index} does not chain "
                    "to the one before it")
            if keys is not None:
                verifier = keys.get(st.key)
                if verifier is None or not st.verify(verifier):
                    bad("witness_invalid", f"witness {source}: checkpoint #{index} is not "
                        f"signed by a given key (signed by {st.key})")
        prev_digest = item.digest
    by_number = {c.number: c for c in stored}
    top_db = max(by_number, default=0)
    top_held = held[-1]
    for item in held:
        mine = by_number.get(item.number)
        if mine is not None and mine.digest() != item.digest:
            bad("restored", f"the database's checkpoint #{item.number} differs from the one "
                f"{source} holds: the database was restored from an older copy (or forked) "
                "and written to since")
            return out
    if top_db < top_held.number:
        bad("restored", f"{source} holds checkpoint #{top_held.number} ({top_held.size} sealed "
            f"heads) but the database's last is #{top_db} ({len(leaves)} heads): the database "
            "was restored from an older copy")
        return out
    frontier = Frontier()
    expected = {item.size: item for item in held}
    biggest = max(expected)
    for leaf in leaves[:biggest]:
        if leaf.idx != frontier.size:
            bad("log_edited", f"the checkpoint log skips from leaf {frontier.size - 1} to "
                f"{leaf.idx}: sealed heads were deleted")
            return out
        frontier.append(leaf.hash())
        sealed = expected.get(frontier.size)
        if sealed is not None and frontier.root().hex() != sealed.root:
            bad("log_edited", f"the checkpoint log no longer hashes to the root of "
                f"checkpoint #{sealed.number} held by {source}: sealed heads were deleted, "
                "reordered or edited")
            return out
    if frontier.size < biggest:
        bad("log_edited", f"{source} holds checkpoint #{expected[biggest].number} over "
            f"{biggest} sealed heads but the database's log has {frontier.size}: sealed heads "
            "were deleted")
    return out
