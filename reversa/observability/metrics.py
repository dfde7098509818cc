"""Prometheus metrics read from the store (extra ``metrics``: prometheus_client).

Every scrape asks the database, so the figures are those of every worker and
agent sharing it, not of one process::

    from reversa.observability.metrics import render_metrics

    body = render_metrics(store)   # bytes in the Prometheus text format (serve at /metrics)

Metrics:

- ``reversa_sagas{workflow,status}``: sagas by status (gauge);
- ``reversa_escalations_open{workflow}`` and
  ``reversa_escalation_open_age_seconds{workflow}``: open escalations and the age of the
  oldest; ``reversa_escalation_age_seconds``: a histogram of the open ones' ages;
- ``reversa_steps_in_doubt{workflow}``: steps whose outcome is unknown and that no live
  owner is settling (intent recorded with no live lease, or escalated unsettled);
- ``reversa_rollback_duration_seconds{outcome}``: failure detection to consistency,
  per recorded rollback (histogram);
- ``reversa_compensation_failures_total{kind}``: compensations that failed after their
  retries (``final``) and single failed attempts (``attempt``), from the audit log;
- ``reversa_approvals_pending{kind}`` and ``reversa_outbox_undelivered``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Connection, and_, case, func, or_, select

from ..core.states import SagaStatus
from ..core.store import Store
from ..core.store import schema as t

__all__ = ["DURATION_BUCKETS", "StoreCollector", "render_metrics"]

DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
AGE_BUCKETS: tuple[float, ...] = (60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600)


class StoreCollector(Collector):
    """A prometheus_client collector that reads the Reversa store on each scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Query the store and yield the metric families (see the module docstring)."""
        now = self.store.now()
        with self.store._tx() as conn:  # one consistent read snapshot
            yield self._sagas(conn)
            yield from self._escalations(conn, now)
            yield self._in_doubt(conn, now)
            yield self._rollbacks(conn)
            yield self._failures(conn)
            yield self._approvals(conn)
            outbox = GaugeMetricFamily("reversa_outbox_undelivered",
                                       "Notifications not yet delivered (due or backing off).")
            outbox.add_metric([], float(conn.execute(
                select(func.count()).select_from(t.outbox)
                .where(t.outbox.c.delivered_at.is_(None))).scalar() or 0))
            yield outbox

    def _sagas(self, conn: Connection) -> Metric:
        s = t.sagas.c
        family = GaugeMetricFamily("reversa_sagas", "Sagas by workflow and status.",
                                   labels=["workflow", "status"])
        rows = conn.execute(select(s.workflow, s.status, func.count())
                            .group_by(s.workflow, s.status)).all()
        seen = {(w, st): n for w, st, n in rows}
        for workflow in sorted({w for w, _ in seen}):
            for status in SagaStatus:  # every status, zeros included: no gaps in graphs
                family.add_metric([workflow, status.value],
                                  float(seen.get((workflow, status.value), 0)))
        return family

    def _escalations(self, conn: Connection, now: float) -> Iterable[Metric]:
        e, s = t.escalations.c, t.sagas.c
        rows = conn.execute(select(s.workflow, e.created_at)
                            .join(t.sagas, s.id == e.saga_id)
                            .where(e.status == "open")).all()
        count = GaugeMetricFamily("reversa_escalations_open", "Escalations awaiting a human.",
                                  labels=["workflow"])
        oldest = GaugeMetricFamily("reversa_escalation_open_age_seconds",
                                   "Age of the oldest open escalation.", labels=["workflow"])
        ages: dict[str, list[float]] = {}
        for workflow, created in rows:
            ages.setdefault(workflow, []).append(max(0.0, now - created))
        for workflow, values in sorted(ages.items()):
            count.add_metric([workflow], float(len(values)))
            oldest.add_metric([workflow], max(values))
        yield count
        yield oldest
        yield _histogram("reversa_escalation_age_seconds", "Ages of the open escalations.",
                         [a for values in ages.values() for a in values], AGE_BUCKETS)

    def _in_doubt(self, conn: Connection, now: float) -> Metric:
        st, s = t.steps.c, t.sagas.c
        unowned = or_(s.lease_expires_at.is_(None), s.lease_expires_at < now)
        doubtful = or_(and_(st.status.in_(["running", "compensating"]), unowned),
                       st.outcome.like("in\\_doubt%", escape="\\"))
        rows = conn.execute(select(s.workflow, func.count())
                            .join(t.sagas, s.id == st.saga_id).where(doubtful)
                            .group_by(s.workflow)).all()
        family = GaugeMetricFamily("reversa_steps_in_doubt",
                                   "Steps whose outcome is unknown and that no live owner is "
                                   "settling.", labels=["workflow"])
        for workflow, n in rows:
            family.add_metric([workflow], float(n))
        return family

    def _rollbacks(self, conn: Connection) -> Metric:
        r = t.rollbacks.c
        # Bucket counts computed by the database: one pass, no rows fetched.
        columns = [func.sum(case((r.duration_s <= b, 1), else_=0)) for b in DURATION_BUCKETS]
        rows = conn.execute(select(r.outcome, func.count(), func.sum(r.duration_s), *columns)
                            .group_by(r.outcome)).all()
        family = HistogramMetricFamily("reversa_rollback_duration_seconds",
                                       "Time from failure detection to the end of a rollback.",
                                       labels=["outcome"])
        for outcome, n, total, *cumulative in rows:
            buckets = [(_le(b), float(c or 0)) for b, c in zip(DURATION_BUCKETS, cumulative,
                                                               strict=True)]
            buckets.append(("+Inf", float(n)))
            family.add_metric([outcome], buckets, float(total or 0.0))
        return family

    def _failures(self, conn: Connection) -> Metric:
        a = t.audit.c
        # Served by a partial index holding only these events (migration v7).
        rows: dict[str, int] = dict(conn.execute(
            select(a.event, func.count()).where(
                a.event.in_(["compensation_failed", "compensation_attempt_failed"]))
            .group_by(a.event)).all())
        family = CounterMetricFamily("reversa_compensation_failures",
                                     "Compensations that failed: after all retries (final), "
                                     "and single attempts (attempt).", labels=["kind"])
        family.add_metric(["final"], float(rows.get("compensation_failed", 0)))
        family.add_metric(["attempt"], float(rows.get("compensation_attempt_failed", 0)))
        return family

    def _approvals(self, conn: Connection) -> Metric:
        ap = t.approvals.c
        rows = conn.execute(select(ap.kind, func.count()).where(ap.status == "pending")
                            .group_by(ap.kind)).all()
        family = GaugeMetricFamily("reversa_approvals_pending", "Approvals awaiting a decision.",
                                   labels=["kind"])
        counts: dict[str, int] = dict(rows)
        for kind in ("start", "resolution", "rollback"):
            family.add_metric([kind], float(counts.get(kind, 0)))
        return family


def _le(bound: float) -> str:
    return repr(float(bound))


def _histogram(name: str, doc: str, values: Sequence[float],
               bounds: Sequence[float]) -> Metric:
    family = HistogramMetricFamily(name, doc)
    buckets: list[tuple[str, float]] = [(_le(b), float(sum(1 for v in values if v <= b)))
                                        for b in bounds]
    buckets.append(("+Inf", float(len(values))))
    family.add_metric([], buckets, float(sum(values)))
    return family


def render_metrics(store: Store) -> bytes:
    """Every metric, read from ``store`` now, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    data: Any = generate_latest(registry)
    return bytes(data)
