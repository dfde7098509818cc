"""An MEV searcher that sandwiches router swaps it sees in anvil's public mempool.

It polls ``txpool_content`` (the public mempool), decodes every pending
``swap_exact_in`` on the router, and computes the largest front-run that
still lets the victim's swap meet its minimum output: it buys the victim's
output token first (higher tip, so it is ordered before the victim), and
sells it back right after (lower tip, next nonce). The victim receives
exactly its minimum; the difference is the searcher's profit. A transaction
sent through the private relay never shows up in the pool, so there is
nothing to sandwich. :class:`GatedMiner` produces the blocks, each one only
after the searcher has looked at everything it will include.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["GatedMiner", "MevSearcher", "Sandwich"]

FEE_BPS = 30


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """The pool's constant-product output with its 0.3% fee (mirrors Pool.vy)."""
    if amount_in <= 0 or reserve_in <= 0 or reserve_out <= 0:
        return 0
    with_fee = amount_in * (10_000 - FEE_BPS)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


@dataclass
class Sandwich:
    """One attack: the victim and the searcher's two transactions."""

    victim: str
    front_run: str
    back_run: str
    front_in: int
    victim_min_out: int


class MevSearcher:
    """Watches anvil's mempool from a thread and sandwiches swaps on ``world``'s router.

    Args:
        node: The :class:`~reversa.simulators.evm.AnvilNode`.
        world: The deployed :class:`~reversa.simulators.evm.DefiWorld`.
        account: An unlocked dev account with tokens and ether to attack with.
        poll_s: Mempool polling period.
    """

    def __init__(self, node: Any, world: Any, account: str, *, poll_s: float = 0.01) -> None:
        self.node = node
        self.world = world
        self.account = account
        self.poll_s = poll_s
        self.sandwiches: list[Sandwich] = []
        self.observed: list[str] = []
        self._seen: set[str] = set()
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._router = world.router
        from eth_utils.crypto import keccak

        self._selector = keccak(text="swap_exact_in(address,address,uint256,uint256,uint256)")[:4]

    def prepare(self) -> None:
        """Approve the router for every token (once, before the race starts)."""
        for token in self.world.tokens.values():
            self.node.transact(token.functions.approve(self._router.address, 2**255),
                               self.account)

    def start(self) -> MevSearcher:
        """Start watching."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="mev-searcher")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> MevSearcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                pending = self.node.public_pending()
            except Exception:  # noqa: S112 - a missed poll is retried on the next tick
                continue
            for sender, by_nonce in pending.items():
                if sender.lower() == self.account.lower():
                    continue
                for tx in by_nonce.values():
                    self._consider(tx)

    def has_considered(self, tx_hashes: set[str]) -> bool:
        """Whether every one of these pending transactions has been looked at (and
        attacked, if worth it)."""
        return tx_hashes <= self._done

    def _consider(self, tx: dict[str, Any]) -> None:
        tx_hash = str(tx.get("hash"))
        if tx_hash in self._seen:
            return
        self._seen.add(tx_hash)
        try:
            self._consider_new(tx, tx_hash)
        finally:
            self._done.add(tx_hash)

    def _consider_new(self, tx: dict[str, Any], tx_hash: str) -> None:
        self.observed.append(tx_hash)
        data = bytes.fromhex(str(tx.get("input", "0x")).removeprefix("0x"))
        to = str(tx.get("to") or "")
        if to.lower() != self._router.address.lower() or data[:4] != self._selector:
            return
        from eth_abi.abi import decode

        pool, token_in, amount_in, min_out, deadline = decode(
            ["address", "address", "uint256", "uint256", "uint256"], data[4:])
        to_checksum = self.node.w3.to_checksum_address
        pool, token_in = to_checksum(pool), to_checksum(token_in)
        # A failed attack (budget, race with the block) is simply not recorded.
        with contextlib.suppress(Exception):
            self._sandwich(tx, tx_hash, pool, token_in, int(amount_in), int(min_out),
                           int(deadline))

    def _sandwich(self, tx: dict[str, Any], tx_hash: str, pool: str, token_in: str,
                  amount_in: int, min_out: int, deadline: int) -> None:
        w3 = self.node.w3
        contract = self.world.pool1 if pool.lower() == self.world.pool1.address.lower() \
            else self.world.pool2
        token0 = contract.functions.token0().call()
        r0, r1 = contract.functions.reserve0().call(), contract.functions.reserve1().call()
        r_in, r_out = (r0, r1) if token0.lower() == token_in.lower() else (r1, r0)
        token_out = contract.functions.token1().call() if token0.lower() == token_in.lower() \
            else token0
        budget = self.world.tokens[self.world.symbol_of(token_in)].functions.balanceOf(
            self.account).call()
        front = self._best_front_run(amount_in, min_out, r_in, r_out, int(budget))
        if front <= amount_in // 1000:
            return  # nothing worth taking: the victim's bound is tight
        bought = amount_out(front, r_in, r_out)
        victim_tip = int(str(tx.get("maxPriorityFeePerGas") or tx.get("gasPrice") or "0x0"), 0)
        victim_fee = int(str(tx.get("maxFeePerGas") or tx.get("gasPrice") or "0x0"), 0)
        base_fee = int(w3.eth.get_block("latest")["baseFeePerGas"])
        # anvil orders its pool by max fee per gas: outbid the victim to go first,
        # underbid it (still above the base fee) to go right after it.
        front_fee = victim_fee * 2 + 10**9
        back_fee = max(victim_fee - 1, base_fee * 2)
        nonce = w3.eth.get_transaction_count(self.account, "pending")
        front_hash = self._router.functions.swap_exact_in(
            pool, token_in, front, 0, deadline).transact({
                "from": self.account, "nonce": nonce, "gas": 300_000,
                "maxFeePerGas": front_fee, "maxPriorityFeePerGas": victim_tip * 2 + 10**9})
        back_hash = self._router.functions.swap_exact_in(
            pool, token_out, bought, 0, deadline).transact({
                "from": self.account, "nonce": nonce + 1, "gas": 300_000,
                "maxFeePerGas": back_fee,
                "maxPriorityFeePerGas": min(max(victim_tip // 2, 1), back_fee)})
        self.sandwiches.append(Sandwich(tx_hash, "0x" + bytes(front_hash).hex(),
                                        "0x" + bytes(back_hash).hex(), front, min_out))

    @staticmethod
    def _best_front_run(amount_in: int, min_out: int, r_in: int, r_out: int,
                        budget: int) -> int:
        """Largest front-run (binary search) after which the victim still gets ``min_out``."""
        def victim_gets(front: int) -> int:
            bought = amount_out(front, r_in, r_out)
            return amount_out(amount_in, r_in + front, r_out - bought)

        if victim_gets(0) < min_out:
            return 0
        low, high = 0, budget
        for _ in range(128):
            if high - low <= 1:
                break
            mid = (low + high) // 2
            if victim_gets(mid) >= min_out:
                low = mid
            else:
                high = mid
        return low


class GatedMiner:
    """A block producer that mines only once the searcher has seen every pending transaction.

    Pass :meth:`tick` as the trading wallet's ``EvmNetwork(on_poll=...)``: blocks are
    then produced on the thread that sends the transactions, between its
    sends, so none can reach the pool after the searcher's last look and
    still make the block. A miner on its own thread (interval mining, or a
    gated loop) leaves that gap open, and under CPU load it widens to most of
    a block period: the victim's swap is mined before the searcher has seen
    it. On a real network a searcher has the whole slot to react; this gives
    it that, deterministically.

    Args:
        node: The :class:`~reversa.simulators.evm.AnvilNode` (automine is
            turned off while the miner is entered).
        searcher: The :class:`MevSearcher` to wait for.
        block_s: Minimum time between blocks (the block time).
        max_wait_s: Longest wait for the searcher before mining regardless
            (it missed the slot).
    """

    def __init__(self, node: Any, searcher: MevSearcher, *, block_s: float = 1.0,
                 max_wait_s: float = 10.0) -> None:
        self.node = node
        self.searcher = searcher
        self.block_s = block_s
        self.max_wait_s = max_wait_s
        self.missed = 0
        self._last: float | None = None
        self._mode: tuple[bool, Any] | None = None

    def __enter__(self) -> GatedMiner:
        self._mode = self.node.mining_mode()
        self.node.set_automine(False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._mode is not None:
            self.node.restore_mining(self._mode)

    def tick(self) -> None:
        """Mine one block if a block time has passed, once the searcher has seen the pool."""
        if self._last is not None and time.monotonic() - self._last < self.block_s:
            return
        give_up = time.monotonic() + self.max_wait_s
        while not self.searcher.has_considered(self._pending_from_others()):
            if time.monotonic() >= give_up:
                self.missed += 1
                break
            time.sleep(0.005)  # the searcher's thread is working: give it the GIL
        self.node.mine(1)
        self._last = time.monotonic()

    def _pending_from_others(self) -> set[str]:
        pending = self.node.public_pending()
        return {str(tx.get("hash")) for sender, by_nonce in pending.items()
                if sender.lower() != self.searcher.account.lower()
                for tx in by_nonce.values()}
