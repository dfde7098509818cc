"""The public :class:`Engine`: run, recover, dry-run, inspect and resolve sagas."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from ..canonical import to_jsonable
from ..clock import Clock, SystemClock
from ..errors import (
    ConfigError,
    EmergencyStop,
    LeaseLost,
    NotFound,
    PlanTampered,
    ReversaError,
    ShutdownRequested,
    StoreAbort,
    StoreError,
)
from ..governance import Approval, FourEyes, Governance
from ..inspector import Inspector
from ..live import LiveSaga, LiveStep
from ..model import Saga
from ..observe import Observer, notify
from ..plan import Plan, validate
from ..redact import scrub
from ..registry import Registry
from ..states import AT_REST_SAGA, TERMINAL_SAGA, SagaStatus, StepStatus
from ..store import Store
from ..views import AuditEntry, SagaResult, SagaView
from .approvals import Governor
from .dependents import assess
from .dryrun import DryRunReport, dry_run, rollback_targets
from .forward import forward
from .governed import GovernanceApi
from .preview import preview
from .reconcile import Reconciliation, reconcile
from .recovery import continue_saga, load_live, tampered_reason
from .rollback import rollback, run_recovery
from .runtime import Runtime

__all__ = ["Engine"]

T = TypeVar("T")
log = logging.getLogger("reversa.engine")


class Engine(GovernanceApi):
    """Runs sagas durably against a :class:`Store`.

    Args:
        registry: Where actions, compensations, probes, preconditions, cost
            estimators, predicates and snapshots are registered by name.
        store: The durable store (``Store.open(...)``).
        clock: Time source for backoff, windows and leases (inject a
            ``FakeClock`` in tests).
        services: Resources handed to every handler as ``ctx.services``.
        owner: This process' name in leases (default ``host:pid:random``).
        lease_s: Lease duration; another worker may take a saga over when its
            owner stops heartbeating for this long.
        heartbeat: Run a background thread extending held leases every
            ``lease_s / 3`` seconds (needed when a single step may run longer
            than the lease).
        link_horizon_s: How long after it completed a saga's effects still
            link the sagas that consume them (see :mod:`reversa.core.resources`).
        governance: Per-workflow :class:`~reversa.core.governance.FourEyes`
            policy (``{"workflow" | "*": FourEyes(...)}``): which resolutions and
            operator rollbacks need a second, distinct approver.
        observers: Objects told when sagas, steps and compensations start and
            finish (see :class:`~reversa.core.observe.Observer`); none costs nothing.
    """

    def __init__(
        self,
        registry: Registry,
        store: Store,
        *,
        clock: Clock | None = None,
        services: Mapping[str, Any] | None = None,
        owner: str | None = None,
        lease_s: float = 30.0,
        heartbeat: bool = True,
        link_horizon_s: float = 7 * 86_400.0,
        governance: Governance | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        if lease_s <= 0:
            raise ConfigError(f"lease_s={lease_s}; a lease must last more than 0 seconds")
        if link_horizon_s < 0:
            raise ConfigError(f"link_horizon_s={link_horizon_s}; give 0 or more seconds")
        self.registry = registry
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.governance: dict[str, FourEyes] = dict(governance or {})
        self._rt = Runtime(registry, store, self.clock, dict(services or {}), self.owner, lease_s,
                           link_horizon_s=link_horizon_s, governance=self.governance,
                           observers=tuple(observers))
        self._local = threading.local()
        self._heartbeat_enabled = heartbeat
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._plans: dict[int, tuple[Any, int, Plan]] = {}
        # Which task drives which saga, so a heartbeat that finds a lease lost can
        # stop that saga here at once.
        self._tasks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = {}
        self._tampered: dict[str, PlanTampered] = {}
        self._gov = Governor(self)

    # -- running ----------------------------------------------------------------------
    def run(
        self, saga: Saga, input: Mapping[str, Any] | None = None, *, saga_id: str | None = None
    ) -> SagaResult:
        """Validate, record and execute ``saga``; roll it back if a step fails.

        Raises:
            PlanError: The definition is invalid; nothing was recorded or executed.
        """
        return self._sync(self.run_async(saga, input, saga_id=saga_id))

    async def run_async(
        self, saga: Saga, input: Mapping[str, Any] | None = None, *, saga_id: str | None = None
    ) -> SagaResult:
        """Async form of :meth:`run`."""
        return await self._run(saga, input, saga_id=saga_id, by=None)

    async def _run(self, saga: Saga, input: Mapping[str, Any] | None, *, saga_id: str | None,
                   by: str | None) -> SagaResult:
        live = self._new(saga, input, saga_id, SagaStatus.RUNNING)
        try:
            live.pre_state = await self._rt.snapshot(live)
        except Exception as exc:
            raise ReversaError(
                f"snapshot {live.plan.saga.snapshot!r} failed before step 1, so nothing ran: "
                f"{exc}; fix the snapshot function or the services it reads"
            ) from exc
        self._log_plan(live, by)
        if live.pre_state is not None:
            live.log("snapshot_taken", "pre_workflow", state=live.pre_state)
        return await self._drive(live, lambda: forward(self._rt, live))

    def _new(self, saga: Saga, input: Mapping[str, Any] | None, saga_id: str | None,
             status: SagaStatus) -> LiveSaga:
        plan = self._plan(saga)
        now = self.clock.now()
        held = status is SagaStatus.RUNNING
        return LiveSaga(
            id=saga_id or uuid.uuid4().hex, plan=plan, input=to_jsonable(dict(input or {})),
            status=status, steps={n: LiveStep(n, i) for i, n in enumerate(plan.order)}, token=1,
            seq=0, head=plan.hash, created_at=now, updated_at=now,
            lease_owner=self.owner if held else None,
            lease_expires_at=now + self._rt.lease_s if held else None, app=plan.saga.app,
            services=plan.saga.services,
        )

    def _log_plan(self, live: LiveSaga, by: str | None) -> None:
        plan = live.plan
        who: dict[str, Any] = {} if by is None else {"requested_by": by}
        live.log("plan_recorded", "ok", plan_hash=plan.hash, workflow=plan.saga.workflow,
                 order=list(plan.order), owner=self.owner, **who)

    def _plan(self, saga: Saga) -> Plan:
        # Agents run the same definition many times: validate (and hash) it once
        # per registry version instead of on every run.
        cached = self._plans.get(id(saga))
        if cached is not None and cached[0] is saga and cached[1] == self.registry.version:
            return cached[2]
        plan = validate(saga, self.registry)
        if len(self._plans) > 256:
            self._plans.clear()
        self._plans[id(saga)] = (saga, self.registry.version, plan)
        return plan

    def recover(self, saga_id: str, *, reason: str = "recovery") -> SagaResult:
        """Take over a saga whose owner is gone and finish it per its policy.

        Raises:
            LeaseLost: Another live process holds the saga's lease.
        """
        return self._sync(self.recover_async(saga_id, reason=reason))

    async def recover_async(self, saga_id: str, *, reason: str = "recovery") -> SagaResult:
        """Async form of :meth:`recover`."""
        live = self._claim(saga_id)
        return await self._drive(live, self._guard(
            live, lambda: continue_saga(self._rt, live, reason=reason)))

    def take_over(
        self, saga_id: str, token: int, *, reason: str, stalled: bool = False
    ) -> SagaResult:
        """Continue a saga this engine has just claimed with fencing ``token``.

        Used by workers after ``Store.claim``: the saga is rebuilt from the
        stored plan and finished per its policy (see ``continue_saga``).
        """
        return self._sync(self.take_over_async(saga_id, token, reason=reason, stalled=stalled))

    async def take_over_async(
        self, saga_id: str, token: int, *, reason: str, stalled: bool = False
    ) -> SagaResult:
        """Async form of :meth:`take_over`."""
        live = self._load_claimed(saga_id, token)
        return await self._drive(live, self._guard(
            live, lambda: continue_saga(self._rt, live, reason=reason, stalled=stalled)))

    def escalate_claimed(self, saga_id: str, token: int, *, reason: str) -> SagaResult:
        """Hand a claimed saga to a human now, with a state snapshot (stale rollbacks)."""
        return self._sync(self.escalate_claimed_async(saga_id, token, reason=reason))

    async def escalate_claimed_async(self, saga_id: str, token: int, *, reason: str
                                     ) -> SagaResult:
        """Async form of :meth:`escalate_claimed`."""
        live = self._load_claimed(saga_id, token)

        async def body() -> None:
            live.log("watchdog_window_elapsed", "escalating", reason=reason)
            await self._rt.escalate(live, reason)

        return await self._drive(live, self._guard(live, body))

    def _guard(self, live: LiveSaga, body: Any) -> Any:
        """``body``, unless the saga's stored plan was tampered with: then escalate it."""
        tampered = self._tampered.pop(live.id, None)
        if tampered is None:
            return body

        async def escalate() -> None:
            live.log("plan_tampered", "refused", error=tampered.message, **tampered.details)
            # No handler of this plan runs, not even its snapshot.
            await self._rt.escalate(live, tampered_reason(tampered), snapshot=False,
                                    extra={"plan_tampered": tampered.details})

        return escalate

    @property
    def lease_s(self) -> float:
        """How long this engine's leases last."""
        return self._rt.lease_s

    @property
    def services(self) -> Mapping[str, Any]:
        """The resources handed to every handler."""
        return self._rt.services

    def _claim(self, saga_id: str, *, handlers: bool = True) -> LiveSaga:
        claimed = self.store.claim(self.owner, self._rt.lease_s, saga_id=saga_id)
        if not claimed:
            row, _ = self.store.load(saga_id)
            if SagaStatus(row["status"]) in TERMINAL_SAGA:
                raise LeaseLost(f"saga {saga_id} is already {row['status']}; nothing to do")
            left = (row["lease_expires_at"] or 0.0) - self.store.now()
            raise LeaseLost(
                f"saga {saga_id} is leased by {row['lease_owner']} for another {left:.1f}s; "
                "wait for the lease to expire or stop that worker")
        return self._load_claimed(saga_id, claimed[0][1], handlers=handlers)

    def _load_claimed(self, saga_id: str, token: int, *, handlers: bool = True) -> LiveSaga:
        try:
            return load_live(self._rt, saga_id, token, handlers=handlers)
        except PlanTampered as exc:
            # Keep the saga (and the lease) to escalate it without running anything.
            self._tampered[saga_id] = exc
            return load_live(self._rt, saga_id, token, quarantine=True)
        except BaseException:
            # This process cannot run the plan: hand the saga straight back.
            self.store.release(saga_id, token)
            raise

    async def _drive(self, live: LiveSaga, body: Any) -> SagaResult:
        self._hold(live)
        task = asyncio.current_task()
        if task is not None:
            with self._lock:
                self._tasks[live.id] = (asyncio.get_running_loop(), task)
        observers = self._rt.observers
        if observers:
            notify(observers, "saga_started", live.id, live.plan.saga.workflow,
                   live.status.value)
        aborted = False
        try:
            try:
                await body()
            except asyncio.CancelledError:
                if live.id not in self._rt.lost:
                    raise
                # Our heartbeat found the lease taken: this process stops the saga now.
                if task is not None:
                    task.uncancel()
                raise LeaseLost(
                    f"saga {live.id}: lease token {live.token} was taken over by another "
                    "worker while a step ran; this process stopped the saga",
                    details={"saga": live.id, "token": live.token}) from None
            except EmergencyStop as stop:
                await self._emergency(live, stop)
            except ShutdownRequested:
                # Record what already happened, then give the saga back at once.
                live.log("handed_over", "shutdown", owner=self.owner)
                await self._rt.flush(live)
                with self._lock:
                    self._rt.held.pop(live.id, None)
                self.store.release(live.id, live.token)
        except StoreAbort as abort:
            # From the body or from recording a stop or a hand-over: nothing more can be
            # recorded. Leave the saga as the store has it (visibly in doubt) for a
            # worker to recover, and report the cause as the StoreError it is (never the
            # BaseException carrier). The lease is kept, not released: it lapses, so a
            # saga that cannot be recorded is retried at the lease's pace, not in a loop.
            aborted = True
            with self._lock:
                self._rt.held.pop(live.id, None)
            raise abort.error from None
        finally:
            if observers:
                notify(observers, "saga_finished", live.id, live.plan.saga.workflow,
                       live.status.value, live.error)
            with self._lock:
                self._tasks.pop(live.id, None)
                lost = live.id in self._rt.lost
                self._rt.lost.discard(live.id)
            if lost:
                with self._lock:
                    self._rt.held.pop(live.id, None)
            elif aborted:
                pass
            elif live.status in AT_REST_SAGA:
                self._release(live)
            # However the drive ended (an interrupt, a cancelled task, a bug), this
            # engine no longer drives the saga: stop renewing its lease, so it lapses
            # and a worker recovers the saga instead of a heartbeat holding it forever.
            with self._lock:
                if self._rt.held.get(live.id) == live.token:
                    del self._rt.held[live.id]
        return _result(live)

    async def _emergency(self, live: LiveSaga, stop: EmergencyStop) -> None:
        # E-stop wins over everything: no further compensation is attempted.
        reason = f"emergency stop (category {stop.category}) from {stop.source or 'unknown'}: " \
                 f"{stop.message}; nothing moves until a human resets it"
        live.log("emergency_stop", "halted", category=stop.category, source=stop.source)
        if live.status in TERMINAL_SAGA:
            return
        await self._rt.escalate(live, reason, extra={"emergency_stop": {
            "category": stop.category, "source": stop.source, "message": stop.message}})

    # -- inspection -------------------------------------------------------------------
    def inspect(self, saga_id: str) -> SagaView:
        """Everything recorded about one saga (see :class:`~reversa.Inspector`)."""
        return Inspector(self.store).saga(saga_id)

    def audit(self, saga_id: str) -> list[AuditEntry]:
        """The saga's tamper-evident log, in order (verify it with ``store.verify_audit``)."""
        return Inspector(self.store).audit(saga_id)

    def dry_run(self, saga_id: str) -> DryRunReport:
        """Evaluate, without executing anything, the rollback of a saga as it stands."""
        return self._sync(self.dry_run_async(saga_id))

    async def dry_run_async(self, saga_id: str) -> DryRunReport:
        """Async form of :meth:`dry_run`."""
        row, _ = self.store.load(saga_id)
        # A tampered plan raises PlanTampered here: a dry-run runs no handler from it.
        live = load_live(self._rt, saga_id, int(row["lease_token"]))
        targets = rollback_targets(live)
        decision = await assess(self._rt, live, targets, execute=False)
        report = await dry_run(self._rt, live, targets, substitute=decision.accept,
                               review=["dependents"] if decision.escalate else [])
        report.dependents = decision.assessment
        if decision.escalate is not None:
            report.feasible = False
            report.problems.append(decision.escalate)
        return report

    def reconcile(self, saga_id: str) -> Reconciliation:
        """Compare a finished saga's record with the real systems, changing nothing."""
        return self._sync(self.reconcile_async(saga_id))

    async def reconcile_async(self, saga_id: str) -> Reconciliation:
        """Async form of :meth:`reconcile`."""
        row, _ = self.store.load(saga_id)
        live = load_live(self._rt, saga_id, int(row["lease_token"]))
        return await reconcile(self._rt, live)

    def preview(self, saga: Saga, input: Mapping[str, Any] | None = None) -> DryRunReport:
        """Dry-run the rollback of ``saga`` on ``input`` before it runs (see ``preview``).

        Validates the plan and the input's ``$input`` references, then evaluates
        the compensations' preconditions and cost estimates as if every step had
        completed. Records nothing and calls no action or compensation.

        Raises:
            PlanError: The definition is invalid.
        """
        return self._sync(self.preview_async(saga, input))

    async def preview_async(
        self, saga: Saga, input: Mapping[str, Any] | None = None
    ) -> DryRunReport:
        """Async form of :meth:`preview`."""
        return await preview(self._rt, self._plan(saga), to_jsonable(dict(input or {})))

    # -- human review -----------------------------------------------------------------
    def resolve(
        self, escalation_id: int, *, action: str, author: str, note: str = ""
    ) -> SagaResult | Approval:
        """Resolve an escalation: ``retry`` the rollback, ``forward_recovery``, or
        ``mark_resolved`` (the human fixed it outside Reversa).

        The resolution, its author and note are recorded on the escalation and
        in the audit chain. When the engine's four-eyes policy applies to the
        saga (see ``governance``), nothing runs yet: the author's resolution is
        recorded as a pending ``resolution`` :class:`~reversa.Approval`, which is
        returned, and it executes when another identity approves it
        (:meth:`approve`).

        Raises:
            ConfigError: Unknown action, no author, or a resolution of this
                escalation is already waiting for approval.
            NotFound: No open escalation with that id.
        """
        return self._sync(self.resolve_async(escalation_id, action=action, author=author,
                                             note=note))

    async def resolve_async(
        self, escalation_id: int, *, action: str, author: str, note: str = ""
    ) -> SagaResult | Approval:
        """Async form of :meth:`resolve`."""
        return await self._gov.resolve(escalation_id, action=action, author=author, note=note)

    async def _resolve_claimed(
        self, live: LiveSaga, escalation_id: int, action: str, author: str, note: str,
        approved_by: list[str] | None = None,
    ) -> SagaResult:
        # The escalation row, its audit entry and the saga's next state share one
        # commit: a crash leaves either all of them or none.
        resolved_at = self.clock.now()
        live.resolution = {"escalation": escalation_id, "resolution": action,
                           "author": author, "note": note, "resolved_at": resolved_at}
        extra: dict[str, Any] = {}
        if approved_by is not None:
            live.resolution["approved_by"] = extra["approved_by"] = approved_by
        live.log("escalation_resolved", action, escalation=escalation_id, author=author,
                 note=note, resolved_at=resolved_at, **extra)

        async def body() -> None:
            if action == "mark_resolved":
                live.move(SagaStatus.RESOLVED)
                await self._rt.flush(live)
            elif action == "retry":
                live.rollback_started_at = None
                await rollback(self._rt, live, checkpoint=live.checkpoint)
            else:
                await self._forward_recovery(live)

        return await self._drive(live, body)

    def _acknowledge(self, row: dict[str, Any], *, action: str, author: str,
                     note: str) -> SagaResult:
        """Close an advisory (feasibility, drift) escalation: the saga's state stays."""
        kind, sid = row["kind"], row["saga_id"]
        if action != "mark_resolved":
            raise ConfigError(
                f"escalation #{row['id']} is a {kind} warning about saga {sid}, which it does "
                "not change; close it with --action mark_resolved once it is dealt with")
        # The row and its entry in the saga's chain (with resolved_at) share one commit.
        if self.store.relations.close_advisory(row["id"], action, author, note) is None:
            raise NotFound(f"no open escalation #{row['id']}; another reviewer closed it")
        view = Inspector(self.store).record(sid)
        return SagaResult(saga_id=sid, status=view.status, results={}, error=view.error,
                          failed_step=view.failed_step)

    async def _forward_recovery(self, live: LiveSaga) -> None:
        live.move(SagaStatus.COMPENSATING)
        names = [n for n in live.plan.order if live.plan.step(n).forward_recovery
                 and live.steps[n].status in (StepStatus.COMPLETED, StepStatus.ESCALATED,
                                             StepStatus.COMPENSATION_FAILED)]
        if not names:
            await self._rt.escalate(live, "forward recovery requested but no step in effect "
                                    "declares one")
            return
        live.rollback_started_at = self.clock.now()
        if live.plan.saga.safe_state is not None:
            # Reach the declared safe state before any recovery motion or transaction.
            from .rollback import drive_to_safe_state

            reached = await drive_to_safe_state(self._rt, live, None)
            if not reached["ok"]:
                await self._rt.escalate(live, f"safe state not reached before forward "
                                        f"recovery: {reached.get('error')}")
                return
        for name in names:
            ok, error = await run_recovery(self._rt, live, name, None)
            if not ok:
                await self._rt.escalate(live, f"forward recovery of {name!r} failed: {error}")
                return
        await rollback(self._rt, live)

    # -- leases -----------------------------------------------------------------------
    def _hold(self, live: LiveSaga) -> None:
        with self._lock:
            if not live.created and live.id in self._rt.held:
                # Checked and taken under one lock, before anything is written: a second
                # run under the id of a saga this engine drives must not touch its lease.
                raise StoreError(
                    f"saga {live.id} already exists (this engine is running it); start the "
                    "new saga under another id", retryable=False, code="duplicate_saga",
                    details={"saga": live.id})
            self._rt.held[live.id] = live.token
        if self._heartbeat_enabled and self._heartbeat is None:
            self._heartbeat = threading.Thread(target=self._beat, name="reversa-heartbeat",
                                               daemon=True)
            self._heartbeat.start()

    def _release(self, live: LiveSaga) -> None:
        with self._lock:
            self._rt.held.pop(live.id, None)
        # A saga at rest released its lease in its last commit (see Store._write);
        # only one stopped for another reason still holds it here.
        at_rest = live.status in AT_REST_SAGA
        if live.created and not (at_rest and not live.events):
            self.store.release(live.id, live.token)

    def _beat(self) -> None:
        interval = self._rt.lease_s / 3
        while not self._stop.wait(interval):
            try:
                self.beat()
            except Exception as exc:
                # Whatever the store raised (an outage, a closed connection), the next
                # beat retries: a dead heartbeat thread would cost every lease held.
                log.warning("heartbeat skipped: %s: %s", type(exc).__name__, scrub(str(exc)))

    def beat(self) -> list[str]:
        """One heartbeat: extend the leases this engine holds, stop sagas whose lease was lost.

        The background thread (``heartbeat=True``) calls it every ``lease_s / 3``;
        call it yourself when you schedule time (a simulation, an engine built with
        ``heartbeat=False`` that runs long steps). A saga another worker took over is
        stopped in this process at once.

        Returns:
            The ids of the sagas whose lease was lost.

        Raises:
            StoreError: The store could not be reached; nothing was extended.
        """
        with self._lock:
            leases = list(self._rt.held.items())
        if not leases:
            return []
        lost = self.store.heartbeat(leases, self._rt.lease_s)
        for saga_id in lost:
            self._lose(saga_id)
        return lost

    def _lose(self, saga_id: str) -> None:
        """Another worker owns ``saga_id`` now: stop driving it in this process at once."""
        with self._lock:
            self._rt.lost.add(saga_id)
            self._rt.held.pop(saga_id, None)
            running = self._tasks.get(saga_id)
        if running is not None:
            loop, task = running
            loop.call_soon_threadsafe(task.cancel)

    def held(self) -> dict[str, int]:
        """Sagas this engine currently holds, with their fencing tokens."""
        with self._lock:
            return dict(self._rt.held)

    def shutdown(self) -> None:
        """Ask running sagas to stop at their next step boundary and hand over.

        Safe to call from a signal handler or another thread. Nothing already
        recorded is lost: the current call finishes, its outcome is written, the
        lease is released and any worker continues the saga.
        """
        self._rt.stopping.set()

    def close(self) -> None:
        """Stop the heartbeat and release the leases this engine holds."""
        self._stop.set()
        # Idle call threads end now; one still inside a cut-off call ends with it.
        self._rt.lanes.close()
        for sid, token in self.held().items():
            self.store.release(sid, token)
        with self._lock:
            self._rt.held.clear()
        runner = getattr(self._local, "runner", None)
        if runner is not None:
            runner.close()
            self._local.runner = None

    # -- sync bridge ------------------------------------------------------------------
    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise ConfigError("a synchronous Engine method was called inside a running event "
                              "loop; await the *_async variant instead")
        runner = getattr(self._local, "runner", None)
        if runner is None:
            # One event loop per thread for the engine's lifetime: cheaper than
            # asyncio.run per saga, and async clients bound to it keep working.
            runner = asyncio.Runner()
            self._local.runner = runner
        try:
            return runner.run(coro)
        except BaseException:
            # An interrupt can leave tasks of this run pending in the loop; the next
            # run must not resume them (and meet their exception). Start afresh.
            self._local.runner = None
            with contextlib.suppress(Exception):
                runner.close()
            raise


def _result(live: LiveSaga) -> SagaResult:
    return SagaResult(
        saga_id=live.id, status=live.status,
        results={n: s.result for n, s in live.steps.items() if s.result is not None},
        error=live.error, failed_step=live.failed_step, escalation_id=live.escalation_id,
        rollback=live.last_rollback,
    )
