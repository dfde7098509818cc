"""The governance half of the public :class:`~reversa.Engine` API (approvals, operator
rollback), kept apart so the engine module stays one thing; the work is in
:mod:`.approvals`."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..governance import Approval
from ..inspector import Inspector
from ..model import Saga
from ..views import SagaResult

if TYPE_CHECKING:
    from ..store import Store
    from .approvals import Governor

__all__ = ["GovernanceApi"]

T = TypeVar("T")


class GovernanceApi:
    """Mixed into :class:`~reversa.Engine`."""

    if TYPE_CHECKING:
        store: Store
        _gov: Governor

        def _sync(self, coro: Coroutine[Any, Any, T]) -> T: ...

    # -- governance -------------------------------------------------------------------
    def submit(
        self,
        saga: Saga,
        input: Mapping[str, Any] | None = None,
        *,
        by: str,
        approval_reason: str | None = None,
        saga_id: str | None = None,
        required: int = 1,
    ) -> SagaResult | Approval:
        """Record ``saga`` on behalf of ``by``; run it now, or hold it for approval.

        The plan is validated and recorded (saga row, plan hash, ``plan_recorded``
        with ``requested_by``) before anything runs, as with :meth:`run`. Without
        ``approval_reason`` it then runs like :meth:`run` and the result is
        returned. With it, the saga is stored ``awaiting_approval`` (no step runs,
        no worker claims it) and the pending ``start`` :class:`~reversa.Approval`
        is returned; once ``required`` identities other than ``by`` approve it
        (:meth:`approve`), any worker -- or :meth:`run_approved` -- runs it from
        step 1.

        Raises:
            PlanError: The definition is invalid; nothing was recorded.
            ConfigError: No identity, or an empty reason.
        """
        return self._sync(self.submit_async(saga, input, by=by, approval_reason=approval_reason,
                                            saga_id=saga_id, required=required))

    async def submit_async(
        self,
        saga: Saga,
        input: Mapping[str, Any] | None = None,
        *,
        by: str,
        approval_reason: str | None = None,
        saga_id: str | None = None,
        required: int = 1,
    ) -> SagaResult | Approval:
        """Async form of :meth:`submit`."""
        return await self._gov.submit(saga, input, by=by, approval_reason=approval_reason,
                                      saga_id=saga_id, required=required)

    def approve(self, approval_id: int, *, by: str, note: str = "") -> Approval:
        """Approve as ``by``; once enough distinct approvers agree, what it holds runs.

        ``start``: the saga becomes ``approved`` (a worker or :meth:`run_approved`
        runs it). ``resolution``: the escalation's resolution runs now, as
        :meth:`resolve` does (so this engine needs the workflow's registry unless
        it is ``mark_resolved``). ``rollback``: the operator rollback runs now (or,
        for a saga a live process runs, at its next step boundary). The decision,
        the approval row, the saga's transition and the notification share one
        commit. Returns the approval as it now stands (``outcome`` says what ran).

        Raises:
            ConfigError: Not pending; ``by`` requested it or already approved it
                (four-eyes); what it holds can no longer run.
            NotFound: No approval with that id.
        """
        return self._sync(self.approve_async(approval_id, by=by, note=note))

    async def approve_async(self, approval_id: int, *, by: str, note: str = "") -> Approval:
        """Async form of :meth:`approve`."""
        return await self._gov.approve(approval_id, by=by, note=note)

    def reject(self, approval_id: int, *, by: str, note: str) -> Approval:
        """Reject as ``by`` (``note`` says why; the requester may withdraw their own).

        ``start``: the saga ends ``rejected`` (terminal, nothing ran).
        ``resolution``: the escalation stays open. ``rollback``: a saga held for it
        is cleared to run on (``approved``; any worker continues it).

        Raises:
            ConfigError: Not pending, or no note.
            NotFound: No approval with that id.
        """
        return self._sync(self.reject_async(approval_id, by=by, note=note))

    async def reject_async(self, approval_id: int, *, by: str, note: str) -> Approval:
        """Async form of :meth:`reject`."""
        return await self._gov.reject(approval_id, by=by, note=note)

    def request_rollback(self, saga_id: str, *, by: str, reason: str) -> SagaResult | Approval:
        """An operator's request to roll a saga back, recorded with ``by`` and ``reason``.

        - ``running`` with a live owner: the saga's ``rollback_requested`` flag is
          set and a :class:`~reversa.SagaResult` with status ``running`` returned
          at once; the owner stops at its next step boundary and rolls it back
          (the chain records the request then).
        - ``running`` with no live owner (lease expired), or ``approved``: this
          engine claims it and rolls it back now (an approved saga that never
          started ends ``failed``, nothing having run).
        - ``completed`` within its rollback window (measured from completion,
          ``rollback_window_s``): claimed and fully rolled back now -- dry-run
          first, every completed step compensated in reverse dependency order,
          the predicate after -- ending ``compensated`` or ``escalated``.

        The four-eyes policy is judged on the saga's input value and on its
        rollback cost: the one its last rollback recorded, else (when the policy
        sets a cost threshold) a dry-run's estimate made now -- an estimate that
        cannot be made (no workflow code here) counts as above the threshold.
        When the policy applies, nothing is rolled back yet: a pending
        ``rollback`` :class:`~reversa.Approval` is returned, and a running saga is
        held (``awaiting_approval``) at its next step boundary until it is decided.

        Raises:
            ConfigError: No identity or reason; the saga is already terminal,
                compensating, escalated (resolve it), awaiting approval, or past
                its rollback window.
            NotFound: No such saga.
        """
        return self._sync(self.request_rollback_async(saga_id, by=by, reason=reason))

    async def request_rollback_async(
        self, saga_id: str, *, by: str, reason: str
    ) -> SagaResult | Approval:
        """Async form of :meth:`request_rollback`."""
        return await self._gov.request_rollback(saga_id, by=by, reason=reason)

    def run_approved(self, saga_id: str) -> SagaResult:
        """Run an ``approved`` saga now in this process (workers do it on their own).

        Raises:
            ConfigError: The saga is not approved (or a worker is starting it).
            ReversaError: Its snapshot failed: nothing ran, it stays approved.
        """
        return self._sync(self.run_approved_async(saga_id))

    async def run_approved_async(self, saga_id: str) -> SagaResult:
        """Async form of :meth:`run_approved`."""
        return await self._gov.run_approved(saga_id)

    def approvals(
        self, status: str | None = None, kind: str | None = None
    ) -> list[Approval]:
        """Approvals (with that status and kind), oldest first (read-only)."""
        return Inspector(self.store).approvals(status=status, kind=kind)
