"""Simulated processes and the store as each one sees it.

A :class:`Process` is one life of an actor (an owner, a worker, a human running
``escalations resolve``): its engine, its view of the store and its clock. A
crash is the process' in-memory engine being discarded at a commit boundary:
from that instant its store and its service ports refuse everything it does
(``SimCrash``), its tasks are cancelled, and only what it committed remains. The
store itself is real SQLite, shared by every process, so recovery reads exactly
what was committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...core.errors import StoreError
from ...core.store import Store
from .loop import SimClock
from .network import SimCrash

if TYPE_CHECKING:
    from sqlalchemy import Engine as SqlEngine

    from ...core.engine import Engine
    from .faults import Fault

__all__ = ["FaultyStore", "Process"]

T = TypeVar("T")


class Process:
    """One life of a simulated actor."""

    def __init__(self, actor: str, life: int, clock: SimClock) -> None:
        self.actor = actor
        self.life = life
        self.clock = clock
        self.alive = True
        self.exited = False
        self.paused_until = 0.0
        self.commits = 0
        self.calls = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.engine: Engine | None = None
        self._store: FaultyStore | None = None

    @property
    def store(self) -> FaultyStore:
        """The store as this process sees it."""
        assert self._store is not None, "the simulation gives every process a store"
        return self._store

    @store.setter
    def store(self, store: FaultyStore) -> None:
        self._store = store

    @property
    def name(self) -> str:
        """``actor`` or ``actor#life``: the owner name in leases."""
        return self.actor if self.life == 1 else f"{self.actor}#{self.life}"

    def check_alive(self) -> None:
        """Raise :class:`SimCrash` if this process is dead."""
        if not self.alive:
            raise SimCrash(f"{self.name} is dead")

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` as one of this process' tasks (cancelled when it dies)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def die(self) -> None:
        """Discard everything in memory; what was committed stays."""
        self.alive = False
        current = asyncio.current_task()
        for task in list(self.tasks):
            if task is not current:
                task.cancel()


class FaultyStore(Store):
    """The shared store as one process sees it: every commit is a boundary a fault can hit.

    Commits (saga writes, claims, heartbeats, releases) are counted per process
    life. The schedule may crash the process just before or after commit k, or
    make commit k fail as a database would (connection lost, outcome unknown,
    busy). A dead process can neither read nor write.
    """

    def __init__(self, engine: SqlEngine, clock: Any, proc: Process,
                 fault_for: Callable[[Process, int, list[str]], Fault | None],
                 fired: Callable[[Fault, str], None]) -> None:
        super().__init__(engine, clock=clock)
        self.proc = proc
        self._fault_for = fault_for
        self._fired = fired

    def _boundary(self, what: str, events: list[str], commit: Callable[[], T]) -> T:
        proc = self.proc
        proc.check_alive()
        proc.commits += 1
        fault = self._fault_for(proc, proc.commits, events)
        if fault is None:
            return commit()
        hit = f"{proc.name} commit #{proc.commits}: {what}"
        if fault.kind == "crash" and fault.arg == "before":
            self._fired(fault, hit)
            proc.die()
            raise SimCrash(hit)
        if fault.kind == "db" and fault.arg in ("lost", "busy"):
            self._fired(fault, hit)
            cause = ("connection lost" if fault.arg == "lost" else "database is locked")
            raise StoreError(f"database error: {cause}; the transaction was rolled back and "
                             "nothing of it was recorded", retryable=True)
        commit()
        self._fired(fault, hit)
        if fault.kind == "crash":
            proc.die()
            raise SimCrash(hit)
        raise StoreError("database error: the connection dropped during COMMIT; whether it "
                         "was recorded is unknown", retryable=True)

    # -- commit boundaries -------------------------------------------------------------
    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        what = "; ".join(
            f"{live.id} " + ",".join(e.event + (f"({e.step})" if e.step else "")
                                     for e in live.events)
            for live, *_ in items)
        events = [e.event for live, *_ in items for e in live.events]
        return self._boundary(f"write {what}", events, lambda: super(
            FaultyStore, self).write_batch(items, **kwargs))

    def claim(self, owner: str, lease_s: float, **kwargs: Any) -> list[tuple[str, int]]:
        what = f"claim {kwargs.get('saga_id') or 'orphans'}"
        return self._boundary(what, ["claim"], lambda: super(FaultyStore, self).claim(
            owner, lease_s, **kwargs))

    def heartbeat(self, leases: Any, lease_s: float) -> list[str]:
        return self._boundary(f"heartbeat of {len(leases)} lease(s)", ["heartbeat"],
                              lambda: super(FaultyStore, self).heartbeat(leases, lease_s))

    def release(self, saga_id: str, token: int) -> bool:
        return self._boundary(f"release {saga_id}", ["release"], lambda: super(
            FaultyStore, self).release(saga_id, token))

    # -- reads: a dead process reads nothing --------------------------------------------
    def load(self, saga_id: str) -> Any:
        self.proc.check_alive()
        return super().load(saga_id)

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        self.proc.check_alive()
        return super().rows(table, **where)

    def stalled(self, default_after_s: float) -> list[dict[str, Any]]:
        self.proc.check_alive()
        return super().stalled(default_after_s)

    def chain_anchor(self, saga_id: str) -> str | None:
        self.proc.check_alive()
        return super().chain_anchor(saga_id)
