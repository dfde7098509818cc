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
