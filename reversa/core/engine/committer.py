"""Group commit: sagas in flight in one process share their commits.

A saga's flush is awaited, not executed on the spot. Every flush requested in
the same turn of the event loop is written in one transaction (each saga in its
own savepoint), so N sagas in flight pay for one fsync instead of N. A lone
saga still commits at once: its batch has one entry. Durability is unchanged:
no flush returns before its commit.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..errors import StoreAbort, StoreError
from ..live import LiveSaga
from ..store import Store

__all__ = ["GroupCommitter"]


@dataclass
class _Item:
    live: LiveSaga
    future: asyncio.Future[int | None]
    escalation: dict[str, Any] | None = None
    rollback: dict[str, Any] | None = None


@dataclass
class _LoopState:
    # Keyed by the LiveSaga object, not the saga id: two callers starting sagas under
    # one id are two writes (the second fails alone as a duplicate), never one merged.
    pending: dict[int, _Item] = field(default_factory=dict)
    scheduled: bool = False


class GroupCommitter:
    """Collects flushes per event loop and commits them together."""

    def __init__(self, store: Store, clock: Clock, lease_s: float) -> None:
        self.store = store
        self.clock = clock
        self.lease_s = lease_s
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary())

    async def flush(
        self,
        live: LiveSaga,
        escalation: dict[str, Any] | None = None,
        rollback: dict[str, Any] | None = None,
    ) -> int | None:
        """Commit ``live``'s queued state in the next group commit; return an escalation id.

        Raises:
            StoreAbort: The commit failed or the lease was lost (``.error`` says which).
        """
        loop = asyncio.get_running_loop()
        state = self._loops.setdefault(loop, _LoopState())
        item = state.pending.get(id(live))
        if item is None:
            # Two branches of one saga flushing together share a single write.
            item = _Item(live, loop.create_future())
            state.pending[id(live)] = item
        item.escalation = escalation or item.escalation
        item.rollback = rollback or item.rollback
        if not state.scheduled:
            state.scheduled = True
            loop.call_soon(self._commit, state)
        return await item.future

    def _commit(self, state: _LoopState) -> None:
        batch = list(state.pending.values())
        state.pending.clear()
        state.scheduled = False
        now = self.clock.now()
        for item in batch:
            item.live.updated_at = now
        try:
            results = self.store.write_batch(
                [(i.live, now, i.escalation, i.rollback) for i in batch],
                single=len(batch) == 1, lease_s=self.lease_s)
        except StoreError as exc:
            _fail(batch, StoreAbort(exc))
            return
        except Exception as exc:
            # Not the step's failure, whatever it is (a value the driver cannot encode,
            # a driver bug): the saga's record cannot move on. Stop the saga where the
            # store has it instead of retrying the step or rolling it back.
            error = StoreError(
                f"the saga's state cannot be recorded ({type(exc).__name__}: {exc}); it is "
                "left as last recorded for a worker or a human", code="unrecordable")
            _fail(batch, StoreAbort(error))
            return
        except BaseException as exc:  # a signal: fail every waiter, never hang them
            _fail(batch, exc)
            raise
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue  # see _fail
            if isinstance(result, StoreError):
                item.future.set_exception(StoreAbort(result))
            else:
                item.future.set_result(result.escalation_id)


def _fail(batch: list[_Item], exc: BaseException) -> None:
    # A waiter cancelled meanwhile (a lost lease, a shutdown; Ctrl-C cancels every
    # task while the loop shuts down) has a done future: setting it would raise
    # InvalidStateError from a loop callback and leave every later waiter of the
    # batch hanging forever. What was written stands.
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
