"""Does the world still agree with what a finished saga recorded? (AG-166 advanced level)

For a completed or compensated saga, each step is checked against the real
system, by key, through the step's own hooks (nothing is changed):

- a **completed** step's effect must still stand: its ``reconcile`` hook
  (phase ``action``) says so, or, without one, its ``probe`` must answer
  ``happened`` (an effect the service no longer has was reversed outside
  Reversa);
- a **compensated** step's compensation must still stand: its ``reconcile``
  hook (phase ``compensation``) says so (a correction that someone corrected
  back is drift);
- a step recorded as **never having happened** (skipped after a block, a
  definite failure) must not have happened since: its ``probe`` must not
  answer ``happened`` (an effect that appeared later).

A hook that fails, or a probe that cannot tell, makes that step *unverified*,
not drifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..context import Probe
from ..live import LiveSaga
from ..registry import HandlerKind
from ..states import Phase, StepStatus
from .calls import classify, invoke
from .runtime import Runtime, as_check

__all__ = ["Reconciliation", "reconcile"]


@dataclass
class Reconciliation:
    """What one pass found for one saga.

    Attributes:
        saga_id: The saga.
        status: Its recorded status.
        checked: Steps compared with the real system.
        drift: Disagreements: step, what is recorded, what was observed, why.
        unverified: Steps whose check could not answer, with the reason.
    """

    saga_id: str
    status: str
    checked: int = 0
    drift: list[dict[str, Any]] = field(default_factory=list)
    unverified: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (escalation reports, ``--json``)."""
        return {"saga_id": self.saga_id, "status": self.status, "checked": self.checked,
                "drift": list(self.drift), "unverified": list(self.unverified)}


async def reconcile(rt: Runtime, live: LiveSaga) -> Reconciliation:
    """Compare every step of ``live`` (loaded read-only) with the real system."""
    out = Reconciliation(live.id, live.status.value)
    for name in live.plan.order:
        spec, st = live.plan.step(name), live.steps[name]
        if st.status is StepStatus.COMPLETED:
            if spec.reconcile is not None:
                await _check(rt, live, out, name, Phase.ACTION, "effect stands")
            elif spec.probe is not None:
                await _probe(rt, live, out, name, expect=Probe.HAPPENED)
        elif st.status is StepStatus.COMPENSATED and st.outcome == "compensated":
            if spec.reconcile is not None:
                await _check(rt, live, out, name, Phase.COMPENSATION, "compensation stands")
        elif (st.status in (StepStatus.SKIPPED, StepStatus.FAILED) and st.attempts > 0
              and spec.probe is not None):
            await _probe(rt, live, out, name, expect=Probe.NOT_HAPPENED)
    return out


async def _check(rt: Runtime, live: LiveSaga, out: Reconciliation, name: str, phase: Phase,
                 recorded: str) -> None:
    spec, st = live.plan.step(name), live.steps[name]
    assert spec.reconcile is not None
    ctx = rt.step_ctx(live, spec, phase, max(1, st.comp_attempts if phase is
                                             Phase.COMPENSATION else st.attempts))
    try:
        check = as_check(await invoke(rt.registry.get(HandlerKind.RECONCILE, spec.reconcile),
                                      ctx, None))
    except Exception as exc:
        out.unverified.append({"step": name, "reason": classify(exc).message})
        return
    out.checked += 1
    if not check.ok:
        out.drift.append({"step": name, "recorded": recorded, "observed": check.reason,
                          "detail": dict(check.detail)})


async def _probe(rt: Runtime, live: LiveSaga, out: Reconciliation, name: str, *,
                 expect: Probe) -> None:
    spec, st = live.plan.step(name), live.steps[name]
    assert spec.probe is not None
    ctx = rt.step_ctx(live, spec, Phase.ACTION, max(1, st.attempts))
    try:
        answer = await invoke(rt.registry.get(HandlerKind.PROBE, spec.probe), ctx, None)
        verdict = Probe(answer[0] if isinstance(answer, tuple) else answer)
    except Exception as exc:
        out.unverified.append({"step": name, "reason": classify(exc).message})
        return
    if verdict is Probe.UNKNOWN:
        out.unverified.append({"step": name, "reason": "the probe cannot tell"})
        return
    out.checked += 1
    if verdict is expect:
        return
    if expect is Probe.HAPPENED:
        out.drift.append({"step": name, "recorded": "completed",
                          "observed": "the service has no effect under the step's key: it "
                                      "was reversed or removed outside Reversa"})
    else:
        out.drift.append({"step": name, "recorded": f"{st.status.value} (never happened)",
                          "observed": "the service now has the effect under the step's key: "
                                      "it appeared later"})
