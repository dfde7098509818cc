"""Schedules: the workload and the faults a seed stands for, and how to say them in words.

A schedule is plain data: which sagas start when (and which one a service will
decline), how many workers run, and a list of faults, each pinned to a point that
does not depend on wall time (the k-th commit of an actor's k-th life, the n-th
service call, a virtual second). The same seed always yields the same schedule,
and the same schedule always yields the same run, so a failing seed replays and a
fault list can be shrunk one fault at a time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["KINDS", "Fault", "SagaPlan", "Schedule", "generate"]

KINDS = ("crash", "db", "pause", "skew", "net", "service", "steal", "sigterm", "human",
         "window")
"""Every fault kind, in the order they are described."""

_WEIGHTS = {"crash": 26, "db": 10, "pause": 14, "skew": 4, "net": 16, "service": 14,
            "steal": 6, "sigterm": 5, "human": 5, "window": 4}

_NET = {
    "late": "its request is delivered late, after the caller gave up on it",
    "dup": "its request is delivered twice",
    "lost_request": "its request is lost",
    "lost_reply": "its reply is lost (the service acted)",
}
_SERVICE = {
    "transient": "the service fails it with a transient error (nothing applied)",
    "permanent": "the service rejects it (nothing applied)",
    "in_doubt": "the service applies it, then answers with an error (in doubt)",
}
_DB = {
    "lost": "the connection is lost before it commits (nothing recorded)",
    "unknown": "it commits, then the connection drops (outcome unknown to the caller)",
    "busy": "the database is busy and refuses it (nothing recorded)",
}
_HUMAN = {
    "retry": "retry the rollback",
    "mark_resolved": "mark it resolved (fixed by hand)",
    "forward_recovery": "run forward recovery",
}


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of a schedule.

    Attributes:
        kind: One of :data:`KINDS`.
        actor: The process it hits (``agent1``, ``w2``, ``human``), when it hits one.
        life: Which life of that actor (2 = after its first restart): faults on
            later lives are the double and triple faults.
        at: The commit (crash, db), service call of that life (pause), global
            service call (net, service) or saga number (steal, window) it hits.
        time: Virtual seconds after the start (sigterm, steal, human, window).
        arg: The variant: before/after, a net or db kind, a duration, an offset,
            a resolution.
        event: For crash and db faults: hit the first commit of that life that
            records this audit event (``saga_resumed``...) or does this store
            operation (``claim``, ``heartbeat``, ``release``), instead of commit #at.
            Pinned to what a commit means, such a fault survives changes to how
            many commits come before it (regression schedules use it).
    """

    kind: str
    actor: str = ""
    life: int = 1
    at: int = 0
    time: float = 0.0
    arg: Any = None
    event: str | None = None

    def describe(self) -> str:
        """The fault in words."""
        who = f"{self.actor}" + (f" (life {self.life})" if self.life > 1 else "")
        commit = (f"its first commit that records {self.event}" if self.event
                  else f"its commit #{self.at}")
        if self.kind == "crash":
            return f"{who} crashes just {self.arg} {commit}"
        if self.kind == "db":
            return f"{commit[4:]} of {who}: {_DB[self.arg]}"
        if self.kind == "pause":
            return (f"{who} pauses {self.arg:g}s right before its service call #{self.at} "
                    "(a GC or VM pause: its heartbeats stop too)")
        if self.kind == "skew":
            return f"{who}'s clock runs {self.arg:+g}s off the database's"
        if self.kind == "net":
            return f"service call #{self.at}: {_NET[self.arg]}"
        if self.kind == "service":
            return f"service call #{self.at}: {_SERVICE[self.arg]}"
        if self.kind == "steal":
            return (f"at t={self.time:g}s saga #{self.at}'s lease is taken by force "
                    "(its owner loses the lease)")
        if self.kind == "sigterm":
            return f"at t={self.time:g}s {who} gets SIGTERM and hands its sagas over"
        if self.kind == "human":
            return (f"at t={self.time:g}s a human resolves the oldest open escalation: "
                    f"{_HUMAN[self.arg]}")
        if self.kind == "window":
            return (f"at t={self.time:g}s saga #{self.at}'s compensation window closes at the "
                    "service (its rollback becomes infeasible)")
        return f"{self.kind} {self.actor} {self.at} {self.arg}"  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SagaPlan:
    """One saga of the workload.

    Attributes:
        index: Its number in the schedule (faults name sagas by it).
        pack: The workflow pack it comes from.
        workflow: The workflow of that pack.
        agent: The owner process that starts it.
        start: Virtual seconds after the start.
        decline: A step whose action the service declines (a business failure
            that starts a rollback), or None.
        variant: Workflow options (crash policy...), chosen by the seed.
    """

    index: int
    pack: str
    workflow: str
    agent: str
    start: float
    decline: str | None = None
    variant: tuple[tuple[str, Any], ...] = ()

    @property
    def saga_id(self) -> str:
        """The saga's id: readable, and unique within the run."""
        return f"s{self.index}-{self.workflow}"

    def option(self, name: str, default: Any = None) -> Any:
        """One variant option."""
        return dict(self.variant).get(name, default)


