"""An adapter's operation run by a pack, with the pack's pause point before each hook.

The adapters' operations are synchronous or run to the end once started, so a
simulated process can only be stopped BETWEEN calls: each pack wraps the operation
in :class:`Paced`, which forwards every hook the operation defines and lets the pack
put its own step (a pause point, a service call of the schedule, a record of the
intent) around it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ....core.context import StepContext

__all__ = ["HOOKS", "Around", "Paced"]

HOOKS = ("compensate", "probe", "block", "preconditions", "estimate_cost")
"""The operation's hooks forwarded (when it defines them) besides ``execute``."""

Around = Callable[[str, StepContext, Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""``around(hook, ctx, run)``: what a pack does around one hook; ``run()`` calls it."""


class Paced:
    """``op`` with ``around`` run around each of its hooks.

    Args:
        op: The adapter's operation; its name and hooks are the ones registered.
        around: Awaited for each hook call with the hook's name, the engine's
            context and ``run``, which calls the hook (awaiting it if it is async)
            and returns its result; ``around`` decides when, or whether, to call it.
        context: The context the operation is handed, from the engine's (a pack
            whose services are per saga hands it that saga's); applied when
            ``run`` is called, after whatever ``around`` did first.
        resources: Forward the operation's ``resources`` hook too (through
            ``context``), so the engine serializes sagas on what it names.
    """

    def __init__(self, op: Any, around: Around, *,
                 context: Callable[[StepContext], Any] | None = None,
                 resources: bool = False) -> None:
        self.op = op
        self.name: str = op.name
        self._around = around
        self._context = context or (lambda ctx: ctx)
        for hook in HOOKS:
            if hasattr(op, hook):
                setattr(self, hook, functools.partial(self._hooked, hook))
        if resources and hasattr(op, "resources"):
            self.resources = lambda ctx: op.resources(self._context(ctx))

    async def execute(self, ctx: StepContext) -> Any:
        """Run the operation's ``execute`` inside ``around``."""
        return await self._hooked("execute", ctx)

    async def _hooked(self, hook: str, ctx: StepContext) -> Any:
        async def run() -> Any:
            out = getattr(self.op, hook)(self._context(ctx))
            return await out if inspect.isawaitable(out) else out

        return await self._around(hook, ctx, run)
