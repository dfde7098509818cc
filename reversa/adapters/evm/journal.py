"""Write-ahead journal of signed transactions, keyed by idempotency key.

A transaction is journaled *before* it is broadcast. After a crash, a probe
or a compensation finds the exact transaction a step sent (hash, nonce, raw
bytes) from the step's idempotency key, instead of guessing from the chain.
Raw signed transactions are public data once broadcast, so storing them is
safe; no key material is ever written here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["MemoryTxJournal", "SqliteTxJournal", "TxJournal", "TxRecord"]


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One signed transaction and how it was sent.

    Attributes:
        key: Idempotency key of the step call plus a label (``rv:...:action/swap``).
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

    def to_dict(self) -> dict[str, object]:
        """JSON form without the raw bytes (for results and reports)."""
        out = asdict(self)
        out.pop("raw")
        return out


class TxJournal(Protocol):
    """Durable map from idempotency key to the transaction sent under it."""

    def get(self, key: str) -> TxRecord | None:
        """The record for ``key``, if any."""
        ...

    def put(self, record: TxRecord) -> None:
        """Insert or replace the record for ``record.key``."""
        ...

    def highest_nonce(self, sender: str) -> int | None:
        """Highest nonce of a non-rejected record from ``sender``."""
        ...


class MemoryTxJournal:
    """An in-memory journal (tests, demos): lost with the process."""

    def __init__(self) -> None:
        self._records: dict[str, TxRecord] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> TxRecord | None:
        """The record for ``key``, if any."""
        with self._lock:
            return self._records.get(key)

    def put(self, record: TxRecord) -> None:
        """Insert or replace the record for ``record.key``."""
        with self._lock:
            self._records[record.key] = record

    def highest_nonce(self, sender: str) -> int | None:
        """Highest nonce of a non-rejected record from ``sender``."""
        with self._lock:
            nonces = [
                r.nonce
                for r in self._records.values()
                if r.sender.lower() == sender.lower() and not r.rejected
            ]
        return max(nonces) if nonces else None


class SqliteTxJournal:
    """A journal in a SQLite file: survives the process, so recovery can find its txs.

    Args:
        path: Database file (created if missing).
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS evm_tx_journal ("
        " key TEXT PRIMARY KEY, sender TEXT NOT NULL, nonce INTEGER NOT NULL,"
        " rejected INTEGER NOT NULL, record TEXT NOT NULL)"
    )

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.execute(self._SCHEMA)
            conn.execute(
                "CREATE INDEX IF NOT EXISTS evm_tx_journal_sender ON evm_tx_journal(sender)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:  # commits on success, rolls back on error
                yield conn
        finally:
            conn.close()

    def get(self, key: str) -> TxRecord | None:
        """The record for ``key``, if any."""
        with self._lock, self._connect() as conn:
            row = conn.execute(
                "SELECT record FROM evm_tx_journal WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else TxRecord(**json.loads(row[0]))

    def put(self, record: TxRecord) -> None:
        """Insert or replace the record for ``record.key`` (committed before returning)."""
        with self._lock, self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO evm_tx_journal(key, sender, nonce, rejected, record)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    record.key,
                    record.sender.lower(),
                    record.nonce,
                    int(record.rejected),
                    json.dumps(asdict(record)),
                ),
            )

    def highest_nonce(self, sender: str) -> int | None:
        """Highest nonce of a non-rejected record from ``sender``."""
        with self._lock, self._connect() as conn:
            row = conn.execute(
                "SELECT MAX(nonce) FROM evm_tx_journal WHERE sender = ? AND rejected = 0",
                (sender.lower(),),
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])
