"""Ready-made EVM workflows: AG-384 scenario C (approve, swap, swap, deposit)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reversa.adapters.evm import EvmHandlers, SwapOp, register_evm, watch
from reversa.core.model import CompensationKind, Reversibility, Saga
from reversa.core.registry import HandlerKind, Registry

__all__ = ["APP", "evm_registry", "scenario_c"]

APP = "reversa.demos.evm.scenarios:evm_registry"
"""Import path of :func:`evm_registry`, to record as a scenario saga's ``app``."""


def evm_registry() -> Registry:
    """A registry with every EVM handler (service ``"evm"``) and scenario C's second hop."""
    registry = Registry()
    _register_hop2(registry, register_evm(registry))
    return registry


def _register_hop2(registry: Registry, handlers: EvmHandlers) -> str:
    # The second swap gets its own operation name, so each step's handlers can
    # be told apart (fault injection and audit entries name handlers, not steps).
    hop2 = f"{handlers.swap}.hop2"
    if hop2 not in registry.names(HandlerKind.ACTION):
        registry.register(SwapOp(handlers.service), hop2)
    return hop2


def scenario_c(
    registry: Registry,
    handlers: EvmHandlers,
    addresses: Mapping[str, str],
    *,
    amount_a: int,
    max_loss_bps: int = 100,
    max_slippage_bps: int = 200,
    approve_amount: int | str = "max",
    gas_budget: int = 2_000_000,
    eth_tolerance_wei: int = 10**17,
    workflow: str = "defi-swap-c",
    app: str | None = None,
    services: str | None = None,
) -> tuple[Saga, dict[str, Any]]:
    """AG-384 scenario C: approve A on the router, swap A→B, swap B→C, deposit C.

    Every step has rollback semantics: the approval is revoked (it is a
    state change with security weight, not "preparation"), swaps are
    reversed privately within ``max_loss_bps`` of the forward rate, the
    deposit is redeemed. The saga's ``max_rollback_cost`` carries the same
    bound in token units plus a gas budget; the safe state revokes every
    allowance if the full rollback is infeasible.

    Args:
        registry: Registry holding the handlers (from :func:`register_evm`).
        handlers: Their names.
        addresses: ``TKA``, ``TKB``, ``TKC``, ``pool1``, ``pool2``, ``router``, ``vault``.
        amount_a: Token A to put in, base units (18 decimals).
        max_loss_bps: Maximum acceptable rollback loss per swap reversal.
        max_slippage_bps: Forward slippage bound per swap.
        approve_amount: Allowance granted to the router in step 1 (``"max"``,
            as agents commonly do: exactly what makes an unrevoked approval
            dangerous).
        gas_budget: Ceiling on the summed gas of the compensations.
        eth_tolerance_wei: Ether the predicate tolerates being spent on gas.
        workflow: Workflow name.
        app: Import path of the registry, recorded with the saga (:data:`APP`
            when it is :func:`evm_registry`).
        services: Import path of the services factory, recorded with the saga.

    Returns:
        The saga and its input.
    """
    a = addresses
    router = a["router"]
    hop2 = _register_hop2(registry, handlers)
    swap_common = {"router": router, "max_slippage_bps": max_slippage_bps,
                   "max_loss_bps": max_loss_bps}
    steps = [
        registry.step("approve_a", handlers.approve, compensation_kind=CompensationKind.SEMANTIC,
                      params={"token": a["TKA"], "spender": router, "amount": approve_amount,
                              "zero_first": True}),
        registry.step("swap_ab", handlers.swap, reversibility=Reversibility.PARTIAL,
                      params={**swap_common, "pool": a["pool1"], "token_in": a["TKA"],
                              "token_out": a["TKB"], "amount_in": "$input.amount_a",
                              "cost_unit": "TKA"}),
        registry.step("swap_bc", hop2, reversibility=Reversibility.PARTIAL,
                      params={**swap_common, "pool": a["pool2"], "token_in": a["TKB"],
                              "token_out": a["TKC"], "approve": "exact", "cost_unit": "TKB",
                              "amount_in": "$results.swap_ab.amount_out"}),
        registry.step("deposit_c", handlers.vault_deposit,
                      params={"vault": a["vault"], "token": a["TKC"],
                              "amount": "$results.swap_bc.amount_out"}),
    ]
    bound = amount_a * max_loss_bps / 10_000 / 10**18
    saga = Saga.chain(
        workflow, steps, snapshot=handlers.snapshot, predicate=handlers.predicate,
        safe_state=handlers.revoke_all,
        max_rollback_cost={"TKA": bound, "TKB": bound, "gas": float(gas_budget)},
        rollback_window_s=900, app=app, services=services,
    )
    # Both reversals may lose up to the bound; the A balance tolerates their sum.
    tolerance = {"TKA": 2 * amount_a * max_loss_bps // 10_000, "ETH": eth_tolerance_wei}
    spec = watch({k: a[k] for k in ("TKA", "TKB", "TKC")}, [router, a["vault"]],
                 vaults=[a["vault"]], tolerance=tolerance)
    return saga, {"evm": spec, "amount_a": amount_a}
