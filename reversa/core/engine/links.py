"""Before a step acts: its resources, the holds on them, and the sagas it consumes.

Called on every attempt of a step whose plan names a ``resources`` hook, before
its intent is recorded (so a step refused by a hold never ran):

1. the hook names the resources (``ledger.account:cust:alice``...);
2. if another saga holds one (it is rolling back or escalated), the step waits
   up to the workflow's ``hold_wait_s``, polling, then fails with
   :class:`~reversa.core.errors.ResourceHeld` naming the holder and its
   escalation;
3. on the first attempt the resources are recorded, and every *consumed*
   resource that another saga's standing step *produced* becomes a link,
   recorded in ``reversa_links`` and in both sagas' chains (this saga's in its
   intent commit; the provider's now if it is at rest, else when its owner
   next loads or rolls it back).

Links declared by the action itself (``ctx.consumes``) are recorded when it
completes (:func:`record_declared`).
"""

from __future__ import annotations

from typing import Any

from ..context import StepContext
from ..errors import PermanentError, ResourceHeld, StepError
from ..live import LiveSaga
from ..model import Step
from ..registry import HandlerKind
from ..resources import Resource, Role, as_resources
from ..store.relations import HOLDING, LIVE_OR_DONE, STANDING
from .calls import invoke
from .runtime import Runtime

__all__ = ["HOLD_POLL_S", "gate", "post_notes", "record_declared"]

HOLD_POLL_S = 1.0
"""How often a step waiting for a held resource looks again."""


async def gate(rt: Runtime, live: LiveSaga, spec: Step, ctx: StepContext, *,
               record: bool) -> list[dict[str, Any]]:
    """Name the step's resources, wait out (or refuse on) holds, queue links.

    Returns:
        The provider notes to post once the intent commit has succeeded.

    Raises:
        ResourceHeld: A resource is still held when the wait ends.
    """
    assert spec.resources is not None
    try:
        found = as_resources(await invoke(rt.registry.get(HandlerKind.RESOURCES, spec.resources),
                                          ctx, None), f"resources hook {spec.resources!r}")
    except StepError:
        raise
    except Exception as exc:  # the action has not run: a definite failure, not in doubt
        raise PermanentError(f"step {spec.name!r}: resources hook {spec.resources!r} failed: "
                             f"{type(exc).__name__}: {exc}", code="resources_failed") from exc
    if not found:
        return []
    keys = sorted({r.key for r in found})
    rows = await _wait_for_holds(rt, live, spec, keys)
    if not record:
        return []
    now = rt.clock.now()
    for res in found:
        live.rows.append(("resource", (live.id, spec.name, res.kind, res.id, res.key,
                                       res.role.value, now)))
    return _derive_links(rt, live, spec, found, rows, now)


async def _wait_for_holds(rt: Runtime, live: LiveSaga, spec: Step,
                          keys: list[str]) -> list[dict[str, Any]]:
    wait = live.plan.saga.hold_wait_s
    deadline = rt.clock.now() + wait
    waited = False
    while True:
        rows = rt.store.relations.sharing(keys, live.id,
                                          completed_since=rt.clock.now() - rt.link_horizon_s)
        held = [r for r in rows if r["saga_status"] in HOLDING]
        if not held:
            if waited:
                live.log("resource_released", "proceeding", step=spec.name)
            return rows
        now = rt.clock.now()
        if now >= deadline:
            raise _held_error(spec, held, wait)
        if not waited:
            waited = True
            live.log("resource_wait", "waiting", step=spec.name, wait_s=wait,
                     holders=sorted({f"{r['saga_id']}:{r['rkey']}" for r in held}))
        await rt.clock.sleep(min(HOLD_POLL_S, deadline - now))


def _held_error(spec: Step, held: list[dict[str, Any]], wait: float) -> ResourceHeld:
    first = held[0]
    esc = first["escalation"]
    state = (f"escalated as #{esc}" if esc is not None else first["saga_status"])
    fix = (f"resolve it (`reversa escalations resolve {esc} ...`) and run this saga again"
           if esc is not None else "run this saga again once that rollback has ended")
    others = len({r["saga_id"] for r in held}) - 1
    more = f" (and {others} more holder(s))" if others > 0 else ""
    waited = f" after waiting {wait:g}s" if wait > 0 else ""
    return ResourceHeld(
        f"step {spec.name!r} did not run{waited}: {first['rkey']} is held by saga "
        f"{first['saga_id']} (workflow {first['workflow']}, {state}){more}; {fix}",
        details={"resource": first["rkey"], "holder": first["saga_id"], "escalation": esc,
                 "holders": sorted({r["saga_id"] for r in held})})


def _derive_links(rt: Runtime, live: LiveSaga, spec: Step, found: list[Resource],
                  rows: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    consumed = {r.key for r in found if r.role is Role.CONSUMES}
    seen: set[tuple[str, str, str]] = set()
    notes: list[dict[str, Any]] = []
    for row in rows:
        key = (row["saga_id"], row["step"], row["rkey"])
        if (row["rkey"] not in consumed or row["role"] != Role.PRODUCES.value
                or row["step_status"] not in STANDING or row["saga_status"] not in LIVE_OR_DONE
                or key in seen):
            continue
        seen.add(key)
        notes.append(_link(live, spec.name, row["saga_id"], row["step"], row["rkey"],
                           "resource", f"consumes {row['rkey']}, which it produced", now))
    return notes


def record_declared(rt: Runtime, live: LiveSaga, step: str,
                    consumed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue the links an action declared with ``ctx.consumes``; return the provider notes."""
    now = rt.clock.now()
    notes = []
    for item in consumed:
        provider = item["saga"]
        if not rt.store.relations.exists(provider):
            live.log("consumes_unknown", "ignored", step=step, provider=provider,
                     reason="no such saga in this store: nothing to link")
            continue
        notes.append(_link(live, step, provider, item["step"], None, "declared",
                           item["reason"] or "declared by the action", now))
    return notes


def _link(live: LiveSaga, step: str, provider: str, provider_step: str | None,
          resource: str | None, how: str, reason: str, now: float) -> dict[str, Any]:
    live.rows.append(("link", (live.id, step, provider, provider_step, resource, how, reason,
                               now)))
    live.log("consumes", "linked", step=step, provider=provider, provider_step=provider_step,
             resource=resource, how=how, reason=reason)
    return {"provider": provider, "detail": {
        "consumer": live.id, "consumer_workflow": live.plan.saga.workflow,
        "consumer_step": step, "provider_step": provider_step, "resource": resource,
        "how": how, "reason": reason}}


def post_notes(rt: Runtime, notes: list[dict[str, Any]]) -> None:
    """Record each link in its provider's chain (after the consumer's commit)."""
    for note in notes:
        rt.store.relations.note(note["provider"], "consumed_by", "linked", note["detail"])

