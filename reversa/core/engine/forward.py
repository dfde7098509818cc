"""The forward run: intent before each side effect, outcome after it.

A step's outcome is committed together with the next step's intent, so the
hot path costs about one commit per step while a crash still leaves every
step either recorded or visibly in doubt.
"""

from __future__ import annotations

from typing import Any

from ..context import StepContext
from ..errors import RollbackRequested
from ..live import LiveSaga
from ..model import OnFailure, Step
from ..observe import notify
from ..registry import HandlerKind
from ..states import Phase, SagaStatus, StepStatus
from .calls import (
    AttemptTimedOut,
    Failure,
    classify,
    invoke_for_record,
    recordable,
    settle_timed_out,
    with_retries,
)
from .links import gate, post_notes, record_declared
from .operator import on_request
from .rollback import rollback
from .runtime import Runtime

__all__ = ["forward", "on_failure"]


async def forward(rt: Runtime, live: LiveSaga) -> None:
    """Run pending steps in plan order; on failure apply the saga's policy."""
    while True:
        for name in live.plan.order:
            st = live.steps[name]
            if st.status in (StepStatus.COMPLETED, StepStatus.SKIPPED):
                continue
            try:
                failure = await _run_step(rt, live, live.plan.step(name))
            except RollbackRequested:
                # An operator's request, seen at this step boundary: roll back, hold
                # for its approval, or (rejected meanwhile) run on.
                if await on_request(rt, live):
                    break
                return
            if failure is not None:
                retry = await on_failure(rt, live, name, failure)
                if retry:
                    break  # a checkpoint resume: scan the plan again from the top
                return
        else:
            live.move(SagaStatus.COMPLETED)
            live.log("saga_completed", "ok")
            await rt.flush(live)
            if live.rollback_request is not None:
                # Requested while the last step ran: a completed saga is rolled back
                # (its window starts now).
                await on_request(rt, live)
            return


async def _run_step(rt: Runtime, live: LiveSaga, spec: Step) -> Failure | None:
    st = live.steps[spec.name]
    fn = rt.registry.get(HandlerKind.ACTION, spec.action)
    calls: list[StepContext] = []  # the last attempt's context: what its action declared
    first = st.attempts
    doubt: list[Failure] = []  # attempts whose effect may have happened

    async def attempt() -> Any:
        rt.boundary(live)
        st.attempts += 1
        st.move(StepStatus.RUNNING)
        st.started_at = st.started_at or rt.clock.now()
        notes: list[dict[str, Any]] = []
        if spec.resources is not None:
            # Holds are checked on every attempt; resources and links recorded once.
            notes = await gate(rt, live, spec, rt.step_ctx(live, spec, Phase.ACTION, st.attempts),
                               record=st.attempts == first + 1)
        live.log("step_started", "intent", step=spec.name, phase=Phase.ACTION.value,
                 attempt=st.attempts, key=rt.key(live, spec.name, Phase.ACTION))
        await rt.flush(live)  # the intent is durable before the side effect
        post_notes(rt, notes)
        if live.rollback_request is not None and st.attempts == 1:
            # The request came back with this very commit (it was made while the
            # previous step ran): the call has not been made, so its intent is
            # withdrawn and the saga stops at this boundary after all.
            st.move(StepStatus.PENDING)
            st.attempts, st.started_at = 0, None
            live.log("step_withdrawn", "rollback_requested", step=spec.name,
                     phase=Phase.ACTION.value, attempt=1)
            raise RollbackRequested("an operator requested a rollback")
        ctx = rt.step_ctx(live, spec, Phase.ACTION, st.attempts)
        calls[:] = [ctx]
        observers = rt.observers
        if observers:
            notify(observers, "step_started", live.id, spec.name, st.attempts)
        try:
            try:
                value = await invoke_for_record(fn, ctx, spec.timeout_s, lanes=rt.lanes)
            except AttemptTimedOut as timed_out:
                # The thread cannot be stopped: wait for it (one more timeout) rather
                # than overlap it with a retry; its late outcome is this attempt's.
                live.log("step_attempt_timed_out", "waiting", step=spec.name,
                         phase=Phase.ACTION.value, attempt=st.attempts,
                         grace_s=spec.timeout_s)
                value = recordable(fn, await settle_timed_out(timed_out, spec.timeout_s))
        except Exception as exc:
            failure = classify(exc)
            if failure.in_doubt:
                doubt.append(failure)
            st.error, st.outcome = failure.message, failure.code
            live.log("step_attempt_failed", failure.code, step=spec.name,
                     phase=Phase.ACTION.value, attempt=st.attempts, error=failure.message,
                     retryable=failure.retryable, in_doubt=failure.in_doubt)
            if observers:
                notify(observers, "step_finished", live.id, spec.name, st.attempts,
                       failure.code, failure.message)
            raise
        if observers:
            notify(observers, "step_finished", live.id, spec.name, st.attempts, "ok", None)
        return value

    try:
        result = await with_retries(spec.retry, rt.clock, None, attempt)
    except Exception as exc:
        failure = classify(exc)
        if doubt and not failure.in_doubt:
            # A later attempt's clean failure says nothing about an earlier one whose
            # outcome was unknown: the step stays in doubt, and the rollback settles it.
            failure = Failure(failure.code, f"{failure.message} (an earlier attempt's outcome "
                              f"is unknown: {doubt[-1].message})", False, True)
        st.move(StepStatus.FAILED)
        st.finished_at = rt.clock.now()
        st.error = failure.message
        st.outcome = f"in_doubt:{failure.code}" if failure.in_doubt else failure.code
        live.failed_step, live.error = spec.name, failure.message
        live.log("step_failed", failure.code, step=spec.name, phase=Phase.ACTION.value,
                 attempt=st.attempts, error=failure.message, in_doubt=failure.in_doubt)
        return failure
    st.result = result
    declared = calls[0].consumed if calls else []
    if declared:
        # Links the action declared: in this saga's chain and the table first, then
        # in each provider's chain.
        notes = record_declared(rt, live, spec.name, declared)
        if notes:
            await rt.flush(live)
            post_notes(rt, notes)
    if spec.checkpoint:
        # The state a later rollback-to-checkpoint must reproduce.
        st.state = await rt.snapshot(live)
    st.move(StepStatus.COMPLETED)
    st.finished_at = rt.clock.now()
    st.outcome, st.error = "ok", None
    live.log("step_completed", "ok", step=spec.name, phase=Phase.ACTION.value,
             attempt=st.attempts)
    return None


