"""The EVM pack: the EVM adapter's approvals on the in-process chain (eth-tester on py-evm).

Steps are the adapter's real operation (``evm.approve``: an ERC-20 allowance
undone by approving zero, in doubt settled by the journal and blocked by a
same-nonce replacement), signed by one agent key and sent as raw transactions to
:class:`~reversa.simulators.evm.InProcessChain`. Every process has its own
:class:`~reversa.adapters.evm.EvmWallet` over the same chain, so nonces are
allocated through the journal in the saga store, as between real workers.

The chain knows no fencing token: what keeps a fenced-out owner's effect off the
chain is the adapter's own boundary (the journal write before a broadcast is
fenced; a block replaces the nonce). So the effects are read back from the chain
itself after the run: each saga's steps approve spenders of their own, and the
token's ``Approval`` events and final allowances say which grants landed, how
many times, and whether they were revoked.

Faults pinned to service calls hit the operation as a whole (the adapter makes
several node calls per operation): a transient or permanent failure before it
runs, an error after it ran (in doubt), a lost request (not run) or reply (ran),
a duplicate (run twice with the same key). Pauses stop a process before an
operation. ``late`` is treated as a lost request: the chain has no request
to deliver late; the raw transaction is only sent by the operation itself.

The chain is slow (a transaction costs milliseconds of py-evm): keep to tens of
schedules per run.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ....adapters.evm import Confirmations, EvmNetwork, EvmWallet, LocalSigner
from ....adapters.evm.approve import ApproveOp
from ....core.context import Check, StepContext
from ....core.errors import Fenced, LeaseLost, PermanentError, TransientError
from ....core.model import OnCrash, Retry, Saga
from ....core.registry import Registry
from ....simulators.evm import UNIT, DefiWorld, InProcessChain, deploy_defi_world
from ..faults import SagaPlan
from ..network import Network
from ..process import Process
from . import Effects
from .paced import Paced

__all__ = ["EvmPack", "EvmWorld", "through_wallet"]

SERVICE = "evm"
STEP_RETRY = Retry(max_attempts=3, initial_s=0.2, max_s=1.0)
UNDO_RETRY = Retry(max_attempts=4, initial_s=0.2, max_s=1.0)
# A fixed key: a seed must replay to the same addresses and transactions.
AGENT_KEY = "0x" + hashlib.sha256(b"reversa chaos evm agent").hexdigest()
TOKENS = {"a": "TKB", "b": "TKC", "c": "TKB"}  # TKA wants zero-first approvals

WORKFLOWS: dict[str, tuple[str, ...]] = {
    "grants": ("a", "b"),
    "fanout": ("a", "b", "c"),
}


def spender_of(saga_id: str, step: str) -> str:
    """The address a saga's step grants an allowance to (one per saga and step)."""
    from web3 import Web3

    digest = hashlib.sha256(f"{saga_id}/{step}".encode()).digest()[:20]
    return str(Web3.to_checksum_address(digest))


class _Base:
    """One chain with the DeFi world deployed, reverted to its start for every schedule."""

    def __init__(self) -> None:
        self.chain = InProcessChain(auto_mine=True)
        self.world = deploy_defi_world(self.chain)
        self.signer = LocalSigner(AGENT_KEY)
        self.chain.fund(self.signer.address, 10 * UNIT)
        self.chain.set_auto_mine(False)
        self.start = self.chain.snapshot()


@functools.lru_cache(maxsize=1)
def _base() -> _Base:
    return _Base()


