"""The effect boundary as the simulators keep it, and the counters tests read.

Every simulator that changes the world (the ledger, the FX venue, the
counterparties) holds one :class:`EffectBoundary`. It keeps the two checks of
:mod:`reversa.core.fencing` (highest fencing token per saga, tombstoned keys) and
counts, per key, what actually happened at the service:

- ``landed``: effects applied (a replay of an applied key is not counted again);
- ``refused``: calls refused, by reason (``epoch``: a stale fencing token;
  ``tombstone``: a key a rollback blocked);
- ``max_concurrent``: the most requests carrying one key that were in flight at
  the same time (a retry that overlapped a still-running attempt shows as 2);
- ``unfenced``: calls per operation that carried no fencing token.

Tests assert on these counters, at the service, instead of on the saga's own
record. The owning simulator holds its lock across :meth:`EffectBoundary.admit`
and the effect, so the check and the effect are atomic, as a real service does
in one database transaction.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from reversa.core.context import Fence
from reversa.core.errors import Fenced
from reversa.core.fencing import FenceGate

__all__ = ["EffectBoundary", "refusal_reason"]


def refusal_reason(exc: Fenced) -> str:
    """``"tombstone"`` for a blocked key, ``"epoch"`` for a stale fencing token."""
    return "tombstone" if exc.code == "key_blocked" else "epoch"


class EffectBoundary:
    """Fencing tokens, tombstones and per-key counters of one simulated service."""

    def __init__(self) -> None:
        self.gate = FenceGate()
        self.landed: Counter[str] = Counter()
        self.refused: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.max_concurrent: Counter[str] = Counter()
        self.unfenced: Counter[str] = Counter()
        self.blocks: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def note(self, op: str, fence: Fence | None) -> None:
        """Count a call that carried no fencing token."""
        if fence is None:
            with self._lock:
                self.unfenced[op] += 1

    @contextmanager
    def in_flight(self, keys: Iterable[str]) -> Iterator[None]:
        """Count the requests carrying each of ``keys`` while they are being served."""
        keys = list(keys)
        with self._lock:
            for key in keys:
                self._in_flight[key] += 1
                self.max_concurrent[key] = max(self.max_concurrent[key], self._in_flight[key])
        try:
            yield
        finally:
            with self._lock:
                for key in keys:
                    self._in_flight[key] -= 1

    def admit(self, op: str, fence: Fence | None, keys: Iterable[str] = ()) -> None:
        """Admit ``fence`` and refuse any tombstoned key; every refusal is counted.

        Raises:
            Fenced: A newer owner of the saga has called (code ``fenced``), or a
                key was blocked (code ``key_blocked``).
        """
        keys = list(keys)
        try:
            self.gate.admit(fence)
            for key in keys:
                self.gate.check_key(key)
        except Fenced as exc:
            with self._lock:
                for key in keys or [f"<{op}>"]:
                    self.refused[key][refusal_reason(exc)] += 1
            raise

    def tombstone(self, key: str, fence: Fence | None) -> None:
        """Block ``key`` for good (the caller checked, under its lock, that it never landed)."""
        self.gate.tombstone(key, fence)
        with self._lock:
            self.blocks[key] += 1

    def count_landed(self, keys: Iterable[str]) -> None:
        """Record that the effects under ``keys`` were applied now."""
        with self._lock:
            for key in keys:
                self.landed[key] += 1

    def stats(self) -> dict[str, Any]:
        """The counters as JSON (what the HTTP simulators serve at ``.../stats``)."""
        with self._lock:
            return {
                "landed": dict(self.landed),
                "refused": {k: dict(v) for k, v in self.refused.items()},
                "refused_total": self.gate.refused,
                "blocked": dict(self.blocks),
                "max_concurrent": dict(self.max_concurrent),
                "unfenced": dict(self.unfenced),
            }
