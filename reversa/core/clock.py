"""Injectable time: every window, lease, backoff and watchdog reads a Clock."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock seconds and a matching sleep."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to, so time-based tests never sleep.

    ``sleep`` advances the clock instead of waiting, which makes backoff,
    rollback windows, leases and watchdog thresholds exact in tests.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def now(self) -> float:
        """Current fake time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance time by ``seconds`` and yield to the event loop once."""
        self.slept.append(seconds)
        self._now += max(seconds, 0.0)
        await asyncio.sleep(0)
