"""Continue a saga from the durable record alone, in any process.

The plan is rebuilt from its stored canonical JSON and resolved against this
process' registry; in-doubt steps (intent without outcome) are resolved by
probe, or compensated with their own idempotency key (AG-166 scenario C).
"""

from __future__ import annotations

import json
from typing import Any

from ..context import Probe
from ..errors import PlanError, PlanTampered, ReversaError
from ..live import LiveSaga, LiveStep
from ..model import OnCrash, Saga, Step
from ..plan import Plan, verify_stored
from ..registry import HandlerKind
from ..states import Phase, SagaStatus, StepStatus
from ..store.governance import DecideApproval
from .calls import classify, invoke
from .forward import forward
from .operator import on_request
from .rollback import decisions_of, rollback
from .runtime import Runtime

__all__ = ["continue_saga", "load_live", "start_approved", "tampered_reason"]


def load_live(
    rt: Runtime, saga_id: str, token: int, *, handlers: bool = True, quarantine: bool = False
) -> LiveSaga:
    """Rebuild the in-memory image of a saga this process has just claimed.

    The stored plan is verified first (:func:`~reversa.core.plan.verify_stored`).
    ``handlers=False`` skips checking the plan's handlers against this
    process' registry: for work that calls none (marking an escalation
    resolved), so it never needs the workflow's code. With ``quarantine`` the
    plan is loaded unverified and without resolving any handler, only to report
    and escalate a saga whose plan was tampered with.

    Raises:
        PlanTampered: The stored plan does not match its recorded hashes.
    """
    row, step_rows = rt.store.load(saga_id)
    if quarantine:
        plan = _quarantined_plan(row, step_rows)
    else:
        verify_stored(saga_id, row["plan_json"], row["plan_hash"],
                      rt.store.chain_anchor(saga_id))
        plan = Plan.from_json(row["plan_json"], rt.registry if handlers else None)
    steps = {
        r["name"]: LiveStep(
            name=r["name"], position=r["position"], status=StepStatus(r["status"]),
            attempts=r["attempts"], comp_attempts=r["comp_attempts"],
            result=_load(r["result_json"]), comp_result=_load(r["comp_result_json"]),
            state=_load(r["state_json"]),
            error=r["error"], outcome=r["outcome"], started_at=r["started_at"],
            finished_at=r["finished_at"], comp_started_at=r["comp_started_at"],
            comp_finished_at=r["comp_finished_at"],
        )
        for r in step_rows
    }
    return LiveSaga(
        id=row["id"], plan=plan, input=json.loads(row["input_json"]),
        status=SagaStatus(row["status"]), steps=steps, token=token, seq=row["audit_seq"],
        head=row["audit_head"], created_at=row["created_at"], updated_at=row["updated_at"],
        pre_state=_load(row["pre_state_json"]), failed_step=row["failed_step"],
        error=row["error"], rollback_started_at=row["rollback_started_at"],
        checkpoint=row["checkpoint"], resumes=row["resumes"], lease_owner=rt.owner,
        lease_expires_at=row["lease_expires_at"], created=True, app=row["app"],
        services=row["services"], rollback_request=_load(row.get("rollback_requested")),
    )


async def continue_saga(
    rt: Runtime, live: LiveSaga, *, reason: str, stalled: bool = False
) -> None:
    """Drive a claimed saga to an end state according to its policy.

    A forward run the watchdog found ``stalled`` is compensated whatever its
    crash policy: resuming a run that stopped making progress is not safe.
    """
    live.log("recovered", "claimed", owner=rt.owner, token=live.token, reason=reason)
    if stalled:
        live.log("watchdog_stalled", "taking_over", reason=reason)
    if live.status is SagaStatus.APPROVED and not await start_approved(rt, live):
        await forward(rt, live)
        return
    # A running saga whose owner died before reaching a step boundary: act on the
    # operator's request here (an in-doubt step is settled by the rollback).
    if (live.status is SagaStatus.RUNNING and live.rollback_request is not None
            and not await on_request(rt, live)):
        return
    if live.status is SagaStatus.RUNNING:
        in_doubt = [n for n, s in live.steps.items() if s.status is StepStatus.RUNNING]
        if live.plan.saga.on_crash is OnCrash.RESUME and not stalled:
            for name in in_doubt:
                await _resolve_for_resume(rt, live, name)
            await rt.flush(live)
            await forward(rt, live)
            return
        live.failed_step = in_doubt[0] if in_doubt else live.failed_step
        live.error = live.error or (reason if stalled else
                                    f"the process running this saga stopped ({reason})")
        await rollback(rt, live)
        return
    if live.status is SagaStatus.COMPENSATING:
        await rollback(rt, live, scope=_scope(live), checkpoint=live.checkpoint)
        return
    await rt.flush(live)


