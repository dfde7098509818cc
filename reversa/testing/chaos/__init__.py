"""Deterministic fault simulation: many seeded schedules, invariants checked at the services.

One seed fixes a whole run: which sagas of which workflows start when, how many
workers recover them, and every fault (crashes of owners and of recovering
workers at commit boundaries, pauses, clock skew, late, duplicated and lost
messages, service and database errors, lease loss, SIGTERM hand-overs, human
resolutions mid-flight). Everything runs as coroutines of one event loop on
virtual time, so a seed replays exactly and a failing one is shrunk to the few
faults that matter.

Typical use::

    from reversa.testing.chaos import load_packs, replay, run_seeds, shrink

    packs = load_packs()
    summary = run_seeds(range(1000), packs)
    assert summary.violations == 0, summary.failing[0].describe()

    result = replay(42, packs)          # exactly what seed 42 did
    print("\\n".join(shrink(result, packs).describe()))

``reversa chaos --seeds N --json`` runs the same from the command line.
"""

from .faults import KINDS, Fault, SagaPlan, Schedule, generate
from .invariants import INVARIANTS, Violation
from .packs import Effects, PackWorld, WorkflowPack, pack_names, register_pack
from .runner import Summary, load_packs, replay, run_seeds, schedule_for, shrink
from .sim import SimResult, simulate

__all__ = [
    "INVARIANTS",
    "KINDS",
    "Effects",
    "Fault",
    "PackWorld",
    "SagaPlan",
    "Schedule",
    "SimResult",
    "Summary",
    "Violation",
    "WorkflowPack",
    "generate",
    "load_packs",
    "pack_names",
    "register_pack",
    "replay",
    "run_seeds",
    "schedule_for",
    "shrink",
    "simulate",
]
