"""Shared machinery of the engine: contexts, fenced flushes, snapshots, escalation."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..canonical import to_jsonable, to_recordable
from ..clock import Clock
from ..context import Check, PredicateContext, SnapshotContext, StepContext, idempotency_key
from ..errors import RollbackRequested, ShutdownRequested
from ..live import LiveSaga
from ..model import Step
from ..registry import HandlerKind, Registry
from ..states import Phase, SagaStatus, StepStatus
from ..store import Store
from .calls import classify, invoke
from .committer import GroupCommitter
from .lanes import Lanes

__all__ = ["Runtime"]


@dataclass
class Runtime:
    """Everything the engine's coroutines share; one per :class:`Engine`."""

    registry: Registry
    store: Store
    clock: Clock
    services: Mapping[str, Any]
    owner: str
    lease_s: float
    held: dict[str, int] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    committer: GroupCommitter | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    link_horizon_s: float = 7 * 86_400.0
    """How long after it completed a saga's effects still link its consumers."""
    governance: Mapping[str, Any] | None = None
    observers: tuple[Any, ...] = ()
    lanes: Lanes = field(default_factory=Lanes)
    """Threads for plain calls that must be cut off (compensations, declared timeouts)."""

    def boundary(self, live: LiveSaga | None = None) -> None:
        """A step boundary: the one place a graceful shutdown, or (for a forward
        run, ``live`` given) an operator's rollback request, may stop a saga."""
        if self.stopping.is_set():
            raise ShutdownRequested("shutting down: the saga is handed to another worker")
        if live is not None and live.rollback_request is not None:
            raise RollbackRequested("an operator requested a rollback")

    # -- durable writes ---------------------------------------------------------------
    async def flush(
        self,
        live: LiveSaga,
        *,
        escalation: dict[str, Any] | None = None,
        rollback: dict[str, Any] | None = None,
    ) -> int | None:
        """Commit everything queued on ``live`` (fenced by its lease token).

        A saga not yet stored is created in the same commit: the plan, its hash,
        the pre-state and step 1's intent are durable before step 1 can run.
        Sagas in flight together share the commit (see ``committer``).
        """
        if self.committer is None:
            self.committer = GroupCommitter(self.store, self.clock, self.lease_s)
        return await self.committer.flush(live, escalation, rollback)

    # -- contexts ---------------------------------------------------------------------
    def key(self, live: LiveSaga, step: str, phase: Phase) -> str:
        """Idempotency key, in the generation of the step's effect.

        A checkpoint resume starts a new generation for the steps it re-runs only;
        the steps before the checkpoint keep the keys their effects carry.
        """
        return idempotency_key(live.id, step, phase.value, live.steps[step].generation)

    def step_ctx(
        self,
        live: LiveSaga,
        spec: Step,
        phase: Phase,
        attempt: int,
        deadline: float | None = None,
    ) -> StepContext:
        """Build the context handed to one call."""
        step = live.steps[spec.name]
        action_key = self.key(live, spec.name, Phase.ACTION)
        return StepContext(
            saga_id=live.id, workflow=live.plan.saga.workflow, step=spec.name, phase=phase,
            attempt=attempt,
            idempotency_key=action_key if phase is Phase.ACTION else self.key(
                live, spec.name, phase),
            input=live.input, params=spec.params,
            results=live.results(live.plan.upstream(spec.name)),
            result=step.result, pre_state=live.pre_state, deadline=deadline,
            clock=self.clock, services=self.services, generation=step.generation,
            action_key=action_key, fencing_token=live.token,
            journal=self.store.journal(live.id, live.token),
        )

    # -- snapshots and predicates -----------------------------------------------------
    async def snapshot(self, live: LiveSaga) -> dict[str, Any] | None:
        """Capture the state the saga touches, if it declares a snapshot."""
        name = live.plan.saga.snapshot
        if name is None:
            return None
        ctx = SnapshotContext(
            saga_id=live.id, workflow=live.plan.saga.workflow, input=live.input,
            results=live.results(), services=self.services, clock=self.clock,
        )
        value = await invoke(self.registry.get(HandlerKind.SNAPSHOT, name), ctx, None)
        data = to_jsonable(value)
        if not isinstance(data, dict):
            raise TypeError(f"snapshot {name!r} must return a dict, got {type(value).__name__}")
        return data

    async def safe_snapshot(self, live: LiveSaga) -> dict[str, Any] | None:
        """Snapshot for reports: a failure is reported, never raised."""
        try:
            return await self.snapshot(live)
        except Exception as exc:
            return {"snapshot_error": classify(exc).message}

    async def predicate(
        self, live: LiveSaga, post: dict[str, Any] | None, checkpoint: str | None
    ) -> Check:
        """Evaluate the consistency predicate (AG-384 4.3)."""
        saga = live.plan.saga
        cp_state = live.steps[checkpoint].state if checkpoint is not None else None
        if saga.predicate is None:
            baseline, what = ((cp_state, f"checkpoint {checkpoint!r}") if checkpoint else
                              (live.pre_state, "pre-workflow"))
            ok = post == baseline
            diff = _diff(baseline or {}, post or {})
            return Check(ok, f"state equals the {what} snapshot" if ok else
                         f"state differs from the {what} snapshot at {sorted(diff)}",
                         {"diff": diff})
        ctx = PredicateContext(
            saga_id=live.id, workflow=saga.workflow, input=live.input, pre_state=live.pre_state,
            post_state=post, checkpoint=checkpoint, results=live.results(),
            services=self.services, clock=self.clock, checkpoint_state=cp_state,
        )
        value = await invoke(self.registry.get(HandlerKind.PREDICATE, saga.predicate), ctx, None)
        return as_check(value)

    # -- escalation -------------------------------------------------------------------
    async def escalate(
        self,
        live: LiveSaga,
        reason: str,
        *,
        extra: dict[str, Any] | None = None,
        rollback: dict[str, Any] | None = None,
        snapshot: bool = True,
    ) -> int | None:
        """Hand the saga to a human with a full state report (AG-166 4.6).

        ``snapshot=False`` runs no handler at all (a tampered plan must not
        choose what code runs, not even its snapshot function).
        """
        report = to_recordable({
            "reason": reason,
            "saga": {"id": live.id, "workflow": live.plan.saga.workflow,
                     "status_before": live.status.value, "failed_step": live.failed_step,
                     "error": live.error, "plan_hash": live.plan.hash},
            "steps": state_report(live),
            "pre_state": live.pre_state,
            "current_state": (await self.safe_snapshot(live) if snapshot else
                              {"snapshot_skipped": "no handler runs from this plan"}),
            **(extra or {}),
        })
        for step in live.steps.values():
            if step.status is StepStatus.RUNNING:
                # An unresolved in-doubt step is part of what the human must decide.
                step.error = step.error or "in doubt: intent recorded, outcome unknown"
                step.dirty = True
        live.move(SagaStatus.ESCALATED)
        live.log("escalated", "human_review", reason=reason)
        if rollback is not None:
            live.last_rollback = rollback
        live.escalation_id = await self.flush(
            live, escalation={"reason": reason, "report": report}, rollback=rollback)
        return live.escalation_id


