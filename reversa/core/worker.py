"""Workers: finish sagas whose owner died, and watch for stalled ones (AG-166 4.8).

A worker claims sagas whose lease expired (the owner stopped heartbeating) and
continues them from the durable record -- rolling back those an operator asked
to roll back -- and starts sagas whose start was approved (``approved``). Its
watchdog also finds live sagas that made no progress within their workflow's
threshold, takes them over (the new fencing token locks the stuck owner out)
and compensates them; a rollback stalled past its window is escalated with a state snapshot instead.

Every event is one record on the ``reversa.worker`` logger, with the event name
and saga id as record attributes (``record.event``, ``record.saga``, and the
event's own fields in ``record.fields``) so a formatter can render text or JSON:

- ``claimed``: the worker took a saga over (``reason``: lease expired, or stalled);
- ``finished``: the saga reached an end state (``status``);
- ``escalated``: it was handed to a human (``escalation``);
- ``handed_over``: the worker is stopping and gave the saga back mid-way;
- ``lost``: another worker took the saga meanwhile;
- ``skipped``: this worker cannot run it (a handler is missing, named once per
  saga rather than on every poll) or hit an error this round (each distinct
  error is logged once per saga; repeats go to DEBUG).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .clock import Clock
from .engine import Engine
from .errors import LeaseLost, PlanError, ReversaError
from .governance import Governance
from .observe import Observer
from .registry import Registry
from .states import TERMINAL_SAGA, SagaStatus
from .store import Store
from .views import SagaResult

__all__ = ["Worker", "WorkerRound"]

log = logging.getLogger("reversa.worker")


@dataclass
class WorkerRound:
    """What one round of a worker did.

    Attributes:
        ended: Sagas this round brought to an end state or escalated.
        unfinished: Sagas this round claimed and did not bring to an end,
            with the reason (a missing handler, an error, a hand-over).
    """

    ended: list[SagaResult] = field(default_factory=list)
    unfinished: dict[str, str] = field(default_factory=dict)


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
        governance: Per-workflow four-eyes policy (see :class:`~reversa.Engine`).
        observers: Engine observers (tracing).
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
        governance: Governance | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.engine = Engine(registry, store, clock=clock, services=services, owner=owner,
                             lease_s=lease_s, governance=governance, observers=observers)
        self.store = store
        self.poll_s = poll_s
        self.batch = batch
        self.stall_after_s = stall_after_s
        self._stop = threading.Event()
        # Sagas whose plan this worker's registry cannot run. It will not be able
        # to until it restarts with other handlers, so they are handed straight
        # back (not reloaded, not logged again) and never fill a claim batch.
        self._unrunnable: set[str] = set()
        self._reported: dict[str, str] = {}  # saga id -> last problem logged

    # -- one round --------------------------------------------------------------------
    def run_once(self) -> list[SagaResult]:
        """Run the watchdog, then claim and finish orphaned sagas; return what ended."""
        return self.run_round().ended

    def run_round(self) -> WorkerRound:
        """One round, reporting also the sagas it claimed but could not finish."""
        rnd = WorkerRound()
        self._watchdog(rnd)
        claimed = self.store.claim(self.engine.owner, self.engine.lease_s,
                                   limit=self.batch + len(self._unrunnable),
                                   statuses=[SagaStatus.RUNNING, SagaStatus.COMPENSATING])
        taken = self._take(rnd, claimed, "owner lease expired", 0)
        if taken < self.batch and not self._stop.is_set():
            approved = self.store.claim(self.engine.owner, self.engine.lease_s,
                                        limit=self.batch - taken + len(self._unrunnable),
                                        statuses=[SagaStatus.APPROVED])
            self._take(rnd, approved, "approved: cleared to run", taken)
        return rnd

    def _take(self, rnd: WorkerRound, claimed: list[tuple[str, int]], reason: str,
              taken: int) -> int:
        for saga_id, token in claimed:
            if saga_id in self._unrunnable:
                self.store.release(saga_id, token)
                rnd.unfinished[saga_id] = self._reported.get(
                    saga_id, "this worker cannot run its plan")
                continue
            if self._stop.is_set() or taken >= self.batch:
                self.store.release(saga_id, token)
                continue
            taken += 1
            _event(logging.INFO, "claimed", saga_id, reason,
                   reason="lease_expired" if reason.startswith("owner") else "approved",
                   token=token)
            self._continue(rnd, saga_id, token, reason)
        return taken

    def watchdog(self) -> list[SagaResult]:
        """Find stalled sagas and compensate or escalate them."""
        rnd = WorkerRound()
        self._watchdog(rnd)
        return rnd.ended

    def _watchdog(self, rnd: WorkerRound) -> None:
        for row in self.store.stalled(self.stall_after_s):
            if row["id"] in self._unrunnable:
                continue  # taking it would fence its owner out for nothing
            now = row["now"]  # the store's clock, as leases are
            claimed = self.store.claim(self.engine.owner, self.engine.lease_s,
                                       saga_id=row["id"], force=True)
            if not claimed:
                continue
            saga_id, token = claimed[0]
            window_over = (row["status"] == SagaStatus.COMPENSATING.value
                           and row["rollback_started_at"] is not None
                           and now - row["rollback_started_at"] >= row["rollback_window_s"])
            idle = row["idle_s"]
            _event(logging.INFO, "claimed", saga_id,
                   f"stalled: no progress for {idle:.1f}s (threshold {row['threshold_s']:g}s)",
                   reason="stalled", token=token, idle_s=round(idle, 3))
            if window_over:
                self._escalate(rnd, saga_id, token, row)
            else:
                self._continue(
                    rnd, saga_id, token,
                    f"watchdog: no progress for {idle:.1f}s "
                    f"(threshold {row['threshold_s']:g}s)", stalled=True)

    def _continue(
        self, rnd: WorkerRound, saga_id: str, token: int, reason: str, *, stalled: bool = False
    ) -> None:
        try:
            result = self.engine.take_over(saga_id, token, reason=reason, stalled=stalled)
        except LeaseLost:
            # Another worker took it meanwhile: it is theirs now, nothing is wrong.
            _event(logging.INFO, "lost", saga_id, "another worker took it over")
            return
        except PlanError as exc:
            self._unrunnable.add(saga_id)
            self._skipped(rnd, saga_id, exc, missing=True)
            return
        except ReversaError as exc:
            # A worker outlives one saga's trouble (a database hiccup): the saga
            # stays recorded as it was, for the next round.
            self._skipped(rnd, saga_id, exc, missing=False)
            return
        self._outcome(rnd, result)

    def _escalate(self, rnd: WorkerRound, saga_id: str, token: int, row: dict[str, Any]) -> None:
        reason = (f"rollback window of {row['rollback_window_s']:g}s elapsed while the "
                  "compensation stalled; a stale reversal is not attempted")
        try:
            result = self.engine.escalate_claimed(saga_id, token, reason=reason)
        except LeaseLost:
            _event(logging.INFO, "lost", saga_id, "another worker took it over")
            return
        except ReversaError as exc:
            self._skipped(rnd, saga_id, exc, missing=isinstance(exc, PlanError))
            return
        self._outcome(rnd, result)

    def _outcome(self, rnd: WorkerRound, result: SagaResult) -> None:
        sid = result.saga_id
        self._reported.pop(sid, None)
        if result.status is SagaStatus.ESCALATED:
            rnd.ended.append(result)
            _event(logging.WARNING, "escalated", sid,
                   f"handed to a human as escalation #{result.escalation_id}: "
                   f"{result.error or 'see reversa escalations show'}",
                   status=result.status.value, escalation=result.escalation_id)
        elif result.status in TERMINAL_SAGA:
            rnd.ended.append(result)
            _event(logging.INFO, "finished", sid, f"ended {result.status.value}",
                   status=result.status.value)
        else:
            rnd.unfinished[sid] = f"handed over while {result.status.value}"
            _event(logging.INFO, "handed_over", sid,
                   f"given back while {result.status.value}; this worker is stopping",
                   status=result.status.value)

    def _skipped(self, rnd: WorkerRound, saga_id: str, exc: ReversaError, *,
                 missing: bool) -> None:
        problem = exc.message
        if missing:
            app = self._app(saga_id)
            fix = (f"restart the worker with --app {app}" if app else
                   "restart the worker with --app naming the registry that defines them")
            problem = f"this worker cannot run its plan: {problem}; {fix}"
        rnd.unfinished[saga_id] = problem
        repeated = self._reported.get(saga_id) == problem
        self._reported[saga_id] = problem
        fields: dict[str, Any] = {"reason": "missing_handler" if missing else "error"}
        if missing:
            fields["problems"] = list(exc.details.get("problems", [])) or [exc.message]
        _event(logging.DEBUG if repeated else logging.WARNING, "skipped", saga_id,
               problem, **fields)

    def _app(self, saga_id: str) -> str | None:
        try:
            row, _ = self.store.load(saga_id)
        except ReversaError:
            return None
        app = row.get("app")
        return str(app) if app else None

    # -- forever ----------------------------------------------------------------------
    def run_forever(self, on_round: Callable[[], object] | None = None) -> None:
        """Loop until SIGTERM/SIGINT or :meth:`stop`; leases are released on the way out.

        ``on_round`` runs after every round (``reversa worker --notify`` delivers
        the notification outbox there); its errors are logged, never fatal.
        """
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            while not self._stop.is_set():
                self.run_round()
                if on_round is not None:
                    try:
                        on_round()
                    except Exception as exc:
                        log.warning("after-round hook failed: %s", exc,
                                    extra={"event": "hook_failed", "saga": None,
                                           "fields": {"error": str(exc)}})
                self._stop.wait(self.poll_s)
        finally:
            self.engine.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Ask :meth:`run_forever` to hand its sagas over at the next step boundary and exit."""
        self._stop.set()
        self.engine.shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()


def _event(level: int, event: str, saga_id: str, message: str, **fields: Any) -> None:
    log.log(level, "saga %s %s: %s", saga_id, event.replace("_", " "), message,
            extra={"event": event, "saga": saga_id, "fields": fields})
