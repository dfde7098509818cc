"""Snapshot, consistency predicate and safe state for EVM workflows.

The saga input carries what to watch (``input["evm"]``, built with
:func:`watch`): the tokens whose balances matter, the spenders whose
allowances matter, the vaults, and the tolerance per asset. The predicate
also finds every allowance the account granted while the saga ran from the
chain's ``Approval`` logs, so an approval nobody declared is still caught.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reversa.core.context import Check, PredicateContext, SnapshotContext, StepContext
from reversa.core.errors import ConfigError

from ._base import EvmOperation
from .abi import APPROVAL_TOPIC, VAULT_ABI
from .journal import TxScope
from .wallet import EvmWallet

__all__ = ["EvmState", "watch"]


def watch(
    tokens: Mapping[str, str],
    spenders: Iterable[str],
    *,
    vaults: Iterable[str] = (),
    tolerance: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Build the ``input["evm"]`` section a saga needs for snapshot and predicate.

    Args:
        tokens: Token address by symbol.
        spenders: Contracts the workflow may approve (routers, vaults).
        vaults: Vaults whose shares the workflow may hold.
        tolerance: Allowed absolute drift after rollback, base units, by symbol;
            ``"ETH"`` (wei) covers gas. Missing symbols must match exactly.
    """
    return {
        "tokens": dict(tokens),
        "spenders": list(spenders),
        "vaults": list(vaults),
        "tolerance": {k: int(v) for k, v in (tolerance or {}).items()},
    }


