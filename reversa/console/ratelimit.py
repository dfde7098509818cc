"""Login rate limiting: failed attempts counted per user name and per client address.

A user name that failed ``per_user`` times within ``window_s`` is locked until
its oldest failure leaves the window (guessing one account's password), and so
is an address that failed ``per_ip`` times (trying many accounts). While locked
no password is even checked, so a correct guess teaches nothing. Counts live in
the console process: a second console behind the same proxy keeps its own.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]


class LoginLimiter:
    """Counts failed logins in a sliding window.

    Args:
        clock: Seconds (injected: tests move time without sleeping).
        per_user: Failures of one user name allowed per window.
        per_ip: Failures from one address allowed per window.
        window_s: The window's length.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        per_user: int = 5,
        per_ip: int = 20,
        window_s: float = 900.0,
    ) -> None:
        self.clock = clock
        self.limits = {"user": per_user, "ip": per_ip}
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, user: str, ip: str) -> float:
        """Seconds until a login for ``user`` from ``ip`` may be tried (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for kind, value in (("user", user), ("ip", ip)):
                times = self._recent((kind, value), now)
                if len(times) >= self.limits[kind]:
                    wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, user: str, ip: str) -> None:
        """Count a failed login."""
        now = self.clock()
        with self._lock:
            for key in (("user", user), ("ip", ip)):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        """Forget the user's failures (the address keeps its count)."""
        with self._lock:
            self._failures.pop(("user", user), None)
