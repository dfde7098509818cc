"""Compile the simulator's Vyper contracts with the installed ``vyper`` package.

No solc or vyper binary is downloaded: ``vyper.compile_code`` runs in-process.
Artifacts are cached by the SHA-256 of the source, so a test session or a demo
compiles each contract once however many chains it deploys to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["CONTRACT_NAMES", "ContractArtifact", "compile_source", "load_contract"]

CONTRACT_NAMES = ("Token", "Pool", "Router", "Vault")
"""The contracts shipped in ``reversa/simulators/evm/contracts``."""


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    """ABI and creation bytecode of one compiled contract.

    Attributes:
        name: Contract name (the file stem).
        abi: The JSON ABI.
        bytecode: Creation bytecode, ``0x``-prefixed hex.
        source_sha256: Hash of the source it was compiled from.
    """

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    source_sha256: str


def load_contract(name: str) -> ContractArtifact:
    """Compile (or fetch from the cache) one of the shipped contracts.

    Args:
        name: One of :data:`CONTRACT_NAMES`.

    Raises:
        ValueError: ``name`` is not a shipped contract.
    """
    if name not in CONTRACT_NAMES:
        shipped = ", ".join(CONTRACT_NAMES)
        raise ValueError(f"unknown contract {name!r}; shipped contracts: {shipped}")
    source = resources.files(__package__).joinpath("contracts", f"{name}.vy").read_text("utf-8")
    return compile_source(name, source)


def compile_source(name: str, source: str) -> ContractArtifact:
    """Compile Vyper ``source``; identical sources are compiled once per process."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return _compile_cached(name, digest, source)


# Keyed by the source hash (the source itself is passed along for the compiler):
# pure function of its inputs, so a process-wide cache is safe.
@lru_cache(maxsize=32)
def _compile_cached(name: str, digest: str, source: str) -> ContractArtifact:
    import vyper  # local: the vyper compiler is only needed when a simulator deploys

    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return ContractArtifact(
        name=name, abi=tuple(out["abi"]), bytecode=out["bytecode"], source_sha256=digest
    )