class EvmWorld:
    """One schedule's chain (the shared one, reverted to its start) and its sagas."""

    def __init__(self) -> None:
        base = _base()
        base.chain.revert(base.start)
        base.chain.clear_hooks()
        self.chain: InProcessChain = base.chain
        self.world: DefiWorld = base.world
        self.signer = base.signer
        # Blocks are produced as the wallets poll (virtual time), not on arrival.
        self.network = EvmNetwork("chaos", self.chain.w3, confirmation=Confirmations(1),
                                  poll_interval_s=0.5, confirm_timeout_s=20.0,
                                  on_poll=self.chain.tick)
        self.grants: dict[str, tuple[str, str, str]] = {}  # spender -> saga, step, token
        self.keys: dict[tuple[str, str], str] = {}  # (saga, step) -> last action key run
        self.refused = 0

    def registry(self) -> Registry:
        return _registry()

    def services_for(self, proc: Process, network: Network) -> Mapping[str, Any]:
        return {SERVICE: _ProcWallet(self, proc, network)}

    def saga(self, plan: SagaPlan) -> tuple[Saga, dict[str, Any]]:
        spenders = {}
        for step in WORKFLOWS[plan.workflow]:
            spender = spender_of(plan.saga_id, step)
            token = self.world.address(TOKENS[step])
            self.grants[spender] = (plan.saga_id, step, token)
            spenders[step] = spender
        # A declined step names a "token" that is the router: the chain rejects it.
        tokens = {step: self.world.address("router" if plan.decline == step else TOKENS[step])
                  for step in spenders}
        return _saga(plan.workflow, plan.option("on_crash", "compensate")), {
            "spenders": spenders, "tokens": tokens, "amount": str(5 * UNIT)}

    def close_window(self, saga_id: str) -> None:
        # A revocation is always possible on the chain: the fault is a no-op.
        return None

    def effects(self) -> Effects:
        """What the chain holds: read from the tokens' Approval events and allowances."""
        log = Effects()
        owner = self.signer.address
        events: dict[str, list[int]] = {}
        for symbol in sorted(set(TOKENS.values())):
            token = self.world.tokens[symbol]
            for ev in token.events.Approval().get_logs(from_block=0,
                                                        argument_filters={"owner": owner}):
                events.setdefault(ev["args"]["spender"], []).append(int(ev["args"]["value"]))
        for spender, values in events.items():
            saga, step, token_address = self.grants.get(spender, ("?", "?", ""))
            key = self.keys.get((saga, step), f"unknown:{spender}")
            granted = [i for i, v in enumerate(values) if v]
            if not granted:
                continue  # only revocations: nothing ever stood
            log.applied[key] = (saga, step)
            for n in range(1, len(granted)):
                # The grant landed again (a second transaction for one key).
                log.applied[f"{key}#landed{n + 1}"] = (saga, step)
            standing = self.allowance(token_address, spender) > 0
            revokes = sum(1 for v in values[granted[0]:] if not v)
            if standing and revokes:
                # Revoked, then granted again: the effect stands although undone.
                log.applied[f"{key}#after-revoke"] = (saga, step)
            elif not standing:
                log.undone[key] = revokes
        log.refused = self.refused
        return log

    def allowance(self, token_address: str, spender: str) -> int:
        """The agent's allowance to ``spender`` on the token at ``token_address``."""
        for token in self.world.tokens.values():
            if token.address == token_address:
                return int(token.functions.allowance(self.signer.address, spender).call())
        return 0


class _ProcWallet(EvmWallet):
    """A process' wallet: the adapter's own, which dies with the process.

    The service-call faults of the schedule apply to the operations run through
    it (see the module docstring).
    """

    def __init__(self, world: EvmWorld, proc: Process, network: Network) -> None:
        super().__init__(world.network, world.signer)
        self.pack_world = world
        self.proc = proc
        self.sim = network

    async def around(self, what: str, saga: str, run: Any) -> Any:
        """Run one operation hook as one service call of the schedule."""
        proc, book = self.proc, self.sim.book
        proc.check_alive()
        pause = book.pause_fault(proc, proc.calls + 1)
        if pause is not None:
            book.fired_fault(pause, f"{proc.name} paused before {what}")
            proc.paused_until = asyncio.get_running_loop().time() + float(pause.arg)
            await asyncio.sleep(float(pause.arg))
            proc.check_alive()
        proc.calls += 1
        self.sim.calls += 1
        n = self.sim.calls
        net, injected = book.net_fault(n), book.service_fault(n)
        for fault in (net, injected):
            if fault is not None:
                book.fired_fault(fault, f"{what} on the chain")
        kind = net.arg if net is not None else None
        if kind in ("lost_request", "late"):
            raise TransientError("no answer from the node (simulated); nothing was sent")
        if injected is not None and injected.arg == "transient":
            raise TransientError("the node is busy (simulated); nothing was sent")
        if injected is not None and injected.arg == "permanent":
            raise PermanentError("the node rejected the call (simulated)", code="rejected")
        try:
            result = await run()
        except (Fenced, LeaseLost):
            # The adapter's boundary (its fenced journal) refused to send: counted as a
            # refusal at the service, which the chain itself cannot make.
            self.pack_world.refused += 1
            raise
        proc.check_alive()
        if kind == "dup":
            self.sim.duplicates += 1
            result = await run()  # the same call again, same key: the adapter must dedupe
        if kind == "lost_reply" or (injected is not None and injected.arg == "in_doubt"):
            raise TransientError("the node's answer was lost (simulated)")
        return result


