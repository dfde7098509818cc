"""Running agents' sagas in the server process, off the protocol's event loop.

A tool call must answer quickly, but a saga may run for minutes. ``start``
hands the saga to a thread and returns as soon as its plan is recorded (before
step 1 runs, as always), so the agent gets the saga id and watches it with
``saga_status``. Sagas a human approved are picked up by a poller and run here
too: the services they need (clients, simulators) live in this process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from ..core.engine import Engine
from ..core.errors import ReversaError
from ..core.governance import Governance
from ..core.inspector import Inspector
from ..core.model import Saga
from ..core.states import SagaStatus
from ..core.store import Store
from .catalog import Catalog

__all__ = ["SagaRunner"]

log = logging.getLogger("reversa.mcp")
T = TypeVar("T")


class SagaRunner:
    """One engine, a small pool of threads driving sagas, and the approved-saga poller.

    Args:
        catalog: Registry, services and workflows (only its workflows are run).
        store: The store sagas are recorded in.
        services: Services handed to handlers (the catalog's unless replaced).
        governance: Four-eyes policy per workflow: a rollback an agent requests
            of a saga it covers waits for a second person's approval.
        poll_s: Seconds between looks for sagas a human approved.
        threads: Sagas driven at once.
    """

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        services: Mapping[str, Any],
        *,
        governance: Governance | None = None,
        poll_s: float = 0.5,
        threads: int = 4,
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.engine = Engine(catalog.registry, store, services=services, clock=catalog.clock,
                             governance=governance)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reversa-mcp")
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start_polling(self) -> None:
        """Start running approved sagas of the catalog's workflows in the background."""
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="reversa-mcp-approved",
                                            daemon=True)
            self._poller.start()

    def close(self) -> None:
        """Stop polling, let running sagas reach a step boundary, release leases."""
        self._stop.set()
        self.engine.shutdown()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._poller is not None:
            self._poller.join(timeout=5)
        self.engine.close()

    # -- work ---------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the runner's threads (engine methods block: they run sagas)."""
        return self._pool.submit(fn, *args, **kwargs)

    def start(
        self, saga: Saga, input: Mapping[str, Any], *, by: str, saga_id: str,
        timeout_s: float = 60.0,
    ) -> Future[Any]:
        """Submit ``saga`` and return once its plan is recorded (or it ended, or failed).

        Returns:
            The future of the whole run (done already if it ended that fast).

        Raises:
            ReversaError: It was refused before anything was recorded (an invalid
                plan, a failing snapshot).
            TimeoutError: Its plan was not recorded within ``timeout_s``.
        """
        with self._lock:
            self._running.add(saga_id)
        future = self.call(self._submit, saga, input, by, saga_id)
        deadline = time.monotonic() + timeout_s
        while not future.done():
            if self._recorded(saga_id):
                return future
            if time.monotonic() > deadline:
                raise TimeoutError(f"saga {saga_id} was not recorded within {timeout_s:g}s")
            time.sleep(0.01)
        future.result()  # re-raises what refused it before the plan was recorded
        return future

    def _submit(self, saga: Saga, input: Mapping[str, Any], by: str, saga_id: str) -> Any:
        try:
            return self.engine.submit(saga, input, by=by, saga_id=saga_id)
        finally:
            with self._lock:
                self._running.discard(saga_id)

    def _recorded(self, saga_id: str) -> bool:
        try:
            Inspector(self.store).record(saga_id)
        except ReversaError:
            return False
        return True

    # -- approved sagas -----------------------------------------------------------------
    def run_approved_once(self) -> list[str]:
        """Start every approved saga of the catalog's workflows; return their ids."""
        started = []
        for summary in Inspector(self.store).sagas(status=[SagaStatus.APPROVED], limit=50):
            if summary.workflow not in self.catalog.names:
                continue  # another application's saga: its own workers run it
            with self._lock:
                if summary.id in self._running:
                    continue
                self._running.add(summary.id)
            self.call(self._run_approved, summary.id)
            started.append(summary.id)
        return started

    def _run_approved(self, saga_id: str) -> None:
        try:
            result = self.engine.run_approved(saga_id)
            log.info("approved saga %s ran: %s", saga_id, result.status)
        except ReversaError as exc:
            # Another process took it first, or it changed meanwhile: not ours to run.
            log.info("approved saga %s not run here: %s", saga_id, exc.message)
        finally:
            with self._lock:
                self._running.discard(saga_id)

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                self.run_approved_once()
            except Exception as exc:  # the poller must outlive a database hiccup
                log.warning("looking for approved sagas failed: %s",
                            exc.message if isinstance(exc, ReversaError) else repr(exc))
