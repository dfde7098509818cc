"""A private transaction relay: a JSON-RPC endpoint that keeps transactions out of the mempool.

It accepts ``eth_sendPrivateTransaction`` (``[{"tx": raw, ...}]``, as
Flashbots' relay does) and ``eth_sendRawTransaction`` (as a protect-style RPC
URL does), and hands each transaction straight to the block producer, which
includes it in a block of its own without ever placing it in the public
pending pool that searchers watch. Other methods are forwarded to the node,
so the relay URL also works as an ordinary RPC URL.

It keeps the fencing half of the effect boundary: a submission carrying a
``Reversa-Fence: <saga>;<epoch>`` header older than one the relay has already
seen for that saga is refused (JSON-RPC error ``fenced``), so a paused former
owner of a saga cannot get a transaction in through it once the new owner has
submitted. Idempotency keys are not the relay's business: a transaction's
nonce is its key on chain, and the adapter's journal blocks keys.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from reversa.core.context import Fence
from reversa.core.errors import Fenced
from reversa.core.fencing import FenceGate

__all__ = ["AnvilInclusion", "InProcessInclusion", "Inclusion", "PrivateRelay"]


class Inclusion(Protocol):
    """How a relay gets a transaction into a block privately, and reaches the node."""

    def include(self, raw: bytes) -> str:
        """Put ``raw`` in a block without exposing it; return its hash."""
        ...

    def forward(self, method: str, params: list[Any]) -> Any:
        """Answer any other JSON-RPC method from the node."""
        ...


def _tx_hash(raw: bytes) -> str:
    from eth_utils.crypto import keccak

    return "0x" + keccak(raw).hex()


class InProcessInclusion:
    """Private inclusion on an :class:`~reversa.simulators.evm.InProcessChain`.

    Under the chain's lock the transaction is added and a block is mined at
    once, so nothing else observes it pending.
    """

    def __init__(self, chain: Any) -> None:
        self.chain = chain

    def include(self, raw: bytes) -> str:
        """Add and mine in one locked step."""
        with self.chain.lock:
            self.chain.w3.eth.send_raw_transaction(raw)
            if not self.chain.auto_mine:
                self.chain.mine()
        return _tx_hash(raw)

    def forward(self, method: str, params: list[Any]) -> Any:
        """Answer from the in-process node."""
        with self.chain.lock:
            response = self.chain.w3.provider.make_request(method, params)
        if "error" in response:
            raise RuntimeError(str(response["error"]))
        return response.get("result")


class AnvilInclusion:
    """Private inclusion on anvil: submit, then build a block at once.

    The relay acts as the block builder: it hands the transaction to anvil and
    mines a block in the very next call, holding the node's
    :attr:`~reversa.simulators.evm.AnvilNode.private_flow` across both, so
    public mempool readers (:meth:`~reversa.simulators.evm.AnvilNode.public_pending`)
    never see it pending. A same-nonce replacement displaces the pending
    original first, as a builder would prefer it.
    """

    def __init__(self, node: Any) -> None:
        self.node = node

    def include(self, raw: bytes) -> str:
        """Submit and mine one block, unseen by mempool watchers."""
        with self.node.private_flow:
            tx_hash = str(self.node.rpc("eth_sendRawTransaction", ["0x" + raw.hex()]))
            self.node.rpc("evm_mine")
        return tx_hash

    def forward(self, method: str, params: list[Any]) -> Any:
        """Answer from anvil."""
        return self.node.rpc(method, params)


class PrivateRelay:
    """A loopback JSON-RPC server in front of a private inclusion backend.

    Use as a context manager; :attr:`url` is where the adapter's
    :class:`~reversa.adapters.evm.PrivateEndpoint` points.

    Attributes:
        received: Hashes of the transactions included privately, in order.
        available: Set False to make the relay refuse submissions (an outage).
        gate: Highest fencing token seen per saga; ``gate.refused`` counts the
            submissions refused for a stale one.
    """

    FENCE_HEADER = "Reversa-Fence"

    def __init__(self, backend: Inclusion) -> None:
        self.backend = backend
        self.received: list[str] = []
        self.available = True
        self.gate = FenceGate()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The relay's ``http://127.0.0.1:<port>`` URL."""
        if self._server is None:
            raise RuntimeError("the relay is not started; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> PrivateRelay:
        """Listen on a free loopback port."""
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length) or b"{}")
                fence = self.headers.get(relay.FENCE_HEADER)
                body = json.dumps(relay.handle(request, fence)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean; the relay records what it did

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="private-relay")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PrivateRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, request: Any, fence: str | None = None) -> Any:
        """Answer one JSON-RPC request (or a batch); ``fence`` is the ``Reversa-Fence`` header."""
        if isinstance(request, list):
            return [self.handle(item, fence) for item in request]
        rid, method = request.get("id"), request.get("method", "")
        params = request.get("params") or []
        try:
            if method in ("eth_sendPrivateTransaction", "eth_sendRawTransaction"):
                if not self.available:
                    return _error(rid, -32603, "relay unavailable")
                raw_hex = params[0]["tx"] if isinstance(params[0], dict) else params[0]
                # Admission and inclusion under one lock: a stale owner cannot
                # slip in between a newer owner's admission and its inclusion.
                with self.gate.lock:
                    try:
                        self.gate.admit(Fence.parse(fence) if fence else None)
                    except ValueError as exc:
                        return _error(rid, -32602, f"bad {self.FENCE_HEADER} header: {exc}")
                    except Fenced as exc:
                        return _error(rid, -32001, f"fenced: {exc.message}")
                    tx_hash = self.backend.include(
                        bytes.fromhex(str(raw_hex).removeprefix("0x")))
                self.received.append(tx_hash)
                return {"jsonrpc": "2.0", "id": rid, "result": tx_hash}
            return {"jsonrpc": "2.0", "id": rid, "result": _jsonable(
                self.backend.forward(method, params))}
        except Exception as exc:
            return _error(rid, -32000, str(exc))


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "hex") and not isinstance(value, int | str):
        return "0x" + bytes(value).hex()
    return value


def post_json(url: str, payload: Any, timeout: float = 10.0) -> Any:
    """POST a JSON-RPC payload (used by the anvil node helper)."""
    request = urllib.request.Request(  # noqa: S310 - loopback URLs built by the simulators
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())