async def on_failure(rt: Runtime, live: LiveSaga, failed: str, failure: Failure) -> bool:
    """Apply the saga's failure policy. Returns True to run forward again."""
    saga = live.plan.saga
    checkpoint = _last_checkpoint(live, failed)
    retries_left = live.resumes < saga.checkpoint_retries
    if saga.on_failure is OnFailure.RETRY_FROM_CHECKPOINT and retries_left:
        scope = _after(live, checkpoint)
        live.log("resume_from_checkpoint", "rolling_back_to", checkpoint=checkpoint,
                 failed_step=failed, resume=live.resumes + 1)
        ok = await rollback(rt, live, scope=scope, checkpoint=checkpoint,
                           end_status=SagaStatus.RUNNING)
        if not ok:
            return False
        await _reopen(rt, live, [*scope, failed])
        return True
    if saga.on_failure is OnFailure.ROLLBACK_TO_CHECKPOINT and checkpoint is not None:
        await rollback(rt, live, scope=_after(live, checkpoint), checkpoint=checkpoint)
        return False
    await rollback(rt, live)
    return False


def _last_checkpoint(live: LiveSaga, failed: str) -> str | None:
    best = None
    for name in live.plan.order:
        if name == failed:
            break
        if live.plan.step(name).checkpoint and live.steps[name].status is StepStatus.COMPLETED:
            best = name
    return best


def _after(live: LiveSaga, checkpoint: str | None) -> list[str]:
    if checkpoint is None:
        return list(live.plan.order)
    index = live.plan.order.index(checkpoint)
    return list(live.plan.order[index + 1 :])


async def _reopen(rt: Runtime, live: LiveSaga, names: list[str]) -> None:
    # A resume starts a new generation of action keys (see Runtime.key), so the
    # re-run is not deduplicated against the effect that was just compensated.
    live.resumes += 1
    live.rollback_started_at = None
    live.failed_step = None
    live.error = None
    for name in names:
        st = live.steps[name]
        if st.status in (StepStatus.COMPENSATED, StepStatus.FAILED, StepStatus.SKIPPED):
            st.move(StepStatus.PENDING)
            st.generation = live.resumes
            st.attempts = st.comp_attempts = 0
            st.result = st.comp_result = st.error = st.outcome = None
            st.started_at = st.finished_at = st.comp_started_at = st.comp_finished_at = None
    live.log("saga_resumed", "running", generation=live.resumes)
    # One commit with the rollback's conclusion (see rollback._conclude).
    await rt.flush(live, rollback=live.last_rollback)
