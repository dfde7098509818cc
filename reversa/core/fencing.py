"""The service side of the effect boundary: fencing tokens and tombstoned keys.

A rollback promises something about the world, so the guarantee has to hold
where the world changes: at the service. Two checks do it, and a service (or a
simulator standing in for one) that keeps them makes a late or stale call
harmless:

- **Fencing tokens.** Every call carries the saga's lease epoch
  (:class:`~reversa.core.context.Fence`). The service remembers the highest epoch
  it has seen per saga and refuses anything lower: once a new owner has spoken
  to the service, a paused former owner cannot act through it.
- **Tombstones.** When the engine judges that an in-doubt call did not happen, it
  asks the operation to *block* its idempotency key. The service then refuses any
  later request carrying that key, atomically with the check that it has not
  happened yet.

:class:`FenceGate` implements both for in-process services; a real service keeps
the same two facts in its own database, in the transaction that applies the
effect.
"""

from __future__ import annotations

import threading

from .context import Fence
from .errors import Fenced

__all__ = ["FenceGate"]


class FenceGate:
    """Highest epoch per saga, and tombstoned keys, checked under one lock.

    Thread-safe. Services call :meth:`admit` with the request's fence before
    applying an effect, and :meth:`check_key` with its idempotency key.
    """

    def __init__(self) -> None:
        self._epochs: dict[str, int] = {}
        self._tombstones: dict[str, int] = {}
        self.lock = threading.RLock()
        """Hold it across admit + apply to make the check and the effect atomic."""
        self.refused = 0
        """How many calls were refused (stale epoch or tombstoned key)."""

    def admit(self, fence: Fence | None) -> None:
        """Record ``fence``'s epoch, or refuse it when a newer one was seen.

        A call without a fence is admitted: services that also serve callers
        outside Reversa keep working, they just are not fenced.

        Raises:
            Fenced: A newer owner of this saga has already called.
        """
        if fence is None:
            return
        with self.lock:
            seen = self._epochs.get(fence.saga_id, 0)
            if fence.epoch < seen:
                self.refused += 1
                raise Fenced(
                    f"saga {fence.saga_id}: fencing token {fence.epoch} is older than {seen}, "
                    "already used by the saga's new owner; this call was refused",
                    details={"saga": fence.saga_id, "epoch": fence.epoch, "seen": seen})
            self._epochs[fence.saga_id] = fence.epoch

    def epoch(self, saga_id: str) -> int:
        """Highest epoch seen for ``saga_id`` (0 when none)."""
        with self.lock:
            return self._epochs.get(saga_id, 0)

    def tombstone(self, key: str, fence: Fence | None = None) -> None:
        """Refuse every later request carrying ``key``."""
        with self.lock:
            self.admit(fence)
            self._tombstones[key] = fence.epoch if fence is not None else 0

    def is_tombstoned(self, key: str) -> bool:
        """Whether ``key`` was blocked."""
        with self.lock:
            return key in self._tombstones

    def check_key(self, key: str) -> None:
        """Refuse a request carrying a blocked key.

        Raises:
            Fenced: ``key`` was blocked by a rollback (it judged the effect never
                happened, or is about to compensate it).
        """
        with self.lock:
            if key in self._tombstones:
                self.refused += 1
                raise Fenced(
                    f"idempotency key {key} was blocked by the saga's rollback (the effect "
                    "never happened, or is being undone), so it may not happen now",
                    code="key_blocked",
                    details={"key": key})
