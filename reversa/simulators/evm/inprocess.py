"""An in-process Ethereum chain (eth-tester on py-evm): the fast default simulator.

It runs the real EVM, signs nothing itself (the adapter sends raw signed
transactions exactly as it would to a node) and adds what a test needs from a
chain: a block producer the adapter can drive (:meth:`InProcessChain.tick`),
a pause switch to keep transactions pending, block hooks for other market
participants, snapshots and reorgs that drop mined blocks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BlockHook", "InProcessChain"]

BlockHook = Callable[["InProcessChain", int], None]
"""Called with the chain and the new block number after each block the chain mines."""


class InProcessChain:
    """A py-evm chain behind a web3 provider, with mining under test control.

    Args:
        auto_mine: Mine every transaction the moment it arrives (as a dev node
            with automine does). When False, transactions wait in the pending
            pool until :meth:`tick` or :meth:`mine` runs.

    Attributes:
        w3: A ``web3.Web3`` connected to the chain.
        accounts: Pre-funded, unlocked accounts (usable with ``send_transaction``).
    """

    def __init__(self, *, auto_mine: bool = True) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        self._backend = PyEVMBackend()
        self.tester = EthereumTester(self._backend)
        self.w3: Any = Web3(EthereumTesterProvider(self.tester))
        self.accounts: list[str] = list(self.w3.eth.accounts)
        # eth-tester is not thread-safe; the private relay serves from its own thread.
        self.lock = threading.RLock()
        self._hooks: list[BlockHook] = []
        self._paused = False
        self._in_hook = False
        self.set_auto_mine(auto_mine)

    # -- mining -------------------------------------------------------------------
    @property
    def auto_mine(self) -> bool:
        """Whether transactions are mined on arrival."""
        return bool(self.tester.auto_mine_transactions)

    def set_auto_mine(self, enabled: bool) -> None:
        """Turn automine on or off."""
        with self.lock:
            if enabled:
                self.tester.enable_auto_mine_transactions()
            else:
                self.tester.disable_auto_mine_transactions()

    def pause(self) -> None:
        """Stop producing blocks: :meth:`tick` does nothing until :meth:`resume`.

        Together with ``auto_mine=False`` this keeps sent transactions pending,
        as on a congested network.
        """
        self._paused = True

    def resume(self) -> None:
        """Produce blocks again."""
        self._paused = False

    @property
    def paused(self) -> bool:
        """Whether block production is paused."""
        return self._paused

    def tick(self) -> None:
        """One block interval passes: mine a block unless paused.

        Pass this as the adapter network's ``on_poll`` hook, so that waiting
        for confirmations makes the chain advance, as time does on a real one.
        """
        if not self._paused:
            self.mine()

    def mine(self, blocks: int = 1) -> int:
        """Mine ``blocks`` blocks (with any pending transactions) and run hooks.

        Returns:
            The new head block number.
        """
        with self.lock:
            for _ in range(blocks):
                self.tester.mine_blocks(1)
                self._run_hooks()
            return int(self.w3.eth.block_number)

    def on_block(self, hook: BlockHook) -> None:
        """Run ``hook`` after every block mined through :meth:`mine` or :meth:`tick`."""
        self._hooks.append(hook)

    def clear_hooks(self) -> None:
        """Remove every block hook."""
        self._hooks.clear()

    def _run_hooks(self) -> None:
        # A hook that sends and mines its own transaction must not re-enter itself.
        if self._in_hook:
            return
        self._in_hook = True
        try:
            number = int(self.w3.eth.block_number)
            for hook in list(self._hooks):
                hook(self, number)
        finally:
            self._in_hook = False

    # -- state control ------------------------------------------------------------
    def snapshot(self) -> str:
        """Remember the current head; returns its block hash (hex)."""
        with self.lock:
            return "0x" + bytes(self._backend.take_snapshot()).hex()

    def revert(self, snapshot: str) -> None:
        """Make the snapshot's block the head again, discarding later blocks and pending txs."""
        with self.lock:
            self._backend.revert_to_snapshot(bytes.fromhex(snapshot.removeprefix("0x")))
            # eth-tester keeps its pending pool outside the chain; without this, a
            # transaction from the discarded future would be mined into the past.
            self.tester._pending_transactions = []

    def reorg(self, depth: int, *, new_blocks: int | None = None) -> list[str]:
        """Replace the last ``depth`` blocks with empty ones, dropping their transactions.

        The replacement chain is one block longer than the dropped one, as a
        heavier fork would be. Dropped transactions are gone from the node
        (not put back in the pending pool), the worst case for a client.

        Args:
            depth: How many blocks to drop (>= 1).
            new_blocks: Length of the replacement fork (default ``depth + 1``).

        Returns:
            Hashes of the transactions that were dropped.
        """
        if depth < 1:
            raise ValueError("reorg depth must be >= 1")
        with self.lock:
            head = int(self.w3.eth.block_number)
            if depth > head:
                raise ValueError(f"cannot reorg {depth} blocks of a {head}-block chain")
            dropped: list[str] = []
            for number in range(head - depth + 1, head + 1):
                block = self.w3.eth.get_block(number)
                dropped.extend("0x" + bytes(tx).hex() for tx in block["transactions"])
            ancestor = self.w3.eth.get_block(head - depth)["hash"]
            self._backend.revert_to_snapshot(bytes(ancestor))
            # Mine the replacement fork without hooks: other actors react to it later.
            self.tester.mine_blocks(depth + 1 if new_blocks is None else new_blocks)
            return dropped

    # -- accounts -----------------------------------------------------------------
    def fund(self, address: str, wei: int) -> None:
        """Send ``wei`` from a pre-funded account and mine it."""
        with self.lock:
            tx = self.w3.eth.send_transaction(
                {"from": self.accounts[0], "to": address, "value": wei}
            )
            if not self.auto_mine:
                self.tester.mine_blocks(1)
            self.w3.eth.get_transaction_receipt(tx)

    def transact(self, call: Any, sender: str) -> Any:
        """Send a contract call from an unlocked account and mine it.

        Args:
            call: A web3 contract function call (``contract.functions.f(args)``).
            sender: One of :attr:`accounts`.

        Returns:
            The transaction receipt.

        Raises:
            RuntimeError: The transaction reverted.
        """
        with self.lock:
            tx_hash = call.transact({"from": sender})
            if not self.auto_mine:
                self.tester.mine_blocks(1)
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            if receipt["status"] != 1:
                raise RuntimeError(f"setup transaction {tx_hash.hex()} reverted")
            return receipt
