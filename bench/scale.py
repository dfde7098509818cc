"""PostgreSQL scale-out: throughput with 1, 2 and 4 worker processes on one database.

    python bench/scale.py [--sagas 800] [--steps 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import pg  # noqa: E402 - the throwaway-server helper lives with the tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sagas", type=int, default=800)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--recovery", action="store_true", help="also measure recovery_s")
    args = parser.parse_args()
    server = pg.start()
    try:
        for w in args.workers:
            db = server.create_database(f"scale_{w}")
            cmd = [sys.executable, "-m", "reversa", "bench", "--sagas", str(args.sagas),
                   "--steps", str(args.steps), "--workers", str(w), "--concurrency",
                   str(args.concurrency), "--db", db, "--json"]
            if args.recovery and w == args.workers[-1]:
                cmd += ["--recovery", "--lease-s", "2"]
            r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True,
                                          timeout=3600).stdout)
            print(json.dumps({"workers": w, "steps_per_s": round(r["steps_per_s"], 1),
                              "sagas_per_s": round(r["sagas_per_s"], 1),
                              "p50_step_ms": round(r["p50_step_ms"], 3),
                              "p99_step_ms": round(r["p99_step_ms"], 3),
                              "recovery_s": r.get("recovery_s")}), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
