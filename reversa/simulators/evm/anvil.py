"""Start and drive a throwaway anvil node (Foundry) on a free loopback port.

anvil is installed by ``scripts/setup-anvil.sh`` from the npm package
``@foundry-rs/anvil`` into ``.tools/anvil``; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .relay import post_json

__all__ = ["ANVIL_INSTALL_HINT", "AnvilNode", "find_anvil"]

ANVIL_INSTALL_HINT = (
    "anvil not found: run scripts/setup-anvil.sh (installs @foundry-rs/anvil with npm into "
    ".tools/anvil) or set REVERSA_ANVIL to the binary"
)


def _tools_dirs() -> list[Path]:
    here = Path(__file__).resolve()
    roots = [Path.cwd(), *(p for p in here.parents if (p / "pyproject.toml").exists())]
    return [root / ".tools" / "anvil" for root in roots]


def find_anvil() -> str | None:
    """The anvil binary: ``$REVERSA_ANVIL``, then ``.tools/anvil``, then ``PATH``."""
    env = os.environ.get("REVERSA_ANVIL")
    if env and Path(env).is_file():
        return env
    for tools in _tools_dirs():
        modules = tools / "node_modules"
        candidates = [*sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil")),
                      modules / ".bin" / "anvil"]
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("anvil")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """A private anvil process for one test or demo.

    Args:
        binary: Path of anvil (default: :func:`find_anvil`).
        chain_id: Chain id to run with.
        block_time: Interval mining period in seconds (None: automine).
        start_timeout_s: How long to wait for the node to answer.

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        w3: A web3 client on it.
        accounts: anvil's unlocked, pre-funded dev accounts.
        private_flow: Held while a privately included transaction passes
            through anvil's pool on its way into a block (see
            :meth:`public_pending`).
    """

    def __init__(
        self,
        binary: str | None = None,
        *,
        chain_id: int = 31337,
        block_time: float | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        found = binary or find_anvil()
        if found is None:
            raise FileNotFoundError(ANVIL_INSTALL_HINT)
        self.binary = found
        self.chain_id = chain_id
        self.block_time = block_time
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.w3: Any = None
        self.accounts: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self.private_flow = threading.Lock()

    def start(self) -> AnvilNode:
        """Launch anvil and wait until it answers JSON-RPC."""
        port = _free_port()
        args = [self.binary, "--host", "127.0.0.1", "--port", str(port), "--silent",
                "--chain-id", str(self.chain_id)]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"anvil exited with code {self._proc.returncode} at start")
            try:
                self.rpc("eth_chainId")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"anvil did not answer on {self.url}") from None
                time.sleep(0.02)  # polling a starting process; not a timing assertion
        from web3 import HTTPProvider, Web3

        self.w3 = Web3(HTTPProvider(self.url, request_kwargs={"timeout": 30}))
        self.accounts = list(self.w3.eth.accounts)
        if self.block_time is not None:
            self.set_interval_mining(self.block_time)
        return self

    def stop(self) -> None:
        """Terminate the process (kill it if it does not exit)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- JSON-RPC -----------------------------------------------------------------
    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Call a JSON-RPC method; raises RuntimeError on a JSON-RPC error."""
        reply = post_json(self.url, {"jsonrpc": "2.0", "id": 1, "method": method,
                                     "params": params or []})
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result")

    def public_pending(self) -> dict[str, dict[str, Any]]:
        """The pending pool as a mempool watcher sees it: ``{sender: {nonce: tx}}``.

        anvil cannot mine a transaction without putting it in its pool first,
        so private inclusion leaves one there for the length of two calls. A
        searcher polling every few milliseconds catches it there often. The read
        waits for :attr:`private_flow`, so, as on a real network where private
        order flow is never gossiped, no watcher ever sees it.
        """
        with self.private_flow:
            pending = self.rpc("txpool_content").get("pending", {})
        return dict(pending)

    # -- mining -------------------------------------------------------------------
    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` blocks now."""
        self.rpc("anvil_mine", [hex(blocks)])

    def tick(self) -> None:
        """Mine one block (an ``on_poll`` hook for automine-off tests)."""
        self.mine(1)

    def set_automine(self, enabled: bool) -> None:
        """Automine on or off (off without interval mining: blocks only on demand)."""
        self.rpc("evm_setAutomine", [enabled])

    def set_interval_mining(self, seconds: float) -> None:
        """Mine a block every ``seconds`` (turns automine off)."""
        self.rpc("evm_setAutomine", [False])
        self.rpc("evm_setIntervalMining", [seconds])

    def mining_mode(self) -> tuple[bool, Any]:
        """``(automine, interval)`` as anvil reports them."""
        return bool(self.rpc("anvil_getAutomine")), self.rpc("anvil_getIntervalMining")

    def restore_mining(self, mode: tuple[bool, Any]) -> None:
        """Return to a mode saved with :meth:`mining_mode`."""
        automine, interval = mode
        self.rpc("evm_setAutomine", [automine])
        if not automine and interval:
            self.rpc("evm_setIntervalMining", [interval])

    # -- state control ------------------------------------------------------------
    def snapshot(self) -> str:
        """``evm_snapshot``: an id to revert to."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot: str) -> None:
        """``evm_revert`` to a snapshot (consumes it)."""
        self.rpc("evm_revert", [snapshot])

    def reorg(self, depth: int, txs: list[Any] | None = None) -> None:
        """``anvil_reorg``: replace the last ``depth`` blocks (dropping their transactions)."""
        self.rpc("anvil_reorg", [depth, txs or []])

    def fund(self, address: str, wei: int) -> None:
        """Set an account's ether balance."""
        self.rpc("anvil_setBalance", [address, hex(wei)])

    def transact(self, call: Any, sender: str) -> Any:
        """Send a contract call from an unlocked dev account and wait for its receipt."""
        tx_hash = call.transact({"from": sender})
        automine, interval = self.mining_mode()
        if not automine and not interval:
            self.mine(1)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60,
                                                           poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError(f"setup transaction {tx_hash.hex()} reverted")
        return receipt
