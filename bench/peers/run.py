"""Reversa against DBOS Transact, same workload, same invocation, SQLite and PostgreSQL.

    python bench/peers/run.py [--sagas 500] [--steps 5] [--concurrency 1 100]

Starts a throwaway PostgreSQL (initdb/pg_ctl) for the PostgreSQL half, runs
``reversa bench --peers`` for each backend and concurrency, and prints one JSON
line per run with the Reversa/DBOS ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support import pg  # noqa: E402 - the throwaway-server helper lives with the tests


def bench(db: str, sagas: int, steps: int, concurrency: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "reversa", "bench", "--sagas", str(sagas), "--steps", str(steps),
         "--concurrency", str(concurrency), "--db", db, "--peers", "--json"],
        capture_output=True, text=True, check=True, timeout=3600).stdout
    return dict(json.loads(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sagas", type=int, default=500)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    server = None if args.no_postgres else pg.start()
    # SQLite files go in one folder removed at the end, also on error.
    with tempfile.TemporaryDirectory(prefix="reversa-peers-") as tmp:
        try:
            _compare(args, server, Path(tmp))
        finally:
            if server is not None:
                server.stop()


def _compare(args: argparse.Namespace, server: pg.PgServer | None, tmp: Path) -> None:
    for backend in ("sqlite", "postgres"):
        if backend == "postgres" and server is None:
            continue
        for conc in args.concurrency:
            if backend == "sqlite":
                db = str(tmp / f"bench_{conc}.db")
            else:
                assert server is not None
                db = server.create_database(f"bench_{conc}")
            r = bench(db, args.sagas, args.steps, conc)
            dbos = r.get("dbos", {})
            print(json.dumps({
                "backend": backend, "concurrency": conc,
                "reversa_steps_per_s": round(float(r["steps_per_s"]), 1),
                "dbos_steps_per_s": round(float(dbos.get("steps_per_s", 0)), 1),
                "ratio": r.get("ratio_vs_dbos", {}).get("steps_per_s"),
                "dbos_error": dbos.get("error")}), flush=True)


if __name__ == "__main__":
    main()
