"""Two versions of Reversa timed against each other: ``reversa bench`` run as whole
processes, the versions alternated pair by pair, paired ratios reported.

    python bench/pairs.py --src /tmp/before [--src /tmp/after] [--pairs 16] [--sagas 100]
                          [--synchronous off]

Each ``--src`` is a directory holding a ``reversa`` package (an older commit's, from
``git archive <commit> reversa | tar -x -C DIR``); a second one is compared with the
first, and without it this interpreter's installed Reversa is. On a shared VM single
runs swing by tens of percent: alternating the versions (the order reversed every
other pair) and taking the median of the per-pair ratios cancels the slow drifts.
Prints JSON: each version's median steps/s, and the median and quartiles of the
paired ratio ``after / before`` (below 1: the second version is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _bench(src: str | None, sagas: int, synchronous: str) -> float:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = str(Path(src).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        # Run in the temporary directory: `python -m` puts the working directory first
        # on sys.path, where a checkout's own reversa/ would shadow --src.
        out = subprocess.run(
            [sys.executable, "-m", "reversa", "bench", "--db", f"sqlite:///{tmp}/bench.db",
             "--sagas", str(sagas), "--synchronous", synchronous, "--json"],
            env=env, cwd=tmp, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"bench/pairs.py: reversa bench failed for {src or 'installed'}: "
                         f"{tail[0]}")
    return float(json.loads(out.stdout)["steps_per_s"])


def main() -> None:
    """Parse arguments, run the pairs, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", required=True,
                        help="a directory holding the reversa package (once or twice)")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--sagas", type=int, default=100)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    if len(args.src) > 2 or args.pairs < 2 or args.sagas < 1:
        raise SystemExit("bench/pairs.py: give --src once or twice, --pairs at least 2 and "
                         "--sagas at least 1")
    for src in args.src:
        if not (Path(src) / "reversa" / "__init__.py").is_file():
            raise SystemExit(f"bench/pairs.py: {src} holds no reversa package; export one with "
                             f"`git archive <commit> reversa | tar -x -C {src}`")
    before, after = args.src[0], (args.src[1] if len(args.src) == 2 else None)
    runs: dict[str, list[float]] = {"before": [], "after": []}
    for n in range(args.pairs):
        order = [("before", before), ("after", after)]
        for name, src in (order if n % 2 == 0 else order[::-1]):
            runs[name].append(_bench(src, args.sagas, args.synchronous))
    ratios = [a / b for b, a in zip(runs["before"], runs["after"], strict=True)]
    quartiles = statistics.quantiles(ratios, n=4)
    print(json.dumps({
        "before": before, "after": after or "installed", "synchronous": args.synchronous,
        "sagas": args.sagas, "pairs": args.pairs,
        "steps_per_s_before": round(statistics.median(runs["before"]), 1),
        "steps_per_s_after": round(statistics.median(runs["after"]), 1),
        "median_ratio": round(statistics.median(ratios), 3),
        "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)]}, indent=2))


if __name__ == "__main__":
    main()
