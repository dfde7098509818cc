"""Sealing saga heads into signed, witnessed checkpoints.

A checkpoint appends to the log (``reversa_heads``) the current head of every
saga whose chain grew since it was last sealed, computes the RFC 6962 root of
the whole log, signs the statement and hands it to every witness. The log is
append-only and every root is kept outside the database, so a saga deleted
after it was sealed, or a database restored from an older copy, no longer
matches what the witnesses hold.

Checkpoints are taken by one :class:`Checkpointer` per store: shortly after a
saga ends (sagas ending within ``gap_s`` share one checkpoint), every
``interval_s`` while heads keep changing, and when the store closes. Several
processes on one database serialise on a database lock, so numbers never fork.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from ..redact import scrub
from ..store import schema as t
from ..store.engines import WRITE
from .merkle import Frontier, Tree, leaf_hash
from .records import leaf_data
from .signing import Signer
from .witness import Checkpoint, Witness, WitnessError

__all__ = ["Checkpointer", "InclusionProof", "Leaf", "load_leaves", "log_id", "prove"]

log = logging.getLogger("reversa.audit")

_LOCK_ID = 7263540002


@dataclass(frozen=True, slots=True)
class Leaf:
    """One sealed head in the checkpoint log."""

    idx: int
    saga_id: str
    seq: int
    head: str
    plan_hash: str
    checkpoint: int

    def hash(self) -> bytes:
        """Its RFC 6962 leaf hash."""
        return leaf_hash(leaf_data(self.saga_id, self.seq, self.head, self.plan_hash))


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A saga's head, proven to be in a signed checkpoint.

    Attributes:
        leaf: The sealed head.
        checkpoint: The signed checkpoint (its root covers the leaf).
        path: The RFC 6962 audit path, hex, nearest sibling first.
    """

    leaf: Leaf
    checkpoint: Checkpoint
    path: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``reversa audit proof``, exports)."""
        return {"leaf": {"index": self.leaf.idx, "saga": self.leaf.saga_id,
                         "seq": self.leaf.seq, "head": self.leaf.head,
                         "plan_hash": self.leaf.plan_hash},
                "checkpoint": json.loads(self.checkpoint.to_json()), "path": self.path}


def log_id(conn: Connection) -> str | None:
    """The database's checkpoint log id (None if the meta row is gone)."""
    value = conn.execute(select(t.audit_meta.c.value).where(
        t.audit_meta.c.name == "log_id")).scalar()
    return None if value is None else str(value)


def load_leaves(conn: Connection, below: int | None = None) -> list[Leaf]:
    """The log's leaves in order (those with ``idx < below`` only, if given)."""
    h = t.heads.c
    query = select(h.idx, h.saga_id, h.seq, h.head, h.plan_hash, h.checkpoint).order_by(h.idx)
    if below is not None:
        query = query.where(h.idx < below)
    return [Leaf(int(r[0]), r[1], int(r[2]), r[3], r[4], int(r[5]))
            for r in conn.execute(query).all()]


def prove(conn: Connection, saga_id: str) -> InclusionProof | None:
    """Inclusion proof of the saga's latest sealed head in the latest checkpoint."""
    last = conn.execute(select(t.checkpoints.c.statement_json).order_by(
        t.checkpoints.c.number.desc()).limit(1)).scalar()
    if last is None:
        return None
    checkpoint = Checkpoint.from_json(last)
    leaves = load_leaves(conn, checkpoint.size)
    mine = [leaf for leaf in leaves if leaf.saga_id == saga_id]
    if not mine:
        return None
    path = Tree([leaf.hash() for leaf in leaves]).proof(mine[-1].idx, checkpoint.size)
    return InclusionProof(mine[-1], checkpoint, [p.hex() for p in path])


