"""Preview a saga before it runs: the rollback dry-run of a plan nobody started.

An agent (or its operator) asks "if I start this and it has to be undone, can
it be, and at what cost?" before anything happens. The preview validates the
plan against the registry, checks that every ``$input`` reference resolves in
the given input, then evaluates the rollback as if every step had completed:
which compensation, forward recovery or escalation each step would get, the
compensations' preconditions as they stand now, and their cost estimates
against the saga's ``max_rollback_cost``.

It records nothing, calls no action or compensation, and hands handlers no
effect journal. A precondition or estimator that needs a result of an earlier
step (``$results.<step>`` in the step's parameters) cannot be judged before the
saga runs: it is reported as deferred, not as a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import StepContext, idempotency_key, iter_refs, resolve_refs
from ..errors import PermanentError
from ..model import Reversibility, Step
from ..plan import Plan
from ..registry import HandlerKind
from ..states import Phase
from .calls import classify, invoke
from .dryrun import DryRunReport, StepFinding, estimates_found
from .dryrun import _irreversible as irreversible_finding
from .runtime import Runtime, as_checks

__all__ = ["PREVIEW_ID", "preview"]

PREVIEW_ID = "preview"
"""The saga id handlers see during a preview (no saga of that id is ever stored)."""


async def preview(rt: Runtime, plan: Plan, input: Mapping[str, Any]) -> DryRunReport:
    """Evaluate the rollback of ``plan`` run on ``input``, as if every step had completed."""
    problems = _input_problems(plan, input)
    findings: list[StepFinding] = []
    costs: dict[str, float] = {}
    for name in reversed(plan.order):
        spec = plan.step(name)
        if spec.reversibility is Reversibility.IRREVERSIBLE:
            findings.append(irreversible_finding(rt, spec.name, spec.forward_recovery,
                                                 spec.escalation))
            continue
        finding = StepFinding(name, "compensate")
        ctx = _ctx(rt, plan, spec, input)
        deferred = _needs_results(spec)
        for pre in spec.preconditions:
            try:
                rows = [{"name": pre, "ok": c.ok, "reason": c.reason, "detail": dict(c.detail)}
                        for c in as_checks(await invoke(
                            rt.registry.get(HandlerKind.PRECONDITION, pre), ctx, None))]
            except Exception as exc:
                rows = [_failed_check(pre, exc, deferred)]
            for row in rows:
                finding.preconditions.append(row)
                if row["ok"] is False:
                    finding.feasible = False
                    finding.problems.append(f"precondition {pre!r} of step {name!r} does not "
                                            f"hold: {row['reason']}")
        if spec.cost is not None:
            finding.costs = await _estimate(rt, spec.cost, ctx, finding, deferred)
            finding.cost = finding.costs[0] if finding.costs else None
            for est in finding.costs:
                if "amount" in est:
                    costs[est["unit"]] = costs.get(est["unit"], 0.0) + float(est["amount"])
        findings.append(finding)
    for unit, limit in plan.saga.max_rollback_cost.items():
        if costs.get(unit, 0.0) > limit:
            problems.append(
                f"estimated rollback cost {costs[unit]:.6g} {unit} exceeds the saga's limit "
                f"{limit:.6g} {unit}")
    for finding in findings:
        problems.extend(finding.problems)
    return DryRunReport(PREVIEW_ID, not problems, findings, costs, problems)


def _ctx(rt: Runtime, plan: Plan, spec: Step, input: Mapping[str, Any]) -> StepContext:
    # No journal: nothing a preview calls may record an effect.
    return StepContext(
        saga_id=PREVIEW_ID, workflow=plan.saga.workflow, step=spec.name,
        phase=Phase.COMPENSATION, attempt=0,
        idempotency_key=idempotency_key(PREVIEW_ID, spec.name, Phase.COMPENSATION.value),
        input=input, params=spec.params, results={}, result=None, pre_state=None,
        deadline=None, clock=rt.clock, services=rt.services,
        action_key=idempotency_key(PREVIEW_ID, spec.name, Phase.ACTION.value),
    )


async def _estimate(
    rt: Runtime, name: str, ctx: StepContext, finding: StepFinding, deferred: bool
) -> list[dict[str, Any]]:
    try:
        value = await invoke(rt.registry.get(HandlerKind.COST, name), ctx, None)
    except Exception as exc:
        row = _failed_check(name, exc, deferred)
        if row["ok"] is False:
            finding.feasible = False
            finding.problems.append(f"cost estimator {name!r} failed: {row['reason']}")
        return [{"error": row["reason"]}]
    return estimates_found(name, value, finding)


def _needs_results(spec: Step) -> bool:
    return any(ref.startswith("$results.") for ref in iter_refs(spec.params))


def _failed_check(name: str, exc: Exception, deferred: bool) -> dict[str, Any]:
    message = classify(exc).message
    if deferred and isinstance(exc, PermanentError):
        return {"name": name, "ok": None, "reason": f"deferred: needs the results of earlier "
                f"steps, judged when the rollback runs ({message})"}
    return {"name": name, "ok": False, "reason": message}


def _input_problems(plan: Plan, input: Mapping[str, Any]) -> list[str]:
    """Every ``$input`` reference of the plan that does not resolve in ``input``."""
    problems: list[str] = []
    for name in plan.order:
        for ref in iter_refs(plan.step(name).params):
            if not ref.startswith("$input"):
                continue
            try:
                resolve_refs(ref, input, {}, where=name)
            except PermanentError as exc:
                problems.append(f"input: {exc.message}")
    return list(dict.fromkeys(problems))
