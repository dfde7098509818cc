"""Rolling back a saga whose effects other sagas consumed (AG-384 advanced level).

Before a rollback undoes anything, it reads the links whose provider is this
saga and whose consumer's step still stands, for the steps the rollback would
undo. If there are any, the saga's ``on_dependents`` policy decides:

- ``block``: escalate, naming every dependent (the default);
- ``cascade``: roll the dependents back first, deepest first across sagas
  (a dependent's own dependents before it), each with its own dry-run, plan,
  predicate and record; if any cannot be (it is running, escalated, its
  dry-run finds it infeasible, or its rollback escalates), escalate instead;
- ``accept``: leave the dependents standing and undo each consumed step with
  its ``accept_compensation`` (a semantic compensation), telling each
  dependent's chain.

Whatever the policy, the assessment carries the dry-run of each dependent's
rollback, and goes into the rollback record and both chains. A cycle among
the sagas to roll back (A consumed B's effect and B consumed A's) is escalated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import PlanError, ReversaError
from ..live import LiveSaga
from ..model import OnDependents
from ..registry import HandlerKind
from ..states import SagaStatus
from ..store.relations import LIVE_OR_DONE, STANDING
from .runtime import Runtime

__all__ = ["Decision", "assess"]


@dataclass
class Decision:
    """What the assessment decided for the rollback in progress.

    Attributes:
        escalate: Why the rollback must go to a human instead (None: proceed).
        accept: Step -> semantic compensation to run instead of the step's own.
        assessment: The JSON record (dependents, their dry-runs, the order).
    """

    escalate: str | None = None
    accept: dict[str, str] = field(default_factory=dict)
    assessment: dict[str, Any] | None = None


def _standing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in rows if d["step_status"] in STANDING and d["saga_status"] in LIVE_OR_DONE]


def drain_notes(rt: Runtime, live: LiveSaga,
                waiting: list[tuple[int, str, str, dict[str, Any]]] | None = None) -> None:
    """Append the entries other sagas left for this chain while its owner was live."""
    if waiting is None:
        waiting = rt.store.relations.waiting(live.id)
    for note_id, event, outcome, detail in waiting:
        live.log(event, outcome, **detail)
        live.rows.append(("note_done", (note_id,)))


async def assess(rt: Runtime, live: LiveSaga, targets: list[str], *,
                 execute: bool = True) -> Decision:
    """Assess (and with ``execute``, act on) the sagas that consumed ``targets``' effects."""
    rel = rt.store.relations
    waiting, dependents = rel.rollback_inputs(live.id, notes=execute)
    if execute:
        drain_notes(rt, live, waiting)
    direct = [d for d in _standing(dependents)
              if d["provider_step"] is None or d["provider_step"] in targets]
    if not direct:
        return Decision()
    policy = live.plan.saga.on_dependents
    order, edges, cycle = _closure(rt, live.id, direct)
    sagas = {}
    for sid in order:
        sagas[sid] = await _dry_run_of(rt, sid)
    links = [{"consumer": d["consumer_saga"], "consumer_step": d["consumer_step"],
              "provider": live.id, "provider_step": d["provider_step"],
              "resource": d["resource"], "how": d["how"]} for d in direct]
    assessment: dict[str, Any] = {
        "policy": policy.value, "links": links, "order": order,
        "edges": {k: sorted(v) for k, v in edges.items()},
        "dependents": [sagas[s] for s in order], "cycle": cycle}
    named = "; ".join(_describe(d) for d in direct)
    decision = Decision(assessment=assessment)
    if cycle:
        decision.escalate = (f"rollback dependency cycle across sagas {' -> '.join(cycle)}: no "
                             "order can roll them back; a human must break it")
    elif policy is OnDependents.BLOCK:
        decision.escalate = (f"other sagas consumed this saga's effects and the workflow's "
                             f"policy is to block: {named}; roll them back or resolve")
    elif policy is OnDependents.ACCEPT:
        decision.accept, decision.escalate = _accept(rt, live, direct)
    else:
        stuck = [f"saga {s} is {sagas[s]['status']}" for s in order
                 if sagas[s]["status"] != SagaStatus.COMPLETED.value]
        stuck += [f"saga {s}'s rollback is infeasible: {'; '.join(sagas[s]['problems'])}"
                  for s in order if not sagas[s]["feasible"]]
        if stuck:
            decision.escalate = ("dependents cannot be rolled back first (cascade): "
                                 + "; ".join(stuck))
    assessment["outcome"] = ("escalate" if decision.escalate else
                             "accept" if decision.accept else "cascade")
    if not execute:
        return decision
    live.log("dependents_assessed", assessment["outcome"], policy=policy.value, links=links,
             order=order, reason=decision.escalate)
    if decision.escalate is None and policy is OnDependents.CASCADE:
        decision.escalate = await _cascade(rt, live, order, assessment)
        assessment["outcome"] = "escalate" if decision.escalate else "cascaded"
    elif decision.escalate is None:
        for d in direct:
            rel.note(d["consumer_saga"], "provider_rolled_back", "accepted", {
                "provider": live.id, "provider_step": d["provider_step"],
                "compensation": decision.accept.get(d["provider_step"] or ""),
                "reason": "the provider rolls back and leaves this saga's use of its effect "
                          "standing (semantic compensation)"})
    return decision


