"""The catalog the MCP tests serve: the cross-border payment on a bank reached over HTTP.

The bank (ledger and FX venue) runs in the test process and is served on loopback
(``REVERSA_TEST_BANK``), so a test reads its counters directly while the server,
another process, acts on it through the real HTTP clients. The FX client carries
API credentials, and ``test.vault`` has a precondition that quotes its service's
token in an error (as some vendor libraries do): no tool output may show either.
"""

from __future__ import annotations

import os
from typing import Any

from reversa import Check, PredicateContext, Registry, Saga, Step, StepContext
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
    return Catalog(reg, [cross, Workflow(vault, "Touches a secret-backed service."), forbidden],
                   services=services)


SANCTIONED = cross_border.SANCTIONED
