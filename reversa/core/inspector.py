"""Read-only inspection of recorded sagas, without a registry or any workflow code."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from .audit import AuditReport
from .errors import ConfigError, NotFound, StoreError
from .governance import Approval, ApprovalKind, ApprovalStatus
from .states import SagaStatus
from .store import Store
from .store.read_models import (
    ApprovalRecord,
    AuditRecord,
    EscalationRecord,
    OutboxRecord,
    RollbackRecord,
    SagaRecord,
    StepRecord,
)
from .views import (
    AttemptView,
    AuditEntry,
    EscalationView,
    OutboxEntry,
    RollbackView,
    SagaSummary,
    SagaView,
    StepView,
)

__all__ = ["Inspector"]

_STARTS = {"step_started": "action", "compensation_started": "compensation",
           "forward_recovery_started": "forward_recovery"}
_ENDS = {"step_completed", "step_attempt_failed", "step_withdrawn", "compensation_completed",
         "compensation_attempt_failed", "forward_recovery_completed",
         "forward_recovery_attempt_failed"}
_SUMMARY = tuple(col(c) for c in (
    SagaRecord.id, SagaRecord.workflow, SagaRecord.status, SagaRecord.created_at,
    SagaRecord.updated_at, SagaRecord.failed_step, SagaRecord.error, SagaRecord.lease_owner,
    SagaRecord.lease_expires_at, SagaRecord.app, SagaRecord.services))


class Inspector:
    """Lists and reads sagas, steps, escalations, audit entries and rollbacks.

    It needs no registry: everything comes from the durable record, so any
    saga of any workflow can be inspected by a process that has none of its
    code. Opened with :meth:`open` it is read-only through and through (an
    SQLite file opened read-only, a read-only PostgreSQL session, no
    migration), so inspecting can never create or change a database.

    Example::

        with Inspector.open("reversa.db") as inspector:
            for saga in inspector.sagas(status=["escalated"]):
                print(saga.id, saga.workflow, inspector.saga(saga.id).failed_step)

    Args:
        store: An open store (its engine is shared, nothing is written).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._owns_store = False

    @classmethod
    def open(cls, db: str | os.PathLike[str] | None = None) -> Inspector:
        """Open the store at ``db`` read-only (see ``Store.open(read_only=True)``).

        Raises:
            NotFound: No database there, or one without Reversa's schema.
            SchemaError: Its schema is older or newer than this Reversa.
            StoreError: It cannot be reached.
        """
        inspector = cls(Store.open(db, read_only=True))
        inspector._owns_store = True
        return inspector

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return self.store.url

    def close(self) -> None:
        """Close the store if this inspector opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Inspector:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A SQLModel session for your own typed queries on the read models.

        Use it only to read (``reversa.core.store.read_models``); errors of the
        database come out as :class:`StoreError`.
        """
        try:
            with Session(self.store.engine, expire_on_commit=False) as session:
                yield session
        except DBAPIError as exc:
            raise StoreError(f"database error on {self.url}: {exc.orig}; check that the "
                             "database is reachable", retryable=True) from exc

    # -- sagas -------------------------------------------------------------------------
    def sagas(
        self,
        *,
        status: Sequence[SagaStatus | str] | None = None,
        workflow: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 100,
    ) -> list[SagaSummary]:
        """Sagas filtered by status, workflow and creation time, newest first."""
        # Eleven columns: beyond SQLModel's typed select() overloads, so SQLAlchemy's own.
        query = sa_select(*_SUMMARY)
        if status:
            query = query.where(col(SagaRecord.status).in_([_status(s) for s in status]))
        if workflow:
            query = query.where(col(SagaRecord.workflow) == workflow)
        if created_after is not None:
            query = query.where(col(SagaRecord.created_at) >= created_after)
        if created_before is not None:
            query = query.where(col(SagaRecord.created_at) <= created_before)
        query = query.order_by(col(SagaRecord.created_at).desc(), col(SagaRecord.id))
        with self.session() as session:
            rows = session.execute(query.limit(limit)).mappings().all()
        return [SagaSummary.model_validate(dict(row)) for row in rows]

    def resolve_id(self, saga_id: str) -> str:
        """The full id of the saga whose id is ``saga_id`` or starts with it.

        Raises:
            NotFound: No saga has that id or prefix.
            ConfigError: The prefix is empty or matches several sagas.
        """
        if not saga_id:
            raise ConfigError("give a saga id (or a unique prefix of one); list them with "
                              "`reversa sagas list`")
        with self.session() as session:
            if session.get(SagaRecord, saga_id) is not None:
                return saga_id
            matches = col(SagaRecord.id).startswith(saga_id, autoescape=True)
            found = session.exec(select(SagaRecord.id).where(matches).limit(2)).all()
            if len(found) == 1:
                return found[0]
            if not found:
                raise NotFound(f"no saga {saga_id!r} in {self.url}; list them with "
                               "`reversa sagas list`")
            count = session.exec(select(func.count()).select_from(SagaRecord)
                                 .where(matches)).one()
        raise ConfigError(f"saga id prefix {saga_id!r} matches {count} sagas; give more of "
                          "the id")

    def record(self, saga_id: str) -> SagaRecord:
        """The saga's row as recorded (``saga_id`` may be a unique prefix)."""
        full = self.resolve_id(saga_id)
        with self.session() as session:
            found = session.get(SagaRecord, full)
        if found is None:  # deleted between the two reads
            raise NotFound(f"no saga {saga_id!r} in {self.url}")
        return found

    def saga(self, saga_id: str) -> SagaView:
        """Everything recorded about one saga: plan, steps with every attempt,
        rollbacks and escalations (``saga_id`` may be a unique prefix)."""
        row = self.record(saga_id)
        with self.session() as session:
            steps = session.exec(select(StepRecord).where(StepRecord.saga_id == row.id)
                                 .order_by(col(StepRecord.position))).all()
            entries = session.exec(select(AuditRecord).where(AuditRecord.saga_id == row.id)
                                   .order_by(col(AuditRecord.id))).all()
        plan = row.plan["saga"]
        specs = {s["name"]: s for s in plan["steps"]}
        history = _history([s.name for s in steps], entries)
        return SagaView(
            id=row.id, workflow=row.workflow, status=row.status, plan_hash=row.plan_hash,
            plan=plan, input=row.input, pre_state=row.pre_state, created_at=row.created_at,
            updated_at=row.updated_at, failed_step=row.failed_step, error=row.error,
            checkpoint=row.checkpoint, lease_owner=row.lease_owner,
            lease_token=row.lease_token, lease_expires_at=row.lease_expires_at,
            audit_entries=row.audit_seq, app=row.app, services=row.services,
            steps=[StepView(
                name=s.name, position=s.position, status=s.status,
                reversibility=specs[s.name]["reversibility"],
                depends_on=list(specs[s.name]["depends_on"]), attempts=s.attempts,
                comp_attempts=s.comp_attempts, outcome=s.outcome, error=s.error,
                result=s.result, comp_result=s.comp_result, started_at=s.started_at,
                finished_at=s.finished_at, comp_started_at=s.comp_started_at,
                comp_finished_at=s.comp_finished_at, history=history[s.name])
                for s in steps],
            rollbacks=self.rollbacks(row.id), escalations=self.escalations(saga_id=row.id),
            approvals=self.approvals(saga_id=row.id), rollback_requested=row.rollback_requested,
        )

    def steps(self, saga_id: str) -> list[StepView]:
        """The saga's steps in plan order, each with every attempt."""
        return self.saga(saga_id).steps

    def count(self, status: SagaStatus | str | None = None) -> int:
        """Number of sagas (with the given status)."""
        query = select(func.count()).select_from(SagaRecord)
        if status is not None:
            query = query.where(SagaRecord.status == _status(status))
        with self.session() as session:
            return int(session.exec(query).one())

    # -- records -----------------------------------------------------------------------
    def audit(self, saga_id: str) -> list[AuditEntry]:
        """The saga's tamper-evident log, in order (check it with :meth:`verify_audit`)."""
        with self.session() as session:
            rows = session.exec(select(AuditRecord).where(AuditRecord.saga_id == saga_id)
                                .order_by(col(AuditRecord.id))).all()
        return [AuditEntry.model_validate(r.model_dump()) for r in rows]

    def verify_audit(self, saga_id: str | None = None) -> AuditReport:
        """Recompute every hash chain (or one saga's) and report the first broken entry."""
        return self.store.verify_audit(saga_id)

    def escalations(
        self, *, saga_id: str | None = None, status: str | None = None
    ) -> list[EscalationView]:
        """Escalations (of one saga, or with status ``open``/``resolved``), oldest first."""
        query = select(EscalationRecord)
        if saga_id is not None:
            query = query.where(EscalationRecord.saga_id == saga_id)
        if status is not None:
            query = query.where(EscalationRecord.status == status)
        with self.session() as session:
            rows = session.exec(query.order_by(col(EscalationRecord.id))).all()
        return [EscalationView.model_validate(r.model_dump()) for r in rows]

    def escalation(self, escalation_id: int) -> EscalationView:
        """One escalation with its full state report.

        Raises:
            NotFound: There is no escalation with that id.
        """
        with self.session() as session:
            row = session.get(EscalationRecord, escalation_id)
        if row is None:
            raise NotFound(f"no escalation #{escalation_id} in {self.url}; list them with "
                           "`reversa escalations list`")
        return EscalationView.model_validate(row.model_dump())

    def rollbacks(self, saga_id: str | None = None) -> list[RollbackView]:
        """Rollback records (of one saga), oldest first."""
        query = select(RollbackRecord)
        if saga_id is not None:
            query = query.where(RollbackRecord.saga_id == saga_id)
        with self.session() as session:
            rows = session.exec(query.order_by(col(RollbackRecord.id))).all()
        return [RollbackView.model_validate(r.model_dump()) for r in rows]


    # -- governance --------------------------------------------------------------------
    def approvals(
        self,
        *,
        status: ApprovalStatus | str | None = None,
        kind: ApprovalKind | str | None = None,
        saga_id: str | None = None,
    ) -> list[Approval]:
        """Approvals (with that status, kind, saga), oldest first."""
        query = select(ApprovalRecord)
        if status is not None:
            query = query.where(ApprovalRecord.status == _choice(ApprovalStatus, status))
        if kind is not None:
            query = query.where(ApprovalRecord.kind == _choice(ApprovalKind, kind))
        if saga_id is not None:
            query = query.where(ApprovalRecord.saga_id == saga_id)
        with self.session() as session:
            rows = session.exec(query.order_by(col(ApprovalRecord.id))).all()
        return [Approval.model_validate(r.model_dump()) for r in rows]

    def approval(self, approval_id: int) -> Approval:
        """One approval with every decision.

        Raises:
            NotFound: There is no approval with that id.
        """
        with self.session() as session:
            row = session.get(ApprovalRecord, approval_id)
        if row is None:
            raise NotFound(f"no approval #{approval_id} in {self.url}; list them with "
                           "`reversa approvals list`")
        return Approval.model_validate(row.model_dump())

    def outbox(
        self, *, pending: bool | None = None, saga_id: str | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        """Notifications in the outbox, oldest first (``pending``: not yet delivered)."""
        query = select(OutboxRecord)
        if pending is not None:
            delivered = col(OutboxRecord.delivered_at)
            query = query.where(delivered.is_(None) if pending else delivered.is_not(None))
        if saga_id is not None:
            query = query.where(OutboxRecord.saga_id == saga_id)
        with self.session() as session:
            rows = session.exec(query.order_by(col(OutboxRecord.id)).limit(limit)).all()
        return [OutboxEntry.model_validate(r.model_dump()) for r in rows]


def _choice(enum: type[ApprovalStatus] | type[ApprovalKind], value: str) -> str:
    try:
        return str(enum(value).value)
    except ValueError:
        raise ConfigError(f"unknown {enum.__name__} {value!r}; use one of "
                          f"{', '.join(m.value for m in enum)}") from None


def _status(value: SagaStatus | str) -> SagaStatus:
    try:
        return SagaStatus(value)
    except ValueError:
        raise ConfigError(f"unknown saga status {value!r}; use one of "
                          f"{', '.join(s.value for s in SagaStatus)}") from None


def _history(names: list[str], entries: Sequence[AuditRecord]) -> dict[str, list[AttemptView]]:
    """Every call of each step (action, compensation, recovery), paired from the log."""
    history: dict[str, list[AttemptView]] = {name: [] for name in names}
    open_calls: dict[tuple[str, str, int], float] = {}
    for entry in entries:
        step = entry.step
        if step is None or step not in history:
            continue
        key = (step, entry.phase, entry.attempt)
        if entry.event in _STARTS:
            open_calls[key] = entry.ts
        elif entry.event in _ENDS:
            history[step].append(AttemptView(
                phase=entry.phase, attempt=entry.attempt, started_at=open_calls.pop(key, None),
                finished_at=entry.ts, outcome=entry.outcome, error=entry.detail.get("error")))
    for (step, phase, attempt), started in open_calls.items():
        history[step].append(AttemptView(phase=phase, attempt=attempt, started_at=started,
                                         finished_at=None, outcome="in_doubt"))
    return history