async def through_wallet(hook: str, ctx: StepContext, run: Callable[[], Awaitable[Any]]) -> Any:
    """Run one hook of the adapter's operation as one service call through the wallet.

    Reads (``preconditions``, ``estimate_cost``) are not service calls of the
    schedule: they run directly. An ``execute`` first records the step's action key,
    which the pack's effect log counts approvals under.
    """
    wallet = ctx.service(SERVICE, _ProcWallet)
    if hook == "execute":
        wallet.pack_world.keys[(ctx.saga_id, ctx.step)] = ctx.action_key
    if hook in ("preconditions", "estimate_cost"):
        return await run()
    return await wallet.around(f"{hook} of {ctx.saga_id}/{ctx.step}", ctx.saga_id, run)


@functools.lru_cache(maxsize=1)
def _registry() -> Registry:
    reg = Registry()
    reg.register(Paced(ApproveOp(SERVICE), through_wallet))
    reg.add("snapshot", "evm.granted", _granted)

    def revoked(ctx: Any) -> Check:
        baseline = ctx.checkpoint_state if ctx.checkpoint else ctx.pre_state
        now, before = (ctx.post_state or {}).get("granted"), (baseline or {}).get("granted")
        ok = now == before
        return Check(ok, "every allowance revoked" if ok else f"allowances standing: {now}")

    reg.add("predicate", "evm.revoked", revoked)
    return reg


def _granted(ctx: Any) -> dict[str, list[str]]:
    # The steps of this saga whose allowance stands, read on the chain itself.
    world = ctx.service(SERVICE, _ProcWallet).pack_world
    return {"granted": sorted(step for spender, (saga, step, token) in world.grants.items()
                              if saga == ctx.saga_id and world.allowance(token, spender) > 0)}


def _step(reg: Registry, name: str, depends_on: tuple[str, ...] = ()) -> Any:
    params = {"token": f"$input.tokens.{name}", "spender": f"$input.spenders.{name}",
              "amount": "$input.amount"}
    return reg.step(name, "evm.approve", retry=STEP_RETRY, compensation_retry=UNDO_RETRY,
                    params=params, depends_on=depends_on)


@functools.lru_cache(maxsize=16)
def _saga(wf: str, on_crash: str) -> Saga:
    reg = _registry()
    policy: dict[str, Any] = {"rollback_window_s": 300.0, "stall_after_s": 90.0,
                              "on_crash": OnCrash(on_crash), "snapshot": "evm.granted",
                              "predicate": "evm.revoked"}
    if wf == "grants":
        return Saga.chain("evm-grants", [_step(reg, "a"), _step(reg, "b")], **policy)
    # a, then b and c as parallel branches (compensated in parallel, nonces interleaved).
    return Saga(workflow="evm-fanout", steps=[_step(reg, "a"), _step(reg, "b", ("a",)),
                                               _step(reg, "c", ("a",))], **policy)


class EvmPack:
    """ERC-20 approvals on the in-process chain, through the EVM adapter."""

    name = "evm"

    def workflows(self) -> dict[str, tuple[str, ...]]:
        return dict(WORKFLOWS)

    def world(self, seed: int) -> EvmWorld:
        return EvmWorld()
