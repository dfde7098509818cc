"""The minimal ABIs the operations use: ERC-20, the swap router and pool, the vault.

Kept here, not loaded from the simulator, so the adapter works against any
contracts with these interfaces (and imports no compiler).
"""

from __future__ import annotations

from typing import Any

__all__ = ["APPROVAL_TOPIC", "ERC20_ABI", "POOL_ABI", "ROUTER_ABI", "VAULT_ABI"]


def _fn(
    name: str, inputs: list[tuple[str, str]], outputs: list[str], view: bool = False
) -> dict[str, Any]:
    return {
        "type": "function",
        "name": name,
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": t} for t in outputs],
        "stateMutability": "view" if view else "nonpayable",
    }


def _event(name: str, fields: list[tuple[str, str, bool]]) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in fields],
    }


ERC20_ABI: list[dict[str, Any]] = [
    _fn("balanceOf", [("owner", "address")], ["uint256"], view=True),
    _fn("allowance", [("owner", "address"), ("spender", "address")], ["uint256"], view=True),
    _fn("symbol", [], ["string"], view=True),
    _fn("decimals", [], ["uint8"], view=True),
    _fn("approve", [("spender", "address"), ("value", "uint256")], ["bool"]),
    _event("Approval", [("owner", "address", True), ("spender", "address", True),
                        ("value", "uint256", False)]),
]

APPROVAL_TOPIC = "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"
"""keccak256("Approval(address,address,uint256)")."""

ROUTER_ABI: list[dict[str, Any]] = [
    _fn("quote", [("pool", "address"), ("token_in", "address"), ("amount_in", "uint256")],
        ["uint256"], view=True),
    _fn("swap_exact_in", [("pool", "address"), ("token_in", "address"),
                          ("amount_in", "uint256"), ("min_out", "uint256"),
                          ("deadline", "uint256")], ["uint256"]),
]

POOL_ABI: list[dict[str, Any]] = [
    _fn("token0", [], ["address"], view=True),
    _fn("token1", [], ["address"], view=True),
    _fn("reserve0", [], ["uint256"], view=True),
    _fn("reserve1", [], ["uint256"], view=True),
    _event("Swap", [("token_in", "address", True), ("amount_in", "uint256", False),
                    ("amount_out", "uint256", False), ("receiver", "address", True)]),
]

VAULT_ABI: list[dict[str, Any]] = [
    _fn("asset", [], ["address"], view=True),
    _fn("balanceOf", [("owner", "address")], ["uint256"], view=True),
    _fn("convertToAssets", [("shares", "uint256")], ["uint256"], view=True),
    _fn("deposit", [("assets", "uint256")], ["uint256"]),
    _fn("redeem", [("shares", "uint256")], ["uint256"]),
    _event("Deposit", [("owner", "address", True), ("assets", "uint256", False),
                       ("shares", "uint256", False)]),
    _event("Withdraw", [("owner", "address", True), ("assets", "uint256", False),
                        ("shares", "uint256", False)]),
]
