"""The engine's call lanes: long-lived threads for plain calls that must be cut off.

Every plain compensation runs in one (it is cut off at the rollback window, and
blocking code can only be abandoned from outside its thread). These tests pin
what the lanes must never do: make a call wait behind a hung one, serialise
sagas compensating at once, or hold up the engine's close.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from reversa import Engine, PermanentError, Registry, Retry, Saga, SagaStatus, Step, StepContext
from reversa.core.engine.lanes import Lanes
from reversa.core.store import Store

ONCE = Retry(max_attempts=1)
LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("label", default="unset")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the lanes themselves ---------------------------------------------------------------------


def test_a_call_returns_its_result_or_raises_its_error_with_the_callers_context() -> None:
    lanes = Lanes()

    async def main() -> tuple[Any, ...]:
        LABEL.set("caller")
        value = await lanes.submit(lambda arg: (arg, LABEL.get()), 7)
        with pytest.raises(PermanentError, match="no"):
            await lanes.submit(_raise, PermanentError("no"))
        with pytest.raises(RuntimeError, match="StopIteration"):
            await lanes.submit(_raise, StopIteration())
        return value  # type: ignore[no-any-return]

    try:
        assert _run(main()) == (7, "caller")
    finally:
        lanes.close()


def test_an_idle_lane_serves_the_next_call() -> None:
    lanes = Lanes()

    async def main() -> list[str]:
        return [await lanes.submit(lambda _: threading.current_thread().name, None)
                for _ in range(5)]

    try:
        names = _run(main())
    finally:
        lanes.close()
    assert len(set(names)) == 1  # one thread, started once, reused
    assert names[0].startswith("reversa-lane")


def test_a_hung_call_never_delays_the_next_one() -> None:
    lanes = Lanes()
    release = threading.Event()

    async def main() -> tuple[float, str, str, bool]:
        hung = lanes.submit(lambda _: (release.wait(10), threading.current_thread().name)[1],
                            None)
        await asyncio.sleep(0.05)  # it is running now, and will not return by itself
        started = time.monotonic()
        other = await lanes.submit(lambda _: threading.current_thread().name, None)
        took = time.monotonic() - started
        still_hung = not hung.done()
        release.set()
        return took, await hung, other, still_hung

    try:
        took, hung_thread, other_thread, still_hung = _run(main())
    finally:
        release.set()
        lanes.close()
    assert still_hung
    assert took < 2  # not queued behind the hung call (it would wait up to 10 s)
    assert hung_thread != other_thread


def test_calls_in_flight_together_run_at_the_same_time() -> None:
    lanes = Lanes(keep_idle=2, name="reversa-lane-gather")
    # Each call waits for all the others: only concurrent calls get past the barrier
    # (one lane serving them in turn would break it after its timeout).
    barrier = threading.Barrier(4, timeout=5)

    async def main() -> list[int]:
        return list(await asyncio.gather(*(lanes.submit(lambda _: barrier.wait(), None)
                                           for _ in range(4))))

    try:
        arrived = _run(main())
        assert sorted(arrived) == [0, 1, 2, 3]
        _until(lambda: lanes.idle() == 2)
        assert lanes.idle() == 2  # past keep_idle, finished lanes end their threads
    finally:
        lanes.close()
    _until(lambda: not _lane_threads("reversa-lane-gather"))
    assert not _lane_threads("reversa-lane-gather")


def test_a_call_that_ends_within_the_wait_comes_back_settled() -> None:
    lanes = Lanes()

    async def main() -> tuple[bool, Any, bool, str, bool]:
        LABEL.set("waiting caller")
        # A generous wait: the lane's thread only has to start and run a lambda.
        quick = lanes.submit(lambda arg: (arg, LABEL.get()), 3, wait=5.0)
        settled = quick.done()
        failed = lanes.submit(_raise, PermanentError("refused"), wait=5.0)
        failed_settled = failed.done()
        with pytest.raises(PermanentError, match="refused"):
            await failed
        stop = lanes.submit(_raise, StopIteration(), wait=5.0)
        with pytest.raises(RuntimeError, match="StopIteration"):
            await stop
        thread = lanes.submit(lambda _: threading.current_thread().name, None, wait=5.0)
        return settled, await quick, failed_settled, await thread, stop.done()

    try:
        settled, value, failed_settled, thread, _ = _run(main())
    finally:
        lanes.close()
    assert settled and failed_settled  # no turn of the event loop was needed
    assert value == (3, "waiting caller")
    assert thread.startswith("reversa-lane")


def test_a_call_outliving_the_wait_is_awaited_and_the_lane_is_reused() -> None:
    lanes = Lanes(name="reversa-lane-slow")
    release = threading.Event()

    async def main() -> tuple[bool, Any, Any]:
        slow = lanes.submit(lambda _: (release.wait(10), "slow")[1], None, wait=0.01)
        pending = not slow.done()
        release.set()
        first = await slow
        # The lane went idle before its outcome was posted: the next call reuses it.
        second = await lanes.submit(lambda _: threading.current_thread().name, None,
                                    wait=5.0)
        return pending, first, second

    try:
        pending, first, second = _run(main())
    finally:
        release.set()
        lanes.close()
    assert pending
    assert first == "slow"
    assert second == "reversa-lane-slow-1"


def test_every_outcome_is_delivered_once_when_calls_end_around_the_wait() -> None:
    """Calls ending just before, at or just after the wait: both handovers race."""
    lanes = Lanes(keep_idle=2)
    unretrieved: list[Any] = []

    def work(n: int) -> int:
        # About as long as the waits below. Holding the GIL, the call is still
        # running when the caller's wait runs out, and the caller cannot take the
        # lane's outcome over before the lane is done: the late-handover path. A
        # sleep lets the caller stop waiting before the call ends: the posted path.
        if n % 3 == 0:
            time.sleep(0.0002)
        else:
            until = time.perf_counter() + 0.0001
            while time.perf_counter() < until:
                pass
        if n % 7 == 0:
            raise PermanentError(f"call {n}")
        return n

    async def main() -> list[Any]:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: unretrieved.append(context))
        outcomes: list[Any] = []
        for n in range(3000):
            future = lanes.submit(work, n, wait=0.00005 * (n % 5))
            try:
                # Bounded: an outcome lost between the two handovers would hang here.
                outcomes.append(await asyncio.wait_for(future, 30))
            except PermanentError as exc:
                outcomes.append(str(exc))
        await asyncio.sleep(0.05)  # any outcome the lanes still post arrives now
        return outcomes

    try:
        outcomes = _run(main())
    finally:
        lanes.close()
    assert outcomes == [f"call {n}" if n % 7 == 0 else n for n in range(3000)]
    assert unretrieved == []


def test_a_negative_wait_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="wait_s=-1"):
        Lanes(wait_s=-1)


def test_the_idle_lanes_of_a_dropped_engine_end() -> None:
    lanes = Lanes(name="reversa-lane-dropped")
    assert _run(_call(lanes, lambda _: 1)) == 1
    assert len(_lane_threads("reversa-lane-dropped")) == 1
    del lanes
    _until(lambda: not _lane_threads("reversa-lane-dropped"))
    assert not _lane_threads("reversa-lane-dropped")


def test_close_never_waits_for_a_hung_call_and_the_lanes_stay_usable() -> None:
    lanes = Lanes(name="reversa-lane-close")
    release = threading.Event()

    async def start_hung() -> asyncio.Future[Any]:
        return lanes.submit(lambda _: release.wait(10), None)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(start_hung())
        started = time.monotonic()
        lanes.close()
        assert time.monotonic() - started < 1
        # A call after close starts a fresh lane.
        assert loop.run_until_complete(_call(lanes, lambda _: "after close")) == "after close"
    finally:
        release.set()
        lanes.close()
        loop.close()  # the hung call ends after its loop closed: nothing to settle, no error
    _until(lambda: not _lane_threads("reversa-lane-close"))
    assert not _lane_threads("reversa-lane-close")


# -- in the engine --------------------------------------------------------------------------


def _registry(undo: Any) -> Registry:
    reg = Registry()
    reg.add("action", "ok", lambda ctx: None)
    reg.add("action", "fail", _fail)
    reg.add("compensation", "undo", undo)
    reg.add("snapshot", "state", lambda ctx: {})
    return reg


def _saga(window: float = 60.0) -> Saga:
    return Saga.chain("lanes", [
        Step(name="one", action="ok", compensation="undo", retry=ONCE, compensation_retry=ONCE),
        Step(name="two", action="fail", compensation="undo", retry=ONCE),
    ], snapshot="state", rollback_window_s=window)


def test_compensations_run_in_the_engines_lanes(store: Store) -> None:
    threads: list[str] = []
    engine = Engine(_registry(lambda ctx: threads.append(threading.current_thread().name)),
                    store, heartbeat=False)
    try:
        results = [engine.run(_saga()) for _ in range(3)]
    finally:
        engine.close()
    assert [r.status for r in results] == [SagaStatus.COMPENSATED] * 3
    assert len(threads) == 3 and len(set(threads)) == 1
    assert threads[0].startswith("reversa-lane")


def test_a_hung_compensation_is_cut_off_and_the_next_saga_compensates_at_once(
        store: Store) -> None:
    release = threading.Event()
    calls: list[str] = []

    def undo(ctx: StepContext) -> None:
        calls.append(ctx.saga_id)
        if len(calls) == 1:
            release.wait(10)  # the first saga's compensation hangs past its window

    engine = Engine(_registry(undo), store, heartbeat=False)
    try:
        started = time.monotonic()
        hung = engine.run(_saga(window=0.5))
        cut = time.monotonic() - started
        started = time.monotonic()
        nxt = engine.run(_saga(window=5))
        took = time.monotonic() - started
        assert not release.is_set() and len(calls) == 2
    finally:
        release.set()
        engine.close()
    assert hung.status is SagaStatus.ESCALATED  # cut off at its window
    assert cut < 5
    # The next saga's compensation did not queue behind the hung one.
    assert nxt.status is SagaStatus.COMPENSATED
    assert took < 4


def test_sagas_compensating_at_once_each_get_a_lane(store: Store) -> None:
    # Every compensation waits for the other two: they complete only if they run at once.
    barrier = threading.Barrier(3, timeout=5)
    engine = Engine(_registry(lambda ctx: barrier.wait()), store, heartbeat=False)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(engine.run_async(_saga(window=30))
                                           for _ in range(3))))

    try:
        results = engine._sync(main())
    finally:
        engine.close()
    assert [r.status for r in results] == [SagaStatus.COMPENSATED] * 3


# -- helpers ---------------------------------------------------------------------------------


def _fail(ctx: StepContext) -> None:
    raise PermanentError("the last step fails")


def _raise(exc: BaseException) -> None:
    raise exc


async def _call(lanes: Lanes, fn: Any) -> Any:
    return await lanes.submit(fn, None)


def _lane_threads(prefix: str = "reversa-lane") -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
