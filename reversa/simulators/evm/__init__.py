"""EVM simulators: an in-process chain, anvil, Vyper DeFi contracts, a private relay, a searcher.

* :class:`InProcessChain` (eth-tester on py-evm): the fast default for unit
  tests and ``reversa demo``.
* :class:`AnvilNode`: a real node with mining, snapshots and reorgs, for
  integration tests (install with ``scripts/setup-anvil.sh``).
* :func:`deploy_defi_world`: tokens A/B/C (A needs zero-first approvals),
  two constant-product pools, a router and a yield vault, compiled from the
  Vyper sources shipped in ``contracts/``.
* :class:`PrivateRelay`: a JSON-RPC private transaction endpoint.
* :class:`MevSearcher`: sandwiches swaps it sees in anvil's public mempool.
"""

from .anvil import ANVIL_INSTALL_HINT, AnvilNode, find_anvil
from .compiler import CONTRACT_NAMES, ContractArtifact, compile_source, load_contract
from .inprocess import BlockHook, InProcessChain
from .mev import GatedMiner, MevSearcher, Sandwich
from .relay import AnvilInclusion, Inclusion, InProcessInclusion, PrivateRelay
from .world import UNIT, DefiWorld, SetupChain, deploy_defi_world

__all__ = [
    "InProcessChain",
    "BlockHook",
    "AnvilNode",
    "find_anvil",
    "ANVIL_INSTALL_HINT",
    "DefiWorld",
    "SetupChain",
    "deploy_defi_world",
    "UNIT",
    "PrivateRelay",
    "Inclusion",
    "InProcessInclusion",
    "AnvilInclusion",
    "MevSearcher",
    "GatedMiner",
    "Sandwich",
    "ContractArtifact",
    "CONTRACT_NAMES",
    "compile_source",
    "load_contract",
]
