"""Governed rollback: dry-run, reverse-dependency compensation, predicate, record.

Atomic or escalated (AG-384 4.2): every compensation in scope succeeds and the
consistency predicate holds, or the saga is escalated with a full report.
Bounded (4.6): nothing is attempted after the rollback window closes.
Idempotent (4.4): finished compensations are skipped on a re-run and the one
in doubt is re-sent with the same key.
Fenced at the effect boundary: an in-doubt step is recorded "never happened"
only after its operation *blocked* its key at the service, so a late or stale
request carrying it can no longer land; without a block the step escalates.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..canonical import to_recordable
from ..context import Probe
from ..errors import PreconditionFailed
from ..live import LiveSaga
from ..model import OnInfeasible, Reversibility
from ..observe import notify
from ..registry import HandlerKind
from ..states import Phase, SagaStatus, StepStatus
from ..store.governance import DecideApproval, approval_row
from .calls import (
    AttemptTimedOut,
    classify,
    invoke,
    invoke_for_record,
    recordable,
    settle_timed_out,
    with_retries,
)
from .dependents import assess
from .dryrun import DryRunReport, dry_run, rollback_targets
from .runtime import Runtime, as_checks
from .sla import measure

__all__ = ["decisions_of", "log_request", "rollback", "take_request"]


UNSETTLED = "in_doubt:unsettled"
"""Outcome code of an in-doubt step that neither block nor probe could settle."""


def _unsettled(st: Any) -> bool:
    return st.status is StepStatus.ESCALATED and st.outcome == UNSETTLED


class _Undo:
    """Outcome of undoing one step.

    ``hold_upstream``: the step is in doubt and could not be settled, so the
    steps whose effects it consumed must stay in effect too (undoing a debit
    while the credit it funded may still land would create money).
    """

    __slots__ = ("error", "escalate", "hold_upstream", "ok", "step")

    def __init__(self, step: str, ok: bool, error: str | None = None, escalate: bool = False,
                 hold_upstream: bool = False):
        self.step, self.ok, self.error, self.escalate = step, ok, error, escalate
        self.hold_upstream = hold_upstream


async def rollback(
    rt: Runtime,
    live: LiveSaga,
    *,
    scope: list[str] | None = None,
    checkpoint: str | None = None,
    end_status: SagaStatus = SagaStatus.COMPENSATED,
    requested: dict[str, Any] | None = None,
) -> bool:
    """Roll ``live`` back (all of it, or ``scope``). Returns True when consistent.

    ``requested``: who asked for it (an operator's rollback), for the record.
    On False the saga has been escalated.
    """
    if live.rollback_request is not None and end_status is not SagaStatus.RUNNING:
        # (A rollback that resumes forward leaves it for the next step boundary.)
        _already_rolling_back(rt, live)
    now = rt.clock.now()
    if live.status is not SagaStatus.COMPENSATING:
        live.move(SagaStatus.COMPENSATING)
    if live.rollback_started_at is None:
        live.rollback_started_at = now
        live.log("rollback_started", "detected", failed_step=live.failed_step,
                 error=live.error, scope=scope or "full", checkpoint=checkpoint)
    detected = live.rollback_started_at
    deadline = detected + live.plan.saga.rollback_window_s
    targets = rollback_targets(live, scope)
    undone = any(s.status is StepStatus.COMPENSATED for s in live.steps.values())
    if not targets and not undone and scope is None and end_status is SagaStatus.COMPENSATED:
        end_status = SagaStatus.FAILED  # nothing had changed: failed, and consistent
    # Other sagas that consumed what this rollback would undo come first: they
    # are rolled back (cascade), named in an escalation (block) or left standing
    # with a semantic compensation here (accept).
    decision = await assess(rt, live, targets)
    report = await dry_run(rt, live, targets, substitute=decision.accept,
                           review=["dependents"] if decision.escalate else [])
    report.dependents = decision.assessment
    live.log("dry_run", "feasible" if report.feasible else "infeasible",
             findings=report.to_dict())
    record: dict[str, Any] = {
        "failed_step": live.failed_step, "scope": _scope(checkpoint, scope),
        "detected_at": detected, "pre_state": live.pre_state, "dry_run": report.to_dict(),
        "compensations": [], "error": live.error,
    }
    if requested is not None:
        record["requested"] = requested
    if decision.assessment is not None:
        record["dependents"] = decision.assessment
    if decision.escalate is not None:
        return await _finish_escalated(rt, live, record, decision.escalate)
    record["accepted"] = decision.accept
    if not report.feasible:
        return await _infeasible(rt, live, report, record, deadline)
    done = await _undo_all(rt, live, targets, deadline, record)
    if isinstance(done, str):
        return await _finish_escalated(rt, live, record, done)
    return await _conclude(rt, live, record, checkpoint, end_status)


def take_request(live: LiveSaga) -> dict[str, Any]:
    """Consume a saga's pending rollback request: the next commit clears the flag."""
    request = live.rollback_request or {}
    live.rollback_request = None
    live.consume_request = True
    return request


def decisions_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions recorded on an approval row."""
    return list(json.loads(row["decisions_json"]))


def log_request(live: LiveSaga, request: dict[str, Any], outcome: str) -> None:
    """Record an operator's rollback request in the saga's chain."""
    live.log("rollback_requested", outcome, by=request.get("by"), reason=request.get("reason"),
             requested_at=request.get("at"), approval=request.get("approval"))


def _already_rolling_back(rt: Runtime, live: LiveSaga) -> None:
    # Requested while a failure's rollback was starting: the request is moot, but
    # it is recorded, and an approval it waited for will never run.
    request = take_request(live)
    log_request(live, request, "already_rolling_back")
    if request.get("approval") is None:
        return
    row = approval_row(rt.store, int(request["approval"]))
    if row["status"] in ("pending", "approved"):
        live.side.append(DecideApproval(
            row["id"], row["version"], live.id, live.plan.saga.workflow, row["kind"],
            "failed", decisions_of(row), decided=True,
            outcome="the saga was already rolling back after a failure"))


async def _undo_all(
    rt: Runtime, live: LiveSaga, targets: list[str], deadline: float, record: dict[str, Any]
) -> bool | str:
    """Undo ``targets`` leaves-first; steps with no pending dependents run together."""
    remaining = list(targets)
    escalations: list[str] = []
    held: set[str] = set()
    while remaining:
        if rt.clock.now() >= deadline:
            return (f"rollback window of {live.plan.saga.rollback_window_s:g}s elapsed with "
                    f"{len(remaining)} step(s) not compensated: {remaining}")
        pending = set(remaining)
        ready = [n for n in reversed(remaining) if not (live.plan.descendants(n) & pending)]
        for name in [n for n in ready if n in held]:
            ready.remove(name)
            remaining.remove(name)
            escalations.append(f"step {name!r}: left in effect, a step that consumed it is in "
                               "doubt")
            record["compensations"].append({"step": name, "outcome": "held",
                                            "reason": "a dependent step is in doubt"})
        if not ready:
            continue
        outcomes = await asyncio.gather(
            *(_contained(_undo, rt, live, n, deadline, record) for n in ready),
            return_exceptions=True)
        failures = []
        for name, outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, _Escaped):
                raise outcome.exc
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome.hold_upstream:
                held |= live.plan.upstream(name)
            if outcome.escalate:
                escalations.append(f"step {name!r}: {outcome.error}")
            elif not outcome.ok:
                failures.append(f"step {name!r}: {outcome.error}")
            remaining.remove(name)
        # Outcomes are not flushed here: they share the next commit (the next
        # compensation's intent, the conclusion, or the escalation).
        if failures:
            not_done = list(remaining)
            return (f"compensation failed ({'; '.join(failures)}); not compensated: "
                    f"{not_done}")
    if escalations:
        return "step(s) need a human: " + "; ".join(escalations)
    return True


class _Escaped:
    """An interrupt raised inside a rollback branch, carried back to the saga's task."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _contained(branch: Any, *args: Any) -> Any:
    # asyncio re-raises KeyboardInterrupt and SystemExit out of the event loop from
    # the branch's own task, leaving the saga's task pending (it then resurfaced in
    # the next, unrelated run). Caught here, it is re-raised by the saga's task. The
    # coroutine is made here, so a branch cancelled before it starts leaves none behind.
    try:
        return await branch(*args)
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Escaped(exc)


async def _undo(
    rt: Runtime, live: LiveSaga, name: str, deadline: float, record: dict[str, Any]
) -> _Undo:
    spec = live.plan.step(name)
    st = live.steps[name]
    entry: dict[str, Any] = {"step": name}
    record["compensations"].append(entry)
    if st.status in (StepStatus.RUNNING, StepStatus.FAILED) or _unsettled(st):
        # Settle first, for every kind of step: an irreversible payment that timed
        # out and never happened needs neither a human nor a recovery.
        verdict, unsettled = await _settle_in_doubt(rt, live, name)
        entry["in_doubt"] = verdict
        if unsettled is not None:
            if st.status is not StepStatus.ESCALATED:
                st.move(StepStatus.ESCALATED)
            st.error, st.outcome = unsettled, UNSETTLED
            entry.update(outcome="escalated", reason=unsettled)
            return _Undo(name, False, unsettled, escalate=True, hold_upstream=True)
        if verdict == Probe.NOT_HAPPENED.value:
            entry["outcome"] = "nothing_to_undo"
            return _Undo(name, True)
    if spec.reversibility is Reversibility.IRREVERSIBLE:
        return await _irreversible(rt, live, name, deadline, entry)
    accepted = record.get("accepted", {}).get(name)
    compensation = accepted or spec.compensation
    kind = "semantic" if accepted else spec.compensation_kind.value
    assert compensation is not None
    fn = rt.registry.get(HandlerKind.COMPENSATION, compensation)
    sla = rt.registry.sla(compensation)

    async def attempt() -> Any:
        rt.boundary()
        st.comp_attempts += 1
        if st.status is not StepStatus.COMPENSATING:
            st.move(StepStatus.COMPENSATING)
        else:
            st.dirty = True
        st.comp_started_at = st.comp_started_at or rt.clock.now()
        live.log("compensation_started", "intent", step=name, phase=Phase.COMPENSATION.value,
                 attempt=st.comp_attempts, key=rt.key(live, name, Phase.COMPENSATION))
        await rt.flush(live)  # the intent is durable before the side effect
        ctx = rt.step_ctx(live, spec, Phase.COMPENSATION, st.comp_attempts, deadline)
        if not accepted:
            await _recheck(rt, spec.preconditions, ctx)
        timeout = _timeout(spec.compensation_timeout_s, deadline, rt.clock.now())
        started = rt.clock.now()
        observers = rt.observers
        if observers:
            notify(observers, "compensation_started", live.id, name, st.comp_attempts)
        try:
            try:
                value = await invoke_for_record(fn, ctx, timeout,
                                                budget=deadline - rt.clock.now(), lanes=rt.lanes)
            except AttemptTimedOut as timed_out:
                # Never retried while it may still be running; the window bounds the wait.
                late = await settle_timed_out(timed_out, min(
                    spec.compensation_timeout_s or 0.0, deadline - rt.clock.now()))
                value = recordable(fn, late)
        except Exception as exc:
            failure = classify(exc)
            measure(rt, live, name, compensation, sla, started, failure)
            st.error, st.outcome = failure.message, failure.code
            live.log("compensation_attempt_failed", failure.code, step=name,
                     phase=Phase.COMPENSATION.value, attempt=st.comp_attempts,
                     error=failure.message, retryable=failure.retryable)
            if observers:
                notify(observers, "compensation_finished", live.id, name, st.comp_attempts,
                       failure.code, failure.message)
            raise
        measure(rt, live, name, compensation, sla, started, None)
        if observers:
            notify(observers, "compensation_finished", live.id, name, st.comp_attempts, "ok",
                   None)
        return value

    try:
        result = await with_retries(spec.compensation_retry, rt.clock, deadline, attempt)
    except Exception as exc:
        failure = classify(exc)
        st.move(StepStatus.COMPENSATION_FAILED)
        st.error, st.outcome = failure.message, failure.code
        live.log("compensation_failed", failure.code, step=name,
                 phase=Phase.COMPENSATION.value, attempt=st.comp_attempts, error=failure.message)
        entry.update(outcome="failed", error=failure.message, attempts=st.comp_attempts)
        return _Undo(name, False, failure.message)

    st.comp_result = result
    st.move(StepStatus.COMPENSATED)
    st.comp_finished_at = rt.clock.now()
    st.outcome, st.error = "compensated", None
    live.log("compensation_completed", "ok", step=name, phase=Phase.COMPENSATION.value,
             attempt=st.comp_attempts, kind=kind)
    entry.update(outcome="compensated", kind=kind, attempts=st.comp_attempts,
                 result=st.comp_result)
    if accepted:
        entry["accepted"] = accepted
    return _Undo(name, True)


async def _irreversible(
    rt: Runtime, live: LiveSaga, name: str, deadline: float, entry: dict[str, Any]
) -> _Undo:
    spec = live.plan.step(name)
    st = live.steps[name]
    if spec.forward_recovery is None:
        reason = spec.escalation.reason if spec.escalation else "irreversible"
        if st.status is not StepStatus.ESCALATED:
            st.move(StepStatus.ESCALATED)
        st.error = reason
        live.log("irreversible_escalated", "human_review", step=name, reason=reason)
        entry.update(outcome="escalated", reason=reason)
        return _Undo(name, False, reason, escalate=True)
    ok, error = await run_recovery(rt, live, name, deadline)
    entry.update(outcome="forward_recovered" if ok else "failed", error=error)
    return _Undo(name, ok, error)


async def run_recovery(
    rt: Runtime, live: LiveSaga, name: str, deadline: float | None
) -> tuple[bool, str | None]:
    """Run an irreversible step's declared forward-recovery action (AG-384 4.7)."""
    spec = live.plan.step(name)
    st = live.steps[name]
    assert spec.forward_recovery is not None
    fn = rt.registry.get(HandlerKind.ACTION, spec.forward_recovery)

    async def attempt() -> Any:
        rt.boundary()
        st.comp_attempts += 1
        if st.status is not StepStatus.COMPENSATING:
            st.move(StepStatus.COMPENSATING)
        st.dirty = True
        live.log("forward_recovery_started", "intent", step=name,
                 phase=Phase.FORWARD_RECOVERY.value, attempt=st.comp_attempts,
                 key=rt.key(live, name, Phase.FORWARD_RECOVERY))
        await rt.flush(live)
        ctx = rt.step_ctx(live, spec, Phase.FORWARD_RECOVERY, st.comp_attempts, deadline)
        budget = None if deadline is None else deadline - rt.clock.now()
        try:
            return await invoke_for_record(fn, ctx, spec.compensation_timeout_s, budget=budget,
                                           lanes=rt.lanes)
        except Exception as exc:
            failure = classify(exc)
            live.log("forward_recovery_attempt_failed", failure.code, step=name,
                     phase=Phase.FORWARD_RECOVERY.value, attempt=st.comp_attempts,
                     error=failure.message)
            raise

    try:
        result = await with_retries(spec.compensation_retry, rt.clock, deadline, attempt)
    except Exception as exc:
        failure = classify(exc)
        st.move(StepStatus.COMPENSATION_FAILED)
        st.error, st.outcome = failure.message, failure.code
        return False, failure.message

    st.comp_result = {"forward_recovery": result}
    st.move(StepStatus.COMPENSATED)
    st.comp_finished_at = rt.clock.now()
    st.outcome, st.error = "forward_recovered", None
    live.log("forward_recovery_completed", "ok", step=name, phase=Phase.FORWARD_RECOVERY.value,
             attempt=st.comp_attempts)
    return True, None


async def _settle_in_doubt(rt: Runtime, live: LiveSaga, name: str) -> tuple[str, str | None]:
    """Decide whether an in-doubt action happened, so that the answer stays true.

    "Did not happen" is only recorded when the operation's ``block`` hook has
    made the effect unable to happen later (its key tombstoned at the service,
    atomically with the check). A probe alone can confirm that it happened, but
    its "not happened" may be overtaken by a late request from a paused owner or
    a timed-out thread: then, and when nothing can tell, the step escalates.

    Returns:
        (verdict, reason it could not be settled or None).
    """
    spec = live.plan.step(name)
    st = live.steps[name]
    ctx = rt.step_ctx(live, spec, Phase.ACTION, st.attempts)
    verdict, result, how = Probe.UNKNOWN, None, "none"
    for kind, handler in ((HandlerKind.BLOCK, spec.block), (HandlerKind.PROBE, spec.probe)):
        if handler is None or verdict is not Probe.UNKNOWN:
            continue
        try:
            answer = await invoke(rt.registry.get(kind, handler), ctx, None)
            verdict, result = answer if isinstance(answer, tuple) else (answer, None)
            verdict, how = Probe(verdict), kind.value
        except Exception as exc:
            failure = classify(exc)
            live.log(f"{kind.value}_failed", failure.code, step=name, error=failure.message)
            verdict = Probe.UNKNOWN
    unsettled: str | None = None
    if verdict is Probe.HAPPENED:
        if st.status in (StepStatus.RUNNING, StepStatus.ESCALATED):
            st.move(StepStatus.COMPLETED)
        if result is not None:
            st.result = to_recordable(result)
        decision = f"happened ({how}); compensating"
    elif verdict is Probe.NOT_HAPPENED and how == "block":
        st.move(StepStatus.SKIPPED)
        decision = "blocked at the service: it never happened and now cannot"
    else:
        reason = _why_unsettled(rt, spec, verdict, how)
        unsettled = f"in doubt: {reason}"
        decision = "escalating: " + reason
    st.dirty = True
    live.log("in_doubt_resolved", verdict.value, step=name, phase=Phase.ACTION.value,
             attempt=st.attempts, decision=decision, settled_by=how, key=ctx.action_key)
    return verdict.value, unsettled


def _why_unsettled(rt: Runtime, spec: Any, verdict: Probe, how: str) -> str:
    op = rt.registry.operation(spec.action)
    cannot = getattr(op, "cannot_block", None) if op is not None else None
    no_block = (f"its operation cannot block a late request ({cannot})" if cannot else
                "its operation declares no block hook, so a late request cannot be refused")
    if verdict is Probe.NOT_HAPPENED:
        return f"the probe says it did not happen, but {no_block}"
    if how == "none" and spec.probe is None and spec.block is None:
        return "it declares neither block nor probe: whether its effect happened, or may " \
               "still happen, cannot be known"
    return f"neither block nor probe could tell whether it happened ({no_block})" \
        if spec.block is None else "the block could not settle it and no probe could tell"


async def _recheck(rt: Runtime, names: tuple[str, ...], ctx: Any) -> None:
    # State may have changed since the dry-run: check again right before acting.
    for pre in names:
        value = await invoke(rt.registry.get(HandlerKind.PRECONDITION, pre), ctx, None)
        for check in as_checks(value):
            if not check.ok:
                raise PreconditionFailed(f"precondition {pre!r} no longer holds: {check.reason}")


def _timeout(step_timeout: float | None, deadline: float, now: float) -> float:
    # Every compensation is cut off at the rollback window, declared timeout or
    # not (a plain function then runs in a thread: blocking code cannot be
    # interrupted from its own thread).
    return deadline - now if step_timeout is None else min(step_timeout, deadline - now)


async def _infeasible(
    rt: Runtime, live: LiveSaga, report: DryRunReport, record: dict[str, Any], deadline: float
) -> bool:
    saga = live.plan.saga
    if saga.safe_state is not None:
        record["safe_state"] = await drive_to_safe_state(rt, live, deadline)
    if saga.on_infeasible is OnInfeasible.FORWARD_RECOVERY:
        recoverable = [f.step for f in report.steps if f.action == "forward_recovery"]
        if recoverable and all(f.feasible or f.action == "forward_recovery"
                               for f in report.steps if f.action == "forward_recovery"):
            for name in recoverable:
                ok, error = await run_recovery(rt, live, name, deadline)
                record["compensations"].append(
                    {"step": name, "outcome": "forward_recovered" if ok else "failed",
                     "error": error})
                if not ok:
                    return await _finish_escalated(
                        rt, live, record, f"forward recovery of {name!r} failed: {error}")
            record["recovery"] = "forward"
            return await _conclude(rt, live, record, None, SagaStatus.COMPENSATED,
                                   leave_standing=True)
    reason = "rollback infeasible (dry-run): " + "; ".join(report.problems)
    return await _finish_escalated(rt, live, record, reason)


async def drive_to_safe_state(
    rt: Runtime, live: LiveSaga, deadline: float | None
) -> dict[str, Any]:
    """Run the saga's declared safe-state action; report, never raise."""
    name = live.plan.saga.safe_state
    assert name is not None
    ctx = rt.step_ctx(live, live.plan.saga.steps[0], Phase.SAFE_STATE, 1, deadline)
    live.log("safe_state_started", "intent", phase=Phase.SAFE_STATE.value, action=name)
    await rt.flush(live)
    try:
        budget = None if deadline is None else deadline - rt.clock.now()
        result = await invoke(rt.registry.get(HandlerKind.ACTION, name), ctx, None,
                              budget=budget)
    except Exception as exc:
        failure = classify(exc)
        live.log("safe_state_failed", failure.code, phase=Phase.SAFE_STATE.value,
                 error=failure.message)
        return {"action": name, "ok": False, "error": failure.message}

    live.log("safe_state_reached", "ok", phase=Phase.SAFE_STATE.value, action=name)
    return {"action": name, "ok": True, "result": to_recordable(result)}


async def _conclude(
    rt: Runtime,
    live: LiveSaga,
    record: dict[str, Any],
    checkpoint: str | None,
    end_status: SagaStatus,
    *,
    leave_standing: bool = False,
) -> bool:
    post = await rt.safe_snapshot(live)
    try:
        check = await rt.predicate(live, post, checkpoint)
    except Exception as exc:
        from ..context import Check

        check = Check(False, f"predicate raised {classify(exc).message}")
    record.update(post_state=post, predicate={"ok": check.ok, "reason": check.reason,
                                              "detail": to_recordable(check.detail)})
    live.log("predicate_evaluated", "holds" if check.ok else "violated", ok=check.ok,
             reason=check.reason)
    if not check.ok:
        return await _finish_escalated(
            rt, live, record, f"consistency predicate does not hold after rollback: "
            f"{check.reason}")
    now = rt.clock.now()
    record.update(outcome="forward_recovered" if leave_standing else "compensated",
                  finished_at=now, duration_s=now - record["detected_at"])
    live.checkpoint = checkpoint
    live.move(end_status)
    live.log("rollback_recorded", record["outcome"], record=record)
    live.log("saga_" + end_status.value, "ok")
    live.last_rollback = record
    if end_status is SagaStatus.RUNNING:
        # A resume from the checkpoint: the caller re-opens the steps and commits this
        # conclusion with them. Two commits would let a crash leave a running saga
        # with compensated steps, which nothing can move forward.
        return True
    await rt.flush(live, rollback=record)
    return True


async def _finish_escalated(
    rt: Runtime, live: LiveSaga, record: dict[str, Any], reason: str
) -> bool:
    now = rt.clock.now()
    if "post_state" not in record:
        record["post_state"] = await rt.safe_snapshot(live)
    record.update(outcome="escalated", finished_at=now, duration_s=now - record["detected_at"],
                  escalation_reason=reason)
    record.setdefault("predicate", {"ok": None, "reason": "not evaluated: rollback escalated"})
    live.log("rollback_recorded", "escalated", record=record)
    await rt.escalate(live, reason, extra={"rollback": record}, rollback=record)
    return False


def _scope(checkpoint: str | None, scope: list[str] | None) -> str:
    if checkpoint is not None:
        return f"checkpoint:{checkpoint}"
    return "partial" if scope is not None else "full"
