"""The mock ledger (and FX venue) over HTTP on loopback, and the matching client.

Wire protocol: ``POST /v1/ledger/<operation>`` and ``POST /v1/fx/<operation>``
with a JSON body; ``200 {"result": ...}`` or an error status with
``{"error": {"type", "code", "message"}}``. A crash fault in the middle of a
call drops the connection without a reply, as a dying server does. The caller's
fencing token travels in the ``Reversa-Fence: <saga>;<epoch>`` header; a stale
one, or an id a block tombstoned, is refused with 409 ``LedgerFenced`` (the venue
answers 412 ``fenced``).

Simulator controls, for tests in other processes: ``/v1/admin/stats`` (what
landed and what was refused, per key), ``/v1/admin/faults`` (arm a fault rule)
and ``/v1/admin/release`` (let stalled calls return); the body's ``service``
(``ledger`` by default, or ``fx``) picks the simulator.

One routing function, :func:`route`, serves both the socket server and
:meth:`HttpLedgerClient.in_process` (an ``httpx.MockTransport``), so the client
and the wire format are exercised without sockets too.

Run it: ``reversa sim ledger --port 8700`` (or ``python -m
reversa.simulators.ledger.http --port 8700``). In tests:
``with start_server(ledger, venue) as server: HttpLedgerClient(server.url)``.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from reversa.adapters.payments.ledger_api import (
    Account,
    IdempotencyConflict,
    InvalidState,
    LedgerAPI,
    LedgerError,
    LedgerFenced,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    Payment,
    PaymentRequest,
    Recall,
    Transfer,
    TransferRequest,
    error_from_dict,
)
from reversa.core.context import Fence

from ..fx_venue import FxMarket, FxVenue
from ._ledger import MockLedger
from .faults import Fault, FaultKind

__all__ = [
    "FENCE_HEADER",
    "BackgroundServer",
    "HttpLedgerClient",
    "default_venue",
    "route",
    "serve",
    "start_server",
]

FENCE_HEADER = "Reversa-Fence"
"""The HTTP header carrying the caller's fencing token, ``<saga>;<epoch>``."""

_STATUS: dict[type[LedgerError], int] = {
    LedgerFenced: 409,
    LedgerTimeout: 504,
    LedgerUnavailable: 503,
    LedgerRejected: 422,
    InvalidState: 422,
    IdempotencyConflict: 409,
    LedgerNotFound: 404,
}


def default_venue() -> FxVenue:
    """A venue quoting GBP/EUR, EUR/USD and GBP/USD (what ``reversa sim ledger`` serves)."""
    return FxVenue(
        [FxMarket("GBP", "EUR", 1.1647), FxMarket("EUR", "USD", 1.0850),
         FxMarket("GBP", "USD", 1.2640)],
    )


def _ledger_ops(
    ledger: LedgerAPI, fence: Fence | None
) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    def transfers(p: Mapping[str, Any]) -> list[TransferRequest]:
        return [TransferRequest.from_dict(r) for r in p["transfers"]]

    f = fence
    return {
        "create_account": lambda p: ledger.create_account(
            p["id"], p["currency"], p.get("role", "customer"),
            debits_must_not_exceed_credits=bool(p.get("debits_must_not_exceed_credits")),
            fence=f,
        ),
        "get_account": lambda p: ledger.get_account(p["id"], fence=f),
        "get_accounts": lambda p: ledger.get_accounts(p["ids"], fence=f),
        "create_transfer": lambda p: ledger.create_transfer(TransferRequest.from_dict(p),
                                                            fence=f),
        "create_linked": lambda p: ledger.create_linked(transfers(p), fence=f),
        "post_pending": lambda p: ledger.post_pending(p["id"], p["pending_id"], p.get("amount"),
                                                      fence=f),
        "void_pending": lambda p: ledger.void_pending(p["id"], p["pending_id"], fence=f),
        "get_transfer": lambda p: ledger.get_transfer(p["id"], fence=f),
        "block_transfer": lambda p: ledger.block_transfer(p["id"], fence=f),
        "find_transfers": lambda p: ledger.find_transfers(
            prefix=p.get("prefix"), corrects=p.get("corrects"), pending_id=p.get("pending_id"),
            fence=f,
        ),
        "submit_payment": lambda p: ledger.submit_payment(PaymentRequest.from_dict(p), fence=f),
        "get_payment": lambda p: ledger.get_payment(p["id"], fence=f),
        "block_payment": lambda p: ledger.block_payment(p["id"], fence=f),
        "find_payments": lambda p: ledger.find_payments(prefix=p["prefix"], fence=f),
        "cancel_payment": lambda p: ledger.cancel_payment(p["payment_id"], fence=f),
        "return_payment": lambda p: ledger.return_payment(p["payment_id"], p["return_id"],
                                                          fence=f),
        "request_recall": lambda p: ledger.request_recall(
            p["recall_id"], p["payment_id"], p["reason"], fence=f
        ),
        "get_recall": lambda p: ledger.get_recall(p["id"], fence=f),
    }


