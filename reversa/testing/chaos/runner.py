"""Many seeds, and the smallest schedule that still breaks: what ``reversa chaos`` runs.

A failing seed is shrunk by delta debugging over its fault list (Zeller's
ddmin): drop halves, then quarters, ... of the faults, keeping any subset that
still breaks the same invariant, until no single fault can go. The workload is
kept; only faults are removed, so the minimal schedule reads as "these k things
happened, and this broke".
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .faults import Fault, Schedule, generate
from .packs import PACKS, WorkflowPack, pack_names
from .sim import SimResult, simulate

__all__ = ["Summary", "load_packs", "replay", "run_seeds", "schedule_for", "shrink"]


def load_packs(names: Iterable[str] | None = None) -> dict[str, WorkflowPack]:
    """The packs ``names`` (all available ones when None).

    Raises:
        KeyError: A name is not an available pack (the message lists them).
    """
    available = pack_names()
    wanted = list(names) if names else available
    unknown = [n for n in wanted if n not in PACKS]
    if unknown:
        raise KeyError(f"no workflow pack {unknown[0]!r}; available: {', '.join(available)}")
    return {n: PACKS[n]() for n in wanted}


def schedule_for(seed: int, packs: dict[str, WorkflowPack]) -> Schedule:
    """The schedule a seed stands for, drawn from ``packs``' workflows."""
    workflows = [(name, wf, steps) for name, pack in sorted(packs.items())
                 for wf, steps in sorted(pack.workflows().items())]
    return generate(seed, workflows)


def replay(seed: int, packs: dict[str, WorkflowPack]) -> SimResult:
    """Run one seed (the same result every time)."""
    return simulate(schedule_for(seed, packs), packs)


def shrink(result: SimResult, packs: dict[str, WorkflowPack], *,
           budget: int = 200) -> SimResult:
    """The smallest sub-schedule of a failing run that still breaks the same invariant.

    Args:
        result: A run with violations.
        packs: The packs it ran with.
        budget: At most this many re-runs.
    """
    if result.ok:
        return result
    target = result.violations[0].invariant
    runs = 0
    best = result

    def fails(faults: Sequence[Fault]) -> SimResult | None:
        nonlocal runs
        runs += 1
        attempt = simulate(result.schedule.with_faults(faults), packs)
        return attempt if any(v.invariant == target for v in attempt.violations) else None

    faults = list(result.schedule.faults)
    chunks = 2
    while len(faults) >= 1 and runs < budget:
        size = max(1, len(faults) // chunks)
        parts = [faults[i:i + size] for i in range(0, len(faults), size)]
        reduced = False
        for i in range(len(parts)):
            if runs >= budget:
                break
            complement = [f for j, part in enumerate(parts) if j != i for f in part]
            found = fails(complement)
            if found is not None:
                faults, best, reduced = complement, found, True
                chunks = max(chunks - 1, 2)
                break
        if not reduced:
            if size == 1:
                break
            chunks = min(len(faults), chunks * 2)
    if not faults and best.schedule.faults:
        found = fails([])
        if found is not None:
            best = found
    return best


@dataclass
class Summary:
    """The outcome of many seeds."""

    schedules: int = 0
    violations: int = 0
    failing: list[SimResult] = field(default_factory=list)
    seconds: float = 0.0
    ends: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    invariants: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        """Schedules per second of wall time."""
        return self.schedules / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``reversa chaos --json``."""
        return {
            "schedules": self.schedules, "violations": self.violations,
            "failing_seeds": [r.schedule.seed for r in self.failing],
            "violated": dict(sorted(self.invariants.items())),
            "seconds": round(self.seconds, 3),
            "schedules_per_s": round(self.per_second, 1),
            "sagas_ended": dict(sorted(self.ends.items())),
            "counters": dict(sorted(self.stats.items())),
        }


def run_seeds(seeds: Iterable[int], packs: dict[str, WorkflowPack],
              progress: Callable[[SimResult], None] | None = None) -> Summary:
    """Run every seed and tally what ended how and what broke."""
    summary = Summary()
    started = time.perf_counter()
    for seed in seeds:
        result = replay(seed, packs)
        summary.schedules += 1
        summary.ends.update(result.ends)
        summary.stats.update(result.stats)
        if not result.ok:
            summary.violations += len(result.violations)
            summary.invariants.update(v.invariant for v in result.violations)
            summary.failing.append(result)
        if progress is not None:
            progress(result)
    summary.seconds = time.perf_counter() - started
    return summary
