"""The catalog ``reversa mcp`` serves without ``--app``: the bundled demo workflows.

So a new user can point an MCP client at Reversa at once: the cross-border
payment of AG-166 scenario C (a simulated bank whose partner screens out a
sanctioned beneficiary), the DeFi swap route of AG-384 scenario C (an
in-process chain), and the robot cell's reversible transfer job (a simulated
cell), each where its ``-sim`` extra is installed. The simulators live in the
server process; sagas started through the server act on them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..core.context import CostEstimate
from ..core.registry import Registry
from .catalog import Catalog, Value, Workflow
from .policy import AgentPolicy, Policy

__all__ = ["DEMO_AGENT", "CrossBorderInput", "SwapInput", "catalog", "cross_border_workflow",
           "demo_policy", "evm_catalog", "payments_catalog", "robot_catalog"]

DEMO_AGENT = "demo-agent"


class CrossBorderInput(BaseModel):
    """Input of the cross-border payment: who pays how much to whom."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(pattern=r"^cust:[a-z]+$", description="Customer account debited "
                        "(the simulated bank has cust:alice and cust:bob).")
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2,
                            description="GBP to send, e.g. \"100000.00\".")
    beneficiary: str = Field(min_length=1, max_length=140, description="Who the partner bank "
                             "credits in EUR (it screens out 'Oblast Trading LLC').")
    reference: str = Field(min_length=1, max_length=35, description="Payment reference.")


class SwapInput(BaseModel):
    """Input of the DeFi route: how much token A to put in."""

    model_config = ConfigDict(extra="forbid")

    amount_a: int = Field(gt=0, description="Token A in base units (18 decimals): "
                          "1000000000000000000000 is 1,000 TKA.")


def cross_border_workflow(registry: Registry) -> Workflow:
    """AG-166 scenario C as a workflow (``registry`` holds the payments operations).

    Its preview prices the round trip (convert now, reverse at once) from the FX
    venue's live book: the conversion's own estimator can price a reversal only
    once the conversion has a fill.
    """
    from ..adapters.payments.fx import estimate_round_trip
    from ..demos.payments import APP, SERVICES, cross_border

    def round_trip(input: Mapping[str, Any], services: Mapping[str, Any]) -> CostEstimate:
        amount = float(input["amount"])
        est = estimate_round_trip(services["fx"], sell_currency="GBP", buy_currency="EUR",
                                  amount=amount)
        return CostEstimate(est.cost, "GBP", est.to_dict(), reason=(
            f"converting GBP {amount:,.2f} to EUR now and reversing it at once would cost "
            f"GBP {est.cost:,.2f} ({est.cost_bps:.1f} bps): spread, depth and fees"))

    return Workflow(
        cross_border.saga(registry, app=APP, services=SERVICES),
        "Cross-border payment: debit a customer in GBP, convert to EUR at the FX venue, "
        "credit a beneficiary through a partner bank (TARGET2, final on execution). A "
        "rejection rolls it back: the conversion is reversed at a known cost and the debit "
        "corrected.",
        input_model=CrossBorderInput, value=Value("amount", unit="GBP"),
        preview_cost=round_trip)


def payments_catalog() -> Catalog:
    """The cross-border payment on a fresh simulated bank (needs ``reversa[payments-sim]``)."""
    from ..demos.payments import build_world, cross_border, registry

    world = build_world(sanctioned=(cross_border.SANCTIONED,))
    reg = registry()
    return Catalog(reg, [cross_border_workflow(reg)], services=world.services())


def evm_catalog() -> Catalog:
    """AG-384 scenario C on an in-process chain (needs ``reversa[evm-sim]``)."""
    from ..demos.evm.demos import SERVICES
    from ..demos.evm.rig import inprocess_rig
    from ..demos.evm.scenarios import APP

    rig = inprocess_rig()
    saga, data = rig.scenario_c(app=APP, services=SERVICES)
    workflow = Workflow(
        saga, "DeFi route: approve token A on the router, swap A->B, swap B->C, deposit C in a "
        "vault; every step is undone on failure (the approval revoked, swaps reversed within "
        "a loss bound, the deposit redeemed).",
        input_model=SwapInput, value=Value("amount_a", unit="TKA", scale=1e-18),
        fixed_input={"evm": data["evm"]})
    return Catalog(rig.registry, [workflow], services=rig.services())


def robot_catalog() -> Catalog:
    """The PCB cell's reversible transfer job on a simulated cell (needs ``reversa[robot-sim]``)."""
    from ..demos.robot.scenarios import SERVICES, services
    from ..demos.robot.workflows import APP, robot_registry, transfer_saga

    reg = robot_registry()
    workflow = Workflow(
        transfer_saga(reg, app=APP, services=SERVICES),
        "Robot cell: pick part U1 from the tray, carry it to the inspection pose, inspect it; "
        "a failure drives the arm back and returns the part to the tray.")
    return Catalog(reg, [workflow], services=services())


_DOMAINS: dict[str, tuple[str, Callable[[], Catalog]]] = {
    "payments-sim": ("ccxt", payments_catalog),
    "evm-sim": ("eth_tester", evm_catalog),
    "robot-sim": ("roslibpy", robot_catalog),
}


def catalog() -> Catalog:
    """Every demo whose extra is installed, merged into one catalog."""
    parts = [build() for module, build in _DOMAINS.values()
             if importlib.util.find_spec(module) is not None]
    registry = Registry().merged(*(p.registry for p in parts))
    services: dict[str, Any] = {}
    for part in parts:
        services.update(part.services)
    return Catalog(registry, [wf for p in parts for wf in p.workflows()], services=services)


def demo_policy() -> Policy:
    """The policy the demo runs under when no ``--agent-policy`` is given."""
    return Policy([AgentPolicy(
        name=DEMO_AGENT, workflows=("*",),
        max_value={"GBP": 250_000, "TKA": 20_000},
        approval_above={"GBP": 150_000, "TKA": 15_000},
        max_rollback_cost={"GBP": 2_000}, may_request_rollback=True)],
        source="the built-in demo policy")
