"""The tools agents call, as plain methods (the MCP wiring lives in ``server``).

Every method takes the calling agent's policy and a validated argument model
and returns JSON-ready data. Reads go to the store through the read-only
:class:`~reversa.Inspector`; starts and rollback requests go through the
engine with the agent's identity (``agent:<name>``), which the audit chain
records. An agent sees only sagas and escalations of workflows its policy
allows. There is deliberately no method that resolves an escalation, approves
anything, edits a plan, changes a policy or returns a service.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlmodel import col, select

from ..core.errors import ConfigError, NotFound, ReversaError
from ..core.governance import Approval
from ..core.inspector import Inspector
from ..core.model import Step
from ..core.plan import validate
from ..core.states import TERMINAL_SAGA
from ..core.store import Store
from ..core.store.read_models import EscalationRecord, SagaRecord
from ..core.views import SagaView
from . import args
from .catalog import Catalog, Workflow
from .policy import AgentPolicy, Refused
from .redact import Redactor
from .runner import SagaRunner

__all__ = ["Desk"]

_REQUEST_NS = uuid.UUID("5d0c1f0e-9b7a-4d2e-8a43-6a1f2b8c9e01")


class Desk:
    """The agent-facing operations of one MCP server.

    Args:
        catalog: Workflows offered.
        store: The saga store.
        runner: Runs sagas (and approved ones) in this process.
        redactor: Masks secrets in text this desk writes to the store (an
            approval's reason quotes what the preview found).
    """

    def __init__(self, catalog: Catalog, store: Store, runner: SagaRunner,
                 redactor: Redactor) -> None:
        self.catalog = catalog
        self.store = store
        self.runner = runner
        self.redactor = redactor
        self.inspector = Inspector(store)

    # -- workflows ----------------------------------------------------------------------
    def list_workflows(self, agent: AgentPolicy, _: args.ListWorkflows) -> dict[str, Any]:
        """The workflows this agent may start, with their steps' rollback semantics."""
        return {"agent": agent.name, "workflows": [
            {"name": wf.name, "description": wf.description,
             "value": wf.value.describe() if wf.value else None,
             "steps": [_step(s) for s in wf.saga.steps]}
            for wf in self.catalog.workflows() if agent.allows(wf.name)]}

    def describe_workflow(self, agent: AgentPolicy, a: args.DescribeWorkflow) -> dict[str, Any]:
        """One workflow in full: steps, policies, input schema and this agent's limits."""
        wf = self._workflow(agent, a.workflow)
        saga = wf.saga
        plan = validate(saga, self.catalog.registry)
        return {
            "name": wf.name, "description": wf.description, "plan_hash": plan.hash,
            "order": list(plan.order), "input_schema": wf.input_schema(),
            "value": wf.value.describe() if wf.value else None,
            "steps": [{**_step(s), "params": s.params, "retry": s.retry.model_dump(),
                       "timeout_s": s.timeout_s, "checkpoint": s.checkpoint}
                      for s in saga.steps],
            "policy": {"rollback_window_s": saga.rollback_window_s,
                       "max_rollback_cost": saga.max_rollback_cost,
                       "on_failure": saga.on_failure.value,
                       "on_infeasible": saga.on_infeasible.value,
                       "snapshot": saga.snapshot, "predicate": saga.predicate,
                       "safe_state": saga.safe_state},
            "your_limits": agent.limits(),
        }

    def preview(self, agent: AgentPolicy, a: args.Preview) -> dict[str, Any]:
        """Validate a start and dry-run its rollback; records and runs nothing."""
        wf = self._workflow(agent, a.workflow)
        data = wf.parse_input(a.input)
        report, costs, value = self._assess(wf, data)
        try:
            reasons = self._conditions(agent, wf, value, costs, report)
            decision = {"outcome": "needs_approval" if reasons else "would_start",
                        "reasons": reasons}
        except Refused as exc:
            decision = {"outcome": "refused", "reasons": [exc.message]}
        return {
            "workflow": wf.name, "input": _given(wf, data),
            "value": None if value is None else {"amount": value[0], "unit": value[1]},
            "rollback": {k: v for k, v in report.items() if k != "saga_id"},
            "estimated_rollback_cost": costs, "decision": decision,
        }

    # -- sagas --------------------------------------------------------------------------
    def start_saga(self, agent: AgentPolicy, a: args.StartSaga) -> dict[str, Any]:
        """Start a saga, or record it pending a human's approval when over a limit."""
        wf = self._workflow(agent, a.workflow)
        data = wf.parse_input(a.input)
        saga_id = (uuid.uuid5(_REQUEST_NS, f"{agent.name}\0{a.request_id}").hex
                   if a.request_id else uuid.uuid4().hex)
        if a.request_id:
            existing = self._existing(saga_id, wf)
            if existing is not None:
                return existing
        report, costs, value = self._assess(wf, data)
        reasons = [self.redactor.text(r) for r in
                   self._conditions(agent, wf, value, costs, report)]
        if reasons:
            approval = self.runner.engine.submit(
                wf.saga, data, by=agent.identity, approval_reason="; ".join(reasons),
                saga_id=saga_id)
            assert isinstance(approval, Approval)  # an approval reason always holds it
            return {"status": "pending_approval", "saga_id": saga_id,
                    "approval_id": approval.id, "reasons": reasons,
                    "next": f"a human decides: `reversa approvals approve {approval.id} --by "
                            f"NAME` (or reject); the saga runs once approved: watch it with "
                            f"saga_status"}
        future = self.runner.start(wf.saga, data, by=agent.identity, saga_id=saga_id)
        status = self._status_of(saga_id)
        if future.done() and future.exception() is None:
            status = str(future.result().status)
        return {"status": "started", "saga_id": saga_id, "saga_status": status,
                "estimated_rollback_cost": costs,
                "next": "watch it with saga_status (or read reversa://sagas/" + saga_id + ")"}

    def saga_status(self, agent: AgentPolicy, a: args.SagaRef) -> dict[str, Any]:
        """Where a saga stands: status, steps, rollback record, escalations."""
        view = self._saga(agent, a.saga_id)
        last = view.rollbacks[-1] if view.rollbacks else None
        return {
            "saga_id": view.id, "workflow": view.workflow, "status": view.status.value,
            "finished": view.status in TERMINAL_SAGA, "failed_step": view.failed_step,
            "error": view.error,
            "steps": [{"name": s.name, "status": s.status.value, "outcome": s.outcome,
                       "error": s.error, "result": s.result} for s in view.steps],
            "rollback": None if last is None else {
                "outcome": last.outcome, "scope": last.scope, "duration_s": last.duration_s,
                "predicate_ok": last.predicate_ok,
                "estimated_cost": (last.record.get("dry_run") or {}).get("costs")},
            "escalations": [{"id": e.id, "status": e.status, "reason": e.reason,
                             "resource": f"reversa://escalations/{e.id}"}
                            for e in view.escalations],
        }

    def saga_timeline(self, agent: AgentPolicy, a: args.SagaRef) -> dict[str, Any]:
        """The saga's audit chain, in order, and whether it verifies."""
        view = self._saga(agent, a.saga_id)
        entries = self.inspector.audit(view.id)
        return {
            "saga_id": view.id, "verified": self.inspector.verify_audit(view.id).ok,
            "entries": [{"seq": e.seq, "ts": e.ts, "step": e.step, "phase": e.phase,
                         "attempt": e.attempt, "event": e.event, "outcome": e.outcome,
                         "detail": e.detail} for e in entries],
        }

    def saga_resource(self, agent: AgentPolicy, saga_id: str) -> dict[str, Any]:
        """Everything recorded about a saga (the ``reversa://sagas/{id}`` resource)."""
        return self._saga(agent, saga_id).model_dump(mode="json")

    def request_rollback(self, agent: AgentPolicy, a: args.RequestRollback) -> dict[str, Any]:
        """Ask for a running or recently completed saga to be rolled back."""
        if not agent.may_request_rollback:
            raise Refused(f"agent {agent.name!r} may not request rollbacks (its policy's "
                          "may_request_rollback is false); ask a human operator")
        view = self._saga(agent, a.saga_id)
        outcome = self.runner.engine.request_rollback(view.id, by=agent.identity,
                                                      reason=a.reason)
        if isinstance(outcome, Approval):  # the governance policy wants a human first
            return {"status": "pending_approval", "saga_id": view.id,
                    "approval_id": outcome.id, "reasons": [outcome.reason]}
        return {"status": "requested", "saga_id": view.id,
                "saga_status": str(outcome.status),
                "next": "a running saga rolls back at its next step boundary; watch it with "
                        "saga_status"}

    # -- escalations --------------------------------------------------------------------
    def list_escalations(self, agent: AgentPolicy, a: args.ListEscalations) -> dict[str, Any]:
        """Escalations of the workflows this agent may use (read only)."""
        if a.workflow is not None:
            agent.check_workflow(a.workflow)
        query = (select(EscalationRecord, SagaRecord.workflow)
                 .join(SagaRecord, col(SagaRecord.id) == col(EscalationRecord.saga_id)))
        if a.status != "all":
            query = query.where(EscalationRecord.status == a.status)
        if a.workflow is not None:
            query = query.where(SagaRecord.workflow == a.workflow)
        with self.inspector.session() as session:
            rows = session.exec(query.order_by(col(EscalationRecord.id))).all()
        shown = [(e, wf) for e, wf in rows if agent.allows(wf)][: a.limit]
        return {"escalations": [
            {"id": e.id, "saga_id": e.saga_id, "workflow": wf, "created_at": e.created_at,
             "status": e.status, "reason": e.reason, "resolution": e.resolution,
             "resolved_by": e.resolved_by, "resource": f"reversa://escalations/{e.id}"}
            for e, wf in shown]}

    def escalation_resource(self, agent: AgentPolicy, escalation_id: int) -> dict[str, Any]:
        """One escalation with its state report (the ``reversa://escalations/{id}`` resource)."""
        view = self.inspector.escalation(escalation_id)
        self._saga(agent, view.saga_id)  # the same visibility rule as its saga
        return view.model_dump(mode="json")

    def recent(self, agent: AgentPolicy, limit: int = 50) -> list[tuple[str, str]]:
        """``(uri, title)`` of recent sagas and open escalations this agent may read."""
        out = [(f"reversa://sagas/{s.id}", f"saga {s.id[:12]} {s.workflow} ({s.status.value})")
               for s in self.inspector.sagas(limit=limit) if agent.allows(s.workflow)]
        open_ = self.list_escalations(agent, args.ListEscalations(status="open", limit=limit))
        out += [(e["resource"], f"escalation #{e['id']} of saga {e['saga_id'][:12]}")
                for e in open_["escalations"]]
        return out

    # -- internals ----------------------------------------------------------------------
    def _workflow(self, agent: AgentPolicy, name: str) -> Workflow:
        agent.check_workflow(name)
        return self.catalog.get(name)

    def _saga(self, agent: AgentPolicy, saga_id: str) -> SagaView:
        try:
            view = self.inspector.saga(saga_id)
        except NotFound:
            raise NotFound(f"no saga {saga_id!r}; start_saga returns the ids of the sagas "
                           "you start") from None
        if not agent.allows(view.workflow):
            # Said as "not found": an agent learns nothing about other workflows' sagas.
            raise NotFound(f"no saga {saga_id!r}; start_saga returns the ids of the sagas "
                           "you start")
        return view

    def _assess(
        self, wf: Workflow, data: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], tuple[float, str] | None]:
        """Dry-run report, estimated rollback cost per unit, and the value at stake."""
        value = wf.value.read(data) if wf.value else None
        report = self.runner.engine.preview(wf.saga, data).to_dict()
        costs = {unit: float(amount) for unit, amount in report["costs"].items()}
        if wf.preview_cost is not None:
            estimates = wf.preview_cost(data, self.runner.engine.services)
            for est in estimates if isinstance(estimates, list) else [estimates]:
                # The larger of the two answers: the steps' estimators cannot price an
                # effect that has not happened yet, the workflow's may not see every step.
                costs[est.unit] = max(costs.get(est.unit, 0.0), float(est.amount))
                report.setdefault("workflow_estimates", []).append(
                    {"amount": est.amount, "unit": est.unit, "reason": est.reason,
                     "detail": dict(est.detail)})
        return report, costs, value

    @staticmethod
    def _conditions(
        agent: AgentPolicy, wf: Workflow, value: tuple[float, str] | None,
        costs: dict[str, float], report: Mapping[str, Any],
    ) -> list[str]:
        reasons = agent.start_conditions(wf.name, value, costs)
        if not report["feasible"]:
            reasons.append("its rollback dry-run finds problems: " + "; ".join(
                report["problems"]))
        return reasons

    def _existing(self, saga_id: str, wf: Workflow) -> dict[str, Any] | None:
        try:
            record = self.inspector.record(saga_id)
        except NotFound:
            return None
        if record.workflow != wf.name:
            raise ConfigError(f"request_id already started a {record.workflow} saga "
                              f"({saga_id}); use a new request_id for a new start")
        return {"status": "already_started", "saga_id": saga_id,
                "saga_status": str(record.status),
                "next": "this request_id started it before; watch it with saga_status"}

    def _status_of(self, saga_id: str) -> str:
        try:
            return str(self.inspector.record(saga_id).status)
        except ReversaError:
            return "unknown"


def _step(step: Step) -> dict[str, Any]:
    irreversible = step.reversibility.value == "irreversible"
    return {
        "name": step.name, "action": step.action, "depends_on": list(step.depends_on),
        "reversibility": step.reversibility.value,
        "compensation": step.compensation,
        "compensation_kind": None if irreversible else step.compensation_kind.value,
        "cost_estimator": step.cost, "preconditions": list(step.preconditions),
        "forward_recovery": step.forward_recovery,
        "escalation": step.escalation.reason if step.escalation else None,
    }


def _given(wf: Workflow, data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in wf.fixed_input}
