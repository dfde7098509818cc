"""The observer hook: tracing and metrics see sagas, steps and compensations as they run.

``Engine(observers=[...])`` calls each observer at these points, from the
engine's own coroutine (so an observer must be quick and must not raise: an
exception from one is logged and dropped, never allowed to disturb a saga).
With no observer nothing is called at all: the hot path pays one truth test.

Implement only the methods you need by subclassing :class:`Observer` (every
method is a no-op there); :mod:`reversa.observability.otel` turns them into
OpenTelemetry spans.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["Observer", "notify"]

log = logging.getLogger("reversa.observe")


class Observer:
    """Receives the engine's events; every method is a no-op unless overridden.

    ``saga_started``/``saga_finished`` bracket one stretch of work on a saga by
    this process (a run, a recovery, a resolution, an operator rollback).
    """

    def saga_started(self, saga_id: str, workflow: str, status: str) -> None:
        """This process starts working on a saga (its status at that moment)."""

    def saga_finished(self, saga_id: str, workflow: str, status: str,
                      error: str | None) -> None:
        """This process stops working on it (its status and error then)."""

    def step_started(self, saga_id: str, step: str, attempt: int) -> None:
        """An action's attempt is about to be called (its intent is durable)."""

    def step_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                      error: str | None) -> None:
        """That attempt returned (``ok``) or failed (the failure's code)."""

    def compensation_started(self, saga_id: str, step: str, attempt: int) -> None:
        """A compensation's attempt is about to be called."""

    def compensation_finished(self, saga_id: str, step: str, attempt: int, outcome: str,
                              error: str | None) -> None:
        """That compensation attempt returned (``ok``) or failed."""


def notify(observers: tuple[Any, ...], method: str, *args: Any) -> None:
    """Call ``method`` on every observer; one that raises is logged, never propagated."""
    for observer in observers:
        try:
            getattr(observer, method)(*args)
        except Exception:
            log.exception("observer %r failed in %s; ignored", observer, method)
