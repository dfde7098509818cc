"""What every pack's simulation tests check the same way: a sweep of seeds, a replay,
and one schedule whose owner pauses past its lease.
"""

from __future__ import annotations

from reversa.testing.chaos import (
    Fault,
    SimResult,
    Summary,
    WorkflowPack,
    replay,
    run_seeds,
    schedule_for,
    simulate,
)

Packs = dict[str, WorkflowPack]

PAUSED_OWNER = Fault("pause", "agent1", 1, 1, 0.0, 12.0)
"""The owner pauses before its first call long enough for its lease to lapse."""


def assert_sweep_holds(seeds: range, packs: Packs, *, fired: set[str],
                       ends: set[str]) -> Summary:
    """Run ``seeds``: no violation, every schedule run, at least the ``fired`` fault
    kinds fired and the ``ends`` reached (so the sweep does hit what it claims to)."""
    summary = run_seeds(seeds, packs)
    failing = summary.failing[0].describe() if summary.failing else []
    assert summary.violations == 0, "\n".join(failing)
    assert summary.schedules == len(seeds)
    kinds = {k.removeprefix("fired_") for k, n in summary.stats.items()
             if k.startswith("fired_") and n}
    assert kinds >= fired
    assert ends <= set(summary.ends)
    return summary


def assert_replays_exactly(seed: int, packs: Packs) -> SimResult:
    """Run ``seed`` twice: the same digest, faults fired and story both times."""
    first, again = replay(seed, packs), replay(seed, packs)
    assert first.digest == again.digest and first.fired == again.fired
    assert first.describe() == again.describe()
    return first


def paused_owner(seed: int, packs: Packs) -> SimResult:
    """``seed``'s workload with only :data:`PAUSED_OWNER`."""
    return simulate(schedule_for(seed, packs).with_faults([PAUSED_OWNER]), packs)


def assert_boundary_refuses(seed: int, real: Packs, broken: Packs) -> tuple[SimResult,
                                                                            SimResult]:
    """The paused owner's late calls: refused at the real service, and a service
    without the boundary lets them land, which the checks catch."""
    kept, leaked = paused_owner(seed, real), paused_owner(seed, broken)
    assert kept.ok, "\n".join(kept.describe())
    assert kept.stats["refused_at_services"] > 0
    assert {v.invariant for v in leaked.violations} & {"no_effect_stands",
                                                       "rows_match_services"}, \
        "\n".join(leaked.describe())
    assert "agent1 paused before execute of" in "\n".join(leaked.describe())
    return kept, leaked
