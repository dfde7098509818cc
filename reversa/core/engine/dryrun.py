"""Rollback dry-run (AG-384 4.10): decide feasibility without executing anything.

For every step a rollback would touch it checks that the compensation (or
forward recovery) is registered in this process, evaluates its preconditions
against the current state, and collects cost estimates against the saga's
limits. It never calls an action or a compensation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..canonical import to_recordable
from ..context import CostEstimate
from ..live import LiveSaga
from ..model import Reversibility
from ..registry import HandlerKind
from ..states import Phase, StepStatus
from .calls import classify, invoke
from .overhead import review_classes, with_overhead
from .runtime import Runtime, as_checks

__all__ = ["DryRunReport", "StepFinding", "dry_run", "rollback_targets"]

UNDO_STATUSES = frozenset({
    StepStatus.COMPLETED, StepStatus.COMPENSATING, StepStatus.COMPENSATION_FAILED,
    StepStatus.RUNNING,
})


@dataclass(slots=True)
class StepFinding:
    """What the rollback would do with one step, and whether it can.

    Attributes:
        step: Step name.
        action: ``compensate``, ``forward_recovery``, ``escalate``, or for an
            in-doubt step ``block_then_compensate``, ``probe_then_compensate`` (a
            "not happened" answer escalates: only a block can settle it) or
            ``escalate_in_doubt``.
        feasible: Whether this part of the rollback can run.
        problems: Why not, each naming the fix.
        preconditions: Evaluated preconditions.
        cost: The compensation's (first) cost estimate, when it has an estimator.
        costs: Every estimate, when the estimator returns one per unit (token
            loss and gas, say).
        compensation: The compensation the rollback would call (a semantic
            ``accept_compensation`` when dependents keep the effect).
    """

    step: str
    action: str
    feasible: bool = True
    problems: list[str] = field(default_factory=list)
    preconditions: list[dict[str, Any]] = field(default_factory=list)
    cost: dict[str, Any] | None = None
    costs: list[dict[str, Any]] = field(default_factory=list)
    compensation: str | None = None


@dataclass(slots=True)
class DryRunReport:
    """The dry-run verdict for a whole rollback.

    Attributes:
        costs: The compensations' own estimates, summed per unit.
        overhead: Operational overhead (expected review time by escalation
            class, fees, and the estimates by kind: fx, gas...).
        total_costs: ``costs`` plus the priced overhead, per unit; the saga's
            ``max_rollback_cost`` is judged on these.
        dependents: Other sagas that consumed this one's effects, each with the
            dry-run of its own rollback, and what the policy decides.
    """

    saga_id: str
    feasible: bool
    steps: list[StepFinding]
    costs: dict[str, float]
    problems: list[str]
    overhead: dict[str, Any] = field(default_factory=dict)
    total_costs: dict[str, float] = field(default_factory=dict)
    dependents: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (used in the audit log, reports and ``--json``)."""
        # Built by hand: dataclasses.asdict deep-copies and was a hot spot per rollback.
        out = {"saga_id": self.saga_id, "feasible": self.feasible, "costs": dict(self.costs),
               "problems": list(self.problems), "overhead": self.overhead,
               "total_costs": dict(self.total_costs),
               "steps": [{"step": f.step, "action": f.action, "feasible": f.feasible,
                          "problems": list(f.problems), "preconditions": f.preconditions,
                          "cost": f.cost, "costs": f.costs} for f in self.steps]}
        if self.dependents is not None:
            out["dependents"] = self.dependents
        return out


def rollback_targets(live: LiveSaga, scope: Iterable[str] | None = None) -> list[str]:
    """Steps whose effects stand (or may stand) and so must be undone, in order."""
    allowed = set(scope) if scope is not None else None
    out = []
    for name in live.plan.order:
        st = live.steps[name]
        if allowed is not None and name not in allowed:
            continue
        in_doubt_failure = st.status is StepStatus.FAILED and (st.outcome or "").startswith(
            "in_doubt:")
        escalated_irreversible = (st.status is StepStatus.ESCALATED
                                  and st.comp_finished_at is None)
        if st.status in UNDO_STATUSES or in_doubt_failure or escalated_irreversible:
            out.append(name)
    return out


