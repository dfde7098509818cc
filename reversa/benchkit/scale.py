"""Scale-out and recovery measurements for ``reversa bench``.

``run_workers`` starts W processes on one database (PostgreSQL for real
scale-out), each running its share of the workload with C sagas in flight,
and reports the aggregate. ``measure_recovery`` SIGKILLs a runner in the
middle of a compensation and times how long a worker in this process takes
to finish it (lease expiry included).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

from ..core.store import Store

__all__ = ["measure_recovery", "run_workers"]


def run_workers(
    url: str, sagas: int, steps: int, fail_last: bool, workers: int, concurrency: int
) -> dict[str, Any]:
    """Run the workload split over ``workers`` processes; aggregate throughput."""
    share = [sagas // workers + (1 if i < sagas % workers else 0) for i in range(workers)]
    start_at = time.time() + 2.0  # every process imports first, then all start together
    procs = [subprocess.Popen(
        [sys.executable, "-m", "reversa.benchkit.scale", "share", url, str(n), str(steps),
         "1" if fail_last else "0", str(concurrency), str(start_at)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in share]
    outs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                last = (stderr.strip().splitlines() or ["no error output"])[-1]
                raise RuntimeError(f"bench worker exited {proc.returncode}: {last}")
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:  # one failed (or we were interrupted): stop the others
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    total_steps = sum(o["steps"] for o in outs)
    latencies = sorted(x for o in outs for x in o["step_ms"])
    out: dict[str, Any] = {
        "sagas_per_s": sagas / wall, "steps_per_s": total_steps / wall, "elapsed_s": wall,
        "per_worker_steps_per_s": [o["steps"] / (o["end"] - o["start"]) for o in outs],
    }
    if latencies:  # one-step sagas have no gap between calls to measure
        out["p50_step_ms"] = latencies[len(latencies) // 2]
        out["p99_step_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return out


def measure_recovery(url: str, lease_s: float) -> float:
    """Seconds from SIGKILL of a runner mid-compensation to the saga being compensated."""
    proc = subprocess.Popen([sys.executable, "-m", "reversa.benchkit.scale", "victim", url,
                             str(lease_s)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    saga_id = proc.stdout.readline().strip()  # printed once compensation has started
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = time.perf_counter()
    from ..core.worker import Worker
    from .workload import bench_registry

    store = Store.open(url)
    worker = Worker(_slow_registry(bench_registry()), store, lease_s=lease_s, poll_s=0.01)
    while True:
        worker.run_once()
        row, _ = store.load(saga_id)
        if row["status"] == "compensated":
            break
        if time.perf_counter() - killed > lease_s + 60:
            raise RuntimeError("recovery did not finish within lease + 60 s")
        time.sleep(0.01)
    elapsed = time.perf_counter() - killed
    worker.engine.close()
    return elapsed


def _slow_registry(reg: Any) -> Any:
    """The bench registry plus 'bench.slow_undo', a compensation the victim dies inside."""
    reg.add("compensation", "bench.slow_undo", lambda ctx: None)
    return reg


def _victim(url: str, lease_s: float) -> None:
    import os

    from ..core.engine import Engine
    from ..core.model import Retry
    from .workload import bench_registry, bench_saga

    reg = bench_registry()

    def slow_undo(ctx: Any) -> None:
        print(ctx.saga_id, flush=True)  # the parent kills us now, mid-compensation
        time.sleep(3600)

    reg.add("compensation", "bench.slow_undo", slow_undo)
    saga = bench_saga(3, fail_last=True)
    steps = [s.model_copy(update={"compensation": "bench.slow_undo",
                                  "compensation_retry": Retry(max_attempts=1)})
             if s.name == "s1" else s for s in saga.steps]
    engine = Engine(reg, Store.open(url), lease_s=lease_s)
    engine.run(saga.model_copy(update={"steps": tuple(steps)}))
    os._exit(1)  # unreachable when killed as intended


def _share(url: str, sagas: int, steps: int, fail_last: bool, concurrency: int,
           start_at: float) -> None:
    from .workload import run_durable

    store = Store.open(url)
    time.sleep(max(0.0, start_at - time.time()))
    start = time.time()
    result = run_durable(store, sagas, steps, fail_last, concurrency)
    end = time.time()
    print(json.dumps({"start": start, "end": end, "steps": result.steps,
                      "step_ms": result.step_ms[:: max(1, len(result.step_ms) // 2000)]}))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "share":
        _share(args[1], int(args[2]), int(args[3]), args[4] == "1", int(args[5]),
               float(args[6]))
    elif args[0] == "victim":
        _victim(args[1], float(args[2]))