class EvmState(EvmOperation):
    """The saga-level handlers: ``snapshot``, ``predicate`` and the ``revoke_all`` safe state."""

    name = "evm.state"

    @staticmethod
    def _watch(data: Mapping[str, Any]) -> Mapping[str, Any]:
        section = data.get("evm")
        if not isinstance(section, Mapping) or "tokens" not in section:
            raise ConfigError(
                "EVM snapshot: the saga input needs an 'evm' section; build it with "
                "reversa.adapters.evm.watch(tokens=..., spenders=...)"
            )
        return section

    def snapshot(self, ctx: SnapshotContext) -> dict[str, Any]:
        """Balances, allowances and vault shares of the wallet's account, and the block."""
        wallet = self._wallet_of(ctx.services, "EVM snapshot")
        spec = self._watch(ctx.input)
        balances, allowances = {}, {}
        for symbol, token in spec["tokens"].items():
            balances[symbol] = self._balance(wallet, token)
            allowances[symbol] = {s: self._allowance(wallet, token, s) for s in spec["spenders"]}
        shares = {}
        for vault in spec.get("vaults", []):
            call = wallet.contract(vault, VAULT_ABI).functions.balanceOf(wallet.address)
            shares[vault] = int(wallet.read(call, "vault shares"))
        return {
            "network": wallet.network.name, "account": wallet.address,
            "block": int(wallet.w3.eth.block_number), "eth": wallet.balance_wei(),
            "balances": balances, "allowances": allowances, "shares": shares,
        }

    def _granted_since(self, wallet: EvmWallet, block: int) -> set[tuple[str, str]]:
        """``(token, spender)`` of every Approval the account emitted after ``block``."""
        owner_topic = "0x" + "0" * 24 + wallet.address.lower().removeprefix("0x")
        logs = wallet.w3.eth.get_logs({"fromBlock": block + 1, "toBlock": "latest",
                                       "topics": [APPROVAL_TOPIC, owner_topic]})
        out = set()
        for entry in logs:
            spender = "0x" + bytes(entry["topics"][2])[-20:].hex()
            out.add((wallet.w3.to_checksum_address(entry["address"]),
                     wallet.w3.to_checksum_address(spender)))
        return out

    def _granted(self, wallet: EvmWallet, pre: Mapping[str, Any] | None,
                 spec: Mapping[str, Any]) -> set[tuple[str, str]]:
        start = int(pre["block"]) if pre and "block" in pre else 0
        granted = self._granted_since(wallet, start)
        # Declared pairs count too: a grant may predate the log window's start.
        for symbol, token in spec["tokens"].items():
            before = (pre or {}).get("allowances", {}).get(symbol, {})
            for spender in spec["spenders"]:
                if self._allowance(wallet, token, spender) > int(before.get(spender, 0)):
                    granted.add((token, spender))
        return granted

    def predicate(self, ctx: PredicateContext) -> Check:
        """Every granted allowance is zero; balances within tolerance of the snapshot."""
        wallet = self._wallet_of(ctx.services, "EVM predicate")
        spec = self._watch(ctx.input)
        pre, post = ctx.pre_state or {}, ctx.post_state or self.snapshot(_as_snap(ctx))
        symbols = {token.lower(): sym for sym, token in spec["tokens"].items()}
        problems: list[str] = []
        allowances: dict[str, int] = {}
        for token, spender in sorted(self._granted(wallet, pre, spec)):
            left = self._allowance(wallet, token, spender)
            label = f"{symbols.get(token.lower(), token)}->{spender}"
            allowances[label] = left
            if left != 0:
                problems.append(f"allowance {label} is {left}, not zero")
        tolerance = spec.get("tolerance", {})
        balances: dict[str, Any] = {}
        pairs = [(sym, pre.get("balances", {}).get(sym), post.get("balances", {}).get(sym))
                 for sym in spec["tokens"]]
        pairs.append(("ETH", pre.get("eth"), post.get("eth")))
        pairs += [(v, pre.get("shares", {}).get(v), post.get("shares", {}).get(v))
                  for v in spec.get("vaults", [])]
        for label, before, after in pairs:
            if before is None or after is None:
                problems.append(f"{label}: missing from a snapshot")
                continue
            drift, allowed = int(after) - int(before), int(tolerance.get(label, 0))
            balances[label] = {"pre": int(before), "post": int(after), "drift": drift,
                               "tolerance": allowed}
            if abs(drift) > allowed:
                problems.append(f"{label} drifted {drift} (tolerance {allowed})")
        detail = {"allowances": allowances, "balances": balances, "violations": problems}
        if problems:
            return Check(False, "; ".join(problems), detail)
        return Check(True, f"{len(allowances)} granted allowance(s) all zero; "
                     f"{len(balances)} balance(s) within tolerance", detail)

    async def revoke_all(self, ctx: StepContext) -> dict[str, Any]:
        """Safe state: revoke every allowance granted since the saga started.

        Runs when the full rollback is infeasible (e.g. the reverse swap would
        cost more than allowed): the swap's position waits for a human, but no
        approval is left standing meanwhile.
        """
        wallet, scope = self._wallet(ctx), TxScope.of(ctx)
        spec = self._watch(ctx.input)
        revoked = []
        for token, spender in sorted(self._granted(wallet, ctx.pre_state, spec)):
            sent = await self._revoke(scope, wallet, f"{ctx.idempotency_key}/{token}/{spender}",
                                      token, spender)
            if sent is not None:
                revoked.append({"token": token, "spender": spender, **sent.summary()})
        return {"revoked": revoked, "account": wallet.address}

    # EvmState is not a step operation: it has no action of its own.
    async def execute(self, ctx: StepContext) -> dict[str, Any]:
        """Same as :meth:`revoke_all` (so it can also run as an explicit step)."""
        return await self.revoke_all(ctx)

    async def compensate(self, ctx: StepContext) -> dict[str, Any]:
        """Nothing to undo: revoking allowances is itself the safe direction."""
        return {"undone": "nothing: revocations are not undone"}


def _as_snap(ctx: PredicateContext) -> SnapshotContext:
    return SnapshotContext(saga_id=ctx.saga_id, workflow=ctx.workflow, input=ctx.input,
                           results=ctx.results, services=ctx.services, clock=ctx.clock)