def _describe(d: dict[str, Any]) -> str:
    via = f" via {d['resource']}" if d["resource"] else " (declared)"
    what = d["provider_step"] or "its effects"
    return (f"saga {d['consumer_saga']} ({d['workflow']}, {d['saga_status']}): step "
            f"{d['consumer_step']!r} consumed {what}{via}")


def _closure(rt: Runtime, root: str, direct: list[dict[str, Any]]
             ) -> tuple[list[str], dict[str, set[str]], list[str]]:
    """Dependents of ``root`` (transitively), consumers first; and a cycle if one exists."""
    rel = rt.store.relations
    edges: dict[str, set[str]] = {root: {d["consumer_saga"] for d in direct}}
    frontier = list(edges[root])
    while frontier:
        sid = frontier.pop()
        if sid in edges:
            continue
        edges[sid] = {d["consumer_saga"] for d in _standing(rel.dependents(sid))}
        frontier.extend(edges[sid] - set(edges))
    order: list[str] = []
    state: dict[str, int] = {}
    path: list[str] = []
    cycle: list[str] = []

    def visit(node: str) -> None:
        nonlocal cycle
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1 and not cycle:
                cycle = [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2
        order.append(node)

    visit(root)
    return [s for s in order if s != root], edges, cycle


async def _dry_run_of(rt: Runtime, saga_id: str) -> dict[str, Any]:
    from .dryrun import dry_run, rollback_targets
    from .recovery import load_live

    row, _ = rt.store.load(saga_id)
    out: dict[str, Any] = {"saga": saga_id, "workflow": row["workflow"], "status": row["status"]}
    try:
        other = load_live(rt, saga_id, int(row["lease_token"]))
        report = await dry_run(rt, other, rollback_targets(other))
    except (PlanError, ReversaError) as exc:
        out.update(feasible=False, problems=[exc.message], dry_run=None)
        return out
    out.update(feasible=report.feasible, problems=list(report.problems),
               dry_run=report.to_dict())
    return out


def _accept(rt: Runtime, live: LiveSaga, direct: list[dict[str, Any]]
            ) -> tuple[dict[str, str], str | None]:
    consumed = {d["provider_step"] for d in direct}
    steps = sorted(s for s in consumed if s is not None)
    if None in consumed:
        steps = sorted(set(steps) | {n for n in live.plan.order
                                     if live.plan.step(n).accept_compensation})
    accept: dict[str, str] = {}
    missing = []
    for name in steps:
        comp = live.plan.step(name).accept_compensation
        if comp is None or not rt.registry.has(HandlerKind.COMPENSATION, comp):
            missing.append(name)
        else:
            accept[name] = comp
    if missing:
        return {}, (f"the workflow accepts its dependents, but step(s) {missing} declare no "
                    "registered accept_compensation to undo them while the dependents keep "
                    "their effect")
    return accept, None


async def _cascade(rt: Runtime, live: LiveSaga, order: list[str],
                   assessment: dict[str, Any]) -> str | None:
    from .recovery import load_live
    from .rollback import rollback

    done: list[dict[str, Any]] = []
    assessment["cascade"] = done
    for sid in order:
        claimed = rt.store.claim(rt.owner, rt.lease_s, saga_id=sid,
                                 statuses=[SagaStatus.COMPLETED])
        if not claimed:
            return f"dependent saga {sid} could not be taken over (it moved on meanwhile)"
        token = claimed[0][1]
        rt.held[sid] = token
        try:
            other = load_live(rt, sid, token)
            drain_notes(rt, other)
            other.error = (f"rolled back first because saga {live.id} rolls back and this "
                           "saga consumed its effects")
            other.log("cascade_rollback", "started", provider=live.id,
                      provider_workflow=live.plan.saga.workflow)
            ok = await rollback(rt, other)
        except ReversaError as exc:
            rt.store.release(sid, token)
            return f"dependent saga {sid} could not be rolled back: {exc.message}"
        finally:
            rt.held.pop(sid, None)
        done.append({"saga": sid, "status": other.status.value,
                     "escalation": other.escalation_id})
        live.log("dependent_rolled_back", other.status.value, dependent=sid,
                 escalation=other.escalation_id)
        if not ok:
            return (f"dependent saga {sid} was rolled back first and escalated "
                    f"(#{other.escalation_id}); this rollback waits for that review")
    return None
