"""The simulated network between processes and services: delays, losses, duplicates.

A call is a request message and a reply message, each delivered after a delay
drawn from the seed. The schedule can lose either, deliver the request late
(after the caller gave up and reported the call in doubt) or twice, and make the
service fail the call. A request already on the wire is delivered even if its
sender died or was paused meanwhile: that is exactly the late effect fencing and
tombstones must keep out.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ...core.context import Fence
from ...core.errors import OutcomeUnknown, StepError

if TYPE_CHECKING:
    from .faults import Fault
    from .process import Process

__all__ = ["CALL_TIMEOUT_S", "FaultBook", "Network", "Request", "Service", "SimCrash"]

CALL_TIMEOUT_S = 1.0
"""How long a caller waits for a reply before reporting the call in doubt."""


class SimCrash(BaseException):
    """The simulated process died: nothing it runs from here on reaches the world.

    A BaseException, as a real crash is not something the engine may handle: no
    ``except Exception`` in the engine or in handlers intercepts it.
    """


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a service.

    Attributes:
        op: What is asked (``do``, ``undo``, ``probe``, ``block``, ``recover``, ``safe``).
        key: The call's idempotency key.
        target: The forward call's key (what an undo, probe or block is about).
        fence: The caller's fencing token.
        saga: The saga it belongs to.
        step: The step it belongs to.
        decline: The service declines this request (a business failure).
    """

    op: str
    key: str
    target: str
    fence: Fence
    saga: str
    step: str
    decline: bool = False


class Service(Protocol):
    """A simulated service: applies a request or raises the error it answers with."""

    def handle(self, request: Request, injected: str | None) -> Any:
        """Apply ``request``; ``injected`` is the schedule's service fault for this call."""
        ...


class FaultBook(Protocol):
    """What the network asks the simulation about the schedule."""

    def net_fault(self, call: int) -> Fault | None:
        """The network fault pinned to service call ``call``."""
        ...

    def service_fault(self, call: int) -> Fault | None:
        """The service fault pinned to service call ``call``."""
        ...

    def pause_fault(self, proc: Process, call: int) -> Fault | None:
        """The pause of ``proc`` before its ``call``-th service call."""
        ...

    def fired_fault(self, fault: Fault, what: str) -> None:
        """Record that ``fault`` fired and what it hit."""
        ...


class Network:
    """Delivers requests and replies on the simulation's loop, as the schedule says."""

    def __init__(self, seed: int, book: FaultBook) -> None:
        self.seed = seed
        self.book = book
        self.calls = 0
        self.delivered = 0
        self.duplicates = 0
        self.lost = 0

    def delay(self, call: int, leg: str) -> float:
        """A delay in [1 ms, 60 ms) drawn from the seed, the call and the leg."""
        digest = hashlib.blake2b(f"{self.seed}:{call}:{leg}".encode(), digest_size=8).digest()
        return 0.001 + 0.059 * int.from_bytes(digest, "big") / 2**64

    async def call(self, proc: Process, service: Service, request: Request) -> Any:
        """Send ``request`` from ``proc`` and wait for the reply.

        Raises:
            SimCrash: ``proc`` is dead (a dead process sends nothing).
            OutcomeUnknown: No reply within :data:`CALL_TIMEOUT_S` (the request may
                still land later).
            StepError: The service's answer was an error.
        """
        proc.check_alive()
        proc.calls += 1
        pause = self.book.pause_fault(proc, proc.calls)
        if pause is not None:
            # Intent recorded, request not yet sent: the owner stops here and its
            # heartbeats stop with it, so its lease lapses and a worker takes over.
            self.book.fired_fault(pause, f"{proc.name} paused before {request.op} of "
                                   f"{request.saga}/{request.step}")
            proc.paused_until = asyncio.get_running_loop().time() + float(pause.arg)
            await asyncio.sleep(float(pause.arg))
            proc.check_alive()
        self.calls += 1
        n = self.calls
        loop = asyncio.get_running_loop()
        net = self.book.net_fault(n)
        injected = self.book.service_fault(n)
        kind = net.arg if net is not None else None
        if net is not None:
            self.book.fired_fault(net, f"{request.op} of {request.saga}/{request.step}")
        if injected is not None:
            self.book.fired_fault(injected, f"{request.op} of {request.saga}/{request.step}")
        reply: asyncio.Future[tuple[str, Any]] = loop.create_future()

        def deliver(first: bool) -> None:
            self.delivered += 1
            try:
                outcome: tuple[str, Any] = (
                    "ok", service.handle(request, injected.arg if injected and first else None))
            except StepError as exc:
                outcome = ("error", exc)
            if kind == "lost_reply":
                self.lost += 1
                return
            loop.call_later(self.delay(n, "reply"), _answer(reply, outcome))

        if kind == "lost_request":
            self.lost += 1
        else:
            late = CALL_TIMEOUT_S * 3 if kind == "late" else 0.0
            loop.call_later(self.delay(n, "request") + late, deliver, True)
            if kind == "dup":
                self.duplicates += 1
                loop.call_later(self.delay(n, "request") + self.delay(n, "dup") * 20,
                                deliver, False)
        done, _ = await asyncio.wait({reply}, timeout=CALL_TIMEOUT_S)
        proc.check_alive()
        if not done:
            raise OutcomeUnknown(f"no reply from the service within {CALL_TIMEOUT_S:g}s "
                                 f"(call #{n}, {request.op}); it may still act on it")
        status, value = reply.result()
        if status == "error":
            raise value
        return value


def _answer(reply: asyncio.Future[tuple[str, Any]], outcome: tuple[str, Any]
            ) -> Callable[[], None]:
    def answer() -> None:
        if not reply.done():
            reply.set_result(outcome)

    return answer
