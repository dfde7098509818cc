"""Routes a signed transaction can take to the network.

:class:`PublicSubmitter` broadcasts through the node (the public mempool).
:class:`PrivateSubmitter` hands the transaction to a private relay, which
includes it in a block without exposing it to mempool watchers (searchers).
Both take raw signed bytes only: signing happens before, in the wallet.
"""

from __future__ import annotations

from typing import Any, Protocol

from .errors import is_already_known, translate
from .policy import PrivateEndpoint

__all__ = ["PrivateSubmitter", "PublicSubmitter", "Submitter"]


class Submitter(Protocol):
    """Sends raw signed transactions along one route."""

    route: str

    def submit(self, raw: bytes, tx_hash: str) -> None:
        """Hand ``raw`` to the network.

        Raises:
            TransientError: It certainly did not get through (retry).
            OutcomeUnknown: It may have got through.
            PermanentError: The endpoint refused it.
        """
        ...


class PublicSubmitter:
    """``eth_sendRawTransaction`` on the node: visible to everyone watching the mempool."""

    route = "public"

    def __init__(self, w3: Any) -> None:
        self._w3 = w3

    def submit(self, raw: bytes, tx_hash: str) -> None:
        """Broadcast ``raw`` through the node."""
        try:
            self._w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            if is_already_known(exc):
                return
            raise translate(exc, f"public submit of {tx_hash}", sent=True) from None


class PrivateSubmitter:
    """Submits to a private relay (``eth_sendPrivateTransaction`` or a protect-style RPC).

    Args:
        endpoint: The relay's URL and method.
        block_number: Callable returning the current block (for ``maxBlockNumber``).
    """

    route = "private"

    def __init__(self, endpoint: PrivateEndpoint, block_number: Any) -> None:
        from web3 import HTTPProvider

        self.endpoint = endpoint
        self._block_number = block_number
        self._provider = HTTPProvider(endpoint.url, request_kwargs={"timeout": endpoint.timeout_s})

    def submit(self, raw: bytes, tx_hash: str) -> None:
        """Hand ``raw`` to the relay."""
        raw_hex = "0x" + raw.hex()
        if self.endpoint.method == "eth_sendPrivateTransaction":
            params: list[Any] = [
                {
                    "tx": raw_hex,
                    "maxBlockNumber": hex(int(self._block_number()) + self.endpoint.max_blocks),
                    "preferences": {"fast": True},
                }
            ]
        else:
            params = [raw_hex]
        what = f"private submit of {tx_hash} to {self.endpoint!r}"
        try:
            response = self._provider.make_request(self.endpoint.method, params)
        except Exception as exc:
            if is_already_known(exc):
                return
            raise translate(exc, what, sent=True) from None
        error = response.get("error") if isinstance(response, dict) else None
        if error:
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            failure = RuntimeError(str(message))
            if is_already_known(failure):
                return
            raise translate(failure, what, sent=False) from None
