"""Stop categories and the stop latch: once a safety stop happens, nothing moves.

IEC 60204-1 (9.2.2) defines three stop categories, which ISO 10218-1 reuses for
emergency and protective stops of industrial robots:

* category 0 -- uncontrolled stop: drive power is removed at once;
* category 1 -- controlled stop, then power removed when standstill is reached;
* category 2 -- controlled stop with power left available (the arm holds).

Whatever the category, Reversa treats every safety stop the same way towards the
saga: the step raises :class:`~reversa.core.errors.EmergencyStop` (a
``BaseException`` user code must not swallow), the engine escalates, and the
latch refuses every further motion until a human has reset the stop *at the
machine* and acknowledged it here. Software alone can never clear a stop: the
reset needs the hardware to report the stop released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from reversa.core.errors import EmergencyStop, PreconditionFailed

__all__ = ["StopCategory", "StopEvent", "StopLatch", "StopReset"]


class StopCategory(IntEnum):
    """Stop categories of IEC 60204-1 9.2.2."""

    UNCONTROLLED = 0
    """Category 0: remove drive power immediately."""
    CONTROLLED_POWER_OFF = 1
    """Category 1: decelerate to standstill, then remove power."""
    CONTROLLED_HOLD = 2
    """Category 2: decelerate to standstill and keep power (protective stops)."""


@dataclass(frozen=True, slots=True)
class StopEvent:
    """One safety stop.

    Attributes:
        category: The stop category that was (or must be) executed.
        source: What raised it: ``"estop:pendant"``, ``"zone:person-1"``,
            ``"collision:tote"``...
        reason: Human-readable explanation.
        at: Clock time of the stop.
    """

    category: StopCategory
    source: str
    reason: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form for reports and the audit log."""
        return {
            "category": int(self.category),
            "source": self.source,
            "reason": self.reason,
            "at": self.at,
        }

    def to_signal(self) -> EmergencyStop:
        """The signal a step raises so the saga escalates."""
        return EmergencyStop(
            f"{self.reason} (stop category {int(self.category)}, source {self.source}); "
            "motion is locked until a human reset",
            category=int(self.category),
            source=self.source,
        )


@dataclass(frozen=True, slots=True)
class StopReset:
    """A human's reset of a latched stop."""

    operator: str
    note: str
    at: float
    cleared: tuple[StopEvent, ...] = field(default_factory=tuple)


class StopLatch:
    """Latches safety stops; refuses motion until a human reset.

    Thread-safe: stop events arrive on transport threads while a step waits on
    a motion in another thread. Listeners registered with :meth:`subscribe`
    are called (on the tripping thread) so a waiting motion can cancel at once.

    Args:
        now: Clock function stamping events (inject the engine's clock).
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._events: list[StopEvent] = []
        self._resets: list[StopReset] = []
        self._listeners: list[Callable[[StopEvent], None]] = []

    @property
    def tripped(self) -> bool:
        """Whether a stop is latched."""
        with self._lock:
            return bool(self._events)

    @property
    def events(self) -> tuple[StopEvent, ...]:
        """Latched (not yet reset) stop events, oldest first."""
        with self._lock:
            return tuple(self._events)

    @property
    def resets(self) -> tuple[StopReset, ...]:
        """Every human reset so far."""
        with self._lock:
            return tuple(self._resets)

    def subscribe(self, listener: Callable[[StopEvent], None]) -> Callable[[], None]:
        """Call ``listener`` on every trip; returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def trip(self, category: StopCategory | int, source: str, reason: str) -> StopEvent:
        """Latch a stop and notify listeners.

        A second stop while latched is recorded too (the most severe category
        wins in :meth:`signal`), so the report shows everything that happened.
        """
        event = StopEvent(StopCategory(category), source, reason, self._now())
        with self._lock:
            self._events.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def signal(self) -> EmergencyStop | None:
        """The EmergencyStop for the latched stops (most severe first), or None."""
        with self._lock:
            if not self._events:
                return None
            worst = min(self._events, key=lambda e: int(e.category))
        return worst.to_signal()

    def raise_if_tripped(self) -> None:
        """Refuse motion while a stop is latched.

        Raises:
            EmergencyStop: A stop is latched and not yet reset by a human.
        """
        signal = self.signal()
        if signal is not None:
            raise signal

    def reset(self, operator: str, *, hardware_released: bool, note: str = "") -> StopReset:
        """Clear the latch after a human reset the stop at the machine.

        Args:
            operator: Who reset it (recorded).
            hardware_released: What the machine reports *now*: the e-stop button
                released and the protective devices clear. Software cannot
                reset a stop the hardware still holds.
            note: Free text for the record.

        Raises:
            PreconditionFailed: No operator given, or the hardware still
                reports the stop active.
        """
        if not operator.strip():
            raise PreconditionFailed("a stop reset must name the operator who reset it")
        if not hardware_released:
            raise PreconditionFailed(
                "the machine still reports the safety stop active; release the e-stop "
                "and clear the zone at the machine, then acknowledge the reset",
                code="stop_active",
            )
        with self._lock:
            record = StopReset(operator, note, self._now(), tuple(self._events))
            self._events.clear()
            self._resets.append(record)
        return record
