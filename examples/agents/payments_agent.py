"""A scripted agent (no language model) driving Reversa through the official MCP client.

It starts ``reversa mcp`` over stdio, serving the cross-border payment of the
payments demo under ``agents.toml`` next to this file, and then, as an LLM agent
would through tool calls:

1. lists the workflows it may start and previews a payment (rollback cost, no effect);
2. pays a beneficiary the partner bank's sanctions screening rejects, and watches
   the saga fail and roll back (the FX conversion reversed at a known cost);
3. pays a legitimate beneficiary, then asks for that payment to be rolled back (a
   customer dispute): the TARGET2 credit is final, so a human gets the case;
4. lists the escalation it cannot resolve itself;
5. goes above its approval threshold (the saga waits for a human) and above its
   hard limit (refused).

Run: python examples/agents/payments_agent.py   (needs reversa[mcp,payments-sim])
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

POLICY = Path(__file__).resolve().with_name("agents.toml")
WORKFLOW = "payments.ag166c.cross_border"


class Agent:
    """The tool calls an agent makes, with the answers printed as it goes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            raise ToolRefused(result.content[0].text)  # type: ignore[union-attr]
        return result.structured_content or {}

    async def watch(self, saga_id: str) -> dict[str, Any]:
        """Poll saga_status until the saga is at rest."""
        deadline = time.monotonic() + 60
        while True:
            status = await self.call("saga_status", saga_id=saga_id)
            if status["finished"] or status["status"] == "escalated":
                return status
            if time.monotonic() > deadline:
                raise RuntimeError(f"saga {saga_id} is still {status['status']}")
            await anyio.sleep(0.1)


class ToolRefused(Exception):
    """A tool answered with an error."""


def payment(amount: str, beneficiary: str) -> dict[str, str]:
    return {"sender": "cust:bob", "amount": amount, "beneficiary": beneficiary,
            "reference": "INV-2291"}


async def run(agent: Agent) -> list[str]:
    problems: list[str] = []
    listed = await agent.call("list_workflows")
    print(f"agent {listed['agent']} may start: {[w['name'] for w in listed['workflows']]}")

    preview = await agent.call("preview", workflow=WORKFLOW,
                               input=payment("100000.00", "Oblast Trading LLC"))
    print(f"preview: rollback feasible={preview['rollback']['feasible']}, estimated "
          f"rollback cost GBP {preview['estimated_rollback_cost']['GBP']:,.2f}, "
          f"decision {preview['decision']['outcome']}")

    started = await agent.call("start_saga", workflow=WORKFLOW,
                               input=payment("100000.00", "Oblast Trading LLC"))
    status = await agent.watch(started["saga_id"])
    print(f"saga {started['saga_id'][:12]}: {status['status']} after {status['failed_step']} "
          f"failed ({status['error'].split(': ', 1)[-1]}); rollback predicate "
          f"{'holds' if status['rollback']['predicate_ok'] else 'FAILS'}")
    if status["status"] != "compensated":
        problems.append(f"the rejected payment ended {status['status']}, not compensated")

    paid = await agent.call("start_saga", workflow=WORKFLOW,
                            input=payment("40000.00", "Fjord Supplies AS"))
    status = await agent.watch(paid["saga_id"])
    print(f"saga {paid['saga_id'][:12]}: {status['status']} (GBP 40,000.00 to Fjord Supplies AS)")
    await agent.call("request_rollback", saga_id=paid["saga_id"],
                     reason="the customer disputes the payment")
    status = await agent.watch(paid["saga_id"])
    print(f"rollback requested: saga {paid['saga_id'][:12]} is {status['status']}")

    escalations = (await agent.call("list_escalations"))["escalations"]
    for esc in escalations:
        print(f"escalation #{esc['id']} (saga {esc['saga_id'][:12]}, {esc['status']}): "
              f"{esc['reason'][:110]}")
    if not any(e["saga_id"] == paid["saga_id"] for e in escalations):
        problems.append("the disputed payment's escalation is not listed")

    pending = await agent.call("start_saga", workflow=WORKFLOW,
                               input=payment("200000.00", "Fjord Supplies AS"))
    print(f"GBP 200,000.00: {pending['status']} ({pending['reasons'][0]}); a human runs "
          f"`reversa approvals approve {pending['approval_id']} --by NAME`")
    if pending["status"] != "pending_approval":
        problems.append("the payment above the approval threshold was not held for a human")

    try:
        await agent.call("start_saga", workflow=WORKFLOW,
                         input=payment("300000.00", "Fjord Supplies AS"))
        problems.append("the payment above the hard limit was not refused")
    except ToolRefused as refused:
        print(f"GBP 300,000.00: {refused}")
    return problems


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = os.environ.get("REVERSA_DB") or str(Path(tmp) / "agents.db")
        server = StdioServerParameters(command=sys.executable, args=[
            "-m", "reversa", "mcp", "--app", "reversa.mcp.demo:payments_catalog",
            "--agent-policy", str(POLICY), "--agent", "payments-bot", "--db", db])
        async with Client(server) as client:
            problems = await run(Agent(client))
    for problem in problems:
        print(f"UNEXPECTED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
