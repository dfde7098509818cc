"""One simulated run: a schedule's sagas, owners, workers, humans and faults on one loop.

Everything shares one :class:`~.loop.SimLoop` on one fake clock and one real
SQLite store (in memory, copied from a migrated template). Owners start their
sagas, workers poll and recover, heartbeats beat, the network delivers, and the
faults fire at the points the schedule pins them to. When every owner is done and
the last timed fault has fired, the run continues without new faults until every
saga is at rest (or a generous virtual deadline passes, which is a violation),
then the invariants are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import threading
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...core.clock import FakeClock
from ...core.engine import Engine
from ...core.errors import ReversaError
from ...core.registry import Registry
from ...core.store import Store
from ...core.worker import Worker
from .faults import Fault, SagaPlan, Schedule
from .invariants import Violation, check
from .loop import Deadlock, SimClock, SimLoop
from .network import Network, SimCrash
from .packs import PackWorld, WorkflowPack
from .process import FaultyStore, Process

__all__ = ["LEASE_S", "SimResult", "simulate"]

LEASE_S = 5.0
POLL_S = 1.0
RESTART_S = 2.0
QUIET_LIMIT_S = 900.0
HUMAN_PATIENCE_S = 40.0
START = 1_700_000_000.0



@dataclass
class SimResult:
    """What one schedule did and what it broke.

    Attributes:
        schedule: The schedule that ran.
        violations: Broken guarantees (empty: all held).
        fired: What each fault hit, by its index in ``schedule.faults``.
        ends: How many sagas ended in each status.
        stats: Counters (takeovers, calls refused at the boundary, ...).
        virtual_s: Virtual seconds the run took.
        digest: A hash of everything observable: two runs of one schedule agree.
    """

    schedule: Schedule
    violations: list[Violation]
    fired: dict[int, list[str]]
    ends: Counter[str]
    stats: dict[str, int]
    virtual_s: float
    digest: str

    @property
    def ok(self) -> bool:
        """Whether every invariant held."""
        return not self.violations

    def describe(self) -> list[str]:
        """The schedule in words, what each fault hit, how sagas ended, what broke."""
        lines = self.schedule.describe()
        for index in range(len(self.schedule.faults)):
            hits = self.fired.get(index)
            lines[len(self.schedule.sagas) + 1 + index] += (
                f"  -> hit {'; '.join(hits[:3])}" if hits else "  -> did not fire")
        ends = ", ".join(f"{n} {s}" for s, n in sorted(self.ends.items()))
        lines.append(f"  ended: {ends} (after {self.virtual_s:.1f}s of virtual time)")
        lines.extend(f"  VIOLATION {v}" for v in self.violations)
        return lines


def simulate(schedule: Schedule, packs: Mapping[str, WorkflowPack], *,
             verbose: bool = False) -> SimResult:
    """Run ``schedule`` and check every invariant.

    Args:
        schedule: What to run (see :func:`~.faults.generate`).
        packs: The workflow packs its sagas come from, by name.
        verbose: Let Reversa's own log through (it is silenced by default: a
            simulation provokes thousands of expected warnings).
    """
    return _Simulation(schedule, packs, verbose).run()


class _Simulation:
    def __init__(self, schedule: Schedule, packs: Mapping[str, WorkflowPack],
                 verbose: bool) -> None:
        self.schedule = schedule
        self.verbose = verbose
        self.clock = FakeClock(START)
        self.plans = {p.saga_id: p for p in schedule.sagas}
        used = sorted({p.pack for p in schedule.sagas})
        self.worlds: dict[str, PackWorld] = {n: packs[n].world(schedule.seed) for n in used}
        registries = [w.registry() for w in self.worlds.values()]
        self.registry: Registry = registries[0].merged(*registries[1:])
        self.fired: dict[int, list[str]] = {}
        self.violations: list[Violation] = []
        self.lives: Counter[str] = Counter()
        self.procs: dict[str, Process] = {}
        self.workers: dict[str, Worker] = {}
        self.finished = False  # the quiet phase: no new faults, recovery goes on
        self.over = False  # the run is ending: workers stop and are not restarted
        self.network = Network(schedule.seed, self)
        self.stats: Counter[str] = Counter()
        self._index(schedule.faults)

    # -- the fault book -------------------------------------------------------------------
    def _index(self, faults: tuple[Fault, ...]) -> None:
        self.by_commit: dict[tuple[str, int, int], int] = {}
        self.by_pause: dict[tuple[str, int, int], int] = {}
        self.by_skew: dict[tuple[str, int], int] = {}
        self.by_net: dict[int, int] = {}
        self.by_service: dict[int, int] = {}
        self.timed: list[int] = []
        self.by_event: dict[tuple[str, int], list[int]] = {}
        for i, f in enumerate(faults):
            if f.kind in ("crash", "db") and f.event:
                self.by_event.setdefault((f.actor, f.life), []).append(i)
            elif f.kind in ("crash", "db"):
                self.by_commit.setdefault((f.actor, f.life, f.at), i)
            elif f.kind == "pause":
                self.by_pause.setdefault((f.actor, f.life, f.at), i)
            elif f.kind == "skew":
                self.by_skew.setdefault((f.actor, f.life), i)
            elif f.kind == "net":
                self.by_net.setdefault(f.at, i)
            elif f.kind == "service":
                self.by_service.setdefault(f.at, i)
            else:
                self.timed.append(i)

    def _get(self, table: Mapping[Any, int], key: Any) -> Fault | None:
        if self.finished:
            return None  # the quiet phase: no new faults, only recovery
        index = table.get(key)
        return None if index is None else self.schedule.faults[index]

    def commit_fault(self, proc: Process, commit: int, events: list[str]) -> Fault | None:
        for index in self.by_event.get((proc.actor, proc.life), ()):
            fault = self.schedule.faults[index]
            if fault.event in events and index not in self.fired and not self.finished:
                return fault
        return self._get(self.by_commit, (proc.actor, proc.life, commit))

    def pause_fault(self, proc: Process, call: int) -> Fault | None:
        return self._get(self.by_pause, (proc.actor, proc.life, call))

    def net_fault(self, call: int) -> Fault | None:
        return self._get(self.by_net, call)

    def service_fault(self, call: int) -> Fault | None:
        return self._get(self.by_service, call)

    def fired_fault(self, fault: Fault, what: str) -> None:
        index = self.schedule.faults.index(fault)
        self.fired.setdefault(index, []).append(what)
        self.stats[f"fired_{fault.kind}"] += 1

    # -- processes --------------------------------------------------------------------
    def _process(self, actor: str) -> Process:
        self.lives[actor] += 1
        life = self.lives[actor]
        skew_index = self.by_skew.get((actor, life))
        skew = 0.0
        if skew_index is not None:
            fault = self.schedule.faults[skew_index]
            skew = float(fault.arg)
            self.fired_fault(fault, f"{actor} life {life} runs {skew:+g}s off")
        proc = Process(actor, life, SimClock(self.clock, skew))
        proc.store = FaultyStore(self.store.engine, self.clock, proc, self.commit_fault,
                                 self.fired_fault)
        self.procs[actor] = proc
        return proc

    def _services(self, proc: Process) -> dict[str, Any]:
        services: dict[str, Any] = {}
        for world in self.worlds.values():
            services.update(world.services_for(proc, self.network))
        return services

    def _engine(self, proc: Process) -> Engine:
        proc.engine = Engine(self.registry, proc.store, clock=proc.clock,
                             services=self._services(proc), owner=proc.name, lease_s=LEASE_S,
                             heartbeat=False)
        return proc.engine

    async def _heartbeats(self, proc: Process) -> None:
        while proc.alive and not proc.exited:
            await asyncio.sleep(LEASE_S / 3)
            if not proc.alive or proc.exited or self.clock.now() < proc.paused_until:
                continue
            assert proc.engine is not None
            try:
                proc.engine.beat()
            except SimCrash:
                return
            except ReversaError:
                continue  # the store refused this beat; the next one retries
            except Exception as exc:
                self._violation("no_unexpected_error", None,
                                f"{proc.name}'s heartbeat raised {exc!r}")
                return

    # -- owners -----------------------------------------------------------------------
    async def _agent(self, proc: Process, plans: list[SagaPlan]) -> None:
        try:
            await asyncio.gather(*(self._run_saga(proc, plan) for plan in plans))
        finally:
            proc.exited = True

    async def _run_saga(self, proc: Process, plan: SagaPlan) -> None:
        await asyncio.sleep(plan.start)
        if not proc.alive:
            return
        saga, input = self.worlds[plan.pack].saga(plan)
        assert proc.engine is not None
        try:
            await proc.engine.run_async(saga, input, saga_id=plan.saga_id)
        except SimCrash:
            pass
        except ReversaError as exc:
            self.stats[f"owner_stopped_{type(exc).__name__}"] += 1
        except Exception as exc:
            self._violation("no_unexpected_error", plan.saga_id,
                            f"{proc.name}: engine.run raised {exc!r}")

    # -- workers ----------------------------------------------------------------------
    async def _supervise(self, actor: str) -> None:
        while not self.over:
            proc = self._process(actor)
            worker = Worker(self.registry, proc.store, clock=proc.clock,
                            services=self._services(proc), lease_s=LEASE_S, poll_s=POLL_S,
                            batch=4, stall_after_s=60.0, owner=proc.name, heartbeat=False)
            proc.engine = worker.engine
            self.workers[actor] = worker
            work = proc.spawn(self._work(proc, worker))
            proc.spawn(self._heartbeats(proc))
            await asyncio.wait({work})
            if not self.over:
                await asyncio.sleep(RESTART_S)

    def _idle(self) -> bool:
        """Whether a worker round would find nothing to claim and nothing stalled.

        Checked with one cheap query, so the thousands of empty polling rounds a
        run has cost nothing; when it is False the round runs in full. The stall
        test uses the smallest threshold any saga of the run declares.
        """
        now = self.clock.now()
        row = self.db.execute(
            "SELECT 1 FROM reversa_sagas WHERE status IN ('running', 'compensating') AND "
            "(lease_expires_at IS NULL OR lease_expires_at < ? OR "
            "MAX(updated_at, COALESCE(heartbeat_at, 0)) <= ?) LIMIT 1",
            (now, now - self.stall_s)).fetchone()
        return row is None

    async def _work(self, proc: Process, worker: Worker) -> None:
        while proc.alive and not worker.stopping:
            if self._idle():
                await asyncio.sleep(POLL_S)
                continue
            try:
                await worker.run_once_async()
            except SimCrash:
                return
            except BaseException as exc:
                if isinstance(exc, asyncio.CancelledError):
                    raise
                self._violation("no_worker_died", None,
                                f"{proc.name}: run_once raised {exc!r}")
                proc.exited = True
                return
            await asyncio.sleep(POLL_S)
        proc.exited = True
        with contextlib.suppress(SimCrash):
            worker.engine.close()  # SIGTERM: leases handed back on the way out

    # -- timed faults -----------------------------------------------------------------
    async def _timed(self, index: int) -> None:
        fault = self.schedule.faults[index]
        await asyncio.sleep(fault.time)
        if self.finished:
            return
        if fault.kind == "sigterm":
            proc = self.procs.get(fault.actor)
            if proc is None or not proc.alive or proc.exited:
                return
            self.fired_fault(fault, f"{proc.name}")
            worker = self.workers.get(fault.actor)
            if worker is not None and worker.engine is proc.engine:
                worker.stop()
            elif proc.engine is not None:
                proc.engine.shutdown()
        elif fault.kind in ("steal", "window"):
            plan = self._plan_at(fault.at)
            if plan is None:
                return
            if fault.kind == "window":
                self.worlds[plan.pack].close_window(plan.saga_id)
                self.fired_fault(fault, plan.saga_id)
            elif self.store.claim("operator", LEASE_S, saga_id=plan.saga_id, force=True):
                self.fired_fault(fault, plan.saga_id)
        elif fault.kind == "human":
            await self._human(fault)

    def _plan_at(self, number: int) -> SagaPlan | None:
        return next((p for p in self.schedule.sagas if p.index == number), None)

    async def _human(self, fault: Fault) -> None:
        # A reviewer looks at the queue every few seconds until there is something to
        # resolve, as one would, so the resolution lands while other sagas still run.
        waited = 0.0
        while (row := self.db.execute(
                "SELECT id, saga_id FROM reversa_escalations WHERE status = 'open' "
                "ORDER BY id LIMIT 1").fetchone()) is None:
            if waited >= HUMAN_PATIENCE_S or self.finished:
                self.fired_fault(fault, "no open escalation to resolve")
                return
            await asyncio.sleep(2.0)
            waited += 2.0
        esc_id, saga_id = row
        proc = self._process("human")
        engine = self._engine(proc)
        beats = proc.spawn(self._heartbeats(proc))
        self.fired_fault(fault, f"escalation #{esc_id} of {saga_id} ({proc.name})")
        try:
            await engine.resolve_async(int(esc_id), action=str(fault.arg),
                                       author="chaos-human", note="resolved mid-flight")
        except SimCrash:
            pass
        except ReversaError as exc:
            self.stats[f"human_refused_{type(exc).__name__}"] += 1
        except Exception as exc:
            self._violation("no_unexpected_error", None, f"{proc.name}: resolve raised {exc!r}")
        finally:
            proc.exited = True
            beats.cancel()

    # -- the run ----------------------------------------------------------------------
    def _violation(self, invariant: str, saga: str | None, detail: str) -> None:
        self.violations.append(Violation(invariant, saga, detail))

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        supervisors = [loop.create_task(self._supervise(w)) for w in self.schedule.workers]
        agents = []
        for actor in self.schedule.agents:
            plans = [p for p in self.schedule.sagas if p.agent == actor]
            proc = self._process(actor)
            self._engine(proc)
            agents.append(proc.spawn(self._agent(proc, plans)))
            proc.spawn(self._heartbeats(proc))
        timed = [loop.create_task(self._timed(i)) for i in self.timed]
        await asyncio.gather(*agents, *timed, return_exceptions=True)
        deadline = self.clock.now() + QUIET_LIMIT_S
        self.finished = True
        while self.db.execute("SELECT 1 FROM reversa_sagas WHERE status IN "
                              "('running', 'compensating') LIMIT 1").fetchone():
            if self.clock.now() >= deadline:
                break
            await asyncio.sleep(POLL_S)
        self.over = True
        for actor, worker in self.workers.items():
            if self.procs[actor].alive:
                worker.stop()
        await asyncio.gather(*supervisors, return_exceptions=True)

    def run(self) -> SimResult:
        self.store, self.db = _Database.store(self.clock)
        self.stall_s = min([60.0] + [
            self.worlds[p.pack].saga(p)[0].stall_after_s or 60.0 for p in self.schedule.sagas])
        loop = SimLoop(self.clock)
        loop.set_exception_handler(self._loop_error)
        quiet = logging.getLogger("reversa")
        level = quiet.level
        if not self.verbose:
            quiet.setLevel(logging.CRITICAL)  # expected trouble, by the thousand
        try:
            loop.run_until_complete(self._main())
        except Deadlock as exc:
            self._violation("deadlock", None, str(exc))
        finally:
            quiet.setLevel(level)
            _drain(loop)
        effects = {name: world.effects() for name, world in self.worlds.items()}
        tables = {name: _read(self.db, name) for name in ("sagas", "steps", "escalations",
                                                          "audit")}
        violations = self.violations + check(self.store, self.plans, effects, tables)
        rows = tables["sagas"]
        ends = Counter(r["status"] for r in rows)
        self.stats["takeovers"] = sum(1 for e in tables["audit"] if e["event"] == "recovered")
        self.stats["refused_at_services"] = sum(e.refused for e in effects.values())
        self.stats["service_calls"] = self.network.calls
        digest = _digest(rows, tables["steps"], effects, self.fired)
        return SimResult(self.schedule, violations, self.fired, ends, dict(self.stats),
                         self.clock.now() - START, digest)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, SimCrash | asyncio.CancelledError):
            return  # a dead process' callbacks fail by design
        self._violation("no_unexpected_error", None,
                        f"{context.get('message')}: {exc!r}")


class _Database:
    """One in-memory SQLite database per thread, reset from a migrated template per run.

    Migrating a fresh database costs ~50 ms and a cold SQLAlchemy engine compiles
    every statement again; copying the template into one long-lived database
    (SQLite's backup API) and keeping its engine costs ~1 ms, so thousands of
    schedules stay cheap. Each run still starts from an empty, migrated store.
    """

    _local = threading.local()

    def __init__(self) -> None:
        uri = f"file:reversa-chaos-{id(self)}?mode=memory&cache=shared"
        # The database lives as long as one connection to it is open: this one.
        self.holder = sqlite3.connect(uri, uri=True, check_same_thread=False)
        with warnings.catch_warnings():
            # SQLAlchemy 2.0 picks a one-connection-per-thread pool for mode=memory and
            # warns that 2.1 will pick a queue pool: either serves this one thread.
            warnings.simplefilter("ignore", DeprecationWarning)
            migrated = Store.open(f"sqlite:///{uri}&uri=true", synchronous="OFF")
        self.engine = migrated.engine
        self.template = sqlite3.connect(":memory:", check_same_thread=False)
        self.holder.backup(self.template)

    @classmethod
    def store(cls, clock: FakeClock) -> tuple[Store, sqlite3.Connection]:
        """An empty, migrated store on ``clock``, and a plain connection to it."""
        db: _Database | None = getattr(cls._local, "db", None)
        if db is None:
            db = cls._local.db = _Database()
        db.engine.dispose()  # no pooled connection may hold the database during the copy
        db.template.backup(db.holder)
        return Store(db.engine, clock=clock), db.holder


def _read(db: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    # The simulation's own observations read SQLite directly: the same rows as
    # Store.rows, without building a statement per call.
    cursor = db.execute(f"SELECT * FROM reversa_{table} ORDER BY 1, 2")  # noqa: S608 - fixed
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _drain(loop: SimLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        with contextlib.suppress(Deadlock, SimCrash):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _digest(sagas: list[dict[str, Any]], steps: list[dict[str, Any]],
            effects: Mapping[str, Any], fired: Mapping[int, list[str]]) -> str:
    h = hashlib.sha256()
    for r in sorted(sagas, key=lambda r: r["id"]):
        h.update(f"{r['id']}|{r['status']}|{r['audit_seq']}|{r['lease_token']}\n".encode())
    for r in sorted(steps, key=lambda r: (r["saga_id"], r["name"])):
        h.update(f"{r['saga_id']}|{r['name']}|{r['status']}|{r['outcome']}\n".encode())
    for name in sorted(effects):
        log = effects[name]
        h.update(repr((sorted(log.applied), sorted(log.undone.items()),
                       sorted(log.recovered.items()), log.refused)).encode())
    h.update(repr(sorted(fired.items())).encode())
    return h.hexdigest()