async def dry_run(
    rt: Runtime,
    live: LiveSaga,
    targets: list[str],
    *,
    substitute: Mapping[str, str] | None = None,
    review: Iterable[str] = (),
) -> DryRunReport:
    """Evaluate the rollback of ``targets`` without executing it.

    Args:
        substitute: Step -> compensation to evaluate instead of the step's own
            (the semantic compensation of an accepted dependency).
        review: Escalation classes already foreseen (``dependents``...), for
            the overhead estimate.
    """
    findings: list[StepFinding] = []
    costs: dict[str, float] = {}
    problems: list[str] = []
    saga = live.plan.saga
    for name in reversed(targets):
        spec = live.plan.step(name)
        st = live.steps[name]
        if spec.reversibility is Reversibility.IRREVERSIBLE:
            finding = _irreversible(rt, spec.name, spec.forward_recovery, spec.escalation)
            findings.append(finding)
            continue
        in_doubt = st.status in (StepStatus.RUNNING, StepStatus.FAILED) or (
            st.status is StepStatus.ESCALATED and (st.outcome or "").startswith("in_doubt"))
        # An in-doubt step that declares neither block nor probe is escalated on its
        # own by the rollback (what it consumed is held); the other branches are still
        # compensated, so it does not make the whole rollback infeasible.
        finding = StepFinding(name, _settle_action(spec) if in_doubt else "compensate")
        compensation = (substitute or {}).get(name, spec.compensation)
        finding.compensation = compensation
        assert compensation is not None  # plan validation guarantees it
        if not rt.registry.has(HandlerKind.COMPENSATION, compensation):
            finding.feasible = False
            finding.problems.append(
                f"compensation {compensation!r} is not registered in this process; "
                "start the worker with the app that registers it (--app)")
        ctx = rt.step_ctx(live, spec, Phase.COMPENSATION, 0)
        for pre in spec.preconditions:
            try:
                checks = as_checks(await invoke(rt.registry.get(HandlerKind.PRECONDITION, pre),
                                                ctx, None))
                rows = [{"name": pre, "ok": c.ok, "reason": c.reason,
                         "detail": to_recordable(c.detail)} for c in checks]
            except Exception as exc:  # a failing check is a finding, not a crash
                rows = [{"name": pre, "ok": False, "reason": classify(exc).message}]
            for check_row in rows:
                finding.preconditions.append(check_row)
                if not check_row["ok"]:
                    finding.feasible = False
                    finding.problems.append(f"precondition {pre!r} of step {name!r} does not "
                                            f"hold: {check_row['reason']}")
        if spec.cost is not None:
            estimates = await _estimate(rt, spec.cost, ctx, finding)
            finding.cost = estimates[0] if estimates else None
            finding.costs = estimates
            for est in estimates:
                if "amount" in est:
                    costs[est["unit"]] = costs.get(est["unit"], 0.0) + float(est["amount"])
        findings.append(finding)
    for finding in findings:
        problems.extend(finding.problems)
    classes: list[tuple[str, str | None]] = [(c, None) for c in review]
    classes += review_classes(findings, feasible=not problems)
    overhead, total = with_overhead(saga, rt.registry, findings, classes)
    over = [(unit, limit) for unit, limit in saga.max_rollback_cost.items()
            if total.get(unit, 0.0) > limit]
    for unit, limit in reversed(over):
        problems.insert(0, (
            f"estimated rollback cost {total[unit]:.6g} {unit} exceeds the saga's limit "
            f"{limit:.6g} {unit} (operational overhead included); a human must approve or "
            "choose another route"))
    if over and not any(c == "infeasible" for c, _ in classes):
        # Too costly: a human reviews it after all (the verdict stands as it is).
        overhead, _ = with_overhead(saga, rt.registry, findings, [*classes, ("infeasible", None)])
    return DryRunReport(live.id, not problems, findings, costs, problems, overhead, total)


def _settle_action(spec: Any) -> str:
    if spec.block is not None:
        return "block_then_compensate"
    if spec.probe is not None:
        return "probe_then_compensate"
    return "escalate_in_doubt"


def _irreversible(rt: Runtime, name: str, recovery: str | None, escalation: Any) -> StepFinding:
    if recovery is not None:
        finding = StepFinding(name, "forward_recovery")
        if not rt.registry.has(HandlerKind.ACTION, recovery):
            finding.feasible = False
            finding.problems.append(
                f"forward recovery {recovery!r} of irreversible step {name!r} is not "
                "registered in this process")
        return finding
    finding = StepFinding(name, "escalate")
    if escalation is not None and not escalation.compensate_others:
        finding.feasible = False
        finding.problems.append(
            f"step {name!r} is irreversible and its policy hands the whole rollback to a "
            f"human: {escalation.reason}")
    return finding


async def _estimate(
    rt: Runtime, name: str, ctx: Any, finding: StepFinding
) -> list[dict[str, Any]]:
    try:
        value = await invoke(rt.registry.get(HandlerKind.COST, name), ctx, None)
    except Exception as exc:
        # An estimator that cannot answer blocks the rollback, visibly.
        finding.feasible = False
        finding.problems.append(f"cost estimator {name!r} failed: {classify(exc).message}")
        return [{"error": classify(exc).message}]
    return estimates_found(name, value, finding)


def estimates_found(name: str, value: Any, finding: StepFinding) -> list[dict[str, Any]]:
    """Record what cost estimator ``name`` returned on ``finding``; return the rows.

    Raises:
        TypeError: The estimator returned something other than CostEstimate(s).
    """
    estimates = [] if value is None else value if isinstance(value, list | tuple) else [value]
    out = []
    for est in estimates:
        if not isinstance(est, CostEstimate):
            raise TypeError(f"cost estimator {name!r} must return CostEstimate (or a list of "
                            f"them), got {est!r}")
        if not est.acceptable:
            finding.feasible = False
            finding.problems.append(f"compensation of step {finding.step!r} costs too much: "
                                    f"{est.reason or 'over policy'}")
        out.append({"amount": est.amount, "unit": est.unit, "acceptable": est.acceptable,
                    "reason": est.reason, "detail": to_recordable(est.detail),
                    "kind": est.kind})
    return out
