"""Register the EVM operations and saga-level handlers on a Registry."""

from __future__ import annotations

from dataclasses import dataclass

from reversa.core.registry import HandlerKind, Registry

from .approve import ApproveOp
from .state import EvmState
from .swap import SwapOp
from .vault import VaultDepositOp

__all__ = ["EvmHandlers", "register_evm"]


@dataclass(frozen=True, slots=True)
class EvmHandlers:
    """The registered names, for building steps and sagas.

    Attributes:
        approve: Operation name of :class:`ApproveOp`.
        swap: Operation name of :class:`SwapOp`.
        vault_deposit: Operation name of :class:`VaultDepositOp`.
        snapshot: Snapshot name (saga ``snapshot=``).
        predicate: Predicate name (saga ``predicate=``).
        revoke_all: Safe-state action name (saga ``safe_state=``).
        service: The wallet's key in the engine's services.
    """

    approve: str
    swap: str
    vault_deposit: str
    snapshot: str
    predicate: str
    revoke_all: str
    service: str = "evm"


def register_evm(registry: Registry, *, service: str = "evm", prefix: str = "evm") -> EvmHandlers:
    """Register every EVM handler, bound to the wallet at ``services[service]``.

    Args:
        registry: Where to register.
        service: Key of the :class:`~reversa.adapters.evm.EvmWallet` in the
            engine's services (use one prefix and service per account/network).
        prefix: Name prefix of the registered handlers.
    """
    names = EvmHandlers(
        approve=f"{prefix}.approve", swap=f"{prefix}.swap",
        vault_deposit=f"{prefix}.vault_deposit", snapshot=f"{prefix}.snapshot",
        predicate=f"{prefix}.predicate", revoke_all=f"{prefix}.revoke_all",
        service=service,
    )
    registry.register(ApproveOp(service), names.approve)
    registry.register(SwapOp(service), names.swap)
    registry.register(VaultDepositOp(service), names.vault_deposit)
    state = EvmState(service)
    registry.add(HandlerKind.SNAPSHOT, names.snapshot, state.snapshot)
    registry.add(HandlerKind.PREDICATE, names.predicate, state.predicate)
    registry.add(HandlerKind.ACTION, names.revoke_all, state.revoke_all)
    return names
