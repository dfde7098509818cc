"""Fault injection shared by the payments simulators (ledger, FX venue, procurement).

A :class:`FaultPlan` holds rules. Each call a simulator serves asks the plan
whether a rule matches its operation and request; a matching rule fires for a
limited number of calls and then disappears, so a test states exactly which
attempt fails and how::

    ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, times=2)
    ledger.faults.inject("submit_payment", FaultKind.TIMEOUT, applied=True)  # effect kept
    ledger.faults.inject("create_linked", FaultKind.STALL, match={"code": "correction"})

Kinds:

- ``timeout``: the caller gets a timeout; with ``applied=True`` the effect still
  happened (the dangerous kind), without it nothing happened.
- ``reject``: a definite refusal with ``code`` (e.g. ``"sanctions_hit"``).
- ``latency``: the call is slowed by ``latency_s`` (through the injected sleep,
  so tests pass a fake one) and then served normally.
- ``crash``: the service dies mid-call (effect kept if ``applied``); it refuses
  every call until restarted.
- ``stall``: the call hangs (effect kept if ``applied``) until the test calls
  :meth:`FaultPlan.release`; :attr:`FaultPlan.stalled` is set when it arrives, so a
  chaos test can kill the caller at that exact point.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Fault", "FaultKind", "FaultPlan"]


class FaultKind(StrEnum):
    """What an injected fault does."""

    TIMEOUT = "timeout"
    REJECT = "reject"
    LATENCY = "latency"
    CRASH = "crash"
    STALL = "stall"


@dataclass
class Fault:
    """One fault rule.

    Attributes:
        op: Operation name it applies to (``"*"`` for any).
        kind: What it does.
        times: How many matching calls it affects before it is removed
            (``None``: every matching call).
        applied: For timeout/crash/stall: the effect happens before the failure.
        code: Rejection code for ``reject``.
        latency_s: Delay for ``latency`` (and added before a ``timeout``).
        match: Request fields that must be equal for the rule to match; a key
            ending in ``__prefix`` matches a string prefix instead.
        fired: How many times it fired so far.
    """

    op: str
    kind: FaultKind
    times: int | None = 1
    applied: bool = False
    code: str = "rejected"
    latency_s: float = 0.0
    match: dict[str, Any] = field(default_factory=dict)
    fired: int = 0

    def matches(self, op: str, request: Mapping[str, Any]) -> bool:
        """Whether this rule applies to ``op`` called with ``request``."""
        if self.op not in ("*", op):
            return False
        for key, expected in self.match.items():
            if key.endswith("__prefix"):
                actual = request.get(key.removesuffix("__prefix"))
                if not isinstance(actual, str) or not actual.startswith(str(expected)):
                    return False
            elif request.get(key) != expected:
                return False
        return True


class FaultPlan:
    """The active fault rules of one simulator, safe to use from many threads.

    Args:
        sleep: How latency is spent. Tests pass a fake (e.g. one that advances a
            FakeClock) so nothing really waits.
        stall_limit_s: A stalled call gives up (as a timeout) after this much
            real time if nobody releases it, so a broken test cannot hang forever.
    """

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        *,
        stall_limit_s: float = 60.0,
    ) -> None:
        self.sleep = sleep
        self.stall_limit_s = stall_limit_s
        self.history: list[tuple[str, FaultKind]] = []
        self.stalled = threading.Event()
        self._release = threading.Event()
        self._rules: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Activate a rule; returns it so a test can read ``fired`` later."""
        with self._lock:
            self._rules.append(fault)
        return fault

    def inject(self, op: str, kind: FaultKind | str, **options: Any) -> Fault:
        """Shorthand for ``add(Fault(op, FaultKind(kind), **options))``."""
        return self.add(Fault(op, FaultKind(kind), **options))

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def take(self, op: str, request: Mapping[str, Any]) -> Fault | None:
        """The first rule matching this call, consuming one of its ``times``."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(op, request):
                    rule.fired += 1
                    if rule.times is not None and rule.fired >= rule.times:
                        self._rules.remove(rule)
                    self.history.append((op, rule.kind))
                    return rule
        return None

    @property
    def active(self) -> list[Fault]:
        """A copy of the rules still armed."""
        with self._lock:
            return list(self._rules)

    def wait_stalled(self) -> bool:
        """Block the stalled call until :meth:`release` (True) or the limit (False)."""
        self.stalled.set()
        return self._release.wait(self.stall_limit_s)

    def release(self) -> None:
        """Let stalled calls return (as timeouts: their caller is gone anyway)."""
        self._release.set()
