"""The same workload on DBOS Transact, for a like-for-like comparison.

Each DBOS workflow runs K steps (the last raising) and then K-1 compensation
steps, every one a durable ``@DBOS.step``. DBOS keeps a process-wide singleton,
so it runs in its own subprocess: ``python -m reversa.benchkit.peers URL N K F C``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

__all__ = ["run_dbos"]


def run_dbos(url: str, sagas: int, steps: int, fail_last: bool, concurrency: int) -> dict[str, Any]:
    """Run the workload on DBOS (in a subprocess) against a database like ``url``.

    SQLite URLs get a sibling file; PostgreSQL URLs are used as given (DBOS
    keeps its tables in its own schema).
    """
    with contextlib.ExitStack() as cleanup:
        if url.startswith("sqlite"):
            tmp = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="reversa-dbos-"))
            url = f"sqlite:///{tmp}/dbos.db"
        cmd = [sys.executable, "-m", "reversa.benchkit.peers", url, str(sagas), str(steps),
               "1" if fail_last else "0", str(concurrency)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-500:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _main(url: str, sagas: int, steps: int, fail_last: bool, concurrency: int) -> None:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from dbos import DBOS, DBOSConfig

    logging.disable(logging.WARNING)
    config: DBOSConfig = {"name": "reversa-bench-peer", "system_database_url": url,
                          "log_level": "ERROR"}
    DBOS(config=config)

    @DBOS.step()
    def noop(i: int) -> int:
        return i

    @DBOS.step()
    def fail(i: int) -> int:
        raise RuntimeError("the last step fails by design")

    @DBOS.step()
    def undo(i: int) -> int:
        return i

    @DBOS.workflow()
    def saga(k: int, fail_last_: bool) -> int:
        done: list[int] = []
        for i in range(k):
            try:
                (fail if fail_last_ and i == k - 1 else noop)(i)
            except RuntimeError:
                for j in reversed(done):
                    undo(j)
                return len(done)
            done.append(i)
        return k

    DBOS.launch()
    start = time.perf_counter()
    if concurrency <= 1:
        for _ in range(sagas):
            saga(steps, fail_last)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda _: saga(steps, fail_last), range(sagas)))
    elapsed = time.perf_counter() - start
    per_saga = steps + (steps - 1 if fail_last else 0)
    print(json.dumps({"sagas_per_s": sagas / elapsed, "steps_per_s": sagas * per_saga / elapsed,
                      "elapsed_s": elapsed, "dbos_version": _version()}))
    sys.stdout.flush()
    DBOS.destroy()
    os._exit(0)  # DBOS background threads need not outlive the measurement


def _version() -> str:
    from importlib.metadata import version

    return version("dbos")


if __name__ == "__main__":
    a = sys.argv[1:]
    _main(a[0], int(a[1]), int(a[2]), a[3] == "1", int(a[4]))
