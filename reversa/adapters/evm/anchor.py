"""Anchor audit checkpoints on an EVM chain: a witness nobody can rewrite.

The ``Anchor`` contract (``contracts/Anchor.vy``) keeps, per database log, the
root, size and statement digest of each checkpoint, in order, once each, from
its deployer only. :class:`ChainWitness` implements the core's ``Witness``
interface on it, so a store publishes every checkpoint there as well as (or
instead of) an append-only directory, and ``reversa audit verify --chain URL``
compares the database with it.

Transactions come from an unlocked account of the node (a dev node: anvil, the
in-process chain) or are signed locally by a :class:`LocalSigner` (a real
network), exactly as the adapter's other transactions.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from reversa.core.errors import ConfigError
from reversa.core.evidence.witness import Checkpoint, WitnessConflict, Witnessed, WitnessError

from .signer import LocalSigner

__all__ = ["ChainWitness", "anchor_artifact", "parse_sender"]


@lru_cache(maxsize=1)
def anchor_artifact() -> tuple[list[dict[str, Any]], str]:
    """ABI and creation bytecode of the anchor contract (compiled once per process)."""
    import vyper  # the compiler ships with reversa[evm]; needed only to deploy

    source = resources.files(__package__).joinpath("contracts", "Anchor.vy").read_text("utf-8")
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return list(out["abi"]), str(out["bytecode"])


def _log_key(log: str) -> bytes:
    # Log ids are free text in the database; the contract keys logs by 32 bytes.
    return hashlib.sha256(log.encode()).digest()


class ChainWitness:
    """The anchor contract at ``address``, as a checkpoint witness.

    Args:
        w3: A ``web3.Web3`` connected to the chain.
        address: The deployed anchor contract.
        sender: Who sends anchor transactions: an unlocked account address of the
            node, a :class:`LocalSigner`, or None for the node's first account.
            Reading (verification) needs none.
        timeout_s: How long to wait for an anchor transaction's receipt.
    """

    def __init__(self, w3: Any, address: str, *, sender: str | LocalSigner | None = None,
                 timeout_s: float = 60.0) -> None:
        abi, _ = anchor_artifact()
        self.w3 = w3
        self.address = w3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=abi)
        self.sender = sender
        self.timeout_s = timeout_s
        self.name = f"chain:{self.address}"

    @classmethod
    def connect(cls, url: str, address: str, *, sender: str | None = None) -> ChainWitness:
        """The anchor at ``address`` on the JSON-RPC node at ``url``.

        ``sender`` is an unlocked account address, or ``key:<path>`` of a file
        holding an account's private key in hex.

        Raises:
            ConfigError: The node does not answer, or there is no contract there.
        """
        from web3 import HTTPProvider, Web3

        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
        try:
            code = w3.eth.get_code(Web3.to_checksum_address(address))
        except ValueError:
            raise ConfigError(f"anchor contract address {address!r} is not an address") from None
        except Exception as exc:
            raise ConfigError(f"cannot reach the chain at {url} ({type(exc).__name__}); check "
                              "--chain / REVERSA_ANCHOR_URL") from None
        if not code:
            raise ConfigError(f"no contract at {address} on {url}; deploy one with `reversa "
                              "audit anchor --chain URL`")
        return cls(w3, address, sender=parse_sender(sender))

    @classmethod
    def deploy(cls, w3: Any, *, sender: str | LocalSigner | None = None) -> ChainWitness:
        """Deploy a new anchor contract (its deployer is the only account that may anchor)."""
        abi, bytecode = anchor_artifact()
        factory = w3.eth.contract(abi=abi, bytecode=bytecode)
        receipt = _send(w3, factory.constructor(), sender, 120.0)
        return cls(w3, receipt["contractAddress"], sender=sender)

    # -- Witness ------------------------------------------------------------------
    def publish(self, checkpoint: Checkpoint) -> None:
        """Anchor ``checkpoint`` (a no-op if this very statement is already anchored).

        Raises:
            WitnessConflict: Another statement is anchored under that number.
            WitnessError: The transaction failed or reverted.
        """
        key = _log_key(checkpoint.log)
        digest = bytes.fromhex(checkpoint.digest())
        if self.latest(checkpoint.log) >= checkpoint.number:
            held = bytes(self.contract.functions.statements(key, checkpoint.number).call())
            if held != digest:
                raise WitnessConflict(
                    f"anchor {self.address} holds a different checkpoint #{checkpoint.number} "
                    "for this database: it was restored from an older copy (or forked)")
            return
        call = self.contract.functions.anchor(key, checkpoint.number, checkpoint.size,
                                              bytes.fromhex(checkpoint.root), digest)
        try:
            _send(self.w3, call, self.sender, self.timeout_s)
        except WitnessError:
            raise
        except Exception as exc:
            raise WitnessError(f"anchoring checkpoint #{checkpoint.number} on "
                               f"{self.address} failed ({type(exc).__name__})") from None

    def latest(self, log: str) -> int:
        """The highest checkpoint number anchored for ``log``."""
        return int(self.contract.functions.latest(_log_key(log)).call())

    def read(self, log: str) -> list[Witnessed]:
        """Every checkpoint anchored for ``log`` (root, size and statement digest)."""
        key = _log_key(log)
        out = []
        for number in range(1, self.latest(log) + 1):
            fn = self.contract.functions
            out.append(Witnessed(
                self.name, number, int(fn.sizes(key, number).call()),
                bytes(fn.roots(key, number).call()).hex(),
                bytes(fn.statements(key, number).call()).hex()))
        return out


def parse_sender(spec: str | None) -> str | LocalSigner | None:
    """An anchor sender from text: an account address, or ``key:<path>`` of a hex key file.

    Raises:
        ConfigError: The key file cannot be read or holds no key (never quoted).
    """
    if spec is None or not spec.startswith("key:"):
        return spec
    path = Path(spec[4:]).expanduser()
    try:
        text = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the anchor account key {path} ({exc.strerror})") from None
    return LocalSigner(text)


def _send(w3: Any, call: Any, sender: str | LocalSigner | None, timeout_s: float) -> Any:
    if isinstance(sender, LocalSigner):
        tx = call.build_transaction({
            "from": sender.address, "chainId": int(w3.eth.chain_id),
            "nonce": int(w3.eth.get_transaction_count(sender.address, "pending"))})
        tx_hash = w3.eth.send_raw_transaction(sender.sign(tx).raw)
    else:
        tx_hash = call.transact({"from": sender or w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.05)
    if receipt["status"] != 1:
        raise WitnessError(f"anchor transaction {bytes(tx_hash).hex()} reverted")
    return receipt
