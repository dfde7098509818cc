"""Long-lived threads for plain calls that must be cut off at a deadline.

Blocking code can only be abandoned from outside its thread, so a plain call the
engine must be able to cut off (every compensation, at the rollback window; any
call with a declared timeout) runs in another thread. The default executor costs,
on every call, a ``concurrent.futures.Future`` with its condition variable, its
chaining to an asyncio future, and the pool's locks: about half of the hop's CPU,
and a hop happens for each compensation of every saga. A lane is one thread with
its own queue: a call is one ``put``, its outcome comes back with one
``call_soon_threadsafe``.

The caller may wait a little in its own thread (``submit(..., wait=)``): a call
that ends within that wait hands its outcome over through a lock, without the
event loop's wake-up (a write to its self-pipe, an epoll pass, a callback and a
timer). Most compensations are that quick, and the wake-up was most of the hop.
A slower call costs the loop that bounded wait once, then is awaited as before.

Lanes are never waited for. A call that outlives its deadline keeps its lane busy
(the thread cannot be stopped) and the next call takes an idle lane or starts a
new one, so a hung call never delays another saga, and sagas compensating at the
same time each run in a lane of their own. A lane that finishes goes back to the
idle set, up to ``keep_idle`` lanes; beyond that its thread ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from queue import SimpleQueue
from typing import Any

__all__ = ["Lanes"]


class _Call:
    """One call handed to a lane, and the handover of its outcome.

    ``ended`` is held until the outcome is set: the submitting thread may wait
    on it briefly. ``future`` is set only if that thread stopped waiting; the
    lane then posts the outcome to the loop.
    """

    __slots__ = ("arg", "context", "ended", "fn", "future", "loop", "outcome")

    def __init__(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context,
                 fn: Callable[[Any], Any], arg: Any) -> None:
        self.loop = loop
        self.context = context
        self.fn = fn
        self.arg = arg
        self.future: asyncio.Future[Any] | None = None
        self.outcome: tuple[bool, Any] = (False, None)
        self.ended = threading.Lock()
        self.ended.acquire()


class Lanes:
    """A per-engine set of call threads, reused while idle, never waited for.

    Args:
        keep_idle: Idle lanes kept for the next calls (more in flight at once
            start more threads; those end once idle beyond this number).
        name: Thread name prefix (shown by py-spy, faulthandler dumps...).
        wait_s: How long a caller of the engine waits in the loop's thread for
            a call to end before it awaits it (``submit(wait=...)``): long
            enough for a quick call and two thread switches, short next to any
            call that does I/O.
    """

    def __init__(self, *, keep_idle: int = 4, name: str = "reversa-lane",
                 wait_s: float = 0.001) -> None:
        if keep_idle < 1:
            raise ValueError(f"keep_idle={keep_idle}; keep at least 1 idle lane")
        if wait_s < 0:
            raise ValueError(f"wait_s={wait_s}; give 0 (never wait in the loop's thread) or more")
        self.wait_s = wait_s
        self._keep = keep_idle
        self._name = name
        self._idle: list[_Lane] = []
        self._lock = threading.Lock()
        self._epoch = 0
        self._numbers = itertools.count(1)
        # An engine dropped without close(): its idle lanes end with it, as the
        # default executor's threads do (a lane holds only a weak reference).
        weakref.finalize(self, _end_idle, self._idle, self._lock)

    def submit(self, fn: Callable[[Any], Any], arg: Any, *, wait: float = 0.0
               ) -> asyncio.Future[Any]:
        """Run ``fn(arg)`` in a lane (with the caller's context variables).

        Returns an asyncio future of the running loop, settled with the call's
        result or exception when it ends, however long that takes. Cancelling
        the future does not stop the call (nothing can): it only stops waiting.

        ``wait`` is how long this thread (the loop's) may block for the call to
        end: a call that ends within it returns an already settled future and
        costs the loop no wake-up. Keep it short, the loop runs nothing else
        meanwhile (a plain call without a timeout blocks it for its whole length).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = _Call(loop, contextvars.copy_context(), fn, arg)
        with self._lock:
            lane = self._idle.pop() if self._idle else None
            number, epoch = (next(self._numbers), self._epoch) if lane is None else (0, 0)
        if lane is None:
            lane = _Lane(self, f"{self._name}-{number}", epoch)
        lane.queue.put(call)
        if wait > 0 and call.ended.acquire(timeout=wait):
            _settle(future, call.outcome)
            return future
        call.future = future
        # The call may have ended between the wait and the line above, before the
        # lane could see ``future``: take its outcome here. If the lane saw it too,
        # its posted _settle finds the future settled and does nothing.
        if call.ended.acquire(blocking=False):
            _settle(future, call.outcome)
        return future

    def idle(self) -> int:
        """Lanes waiting for a call now."""
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """End the idle lanes; busy ones end when their call returns. Never blocks.

        Later calls start new lanes (an engine stays usable after ``close``).
        """
        with self._lock:
            self._epoch += 1
        _end_idle(self._idle, self._lock)

    def _release(self, lane: _Lane) -> bool:
        """A lane finished its call: keep it for the next one, or let its thread end."""
        with self._lock:
            if lane.epoch != self._epoch or len(self._idle) >= self._keep:
                return False
            self._idle.append(lane)
            return True


class _Lane:
    __slots__ = ("epoch", "lanes", "queue", "thread")

    def __init__(self, lanes: Lanes, name: str, epoch: int) -> None:
        self.lanes = weakref.ref(lanes)
        self.epoch = epoch
        self.queue: SimpleQueue[_Call | None] = SimpleQueue()
        # A daemon: a call that never returns must not keep the process from exiting
        # (the default executor joins its threads at exit, so a hung call hung it).
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        call = self.queue.get()
        while call is not None:
            try:
                outcome: tuple[bool, Any] = (True, call.context.run(call.fn, call.arg))
            except BaseException as exc:  # handed to the awaiting coroutine, as an executor does
                outcome = (False, exc)
            call.outcome = outcome
            # Idle again BEFORE the caller hears of the outcome: a caller that
            # submits its next call at once finds this lane free, however late this
            # thread runs again (a call queued meanwhile waits in the queue).
            lanes = self.lanes()
            keep = lanes is not None and lanes._release(self)
            del lanes
            call.ended.release()
            # Read after the release: a caller that stopped waiting set ``future``
            # before its last look at ``ended`` (see Lanes.submit).
            future = call.future
            if future is not None:
                # The loop may be closed meanwhile (a hung call outliving its engine):
                # nobody is waiting for this outcome any more.
                with suppress(RuntimeError):
                    call.loop.call_soon_threadsafe(_settle, future, outcome)
            del call, future, outcome  # drop references to the call's objects while idle
            if not keep:
                return
            call = self.queue.get()


def _end_idle(idle: list[_Lane], lock: threading.Lock) -> None:
    with lock:
        ending = idle[:]
        idle.clear()
    for lane in ending:
        lane.queue.put(None)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # the waiter was cancelled (a lost lease, a shutdown)
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    elif isinstance(value, StopIteration):
        # A future cannot carry StopIteration (it would end the awaiting coroutine).
        future.set_exception(RuntimeError(f"the call raised StopIteration: {value!r}"))
    else:
        future.set_exception(value)
