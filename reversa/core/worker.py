"""Workers: finish sagas whose owner died, and watch for stalled ones (AG-166 4.8).

A worker claims sagas whose lease expired (the owner stopped heartbeating) and
continues them from the durable record. Its watchdog also finds live sagas that
made no progress within their workflow's threshold, takes them over (the new
fencing token locks the stuck owner out) and compensates them; a rollback
stalled past its window is escalated with a state snapshot instead.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

from .clock import Clock
from .engine import Engine
from .errors import LeaseLost, ReversaError
from .redact import scrub
from .registry import Registry
from .states import SagaStatus
from .store import Store
from .views import SagaResult

__all__ = ["Worker"]

log = logging.getLogger("reversa.worker")


class Worker:
    """A recovery worker and watchdog over one store.

    Args:
        registry: Handlers for every workflow this worker may finish.
        store: The shared store (SQLite file or PostgreSQL).
        clock: Injectable clock (tests use ``FakeClock``; no sleeping).
        services: Resources handed to handlers.
        lease_s: Lease this worker takes on claimed sagas.
        poll_s: Pause between claim rounds in :meth:`run_forever`.
        batch: Sagas claimed per round.
        stall_after_s: Default watchdog threshold; a saga's own
            ``stall_after_s`` overrides it per workflow.
        owner: Name in leases.
        heartbeat: Run the engine's heartbeat thread. Turn it off only when you
            call ``worker.engine.beat()`` yourself (a simulation on virtual time).
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        clock: Clock | None = None,
        services: Mapping[str, Any] | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
        batch: int = 8,
        stall_after_s: float = 300.0,
        owner: str | None = None,
        heartbeat: bool = True,
    ) -> None:
        self.engine = Engine(registry, store, clock=clock, services=services, owner=owner,
                             lease_s=lease_s, heartbeat=heartbeat)
        self.store = store
        self.poll_s = poll_s
        self.batch = batch
        self.stall_after_s = stall_after_s
        self._stop = threading.Event()

    # -- one round --------------------------------------------------------------------
    def run_once(self) -> list[SagaResult]:
        """Run the watchdog, then claim and finish orphaned sagas; return what ended.

        Never raises for a store that is down or a saga that cannot be finished: the
        problem is logged and the next round tries again (the worker must outlive a
        database restart or one bad saga, since every other saga depends on it).
        """
        return self.engine._sync(self.run_once_async())

    async def run_once_async(self) -> list[SagaResult]:
        """Async form of :meth:`run_once` (for an event loop you run, or a simulation)."""
        try:
            finished = await self.watchdog_async()
        except Exception as exc:
            log.warning("watchdog round skipped: %s", _why(exc))
            finished = []
        try:
            claimed = self.store.claim(self.engine.owner, self.engine.lease_s, limit=self.batch,
                                       statuses=[SagaStatus.RUNNING, SagaStatus.COMPENSATING])
        except Exception as exc:
            log.warning("no saga claimed this round: %s", _why(exc))
            return finished
        for saga_id, token in claimed:
            if self._stop.is_set():
                self._release(saga_id, token)
                continue
            result = await self._continue(saga_id, token, "owner lease expired")
            if result is not None:
                finished.append(result)
        return finished

    def watchdog(self) -> list[SagaResult]:
        """Find stalled sagas and compensate or escalate them."""
        return self.engine._sync(self.watchdog_async())

    async def watchdog_async(self) -> list[SagaResult]:
        """Async form of :meth:`watchdog`."""
        out: list[SagaResult] = []
        for row in self.store.stalled(self.stall_after_s):
            now = row["now"]
            claimed = self.store.claim(self.engine.owner, self.engine.lease_s,
                                       saga_id=row["id"], force=True)
            if not claimed:
                continue
            saga_id, token = claimed[0]
            window_over = (row["status"] == SagaStatus.COMPENSATING.value
                           and row["rollback_started_at"] is not None
                           and now - row["rollback_started_at"] >= row["rollback_window_s"])
            if window_over:
                result = await self._escalate(saga_id, token, row)
            else:
                result = await self._continue(
                    saga_id, token,
                    f"watchdog: no progress for {row['idle_s']:.1f}s "
                    f"(threshold {row['threshold_s']:g}s)", stalled=True)
            if result is not None:
                out.append(result)
        return out

    async def _continue(
        self, saga_id: str, token: int, reason: str, *, stalled: bool = False
    ) -> SagaResult | None:
        try:
            return await self.engine.take_over_async(saga_id, token, reason=reason,
                                                     stalled=stalled)
        except LeaseLost:
            return None  # another worker took it meanwhile: it is theirs now
        except ReversaError as exc:
            # A worker outlives one saga's trouble (a database hiccup, a plan this
            # process cannot run): the saga stays recorded as it was, for a retry.
            log.warning("saga %s not finished this round: %s", saga_id, exc.message)
            return None
        except Exception:
            # Not even a bug met while finishing one saga may stop the worker: every
            # other saga still needs it. The traceback goes to the log for a fix.
            log.exception("saga %s not finished this round: unexpected error", saga_id)
            return None

    async def _escalate(self, saga_id: str, token: int, row: dict[str, Any]
                        ) -> SagaResult | None:
        reason = (f"rollback window of {row['rollback_window_s']:g}s elapsed while the "
                  "compensation stalled; a stale reversal is not attempted")
        try:
            return await self.engine.escalate_claimed_async(saga_id, token, reason=reason)
        except LeaseLost:
            return None
        except ReversaError as exc:
            log.warning("saga %s not escalated this round: %s", saga_id, exc.message)
            return None
        except Exception:
            log.exception("saga %s not escalated this round: unexpected error", saga_id)
            return None

    def _release(self, saga_id: str, token: int) -> None:
        try:
            self.store.release(saga_id, token)
        except Exception as exc:  # the lease lapses on its own
            log.warning("lease of saga %s not released: %s", saga_id, _why(exc))

    # -- forever ----------------------------------------------------------------------
    def run_forever(self) -> None:
        """Loop until SIGTERM/SIGINT or :meth:`stop`; leases are released on the way out."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    # run_once handles what it expects; whatever it did not, the next
                    # round retries rather than leave every saga without a worker.
                    log.exception("worker round failed; retrying in %gs", self.poll_s)
                self._stop.wait(self.poll_s)
        finally:
            self.engine.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (SIGTERM): no new round should start."""
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask :meth:`run_forever` to hand its sagas over at the next step boundary and exit."""
        self._stop.set()
        self.engine.shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()


def _why(exc: Exception) -> str:
    text = exc.message if isinstance(exc, ReversaError) else f"{type(exc).__name__}: {exc}"
    return scrub(text)