def _encode(value: Any) -> Any:
    if isinstance(value, list):
        return [_encode(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _bad(code: str, message: str) -> tuple[int, Any]:
    return 400, {"error": {"type": "LedgerError", "code": code, "message": message}}


def route(
    ledger: LedgerAPI | None,
    venue: FxVenue | None,
    path: str,
    body: bytes,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """Serve one call: ``(status, JSON body)``; status 0 means "drop the connection".

    The caller's fencing token arrives in the ``Reversa-Fence`` header
    (``<saga>;<epoch>``) and is handed to the ledger or venue with the call.
    """
    path = path.rstrip("/")
    if path == "/v1/health":
        return 200, {"result": {"ledger": ledger is not None, "fx": venue is not None}}
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return _bad("bad_json", "bad JSON")
    fence_header = {k.lower(): v for k, v in (headers or {}).items()}.get(FENCE_HEADER.lower())
    try:
        fence = Fence.parse(fence_header) if fence_header else None
    except ValueError as exc:
        return _bad("bad_fence", f"{FENCE_HEADER}: {exc}")
    if path.startswith("/v1/admin/"):
        return _admin(ledger, venue, path.removeprefix("/v1/admin/"), payload)
    prefix, _, op = path.rpartition("/")
    if prefix == "/v1/fx" and venue is not None:
        return venue.dispatch(op, payload, fence)
    handler = _ledger_ops(ledger, fence).get(op) if prefix == "/v1/ledger" and ledger else None
    if handler is None:
        return 404, {"error": {"type": "LedgerError", "code": "no_route", "message": path}}
    try:
        return 200, {"result": _encode(handler(payload))}
    except LedgerUnavailable as exc:
        return (0 if exc.in_doubt else 503), {"error": exc.to_dict()}
    except LedgerError as exc:
        return _STATUS.get(type(exc), 500), {"error": exc.to_dict()}
    except (KeyError, TypeError, ValueError) as exc:
        return _bad("bad_request", f"bad request for {op}: {exc!r}")


def _admin(
    ledger: LedgerAPI | None, venue: FxVenue | None, op: str, payload: Mapping[str, Any]
) -> tuple[int, Any]:
    """Simulator controls: ``stats``, ``faults`` (inject one rule), ``release`` (stalls)."""
    services: dict[str, Any] = {"ledger": ledger, "fx": venue}
    target = services.get(str(payload.get("service", "ledger")))
    if not isinstance(target, MockLedger | FxVenue):
        return 404, {"error": {"type": "LedgerError", "code": "no_route",
                               "message": f"no simulator {payload.get('service')!r} here"}}
    if op == "stats":
        return 200, {"result": target.stats()}
    if op == "release":
        target.faults.release()
        return 200, {"result": {"released": True}}
    if op == "faults":
        try:
            rule = Fault(op=str(payload["op"]), kind=FaultKind(payload["kind"]),
                         times=payload.get("times", 1), applied=bool(payload.get("applied")),
                         code=str(payload.get("code", "rejected")),
                         latency_s=float(payload.get("latency_s", 0.0)),
                         match=dict(payload.get("match") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            return _bad("bad_fault", f"bad fault rule: {exc!r}")
        target.faults.add(rule)
        return 200, {"result": {"armed": rule.op, "kind": rule.kind.value}}
    return 404, {"error": {"type": "LedgerError", "code": "no_route", "message": op}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status, payload = route(self.server.ledger, self.server.venue, self.path, body,
                                dict(self.headers.items()))
        self._reply(status, payload)

    def do_GET(self) -> None:
        status, payload = route(self.server.ledger, self.server.venue, self.path, b"{}",
                                dict(self.headers.items()))
        self._reply(status, payload)

    def _reply(self, status: int, payload: Any) -> None:
        if status == 0:
            # A crash mid-call: no reply at all, the client sees a dropped connection.
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller died while we stalled (chaos tests kill it on purpose)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], ledger: LedgerAPI | None, venue: FxVenue | None,
        verbose: bool,
    ) -> None:
        super().__init__(address, _Handler)
        self.ledger = ledger
        self.venue = venue
        self.verbose = verbose


class BackgroundServer:
    """A server running in a daemon thread; stop it with :meth:`stop` or ``with``."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        # A short poll interval keeps stop() quick (tests start many servers).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        host = self._server.server_address[0]
        return f"http://{host!s}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    ledger: LedgerAPI | None = None,
    venue: FxVenue | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    verbose: bool = False,
) -> BackgroundServer:
    """Serve ``ledger`` and ``venue`` in a background thread (port 0: a free one)."""
    return BackgroundServer(_Server((host, port), ledger, venue, verbose))


def serve(port: int = 0, host: str = "127.0.0.1") -> None:
    """Serve a fresh mock ledger and the default FX venue until interrupted (blocking).

    Args:
        port: TCP port (0: any free one; the address is printed).
        host: Interface; loopback by default, keep it that way.
    """
    server = _Server((host, port), MockLedger(), default_venue(), verbose=True)
    print(f"reversa mock ledger + FX venue on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class HttpLedgerClient:
    """:class:`~reversa.adapters.payments.ledger_api.LedgerAPI` over HTTP.

    Transport failures become boundary errors: a timeout is
    :class:`LedgerTimeout` (the effect may have happened); a refused connection
    is ``LedgerUnavailable(in_doubt=False)``; a connection dropped after the
    request was sent is ``LedgerUnavailable(in_doubt=True)``.

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:8700``.
        timeout: Seconds per call.
        transport: An httpx transport (tests pass a MockTransport).
    """

    def __init__(
        self, base_url: str, *, timeout: float = 5.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)

    @classmethod
    def in_process(cls, ledger: LedgerAPI, venue: FxVenue | None = None) -> HttpLedgerClient:
        """A client whose transport calls :func:`route` directly (no sockets)."""

        def handler(request: httpx.Request) -> httpx.Response:
            status, payload = route(ledger, venue, request.url.path, request.content,
                                    dict(request.headers.items()))
            if status == 0:
                raise httpx.RemoteProtocolError("server disconnected without a reply")
            return httpx.Response(status, json=payload)

        return cls("http://ledger.local", transport=httpx.MockTransport(handler))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HttpLedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rpc(self, op: str, payload: Mapping[str, Any], fence: Fence | None = None,
             *, root: str = "/v1/ledger") -> Any:
        headers = {FENCE_HEADER: fence.header()} if fence is not None else None
        try:
            response = self._http.post(f"{root}/{op}", json=dict(payload), headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LedgerUnavailable(f"ledger unreachable for {op}", in_doubt=False) from exc
        except httpx.TimeoutException as exc:
            raise LedgerTimeout(f"ledger timed out on {op}") from exc
        except httpx.TransportError as exc:
            raise LedgerUnavailable(f"ledger dropped {op} mid-call", in_doubt=True) from exc
        try:
            body = response.json()
        except ValueError:
            raise LedgerUnavailable(
                f"ledger sent a non-JSON reply ({response.status_code}) to {op}", in_doubt=True
            ) from None
        if response.status_code >= 400:
            raise error_from_dict(body.get("error") or {})
        return body["result"]

    # -- simulator controls (not part of LedgerAPI) -----------------------------------
    def stats(self, service: str = "ledger") -> dict[str, Any]:
        """The simulator's counters: what landed, what was refused, per key."""
        result: dict[str, Any] = self._rpc("stats", {"service": service}, root="/v1/admin")
        return result

    def inject_fault(self, op: str, kind: str, *, service: str = "ledger",
                     **options: Any) -> None:
        """Arm a fault rule in the served simulator (see :class:`FaultPlan`)."""
        self._rpc("faults", {"service": service, "op": op, "kind": kind, **options},
                  root="/v1/admin")

    def release_stalls(self, service: str = "ledger") -> None:
        """Let calls held by a ``stall`` fault return."""
        self._rpc("release", {"service": service}, root="/v1/admin")

    # -- LedgerAPI ----------------------------------------------------------------------
    def create_account(
        self, id: str, currency: str, role: str = "customer", *,
        debits_must_not_exceed_credits: bool = False, fence: Fence | None = None,
    ) -> Account:
        """Create an account (idempotent)."""
        payload = {"id": id, "currency": currency, "role": role,
                   "debits_must_not_exceed_credits": debits_must_not_exceed_credits}
        return Account.from_dict(self._rpc("create_account", payload, fence))

    def get_account(self, id: str, *, fence: Fence | None = None) -> Account:
        """The account, or LedgerNotFound."""
        return Account.from_dict(self._rpc("get_account", {"id": id}, fence))

    def get_accounts(self, ids: Sequence[str], *, fence: Fence | None = None) -> list[Account]:
        """Several accounts."""
        found = self._rpc("get_accounts", {"ids": list(ids)}, fence)
        return [Account.from_dict(a) for a in found]

    def create_transfer(self, request: TransferRequest, *, fence: Fence | None = None
                        ) -> Transfer:
        """Create one transfer."""
        return Transfer.from_dict(self._rpc("create_transfer", request.to_dict(), fence))

    def create_linked(self, requests: Sequence[TransferRequest], *, fence: Fence | None = None
                      ) -> list[Transfer]:
        """Create a linked chain atomically."""
        payload = {"transfers": [r.to_dict() for r in requests]}
        return [Transfer.from_dict(t) for t in self._rpc("create_linked", payload, fence)]

    def post_pending(self, id: str, pending_id: str, amount: int | None = None, *,
                     fence: Fence | None = None) -> Transfer:
        """Post a hold."""
        payload = {"id": id, "pending_id": pending_id, "amount": amount}
        return Transfer.from_dict(self._rpc("post_pending", payload, fence))

    def void_pending(self, id: str, pending_id: str, *, fence: Fence | None = None
                     ) -> Transfer:
        """Void a hold."""
        payload = {"id": id, "pending_id": pending_id}
        return Transfer.from_dict(self._rpc("void_pending", payload, fence))

    def get_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """The transfer, or None."""
        found = self._rpc("get_transfer", {"id": id}, fence)
        return None if found is None else Transfer.from_dict(found)

    def block_transfer(self, id: str, *, fence: Fence | None = None) -> Transfer | None:
        """The transfer, or None once ``id`` is tombstoned."""
        found = self._rpc("block_transfer", {"id": id}, fence)
        return None if found is None else Transfer.from_dict(found)

    def find_transfers(
        self,
        *,
        prefix: str | None = None,
        corrects: str | None = None,
        pending_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[Transfer]:
        """Transfers by id prefix, corrected transfer and/or resolved hold."""
        payload = {"prefix": prefix, "corrects": corrects, "pending_id": pending_id}
        found = self._rpc("find_transfers", payload, fence)
        return [Transfer.from_dict(t) for t in found]

    def submit_payment(self, request: PaymentRequest, *, fence: Fence | None = None
                       ) -> Payment:
        """Submit a payment."""
        return Payment.from_dict(self._rpc("submit_payment", request.to_dict(), fence))

    def get_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """The payment, or None."""
        found = self._rpc("get_payment", {"id": id}, fence)
        return None if found is None else Payment.from_dict(found)

    def block_payment(self, id: str, *, fence: Fence | None = None) -> Payment | None:
        """The payment, or None once ``id`` is tombstoned."""
        found = self._rpc("block_payment", {"id": id}, fence)
        return None if found is None else Payment.from_dict(found)

    def find_payments(self, *, prefix: str, fence: Fence | None = None) -> list[Payment]:
        """Payments whose id starts with ``prefix``."""
        return [Payment.from_dict(p) for p in self._rpc("find_payments", {"prefix": prefix},
                                                         fence)]

    def cancel_payment(self, payment_id: str, *, fence: Fence | None = None) -> Payment:
        """Cancel an unsettled payment."""
        return Payment.from_dict(self._rpc("cancel_payment", {"payment_id": payment_id}, fence))

    def return_payment(self, payment_id: str, return_id: str, *, fence: Fence | None = None
                       ) -> Payment:
        """Return a settled payment on a non-final rail."""
        payload = {"payment_id": payment_id, "return_id": return_id}
        return Payment.from_dict(self._rpc("return_payment", payload, fence))

    def request_recall(self, recall_id: str, payment_id: str, reason: str, *,
                       fence: Fence | None = None) -> Recall:
        """Send a recall request."""
        payload = {"recall_id": recall_id, "payment_id": payment_id, "reason": reason}
        return Recall.from_dict(self._rpc("request_recall", payload, fence))

    def get_recall(self, id: str, *, fence: Fence | None = None) -> Recall | None:
        """The recall, or None."""
        found = self._rpc("get_recall", {"id": id}, fence)
        return None if found is None else Recall.from_dict(found)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m reversa.simulators.ledger.http --port P [--host H]``."""
    parser = argparse.ArgumentParser(description="Reversa mock ledger + FX venue over HTTP")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serve(args.port, args.host)


if __name__ == "__main__":
    main()
