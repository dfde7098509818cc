"""Virtual time: an asyncio event loop whose clock moves only when nothing can run.

Every actor of a simulation (owners, workers, humans, the network, the services)
is a coroutine of this one loop, and every wait is a timer on it. When no
callback is ready, the loop jumps its clock to the next timer instead of
sleeping, so a minute of leases, backoffs and pauses takes microseconds, and the
order of events depends only on the timers the seed produced: a seed replays
exactly (FoundationDB's simulation and TigerBeetle's VOPR work the same way).
There is no real I/O: a loop with nothing ready and no timer is deadlocked, and
says so instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Mapping
from typing import Any

from ...core.clock import FakeClock

__all__ = ["Deadlock", "SimClock", "SimLoop"]


class Deadlock(RuntimeError):
    """Every task waits for something no timer or task will ever do."""


class _NoIO(selectors.BaseSelector):
    """A selector with no I/O: ``select`` advances virtual time to the next timer."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("every task waits and no timer is set: the simulation cannot "
                           "make progress")
        if timeout > 0:
            # At epoch-sized times a float cannot move by less than ~0.2 µs: step at
            # least 1 µs, or a timer a few ulps away would never come due.
            self._clock.advance(max(timeout, 1e-6))
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return dict(self._keys)

    def close(self) -> None:
        self._keys.clear()


class SimLoop(asyncio.SelectorEventLoop):
    """An event loop on a :class:`~reversa.core.clock.FakeClock`: time jumps, never waits."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(_NoIO(clock))
        self.clock = clock
        # asyncio treats a timer as due when it is within the clock's resolution of
        # now; at epoch-sized times a float's step is ~0.2 µs, so the monotonic
        # clock's 1 ns would never be enough and a due timer would never run.
        self._clock_resolution = 1e-6

    def time(self) -> float:
        """Virtual time (the fake clock), used by every timer of the loop."""
        return self.clock.now()


class SimClock:
    """A process' clock in the simulation: the loop's time plus this process' skew.

    ``sleep`` waits on the loop (other actors run meanwhile), unlike
    ``FakeClock.sleep`` which jumps time for everyone at once.
    """

    def __init__(self, base: FakeClock, skew: float = 0.0) -> None:
        self.base = base
        self.skew = skew

    def now(self) -> float:
        """Virtual time as this process sees it."""
        return self.base.now() + self.skew

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time."""
        await asyncio.sleep(max(seconds, 0.0))