def as_checks(value: Any) -> list[Check]:
    """A precondition may return one check (or bool) or a list of them."""
    if isinstance(value, list | tuple) and not (
            len(value) == 2 and isinstance(value[0], bool) and isinstance(value[1], str)):
        return [as_check(v) for v in value]
    return [as_check(value)]


def as_check(value: Any) -> Check:
    """Accept ``Check``, ``bool`` or ``(bool, reason)`` from user predicates."""
    if isinstance(value, Check):
        return value
    if isinstance(value, bool):
        return Check(value, "holds" if value else "does not hold")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        return Check(value[0], str(value[1]))
    raise TypeError(f"a predicate or precondition must return Check or bool, got {value!r}")


def state_report(live: LiveSaga) -> list[dict[str, Any]]:
    """What ran, what was compensated, what remains, with errors: per step."""
    remains = {StepStatus.COMPLETED, StepStatus.COMPENSATION_FAILED, StepStatus.ESCALATED,
               StepStatus.RUNNING, StepStatus.COMPENSATING}
    out = []
    for name in live.plan.order:
        st = live.steps[name]
        spec = live.plan.step(name)
        out.append({
            "step": name, "status": st.status.value, "reversibility": spec.reversibility.value,
            "attempts": st.attempts, "compensation_attempts": st.comp_attempts,
            "outcome": st.outcome, "error": st.error, "result": st.result,
            "effect_remains": st.status in remains,
            "forward_recovery": spec.forward_recovery,
            "escalation": spec.escalation.reason if spec.escalation else None,
        })
    return out


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in set(a) | set(b):
        path = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.update(_diff(va, vb, path + "."))
        elif va != vb:
            out[path] = {"before": va, "after": vb}
    return out
