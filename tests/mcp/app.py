"""The catalog the MCP tests serve: the cross-border payment on a bank reached over HTTP.

The bank (ledger and FX venue) runs in the test process and is served on loopback
(``REVERSA_TEST_BANK``), so a test reads its counters directly while the server,
another process, acts on it through the real HTTP clients. The FX client carries
API credentials, and ``test.vault`` has a precondition that quotes its service's
token in an error (as some vendor libraries do): no tool output may show either.
``test.gated`` holds its second step until the test opens a gate (a file named after
the saga in ``REVERSA_TEST_GATES``), so a test can act on a saga while it runs;
``test.costly`` has a rollback estimated above the test agent's cost limit.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from reversa import Check, PredicateContext, Registry, Saga, Step, StepContext
from reversa.core.context import CostEstimate
from reversa.core.errors import PermanentError
from reversa.demos.payments import cross_border, registry
from reversa.mcp import Catalog, Workflow
from reversa.mcp.demo import cross_border_workflow

API_KEY = "ak_live_5cfe0a9b7d1e4f2c"
API_SECRET = "sk_live_9d2f61c0b3a84e7a5f10"
VAULT_TOKEN = "vt_7f3c2a9e41b84d06"


class Vault:
    """A service holding a credential, as a secrets-manager client would."""

    def __init__(self) -> None:
        self.token = VAULT_TOKEN


def _vault(reg: Registry) -> Saga:
    @reg.action("vault.read")
    def read(ctx: StepContext) -> dict[str, Any]:
        ctx.service("vault", Vault)
        return {"read": True}

    @reg.compensation("vault.read:compensate")
    def forget(ctx: StepContext) -> None:
        return None

    @reg.precondition("vault.read:preconditions")
    def reachable(ctx: StepContext) -> Check:
        # A vendor error that quotes the credential it was called with.
        raise PermanentError(f"vault refused token {ctx.service('vault', Vault).token}")

    @reg.predicate("vault.predicate")
    def consistent(ctx: PredicateContext) -> bool:
        return True

    return Saga(workflow="test.vault", predicate="vault.predicate", steps=[Step(
        name="read", action="vault.read", compensation="vault.read:compensate",
        preconditions=("vault.read:preconditions",))])


def _gated(reg: Registry) -> Saga:
    @reg.action("gated.step")
    def step(ctx: StepContext) -> dict[str, Any]:
        return {"done": ctx.param("name")}

    @reg.action("gated.wait")
    def wait(ctx: StepContext) -> dict[str, Any]:
        gate = Path(os.environ["REVERSA_TEST_GATES"]) / ctx.saga_id
        deadline = time.monotonic() + 120
        while not gate.exists():
            if time.monotonic() > deadline:
                raise PermanentError(f"the test never opened gate {gate}")
            time.sleep(0.02)
        return {"gate": "opened"}

    @reg.compensation("gated.undo")
    def undo(ctx: StepContext) -> None:
        return None

    @reg.predicate("gated.predicate")
    def consistent(ctx: PredicateContext) -> bool:
        return True

    return Saga(workflow="test.gated", predicate="gated.predicate", steps=[
        Step(name="first", action="gated.step", compensation="gated.undo",
             params={"name": "first"}),
        Step(name="wait", action="gated.wait", compensation="gated.undo",
             depends_on=("first",)),
        Step(name="last", action="gated.step", compensation="gated.undo",
             params={"name": "last"}, depends_on=("wait",))])


def _costly(reg: Registry) -> Saga:
    @reg.action("costly.do")
    def do(ctx: StepContext) -> dict[str, Any]:
        return {"done": True}

    @reg.compensation("costly.undo")
    def undo(ctx: StepContext) -> None:
        return None

    @reg.cost("costly.cost")
    def cost(ctx: StepContext) -> CostEstimate:
        return CostEstimate(5000.0, "GBP", reason="unwinding it costs GBP 5,000")

    @reg.predicate("costly.predicate")
    def consistent(ctx: PredicateContext) -> bool:
        return True

    return Saga(workflow="test.costly", predicate="costly.predicate", steps=[Step(
        name="do", action="costly.do", compensation="costly.undo", cost="costly.cost")])


def catalog() -> Catalog:
    """Cross-border (bank over HTTP, FX client with credentials), vault, and a forbidden one."""
    from reversa.simulators.fx_exchange import SimFxExchange
    from reversa.simulators.ledger.http import HttpLedgerClient

    url = os.environ["REVERSA_TEST_BANK"]
    reg = registry()
    vault = _vault(reg)
    cross = cross_border_workflow(reg)
    forbidden = Workflow(cross.saga.model_copy(update={"workflow": "test.forbidden"}),
                         "A workflow no test agent may use.", input_model=cross.input_model,
                         value=cross.value)
    services = {
        "ledger": HttpLedgerClient(url),
        "fx": SimFxExchange(base_url=url, config={"apiKey": API_KEY, "secret": API_SECRET}),
        "vault": Vault(),
    }
    return Catalog(reg, [cross, Workflow(vault, "Touches a secret-backed service."), forbidden,
                         Workflow(_gated(reg), "Waits for the test between its steps."),
                         Workflow(_costly(reg), "Cheap to run, dear to roll back.")],
                   services=services)


SANCTIONED = cross_border.SANCTIONED
