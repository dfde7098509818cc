"""Checkpoints anchored on chain: the in-process chain here, a real anvil node in CI."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reversa import FakeClock, Store
from reversa.adapters.evm.anchor import ChainWitness
from reversa.core.evidence import (
    AuditConfig,
    DirWitness,
    WitnessConflict,
    WitnessError,
    generate_keys,
    load_signer,
)
from reversa.simulators.evm import InProcessChain
from reversa.simulators.evm.anvil import AnvilNode
from tests.audit.kit import dump, restore, run_saga
from tests.core.kit import World


@pytest.fixture(scope="module")
def chain() -> InProcessChain:
    return InProcessChain(auto_mine=True)


@pytest.fixture
def anchored(chain: InProcessChain, tmp_path: Path) -> Iterator[tuple[Store, ChainWitness, Path]]:
    signer = load_signer(str(generate_keys(tmp_path / "keys")["private"]))
    anchor = ChainWitness.deploy(chain.w3, sender=chain.accounts[0])
    config = AuditConfig(signer=signer, witnesses=(DirWitness(tmp_path / "w"), anchor),
                         background=False)
    store = Store.open(f"sqlite:///{tmp_path}/r.db", clock=FakeClock(), audit=config)
    yield store, anchor, tmp_path
    store.close()


def test_every_checkpoint_is_anchored_and_verifies_against_the_chain(
    anchored: tuple[Store, ChainWitness, Path]
) -> None:
    store, anchor, tmp = anchored
    clock = store.clock
    assert isinstance(clock, FakeClock)
    run_saga(store, clock, World())
    store.checkpoint()
    older = dump(store)
    run_saga(store, clock, World())
    store.checkpoint()
    (log,) = DirWitness(tmp / "w").logs()
    on_chain, on_disk = anchor.read(log), DirWitness(tmp / "w").read(log)
    assert [(a.number, a.size, a.root, a.digest) for a in on_chain] == [
        (d.number, d.size, d.root, d.digest) for d in on_disk]
    signer = store.audit.signer
    assert signer is not None
    assert store.verify_audit(verifiers=[signer.verifier], witnesses=[anchor]).ok
    # The chain alone catches an older copy put back.
    restore(store, older)
    report = store.verify_audit(verifiers=[signer.verifier], witnesses=[anchor])
    assert [p.kind for p in report.problems] == ["restored"]
    assert anchor.name in report.problems[0].message


def test_the_anchor_never_takes_another_statement(
    anchored: tuple[Store, ChainWitness, Path], chain: InProcessChain
) -> None:
    store, anchor, _ = anchored
    assert isinstance(store.clock, FakeClock)
    run_saga(store, store.clock, World())
    first = store.checkpoint()
    from dataclasses import replace

    assert store.audit.signer is not None
    forged = replace(first, size=first.size + 1).signed(store.audit.signer)
    with pytest.raises(WitnessConflict):
        anchor.publish(forged)
    # Nobody but the deployer anchors, and never out of order.
    stranger = ChainWitness(chain.w3, anchor.address, sender=chain.accounts[1])
    later = replace(first, number=2).signed(store.audit.signer)
    with pytest.raises(WitnessError):
        stranger.publish(later)
    with pytest.raises(WitnessError):
        anchor.publish(replace(first, number=5).signed(store.audit.signer))
    assert anchor.latest(first.log) == 1


@pytest.mark.anvil
def test_anchoring_on_anvil_through_the_cli(anvil_binary: str, tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys")
    pub = str(tmp_path / "keys" / "reversa-audit.pub")
    db = str(tmp_path / "bench.db")
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVERSA_")}

    def reversa(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "reversa", *args], capture_output=True,
                              text=True, timeout=300, env={**base, **env})

    with AnvilNode(anvil_binary) as node:
        deployed = reversa("audit", "anchor", "--chain", node.url)
        assert deployed.returncode == 0, deployed.stderr
        address = re.search(r"deployed at (0x[0-9a-fA-F]{40})", deployed.stdout)
        assert address is not None
        writing = {"REVERSA_SIGNING_KEY": str(tmp_path / "keys" / "reversa-audit.key"),
                   "REVERSA_WITNESS_DIR": str(tmp_path / "w"), "REVERSA_ANCHOR_URL": node.url,
                   "REVERSA_ANCHOR_CONTRACT": address.group(1)}
        first = reversa("bench", "--sagas", "2", "--steps", "2", "--db", db, **writing)
        assert first.returncode == 0, first.stderr
        backup = tmp_path / "backup.db"
        src, dst = sqlite3.connect(db), sqlite3.connect(backup)
        src.backup(dst)
        src.close()
        dst.close()
        second = reversa("bench", "--sagas", "2", "--steps", "2", "--db", db, **writing)
        assert second.returncode == 0, second.stderr
        verify = ("audit", "verify", "--db", db, "--pubkey", pub, "--chain", node.url,
                  "--anchor-contract", address.group(1))
        ok = reversa(*verify)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert f"held by chain:{address.group(1)}" in ok.stdout
        for suffix in ("-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
        shutil.copy(backup, db)
        caught = reversa(*verify)
        assert caught.returncode == 1 and "[restored]" in caught.stdout, caught.stdout
