"""Routes a signed transaction can take to the network.

:class:`PublicSubmitter` broadcasts through the node (the public mempool).
:class:`PrivateSubmitter` hands the transaction to a private relay, which
includes it in a block without exposing it to mempool watchers (searchers).
Both take raw signed bytes only: signing happens before, in the wallet.

The private route carries the saga's fencing token in the ``Reversa-Fence``
HTTP header, so a relay that checks it refuses a former owner of the saga
once the new owner has spoken to it. A node's ``eth_sendRawTransaction``
cannot check fences: there the journal's fenced write before broadcast and
the same-nonce replacement of a rollback are the boundary (see docs/evm.md).
"""

from __future__ import annotations

from typing import Any, Protocol

from reversa.core.context import Fence

from .errors import is_already_known, translate
from .policy import PrivateEndpoint

__all__ = ["FENCE_HEADER", "PrivateSubmitter", "PublicSubmitter", "Submitter"]

FENCE_HEADER = "Reversa-Fence"
"""HTTP header carrying ``<saga_id>;<epoch>`` (:meth:`Fence.header`)."""


class Submitter(Protocol):
    """Sends raw signed transactions along one route."""

    route: str

    def submit(self, raw: bytes, tx_hash: str, fence: Fence | None = None) -> None:
        """Hand ``raw`` to the network, with the saga's fence where the route can carry it.

        Raises:
            TransientError: It certainly did not get through (retry).
            OutcomeUnknown: It may have got through.
            Fenced: The endpoint refused the fence: a newer owner took the saga.
            PermanentError: The endpoint refused it.
        """
        ...


class PublicSubmitter:
    """``eth_sendRawTransaction`` on the node: visible to everyone watching the mempool."""

    route = "public"

    def __init__(self, w3: Any) -> None:
        self._w3 = w3

    def submit(self, raw: bytes, tx_hash: str, fence: Fence | None = None) -> None:
        """Broadcast ``raw`` through the node (which cannot check ``fence``)."""
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
        self.endpoint = endpoint
        self._block_number = block_number

    def _provider(self, fence: Fence | None) -> Any:
        # Headers are fixed per provider, and the fence differs per call: a
        # provider per submission (cheap; submissions are a few per step).
        from web3 import HTTPProvider

        headers = dict(HTTPProvider.get_request_headers())
        if fence is not None:
            headers[FENCE_HEADER] = fence.header()
        return HTTPProvider(self.endpoint.url, request_kwargs={
            "timeout": self.endpoint.timeout_s, "headers": headers})

    def submit(self, raw: bytes, tx_hash: str, fence: Fence | None = None) -> None:
        """Hand ``raw`` to the relay, with ``fence`` in the ``Reversa-Fence`` header."""
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
            response = self._provider(fence).make_request(self.endpoint.method, params)
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