class Checkpointer:
    """Seals heads into checkpoints and publishes them to the witnesses.

    Args:
        engine: The store's engine.
        now: The store's clock (checkpoint timestamps).
        signer: Signs each checkpoint.
        witnesses: Where checkpoints go (at least one).
        interval_s: Seal at least this often while heads change (None: only at
            saga ends and on :meth:`close`).
        gap_s: After a saga ends, seal within this delay; sagas ending close
            together share a checkpoint.
        background: Run the sealing thread (off: only explicit :meth:`seal`).
    """

    def __init__(
        self,
        engine: Engine,
        now: Callable[[], float],
        signer: Signer,
        witnesses: Sequence[Witness],
        *,
        interval_s: float | None = 60.0,
        gap_s: float = 1.0,
        background: bool = True,
    ) -> None:
        self.engine = engine
        self.now = now
        self.signer = signer
        self.witnesses = tuple(witnesses)
        self.interval_s = interval_s
        self.gap_s = gap_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last = 0.0
        self._thread: threading.Thread | None = None
        self.errors = 0
        """Background checkpoints that failed (logged; the next one retries)."""
        if background:
            self._thread = threading.Thread(target=self._loop, name="reversa-checkpoints",
                                            daemon=True)
            self._thread.start()
        _open.add(self)

    # -- triggers ---------------------------------------------------------------------
    def saga_ended(self) -> None:
        """A saga came to rest: seal within ``gap_s`` (from the committing thread: cheap)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.interval_s)
            if self._stop.is_set():
                return
            if woken:
                self._wake.clear()
                pause = self.gap_s - (time.monotonic() - self._last)
                if pause > 0 and self._stop.wait(pause):
                    return
            self._seal_logged()

    def _seal_logged(self) -> None:
        try:
            self.seal()
        except Exception as exc:  # the thread outlives one failure; the next seal retries
            self.errors += 1
            log.warning("audit checkpoint failed: %s", scrub(str(exc)))

    def close(self) -> None:
        """Stop the thread and seal what is left (the last heads of this process)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        _open.discard(self)
        self._seal_logged()

    # -- sealing ----------------------------------------------------------------------
    def seal(self) -> Checkpoint | None:
        """Seal every changed head into a new checkpoint, then publish.

        Returns:
            The new checkpoint, or None when no head changed (witnesses still
            receive any earlier checkpoint they lack).

        Raises:
            WitnessError: A witness refused or failed (the checkpoint stays in
                the database and is published by the next call).
        """
        with self._lock:
            made = self._seal_in_db()
            self._last = time.monotonic()
            self._publish()
            return made

    def _seal_in_db(self) -> Checkpoint | None:
        # Read the store clock first: on SQLite it opens its own connection, which
        # would wait on the lock this transaction is about to hold.
        ts = float(self.now())
        # A write transaction from its first statement (SQLite: BEGIN IMMEDIATE): a
        # deferred one reads, then fails to upgrade ("database is locked") when
        # another store committed meanwhile, instead of waiting its turn.
        with self.engine.connect().execution_options(**{WRITE: True}) as conn, conn.begin():
            if self.engine.dialect.name == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))
            log_name = log_id(conn)
            if log_name is None:
                raise WitnessError("the database has no checkpoint log id (reversa_audit_meta "
                                   "was emptied); nothing is sealed: investigate with "
                                   "`reversa audit verify`")
            c = t.checkpoints.c
            last = conn.execute(select(c.number, c.size, c.frontier_json, c.statement_json)
                                .order_by(c.number.desc()).limit(1)).first()
            pending = _pending(conn)
            if not pending:
                return None
            frontier = (Frontier() if last is None else
                        Frontier.from_json(int(last.size), json.loads(last.frontier_json)))
            number = 1 if last is None else int(last.number) + 1
            rows = []
            for saga_id, seq, head, plan_hash in pending:
                rows.append({"idx": frontier.size, "saga_id": saga_id, "seq": int(seq),
                             "head": head, "plan_hash": plan_hash, "checkpoint": number})
                frontier.append(leaf_hash(leaf_data(saga_id, int(seq), head, plan_hash)))
            conn.execute(t.heads.insert(), rows)
            prev = None if last is None else Checkpoint.from_json(last.statement_json).digest()
            made = Checkpoint(log_name, number, frontier.size, frontier.root().hex(),
                              ts, prev, self.signer.key_id,
                              self.signer.algorithm).signed(self.signer)
            conn.execute(t.checkpoints.insert().values(
                number=number, size=frontier.size, root=made.root, ts=made.ts,
                frontier_json=json.dumps(frontier.to_json()), statement_json=made.to_json()))
        return made

    def _publish(self) -> None:
        # Every witness receives, in order, each checkpoint it lacks: one that was
        # committed here but not published (a crash in between) goes out now. The
        # statements are read first: no database lock is held while a witness
        # (a remote directory, a chain) takes its time.
        with self.engine.connect() as conn:
            log_name = log_id(conn)
            if log_name is None:
                return
            top = conn.execute(select(func.max(t.checkpoints.c.number))).scalar() or 0
        lacking = [(w, w.latest(log_name)) for w in self.witnesses]
        lacking = [(w, have) for w, have in lacking if have < top]
        if not lacking:
            return
        oldest = min(have for _, have in lacking)
        with self.engine.connect() as conn:
            statements = [Checkpoint.from_json(text) for text in conn.execute(
                select(t.checkpoints.c.statement_json)
                .where(t.checkpoints.c.number > oldest)
                .order_by(t.checkpoints.c.number)).scalars()]
        for witness, have in lacking:
            for statement in statements:
                if statement.number > have:
                    witness.publish(statement)


def _pending(conn: Connection) -> list[tuple[str, int, str, str]]:
    s, h = t.sagas.c, t.heads.c
    sealed = (select(h.saga_id.label("saga_id"), func.max(h.seq).label("seq"))
              .group_by(h.saga_id).subquery())
    query = (select(s.id, s.audit_seq, s.audit_head, s.plan_hash)
             .select_from(t.sagas.outerjoin(sealed, sealed.c.saga_id == s.id))
             .where(s.audit_seq > 0, (sealed.c.seq.is_(None)) | (sealed.c.seq < s.audit_seq))
             .order_by(s.created_at, s.id))
    return [(r[0], int(r[1]), r[2], r[3]) for r in conn.execute(query).all()]


_open: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


@atexit.register
def _seal_at_exit() -> None:
    # A command that ends without closing its store still seals its last heads.
    for checkpointer in list(_open):
        checkpointer.close()