async def start_approved(rt: Runtime, live: LiveSaga) -> bool:
    """Set an approved saga running: from step 1 (snapshot first), or on from where
    it was held. Returns True when a step is in doubt (recover it as a crashed run).

    Raises:
        ReversaError: The snapshot failed: nothing ran, the saga stays approved.
    """
    fresh = all(s.status is StepStatus.PENDING for s in live.steps.values())
    if fresh:
        try:
            live.pre_state = await rt.snapshot(live)
        except Exception as exc:
            raise ReversaError(
                f"saga {live.id}: snapshot {live.plan.saga.snapshot!r} failed before step 1, "
                f"so nothing ran and the saga stays approved: {exc}; fix the snapshot "
                "function or the services it reads") from exc
        if live.pre_state is not None:
            live.log("snapshot_taken", "pre_workflow", state=live.pre_state)
        for row in rt.store.rows("approvals", saga_id=live.id, kind="start"):
            if row["status"] == "approved":
                live.side.append(DecideApproval(
                    row["id"], row["version"], live.id, live.plan.saga.workflow, "start",
                    "executed", decisions_of(row), decided=True,
                    outcome=f"started by {rt.owner}"))
    live.move(SagaStatus.RUNNING)
    live.log("saga_started" if fresh else "saga_resumed", "approved", owner=rt.owner)
    return any(s.status is StepStatus.RUNNING for s in live.steps.values())


def _scope(live: LiveSaga) -> list[str] | None:
    # A rollback interrupted while undoing back to a checkpoint keeps that scope.
    cp = live.checkpoint
    if cp is None:
        return None
    return list(live.plan.order[live.plan.order.index(cp) + 1 :])


async def _resolve_for_resume(rt: Runtime, live: LiveSaga, name: str) -> None:
    spec = live.plan.step(name)
    st = live.steps[name]
    verdict, result = Probe.UNKNOWN, None
    if spec.probe is not None:
        ctx = rt.step_ctx(live, spec, Phase.ACTION, st.attempts)
        try:
            answer = await invoke(rt.registry.get(HandlerKind.PROBE, spec.probe), ctx, None)
            verdict, result = answer if isinstance(answer, tuple) else (answer, None)
            verdict = Probe(verdict)
        except Exception as exc:
            live.log("probe_failed", classify(exc).code, step=name, error=classify(exc).message)
    if verdict is Probe.HAPPENED:
        st.move(StepStatus.COMPLETED)
        st.result = result
        st.outcome = "ok"
        decision = "recorded as happened; resuming after it"
    else:
        st.move(StepStatus.PENDING)
        decision = ("recorded as never happened; re-running" if verdict is Probe.NOT_HAPPENED
                    else "unknown; re-running with the same idempotency key")
    live.log("in_doubt_resolved", verdict.value, step=name, phase=Phase.ACTION.value,
             attempt=st.attempts, decision=decision)


def _quarantined_plan(row: dict[str, Any], step_rows: list[dict[str, Any]]) -> Plan:
    # Enough of the plan to report on: its steps as stored, no handler resolved.
    try:
        return Plan.from_json(row["plan_json"])
    except (PlanError, ValueError, KeyError, TypeError):
        names = [r["name"] for r in step_rows]
        saga = Saga.chain(row["workflow"], [Step(name=n, action="unreadable", compensation="-")
                                            for n in names], predicate="-")
        return Plan.from_json(_plan_text(saga))


def _plan_text(saga: Saga) -> str:
    from ..canonical import canonical_json
    from ..plan import PLAN_FORMAT

    return canonical_json({"format": PLAN_FORMAT, "saga": saga.model_dump(mode="json")})


def tampered_reason(exc: PlanTampered) -> str:
    """The escalation reason for a saga whose stored plan was edited."""
    return f"{exc.message}; a human must compare the plan with the audit record"


def _load(text: Any) -> Any:
    return None if text is None else json.loads(text)
