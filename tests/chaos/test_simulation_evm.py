"""The EVM pack: the adapter's approvals on the in-process chain, checked on the chain.

The chain is slow (py-evm), so the suite runs a few dozen schedules; each effect is read
back from the token's Approval events and allowances, not from the store.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

pytest.importorskip("eth_tester")

from reversa.adapters.evm.approve import ApproveOp
from reversa.core.context import JournalRecord, StepContext
from reversa.core.registry import Registry
from reversa.testing.chaos import (
    load_packs,
    register_pack,
    schedule_for,
    simulate,
)
from reversa.testing.chaos.packs import evm
from reversa.testing.chaos.packs.paced import Paced
from tests.chaos.sweep import assert_boundary_refuses, assert_replays_exactly, assert_sweep_holds

pytestmark = pytest.mark.simulation
EVM = load_packs(["evm"])
EVM_SEEDS = 25


def test_evm_schedules_hold_every_invariant() -> None:
    summary = assert_sweep_holds(range(EVM_SEEDS), EVM,
                                 fired={"crash", "pause", "service", "sigterm"},
                                 ends={"completed", "compensated"})
    assert summary.stats["takeovers"] > 0


class _NoRevoke(ApproveOp):
    """An approval whose compensation reports success but sends nothing."""

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        return {"undone": "claimed"}


class _NoRevokeWorld(evm.EvmWorld):
    def registry(self) -> Registry:
        reg = Registry()
        reg.register(Paced(_NoRevoke(evm.SERVICE), evm.through_wallet))
        real = evm._registry()
        reg.add("snapshot", "evm.granted", real.get("snapshot", "evm.granted"))
        reg.add("predicate", "evm.revoked", real.get("predicate", "evm.revoked"))
        return reg


class _NoRevokePack(evm.EvmPack):
    name = "evm-no-revoke"

    def world(self, seed: int) -> evm.EvmWorld:
        return _NoRevokeWorld()


def test_the_checks_read_the_chain_not_the_store() -> None:
    # One schedule, two adapters: the real approval, and one whose compensation claims
    # success without revoking. The store says compensated either way (the saga's own
    # predicate is the check a careless adapter would also fool: here it reads the chain
    # too, so the broken one escalates or fails); the invariants read the chain.
    register_pack("evm-no-revoke", _NoRevokePack)
    broken_packs = load_packs(["evm-no-revoke"])
    seed = next(s for s in range(40) if any(p.decline for p in schedule_for(s, EVM).sagas))
    real = simulate(schedule_for(seed, EVM).with_faults([]), EVM)
    broken = simulate(schedule_for(seed, broken_packs).with_faults([]), broken_packs)
    assert real.ok, "\n".join(real.describe())
    assert {v.invariant for v in broken.violations} & {"no_effect_stands",
                                                        "rows_match_services"}, \
        "\n".join(broken.describe())


class _OpenJournal:
    """A journal with no fence and no tombstones: a write always lands."""

    def __init__(self) -> None:
        self.records: dict[str, JournalRecord] = {}

    def get(self, key: str) -> JournalRecord | None:
        return self.records.get(key)

    def put(self, record: JournalRecord) -> None:
        self.records[record.key] = record

    def block(self, key: str) -> JournalRecord | None:
        return self.records.get(key)  # "blocked", but a later put still lands

    def max_seq(self, kind: str, ref: str) -> int | None:
        seqs = [r.seq for r in self.records.values()
                if r.kind == kind and r.ref == ref and r.active and r.seq is not None]
        return max(seqs) if seqs else None


class _UnfencedWorld(evm.EvmWorld):
    def __init__(self) -> None:
        super().__init__()
        self.journal = _OpenJournal()

    def registry(self) -> Registry:
        reg = Registry()
        # The adapter's approval, given a journal that fences nothing.
        reg.register(Paced(ApproveOp(evm.SERVICE), evm.through_wallet,
                           context=lambda ctx: dataclasses.replace(ctx, journal=self.journal)))
        real = evm._registry()
        reg.add("snapshot", "evm.granted", real.get("snapshot", "evm.granted"))
        reg.add("predicate", "evm.revoked", real.get("predicate", "evm.revoked"))
        return reg


class _UnfencedPack(evm.EvmPack):
    name = "evm-unfenced"

    def world(self, seed: int) -> evm.EvmWorld:
        return _UnfencedWorld()


def test_the_checks_catch_a_journal_that_fences_nothing() -> None:
    # One schedule, two boundaries: the owner pauses before its first approvals, its
    # lease lapses, a worker blocks them (journal tombstones) and rolls back; then the
    # paused owner goes on. The store's journal refuses its writes, so nothing is sent;
    # a journal without fence or tombstones lets the approvals land on the chain.
    register_pack("evm-unfenced", _UnfencedPack)
    unfenced = load_packs(["evm-unfenced"])
    _, broken = assert_boundary_refuses(0, EVM, unfenced)
    assert {v.invariant for v in broken.violations} == {"no_effect_stands"}


def test_an_evm_seed_replays_exactly() -> None:
    # The chain is reverted to one snapshot per schedule and the agent's key is fixed:
    # the same seed signs, mines and ends the same way every time.
    assert_replays_exactly(3, EVM)
