"""Per-account nonce allocation that survives crashes.

A fresh process knows nothing about the nonces an earlier one used. Before
handing out a nonce the manager asks the chain for the account's pending
transaction count and the saga store's journal for the highest nonce already
signed by any saga (``max_seq`` of the account's transaction records), and
takes the larger: a nonce is never reused by accident, and a journaled
transaction that a crash left unsent keeps its slot until it is resent or
cancelled.
"""

from __future__ import annotations

import threading
from typing import Any

from .journal import TxJournal

__all__ = ["NonceManager"]


class NonceManager:
    """Hands out nonces per sending account.

    Thread-safe; one per wallet. The journal is the calling saga's, passed
    with each reservation (its highest nonce per sender, across all sagas,
    counts as used).
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def reserve(self, w3: Any, address: str, journal: TxJournal) -> int:
        """The next nonce for ``address``; the caller must sign and journal it."""
        with self._lock:
            on_chain = int(w3.eth.get_transaction_count(address, "pending"))
            journaled = journal.highest_nonce(address)
            candidates = [on_chain, self._next.get(address.lower(), 0)]
            if journaled is not None:
                candidates.append(journaled + 1)
            nonce = max(candidates)
            self._next[address.lower()] = nonce + 1
            return nonce

    def release(self, address: str, nonce: int) -> None:
        """Give back ``nonce`` after the node rejected its transaction outright.

        Only the most recent reservation can be given back; an older one would
        leave a gap anyway and is re-learned from the chain and the journal.
        """
        with self._lock:
            if self._next.get(address.lower()) == nonce + 1:
                self._next[address.lower()] = nonce

    def forget(self, address: str) -> None:
        """Drop the local counter (after "nonce too low": re-learn from the chain)."""
        with self._lock:
            self._next.pop(address.lower(), None)
