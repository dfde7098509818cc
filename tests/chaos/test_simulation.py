"""The deterministic simulator: thousands of seeded schedules, every invariant at the services.

The simulator runs owners, workers, humans, the network and the services as coroutines of
one event loop on virtual time (no threads, no sleeps), so each seed replays exactly. Here:
2,000 schedules hold every invariant; a seed replays bit for bit, in another process too;
the seeds that found defects stay fixed; and the checks do catch a broken boundary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reversa import Fence, FenceGate
from reversa.cli.main import app
from reversa.testing.chaos import (
    Effects,
    Fault,
    load_packs,
    register_pack,
    replay,
    schedule_for,
    shrink,
    simulate,
)
from reversa.testing.chaos.packs.core import CorePack, CoreWorld, Ledger
from reversa.testing.chaos.packs.payments import PaymentsPack, PaymentsWorld
from tests.chaos.sweep import assert_boundary_refuses, assert_replays_exactly, assert_sweep_holds

pytestmark = pytest.mark.simulation
ROOT = Path(__file__).resolve().parents[2]
PACKS = load_packs(["core"])
PAYMENTS = load_packs(["payments"])
BLOCKS = [(start, start + 500) for start in range(0, 2000, 500)]
PAYMENT_SEEDS = 300


@pytest.mark.parametrize(("first", "last"), BLOCKS, ids=lambda b: str(b))
def test_two_thousand_schedules_hold_every_invariant(first: int, last: int) -> None:
    # The schedules really hit what they claim to: faults of every kind fired, sagas
    # ended in every way, workers took over, and stale calls were refused.
    summary = assert_sweep_holds(
        range(first, last), PACKS,
        fired={"crash", "db", "pause", "net", "service", "steal", "sigterm", "human", "skew"},
        ends={"completed", "compensated", "escalated", "failed"})
    assert summary.stats["takeovers"] > 0 and summary.stats["refused_at_services"] > 0


def test_payments_schedules_hold_every_invariant() -> None:
    # The payments adapter's own operations against the simulated bank: holds voided,
    # transfers corrected by reference, under the same kinds of faults.
    summary = assert_sweep_holds(
        range(PAYMENT_SEEDS), PAYMENTS,
        fired={"crash", "db", "pause", "net", "service", "steal", "sigterm", "human"},
        ends={"completed", "compensated", "escalated", "failed"})
    assert summary.stats["takeovers"] > 0 and summary.stats["refused_at_services"] > 0


def test_a_seed_replays_exactly() -> None:
    assert_replays_exactly(42, PACKS)


def test_a_seed_replays_exactly_in_another_process() -> None:
    code = ("from reversa.testing.chaos import load_packs, replay; "
            "print(replay(7, load_packs(['core'])).digest)")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout.strip()
               for h in (1, 2)}
    assert digests == {replay(7, PACKS).digest}


# Seeds that found defects. Each runs the seed's workload with the faults that matter,
# pinned to what a commit records where the original fault was pinned to a commit number
# (the fix changed how many commits come first), and names what makes it that scenario,
# so a change in the generator cannot quietly turn it into a different run.
REGRESSIONS: dict[int, tuple[tuple[Fault, ...], tuple[str, ...]]] = {
    # A checkpoint resume then a second failure: compensations under the keys of the
    # effects of each generation (fixed: keys carry the step's own generation).
    16: ((), ("s4-checkpoint", "declines step 'pay'")),
    # Attempt 1 applied with its answer lost, attempt 2 rejected: the step stays in doubt.
    206: ((Fault("service", "", 1, 4, 0.0, "in_doubt"),
           Fault("service", "", 1, 5, 0.0, "permanent")),
          ("do of s2-dag/right", "applies it, then answers with an error")),
    # A crash between the rollback to the checkpoint and the resume (now one commit).
    247: ((Fault("crash", "agent1", 1, 0, 0.0, "before", event="saga_resumed"),),
          ("hit agent1 commit", "saga_resumed")),
    # A worker paused in a step loses the lease, then is stopped: recording the hand-over
    # fails on the lost lease, and that must end as a StoreError, not escape run_once.
    2285: ((Fault("pause", "w2", 1, 3, 0.0, 12.0), Fault("pause", "agent1", 1, 3, 0.0, 12.0)),
           ("w2 paused before do of s1-forward/invoice",)),
}


@pytest.mark.parametrize("seed", sorted(REGRESSIONS))
def test_regression_seeds_hold(seed: int) -> None:
    faults, needles = REGRESSIONS[seed]
    schedule = schedule_for(seed, PACKS)
    result = simulate(schedule.with_faults(faults), PACKS)
    text = "\n".join(result.describe())
    for needle in needles:
        assert needle in text, f"seed {seed} no longer runs its scenario:\n{text}"
    assert result.ok, text


class _NoGate(FenceGate):
    """Admits every epoch and every key: what a service that keeps no boundary does."""

    def admit(self, fence: Fence | None) -> None:
        return None

    def check_key(self, key: str) -> None:
        return None

    def tombstone(self, key: str, fence: Fence | None = None) -> None:
        return None


class _Leaky(Ledger):
    def __init__(self) -> None:
        super().__init__()
        self.gate = _NoGate()


class _LeakyWorld(CoreWorld):
    def __init__(self) -> None:
        super().__init__()
        self.ledger = _Leaky()
        from reversa.testing.chaos.packs.core import _registry

        self._registry = _registry(self.ledger)


class _LeakyPack(CorePack):
    name = "leaky"

    def world(self, seed: int) -> CoreWorld:
        return _LeakyWorld()


def test_the_checks_catch_a_service_that_keeps_no_boundary() -> None:
    register_pack("leaky", _LeakyPack)
    leaky = load_packs(["leaky"])
    # The first seed that breaks (not all 400: the suite's time is shared).
    first = next(r for r in (replay(s, leaky) for s in range(400)) if not r.ok)
    assert {v.invariant for v in first.violations} & {"no_effect_stands",
                                                       "rows_match_services"}
    smallest = shrink(first, leaky)
    assert not smallest.ok
    assert smallest.violations[0].invariant == first.violations[0].invariant
    assert len(smallest.schedule.faults) <= len(first.schedule.faults)
    assert any("VIOLATION" in line for line in smallest.describe())


class _LeakyBankWorld(PaymentsWorld):
    def __init__(self) -> None:
        super().__init__()
        self.bank.boundary.gate = _NoGate()


class _LeakyBankPack(PaymentsPack):
    name = "leaky-bank"

    def world(self, seed: int) -> PaymentsWorld:
        return _LeakyBankWorld()


def test_the_checks_catch_a_bank_that_keeps_no_boundary() -> None:
    # One schedule, two banks: the owner pauses before its first booking, its lease
    # lapses, a worker blocks the booking and rolls back; then the paused request
    # lands. The real bank refuses it; a bank without the boundary books it.
    register_pack("leaky-bank", _LeakyBankPack)
    leaky = load_packs(["leaky-bank"])
    _, broken = assert_boundary_refuses(82, PAYMENTS, leaky)
    assert {v.invariant for v in broken.violations} == {"no_effect_stands"}


def test_shrinking_keeps_only_the_faults_that_matter() -> None:
    register_pack("leaky", _LeakyPack)
    leaky = load_packs(["leaky"])
    failing = next(r for r in (replay(s, leaky) for s in range(400)) if not r.ok)
    padded = failing.schedule.with_faults([
        *failing.schedule.faults,
        Fault("skew", "w1", 9, 0, 0.0, 3.0),  # a life that never comes: cannot matter
        Fault("net", "", 1, 10_000, 0.0, "dup"),  # a call that is never made
    ])
    smallest = shrink(simulate(padded, leaky), leaky)
    assert not smallest.ok
    assert Fault("skew", "w1", 9, 0, 0.0, 3.0) not in smallest.schedule.faults
    assert Fault("net", "", 1, 10_000, 0.0, "dup") not in smallest.schedule.faults


def test_effects_are_counted_at_the_service() -> None:
    log = Effects()
    log.applied["k"] = ("s", "step")
    assert log.standing("k")
    log.undone["k"] += 1
    assert not log.standing("k")
    schedule = schedule_for(3, PACKS)
    assert schedule.describe()[0].startswith("seed 3:")


def test_cli_runs_seeds_and_prints_json() -> None:
    proc = subprocess.run([sys.executable, "-m", "reversa", "chaos", "--seeds", "20", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schedules"] == 20 and data["violations"] == 0
    assert data["schedules_per_s"] > 0 and data["failing_seeds"] == []


def test_cli_replays_one_seed_in_words() -> None:
    proc = subprocess.run([sys.executable, "-m", "reversa", "chaos", "--seed", "206", "--pack",
                           "core"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "seed 206:" in proc.stdout and "fault 1:" in proc.stdout
    assert "ended:" in proc.stdout


@pytest.mark.parametrize("args", [["--seeds", "0"], ["--seed", "-1"], ["--pack", "nope"]])
def test_cli_refuses_bad_input_in_one_line(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "reversa", "chaos", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert proc.stdout == ""


def test_cli_exits_1_on_a_violation_and_shrinks_it() -> None:
    register_pack("leaky", _LeakyPack)
    leaky = load_packs(["leaky"])
    seed = next(s for s in range(400) if not replay(s, leaky).ok)
    result = CliRunner().invoke(app, ["chaos", "--pack", "leaky", "--start", str(seed),
                                      "--seeds", "1", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["violations"] > 0 and data["failing_seeds"] == [seed]
    first = data["first_failure"]
    assert any("VIOLATION" in line for line in first["shrunk"])
    # The command it prints reproduces the failure: same packs, same schedule, exit 1.
    assert first["replay"] == f"reversa chaos --seed {seed} --pack leaky"
    again = CliRunner().invoke(app, [*first["replay"].split()[1:], "--json", "--no-shrink"])
    assert again.exit_code == 1
    replayed = json.loads(again.stdout)
    assert replayed["schedule"] == first["schedule"] and replayed["violations"]
