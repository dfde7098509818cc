"""Service-level agreements of compensation endpoints (AG-166 advanced level).

In a cross-organisational workflow the compensation runs on someone else's
system: a partner bank's recall desk, a logistics provider's cancellation API.
What that endpoint promises (how fast it answers, how often it is up) is part
of the contract; Reversa measures every compensation call against it.

- declare: ``registry.declare_sla("payments.transfer:compensate", SLA(2.0, 0.999))``,
  or a ``compensation_sla`` attribute on the operation;
- measure: the engine records each attempt of a compensation with a declared
  SLA (duration on the engine's clock, whether the endpoint answered) in
  ``reversa_sla_calls``, in the same commit as the attempt's outcome;
- report: :func:`report` (``reversa sla report``) per endpoint, with the
  breaches, and :func:`metrics` as flat gauges for any metrics system;
- use: the continuous feasibility check warns when an endpoint a saga's
  rollback needs breaches its availability, and escalates when the promised
  latencies of the remaining compensations no longer fit the rollback window.

An attempt counts as *unavailable* when the endpoint did not answer: a
timeout, a lost connection, a retryable failure. A definite refusal
(``PermanentError``, a precondition) is an answer: available, not ok.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PlanError

__all__ = ["SLA", "EndpointReport", "Metric", "metrics", "report"]


@dataclass(frozen=True, slots=True)
class SLA:
    """What a compensation endpoint promises.

    Attributes:
        latency_s: Each call answers within this many seconds.
        availability: Fraction of calls that get an answer (0.999 = 99.9%).
    """

    latency_s: float
    availability: float

    def __post_init__(self) -> None:
        if not self.latency_s > 0 or not 0 < self.availability <= 1:
            raise PlanError(f"SLA(latency_s={self.latency_s}, availability={self.availability})"
                            ": latency must be > 0 s and availability in (0, 1]")


@dataclass(slots=True)
class EndpointReport:
    """Measured service of one compensation endpoint over a period.

    Attributes:
        endpoint: The compensation's registered name.
        calls: Attempts measured.
        unavailable: Attempts the endpoint did not answer.
        availability: ``1 - unavailable / calls``.
        promised_availability: The SLA's availability (the latest declared).
        latency_p95_s: 95th percentile of the attempts' durations (nearest rank).
        latency_max_s: The slowest attempt.
        promised_latency_s: The SLA's latency.
        latency_breaches: Attempts slower than promised.
        breaches: What breaches the SLA, in words (empty: none).
    """

    endpoint: str
    calls: int
    unavailable: int
    availability: float
    promised_availability: float
    latency_p95_s: float
    latency_max_s: float
    promised_latency_s: float
    latency_breaches: int
    breaches: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        """Whether the endpoint broke its SLA in the period."""
        return bool(self.breaches)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"endpoint": self.endpoint, "calls": self.calls, "unavailable": self.unavailable,
                "availability": self.availability,
                "promised_availability": self.promised_availability,
                "latency_p95_s": self.latency_p95_s, "latency_max_s": self.latency_max_s,
                "promised_latency_s": self.promised_latency_s,
                "latency_breaches": self.latency_breaches, "breached": self.breached,
                "breaches": list(self.breaches)}


@dataclass(frozen=True, slots=True)
class Metric:
    """One gauge sample: a metric name, its labels, its value."""

    name: str
    labels: Mapping[str, str]
    value: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "labels": dict(self.labels), "value": self.value}


def report(rows: Iterable[Mapping[str, Any]]) -> list[EndpointReport]:
    """Aggregate ``reversa_sla_calls`` rows (oldest first) into one report per endpoint."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row["endpoint"]), []).append(row)
    out = []
    for endpoint, calls in sorted(grouped.items()):
        latest = calls[-1]
        promised_lat = float(latest["promised_latency_s"])
        promised_av = float(latest["promised_availability"])
        durations = sorted(float(c["duration_s"]) for c in calls)
        down = sum(1 for c in calls if not c["available"])
        slow = sum(1 for c in calls if float(c["duration_s"]) > float(c["promised_latency_s"]))
        availability = 1.0 - down / len(calls)
        rep = EndpointReport(
            endpoint=endpoint, calls=len(calls), unavailable=down, availability=availability,
            promised_availability=promised_av, latency_p95_s=_p95(durations),
            latency_max_s=durations[-1], promised_latency_s=promised_lat,
            latency_breaches=slow)
        if availability < promised_av:
            rep.breaches.append(
                f"availability {availability:.4%} below the promised {promised_av:.4%} "
                f"({down} of {len(calls)} calls unanswered)")
        if slow:
            rep.breaches.append(
                f"{slow} of {len(calls)} calls slower than the promised {promised_lat:g}s "
                f"(slowest {durations[-1]:.3f}s)")
        out.append(rep)
    return out


def metrics(reports: Iterable[EndpointReport]) -> list[Metric]:
    """The reports as flat gauges (``reversa_compensation_*``), labelled by endpoint."""
    out: list[Metric] = []
    for rep in reports:
        labels = {"endpoint": rep.endpoint}
        for name, value in (
            ("calls", rep.calls), ("unavailable", rep.unavailable),
            ("availability", rep.availability),
            ("availability_promised", rep.promised_availability),
            ("latency_p95_seconds", rep.latency_p95_s),
            ("latency_max_seconds", rep.latency_max_s),
            ("latency_promised_seconds", rep.promised_latency_s),
            ("latency_breaches", rep.latency_breaches),
            ("sla_breached", 1.0 if rep.breached else 0.0),
        ):
            out.append(Metric(f"reversa_compensation_{name}", labels, float(value)))
    return out


def _p95(sorted_values: list[float]) -> float:
    rank = max(1, math.ceil(0.95 * len(sorted_values)))
    return sorted_values[rank - 1]
