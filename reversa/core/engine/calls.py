"""Calling handlers: one code path for plain and async functions.

The engine itself is a coroutine. A handler is awaited if it is async, called
inline if it is plain (no thread hop on the hot path), and moved to a thread
only when a timeout must be enforced on blocking code. Errors are classified
here, once, into what the engine needs to know: retry or not, and whether the
effect may have happened.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential

from ..canonical import to_jsonable
from ..clock import Clock
from ..errors import (
    OutcomeUnknown,
    PermanentError,
    PreconditionFailed,
    ReversaError,
)
from ..model import Retry
from ..redact import scrub
from .lanes import Lanes

__all__ = [
    "AttemptTimedOut",
    "Failure",
    "classify",
    "invoke",
    "invoke_for_record",
    "recordable",
    "retrying",
    "settle_timed_out",
    "with_retries",
]


class AttemptTimedOut(OutcomeUnknown):
    """A plain (blocking) call outlived its timeout and is still running in its thread.

    Its effect may still happen. ``running`` is the future of that thread: the
    engine waits for it (or blocks the call's key at the service) before it
    retries or probes, so no retry ever overlaps it and no probe answers "not
    happened" while it can still land.
    """

    default_code = "timeout"

    def __init__(self, message: str, running: asyncio.Future[Any]) -> None:
        super().__init__(message)
        self.running = running


class StillRunning(OutcomeUnknown):
    """A timed-out attempt did not end within its grace period: no retry may start."""

    default_code = "timeout_still_running"
    default_retryable = False

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified handler failure.

    Attributes:
        code: Outcome code for the audit log.
        message: Error text (never a secret: adapters redact at the boundary).
        retryable: Whether another attempt may succeed.
        in_doubt: Whether the effect may have happened despite the error.
    """

    code: str
    message: str
    retryable: bool
    in_doubt: bool


def classify(exc: BaseException) -> Failure:
    """Map any exception raised by a handler to a :class:`Failure`.

    The message passes :func:`~reversa.core.redact.scrub`: exception text is
    recorded in step rows, the audit log and escalation reports, and a
    library's message may quote a key, a token, a card number or an IBAN.
    """
    failure = _classify(exc)
    message = scrub(failure.message)
    return failure if message == failure.message else replace(failure, message=message)


def _classify(exc: BaseException) -> Failure:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Failure("timeout", "the call timed out; its effect may have happened", True, True)
    if isinstance(exc, OutcomeUnknown):
        return Failure(exc.code, exc.message, exc.retryable, True)
    if isinstance(exc, PreconditionFailed | PermanentError):
        return Failure(exc.code, exc.message, False, False)
    if isinstance(exc, ReversaError):
        return Failure(exc.code, exc.message, exc.retryable, False)
    # An untranslated exception says nothing about whether the effect happened:
    # treat it as in doubt (compensated with the same key) and retryable.
    return Failure(f"error:{type(exc).__name__}", f"{type(exc).__name__}: {exc}", True, True)


async def invoke(
    fn: Callable[..., Any], ctx: Any, timeout: float | None, *, budget: float | None = None,
    lanes: Lanes | None = None,
) -> Any:
    """Call ``fn(ctx)`` whether it is plain or async, enforcing ``timeout``.

    ``budget`` is what remains of an enclosing window (the rollback window). It
    bounds async calls, which can be cancelled cheaply; a plain function is only
    moved to a thread when a timeout is given, because thread hops cost time and
    break thread-bound clients. That thread is one of ``lanes`` (the engine's
    long-lived call threads), or the loop's default executor without them.
    """
    if _is_async(fn) and budget is not None:
        timeout = budget if timeout is None else min(timeout, budget)
    if timeout is not None and timeout <= 0:
        raise TimeoutError
    if _is_async(fn):
        coro = fn(ctx)
        return await (asyncio.wait_for(coro, timeout) if timeout is not None else coro)
    if timeout is None:
        result = fn(ctx)
    else:
        # Blocking code can only be timed out from outside its thread, and the
        # thread cannot be stopped: hand its future to the caller, which must not
        # retry or probe while it may still land (see settle_timed_out).
        if lanes is not None:
            running = lanes.submit(fn, ctx, wait=min(timeout, lanes.wait_s))
        else:
            call = functools.partial(contextvars.copy_context().run, fn, ctx)
            running = asyncio.get_running_loop().run_in_executor(None, call)
        if not await _ended_within(running, timeout):
            raise AttemptTimedOut(
                f"{getattr(fn, '__qualname__', fn)!s} timed out after {timeout:g}s and is still "
                "running; its effect may happen", running)
        result = running.result()
    if inspect.isawaitable(result):
        result = await (asyncio.wait_for(result, timeout) if timeout is not None else result)
    return result


async def _ended_within(running: asyncio.Future[Any], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``running`` to end, never cancelling it.

    ``asyncio.wait`` does the same with sets, a counter and a second pass over
    the futures: a measurable share of every compensation's hop.
    """
    if running.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: Any = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout, wake)
    running.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        running.remove_done_callback(wake)
    return running.done()


async def invoke_for_record(
    fn: Callable[..., Any], ctx: Any, timeout: float | None, *, budget: float | None = None,
    lanes: Lanes | None = None,
) -> Any:
    """:func:`invoke`, then turn the result into the JSON the store records.

    A result that cannot be recorded comes from a call whose effect has probably
    happened: it is reported in doubt (not retried), so the rollback undoes it
    with its idempotency key instead of losing track of it.
    """
    return recordable(fn, await invoke(fn, ctx, timeout, budget=budget, lanes=lanes))


def recordable(fn: Callable[..., Any], result: Any) -> Any:
    """``result`` as the JSON the store records, or OutcomeUnknown (not retried)."""
    try:
        return to_jsonable(result)
    except TypeError as exc:
        raise OutcomeUnknown(
            f"{getattr(fn, '__qualname__', fn)!s} ran but its result cannot be recorded: {exc}",
            retryable=False, code="unrecordable_result") from exc


async def settle_timed_out(exc: AttemptTimedOut, grace: float | None) -> Any:
    """Wait up to ``grace`` seconds for a timed-out attempt to end; its outcome is the attempt's.

    Returns its result if it succeeded meanwhile, raises its error if it failed,
    and raises :class:`StillRunning` (in doubt, not retryable) if it is still
    running: the caller must then block its key, or escalate, instead of
    retrying or probing.
    """
    if grace is not None and grace > 0:
        await _ended_within(exc.running, grace)
    if exc.running.done():
        return exc.running.result()
    raise StillRunning(f"{exc.message}; it was still running {grace or 0:g}s later, so no "
                       "retry or probe may start while it can still land") from exc


@functools.lru_cache(maxsize=4096)
def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    return call is not None and inspect.iscoroutinefunction(call)


class stop_at_deadline(stop_base):  # noqa: N801 - tenacity's naming for stop policies
    """Stop retrying once the clock passes ``deadline`` (rollback windows)."""

    def __init__(self, clock: Clock, deadline: float | None) -> None:
        self.clock = clock
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline is not None and self.clock.now() >= self.deadline


def retrying(
    policy: Retry, clock: Clock, deadline: float | None = None, *, skip: int = 0
) -> AsyncRetrying:
    """A tenacity policy: bounded attempts, exponential backoff, the engine's clock.

    ``skip`` attempts have already been made: the schedule continues from there.
    """
    return AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - skip) | stop_at_deadline(clock, deadline),
        wait=wait_exponential(
            multiplier=policy.initial_s * policy.multiplier**skip, max=policy.max_s,
            exp_base=policy.multiplier,
        ),
        retry=retry_if_exception(_retryable),
        sleep=clock.sleep,
        reraise=True,
    )


async def with_retries(
    policy: Retry,
    clock: Clock,
    deadline: float | None,
    attempt: Callable[[], Awaitable[T]],
) -> T:
    """Run ``attempt`` under ``policy`` and return its result, or raise its last error.

    The first try runs directly, so the common case (it succeeds) costs no retry
    machinery on the hot path; retries go through tenacity on the same
    exponential schedule, with the engine's clock and sleep.
    """
    try:
        return await attempt()
    except Exception as exc:
        first = exc
        if policy.max_attempts <= 1 or not _retryable(exc):
            raise
    await clock.sleep(min(policy.initial_s, policy.max_s))
    if deadline is not None and clock.now() >= deadline:
        raise first
    async for retry in retrying(policy, clock, deadline, skip=1):
        with retry:
            return await attempt()
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def _retryable(exc: BaseException) -> bool:
    # BaseExceptions (signals, SystemExit, KeyboardInterrupt, a dying process)
    # are never retried: they must reach the engine, or end the process.
    if not isinstance(exc, Exception):
        return False
    return classify(exc).retryable
