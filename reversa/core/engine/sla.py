"""Measuring compensation calls against their endpoint's SLA (see :mod:`reversa.core.sla`)."""

from __future__ import annotations

from ..live import LiveSaga
from ..sla import SLA
from .calls import Failure
from .runtime import Runtime

__all__ = ["measure"]


def measure(rt: Runtime, live: LiveSaga, step: str, endpoint: str, sla: SLA | None,
            started: float, failure: Failure | None) -> None:
    """Queue one measured attempt (it shares the commit of the attempt's outcome).

    Nothing is recorded for a compensation without a declared SLA: the hot path
    of plain rollbacks stays as it was.
    """
    if sla is None:
        return
    # No answer at all (a timeout, a lost connection, a retryable failure) is
    # unavailability; a definite refusal is an answer.
    available = failure is None or not (failure.retryable or failure.in_doubt)
    live.rows.append(("sla_call", (
        endpoint, live.id, step, started, max(0.0, rt.clock.now() - started), failure is None,
        available, None if failure is None else failure.code, sla.latency_s,
        sla.availability)))
