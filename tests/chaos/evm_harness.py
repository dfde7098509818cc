"""Processes of the EVM crash test: an agent that dies right after broadcasting its swap,
and the ``--app`` / ``--services`` factories of the worker that recovers it.

Usage:
    python -m tests.chaos.evm_harness run DB SAGA_ID

The agent runs AG-384 scenario C against anvil (automine off: its wallet mines
a block each time it polls) and SIGKILLs itself at its first poll after the
A->B swap was broadcast: the swap is journaled in the saga store and sits in
anvil's mempool, its step has an intent and no outcome. The worker runs as
``reversa worker --app tests.chaos.evm_harness:registry --services
tests.chaos.evm_harness:services``, in another process and directory, on the
same database.

Everything comes from the environment the test sets:
    REVERSA_EVM_RPC     anvil's URL
    REVERSA_EVM_RELAY   the private relay's URL
    REVERSA_EVM_KEY     the agent's key (a throwaway account of a throwaway chain)
    REVERSA_EVM_WORLD   JSON: addresses of TKA, TKB, TKC, pool1, pool2, router, vault
    REVERSA_EVM_AMOUNT  token A the agent trades, base units
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from reversa import Engine, Registry, Saga, Store, SystemClock
from reversa.adapters.evm import (
    Confirmations,
    EvmNetwork,
    EvmWallet,
    LocalSigner,
    PrivateEndpoint,
    register_evm,
)
from reversa.demos.evm.scenarios import scenario_c
from reversa.simulators.evm.relay import post_json

LEASE_S = 1.0


def _rpc(method: str, params: list[Any] | None = None) -> Any:
    reply = post_json(os.environ["REVERSA_EVM_RPC"], {"jsonrpc": "2.0", "id": 1,
                                                      "method": method, "params": params or []})
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply.get("result")


def _mine() -> None:
    _rpc("anvil_mine", ["0x1"])


def _wallet(on_poll: Callable[[], None]) -> EvmWallet:
    from web3 import HTTPProvider, Web3

    w3 = Web3(HTTPProvider(os.environ["REVERSA_EVM_RPC"]))
    network = EvmNetwork("anvil", w3, confirmation=Confirmations(1),
                         private=PrivateEndpoint(os.environ["REVERSA_EVM_RELAY"]),
                         on_poll=on_poll, poll_interval_s=0.05, confirm_timeout_s=30)
    return EvmWallet(network, LocalSigner(os.environ["REVERSA_EVM_KEY"]))


def _build() -> tuple[Registry, Saga, dict[str, Any]]:
    registry = Registry()
    handlers = register_evm(registry)
    saga, data = scenario_c(registry, handlers, json.loads(os.environ["REVERSA_EVM_WORLD"]),
                            amount_a=int(os.environ["REVERSA_EVM_AMOUNT"]))
    return registry, saga, data


def registry() -> Registry:
    """The worker's ``--app``: the same handlers the agent registered."""
    return _build()[0]


def services() -> dict[str, Any]:
    """The worker's ``--services``: a wallet on the same chain and key; waiting mines."""
    return {"evm": _wallet(_mine)}


def _die_after_swap_broadcast(agent: str, router: str) -> Callable[[], None]:
    def on_poll() -> None:
        pending = _rpc("txpool_content").get("pending", {})
        mine = next((txs for sender, txs in pending.items()
                     if sender.lower() == agent.lower()), {})
        if any(str(tx.get("to", "")).lower() == router.lower() for tx in mine.values()):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup: as a power cut
        _mine()

    return on_poll


def main(argv: list[str]) -> int:
    mode, db, saga_id = argv
    assert mode == "run", mode
    registry, saga, data = _build()
    world = json.loads(os.environ["REVERSA_EVM_WORLD"])
    wallet = _wallet(lambda: None)
    wallet.network.on_poll = _die_after_swap_broadcast(wallet.address, world["router"])
    engine = Engine(registry, Store.open(db), clock=SystemClock(), services={"evm": wallet},
                    lease_s=LEASE_S)
    result = engine.run(saga, data, saga_id=saga_id)
    print(f"not killed: the saga ended {result.status.value}")  # the test fails on this
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
