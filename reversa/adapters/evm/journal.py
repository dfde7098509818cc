"""Write-ahead records of signed transactions, kept in the saga store's effect journal.

A transaction is journaled *before* it is broadcast, under the key of the step
call that sends it plus a label (``<action key>/swap``). The journal is the
saga store's own (:class:`~reversa.core.context.EffectJournal`, reached through
``ctx.require_journal()``): after a crash, a worker in another process, on
another host, finds the exact transaction a step sent (hash, nonce, raw bytes)
in the same database as the saga, instead of guessing from the chain.

Journal writes are fenced by the saga's lease, so a process that lost the lease
cannot journal a transaction, and since nothing is broadcast unjournaled, it
cannot broadcast one either. Raw signed transactions are public data once
broadcast; no key material is ever written here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from reversa.core.clock import Clock
from reversa.core.context import EffectJournal, Fence, JournalRecord, StepContext

if TYPE_CHECKING:
    from reversa.core.store import Store

__all__ = ["TX_KIND", "TxJournal", "TxRecord", "TxScope", "saga_transactions", "slot_key"]

TX_KIND = "evm.tx"
"""``kind`` of the journal records holding transactions."""


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One signed transaction and how it was sent.

    Attributes:
        key: Journal key: the step call's idempotency key plus a label
            (``rv:...:action/swap``).
        sender: Sending address.
        nonce: Its nonce.
        hash: Transaction hash.
        raw: Raw signed transaction, hex.
        kind: What it does (see :data:`~reversa.adapters.evm.policy.TxKind`).
        to: Destination address.
        gas: Gas limit.
        max_fee: ``maxFeePerGas`` in wei.
        tip: ``maxPriorityFeePerGas`` in wei.
        route: ``public`` or ``private`` (the route last used).
        replaces: Hash of the transaction this one replaces (cancellations).
        rejected: The node refused it outright; its nonce is free again.
    """

    key: str
    sender: str
    nonce: int
    hash: str
    raw: str
    kind: str
    to: str
    gas: int
    max_fee: int
    tip: int
    route: str = "public"
    replaces: str | None = None
    rejected: bool = False

    def to_journal(self) -> JournalRecord:
        """The effect-journal form: ``ref`` is the sender, ``seq`` the nonce."""
        data = asdict(self)
        del data["key"]
        return JournalRecord(key=self.key, kind=TX_KIND, ref=self.sender.lower(),
                             seq=self.nonce, active=not self.rejected, data=data)

    @classmethod
    def from_journal(cls, record: JournalRecord) -> TxRecord:
        """Inverse of :meth:`to_journal`."""
        known = {f.name for f in fields(cls)}
        data: dict[str, Any] = {k: v for k, v in record.data.items() if k in known}
        return cls(key=record.key, **{**data, "rejected": not record.active})


def slot_key(key: str, attempt: int) -> str:
    """Journal key of the ``attempt``-th signing under ``key`` (``key``, ``key~2``...).

    A transaction the node refused outright keeps its slot (marked refused);
    the next signing under the same key takes the next slot. So no slot is
    ever signed twice, and a rollback can block every slot a late request
    could still use.
    """
    return key if attempt == 1 else f"{key}~{attempt}"


class TxJournal:
    """The transactions view of a saga's effect journal.

    Args:
        journal: The effect journal from the step's context
            (``ctx.require_journal()``).
    """

    def __init__(self, journal: EffectJournal) -> None:
        self._journal = journal

    def get(self, key: str) -> TxRecord | None:
        """The transaction journaled under ``key`` (by any saga), if any."""
        return _tx(self._journal.get(key))

    def find(self, key: str) -> tuple[TxRecord | None, str, TxRecord | None]:
        """The live transaction under ``key``, the slot to sign in, and the last refused one.

        The live transaction is the one in the first slot not refused; None
        when that slot is empty (or tombstoned: signing there then fails).
        """
        refused: TxRecord | None = None
        attempt = 1
        while (record := self.get(slot_key(key, attempt))) is not None and record.rejected:
            refused = record
            attempt += 1
        return record, slot_key(key, attempt), refused

    def current(self, key: str) -> TxRecord | None:
        """The live transaction under ``key`` (see :meth:`find`), if any."""
        return self.find(key)[0]

    def put(self, record: TxRecord) -> None:
        """Insert or replace ``record``; durable before it returns.

        Raises:
            LeaseLost: This process lost the saga's lease: do not broadcast.
            Fenced: The key was blocked by a rollback: do not broadcast.
        """
        self._journal.put(record.to_journal())

    def block(self, key: str) -> TxRecord | None:
        """Atomically: the transaction journaled under ``key``, or a tombstone on the key.

        After a tombstone nothing can be journaled, hence nothing broadcast,
        under ``key``, by any process.
        """
        return _tx(self._journal.block(key))

    def highest_nonce(self, sender: str) -> int | None:
        """Highest nonce journaled for ``sender`` and not refused, across all sagas."""
        return self._journal.max_seq(TX_KIND, sender.lower())


def saga_transactions(store: Store, saga_id: str) -> list[TxRecord]:
    """Every transaction ``saga_id`` journaled, oldest first (read-only: for reports and tests).

    Cancellations sent by the saga's rollback are included (kind ``cancel``,
    ``replaces`` naming the original).
    """
    rows = sorted(store.rows("journal", saga_id=saga_id, kind=TX_KIND),
                  key=lambda row: (row["created_at"], row["key"]))
    return [TxRecord.from_journal(JournalRecord(
        key=row["key"], kind=row["kind"], ref=row["ref"], seq=row["seq"],
        active=bool(row["active"]), data=json.loads(row["data_json"]))) for row in rows]


def _tx(record: JournalRecord | None) -> TxRecord | None:
    if record is None or record.kind != TX_KIND:
        return None
    return TxRecord.from_journal(record)


@dataclass(frozen=True, slots=True)
class TxScope:
    """What one step call lends the wallet: its journal, clock, deadline and fence.

    Attributes:
        journal: The saga's transaction journal.
        clock: The engine's clock (waiting uses its sleep).
        deadline: Absolute clock time to give up waiting (then ``OutcomeUnknown``).
        fence: The saga's fencing token, sent to endpoints that can check it
            (the private relay); None outside a saga.
    """

    journal: TxJournal
    clock: Clock
    deadline: float | None = None
    fence: Fence | None = None

    @classmethod
    def of(cls, ctx: StepContext) -> TxScope:
        """The scope of the step call ``ctx`` (needs the engine's journal)."""
        return cls(TxJournal(ctx.require_journal()), ctx.clock, ctx.deadline, ctx.fence)