@dataclass(frozen=True)
class Schedule:
    """What a seed stands for: the workload and the faults.

    Attributes:
        seed: The seed it was generated from.
        sagas: The workload.
        agents: Owner processes.
        workers: Recovery workers (each restarts after a crash or SIGTERM).
        faults: The faults, in the order they were drawn.
    """

    seed: int
    sagas: tuple[SagaPlan, ...]
    agents: tuple[str, ...]
    workers: tuple[str, ...]
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def with_faults(self, faults: Sequence[Fault]) -> Schedule:
        """The same workload with another fault list (for shrinking)."""
        return replace(self, faults=tuple(faults))

    def describe(self) -> list[str]:
        """The schedule in words, one line each."""
        lines = [f"seed {self.seed}: {len(self.sagas)} saga(s), owners "
                 f"{', '.join(self.agents)}, workers {', '.join(self.workers)}"]
        for plan in self.sagas:
            extra = "".join(f", {k}={v}" for k, v in plan.variant)
            declined = f", the service declines step {plan.decline!r}" if plan.decline else ""
            lines.append(f"  saga #{plan.index} {plan.saga_id} ({plan.pack}/{plan.workflow}) "
                         f"started by {plan.agent} at t={plan.start:g}s{declined}{extra}")
        if not self.faults:
            lines.append("  no faults")
        for n, fault in enumerate(self.faults, 1):
            lines.append(f"  fault {n}: {fault.describe()}")
        return lines


def generate(seed: int, workflows: Sequence[tuple[str, str, tuple[str, ...]]]) -> Schedule:
    """The schedule of ``seed``.

    Args:
        seed: Any integer.
        workflows: ``(pack, workflow, steps)`` the workload is drawn from.
    """
    rng = random.Random(seed)
    agents = tuple(f"agent{i + 1}" for i in range(rng.choice((1, 1, 2))))
    workers = tuple(f"w{i + 1}" for i in range(rng.choice((2, 2, 3))))
    sagas = []
    batch_start = rng.choice((0.0, 0.5))
    for index in range(1, rng.randint(3, 6) + 1):
        pack, workflow, steps = workflows[rng.randrange(len(workflows))]
        # Half the sagas start together, so their commits share group-commit batches.
        start = batch_start if rng.random() < 0.5 else round(rng.uniform(0.0, 4.0), 3)
        decline = rng.choice(steps) if rng.random() < 0.4 else None
        variant = (("on_crash", rng.choice(("compensate", "compensate", "resume"))),)
        sagas.append(SagaPlan(index, pack, workflow, rng.choice(agents), start, decline,
                              variant))
    count = rng.choices((0, 1, 2, 3, 4, 6), weights=(6, 18, 24, 22, 18, 12))[0]
    kinds = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()), k=count)
    faults = [_draw(rng, kind, agents, workers, sagas) for kind in kinds]
    if rng.random() < 0.15:
        # A cascade: the owner dies, then each worker that recovers the saga dies too.
        faults.append(Fault("crash", rng.choice(agents), 1, rng.randint(1, 24), 0.0,
                            rng.choice(("before", "after"))))
        victim = rng.choice(workers)
        faults.extend(Fault("crash", victim, life, rng.randint(1, 6), 0.0,
                            rng.choice(("before", "after")))
                      for life in (1, 2, 3)[: rng.randint(2, 3)])
    return Schedule(seed, tuple(sagas), agents, workers, tuple(faults))


def _draw(rng: random.Random, kind: str, agents: tuple[str, ...], workers: tuple[str, ...],
          sagas: list[SagaPlan]) -> Fault:
    actors = (*agents, *workers)
    life = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
    calls = len(sagas) * 4
    target = rng.choice(sagas)
    # Timed faults land while their saga is in flight: shortly after it starts.
    soon = round(target.start + rng.uniform(0.01, 0.4), 3)

    def commit(actor: str) -> int:
        # Owners commit a few times per step; a worker or a reviewer only a few times
        # per saga it takes over: draw where each actually has commits.
        return rng.randint(1, 24) if actor in agents else rng.randint(1, 6)

    if kind in ("crash", "db", "pause", "skew"):
        actor = rng.choice((*actors, "human") if kind == "crash" else actors)
        life = 1 if actor in agents else life
        if kind == "crash":
            return Fault(kind, actor, life, commit(actor), 0.0, rng.choice(("before", "after")))
        if kind == "db":
            return Fault(kind, actor, life, commit(actor), 0.0, rng.choice(tuple(_DB)))
        if kind == "pause":
            return Fault(kind, actor, life, rng.randint(1, 8), 0.0,
                         rng.choice((1.0, 4.0, 12.0, 45.0)))
        return Fault(kind, actor, life, 0, 0.0, rng.choice((-30.0, -3.0, 3.0, 30.0)))
    if kind == "net":
        return Fault(kind, "", 1, rng.randint(1, calls), 0.0, rng.choice(tuple(_NET)))
    if kind == "service":
        return Fault(kind, "", 1, rng.randint(1, calls), 0.0, rng.choice(tuple(_SERVICE)))
    if kind == "steal":
        return Fault(kind, "", 1, target.index, soon)
    if kind == "sigterm":
        return Fault(kind, rng.choice(actors), 1, 0, soon)
    if kind == "human":
        return Fault(kind, "human", 1, 0, soon, rng.choice(tuple(_HUMAN)))
    return Fault("window", "", 1, target.index, soon)
