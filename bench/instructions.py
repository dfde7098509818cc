"""Instructions per step: the bench workload's CPU cost, counted instead of timed.

On a shared, loaded machine even process CPU time per step swings by 20-40 %
between identical runs (caches, frequency, the other core's neighbours). The
number of instructions executed does not: valgrind counts them (``cachegrind``,
no cache simulation). The workload is run twice in fresh processes, with
``--base`` sagas and with ``--base + --sagas``; the difference divided by the
step executions between them is the cost of one step, interpreter start-up,
imports and the first saga's plan validation cancelled out.

    python bench/instructions.py [--sagas 100] [--steps 5] [--src DIR]
                                 [--traced [tracer|processor]]

``--traced`` adds ``TracingObserver`` with an OpenTelemetry SDK provider recording
every span into a batch processor (no exporter), closed at the end of the run
(``--traced processor``: the observer hands finished spans to that processor
itself, ``TracingObserver(processor=...)``, instead of through the tracer):
the count then includes building every span, on whichever thread it happens
(valgrind runs one thread at a time), so against a run without it, it is the CPU
cost of tracing free of the machine's noise (with ``--src``, a tree that has
``reversa/benchkit/tracing.py``).

``--src`` runs another source tree's ``reversa`` package (a checkout of an
older commit, say) with this interpreter, so two versions are compared on the
same interpreter and libraries. It prints JSON. Counted instructions miss the
kernel's share (thread wake-ups, fsync), and threads make the count vary by
about 1 %; time the result with ``reversa bench`` as well. Needs valgrind
(``apt-get install valgrind``); runs about 100x slower than the workload.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

_WORKLOAD = """
import sys, tempfile
from reversa.core.store import Store
from reversa.benchkit.workload import run_durable
spans = None
if sys.argv[3] != "plain":
    from reversa.benchkit.tracing import RecordedSpans
    spans = RecordedSpans(sys.argv[3])
with tempfile.TemporaryDirectory() as d:
    store = Store.open(f"sqlite:///{d}/bench.db", synchronous="OFF")
    run_durable(store, int(sys.argv[1]), int(sys.argv[2]), True,
                observers=[spans.observer] if spans else ())
    store.close()
if spans:
    spans.shutdown()  # every span built and exported inside the count
"""


def _count(sagas: int, steps: int, src: str | None, traced: str | None = None) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0")
    if src is not None:
        env["PYTHONPATH"] = src
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no",
             f"--cachegrind-out-file={tmp}/cg.out", sys.executable, "-c", _WORKLOAD,
             str(sagas), str(steps), traced or "plain"],
            # Not the caller's directory: `python -c` puts it first on sys.path, where
            # a checkout's own reversa/ would shadow --src.
            env=env, capture_output=True, text=True, check=False, cwd=tmp)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or found is None:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"bench/instructions.py: the workload failed under valgrind: {tail[0]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    """Parse arguments, count both runs (in parallel), print the per-step figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sagas", type=int, default=100, help="sagas between the two runs")
    parser.add_argument("--base", type=int, default=10, help="sagas of the shorter run")
    parser.add_argument("--steps", type=int, default=5, help="steps per saga (last fails)")
    parser.add_argument("--src", help="directory holding the reversa package to measure")
    parser.add_argument("--traced", nargs="?", const="tracer", choices=("tracer", "processor"),
                        help="record every span with the OpenTelemetry SDK (through a "
                             "tracer, or handed straight to a span processor)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind; install it "
                         "(apt-get install valgrind) or time with `reversa bench` instead")
    if args.sagas < 1 or args.base < 1 or args.steps < 2:
        raise SystemExit("bench/instructions.py: --sagas and --base must be at least 1 and "
                         "--steps at least 2")
    with ThreadPoolExecutor(2) as pool:
        short, long = pool.map(lambda n: _count(n, args.steps, args.src, args.traced),
                               (args.base, args.base + args.sagas))
    executions = args.sagas * (2 * args.steps - 1)  # K actions and K-1 compensations
    print(json.dumps({"src": args.src or "installed", "sagas": args.sagas, "steps": args.steps,
                      "traced": args.traced,
                      "instructions_per_step": round((long - short) / executions)}))


if __name__ == "__main__":
    main()
