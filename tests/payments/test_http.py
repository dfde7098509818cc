"""The ledger and FX venue over loopback HTTP, and the clients that reach them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import ccxt
import httpx
import pytest

from reversa import FakeClock
from reversa.adapters.payments import (
    Account,
    IdempotencyConflict,
    LedgerAPI,
    LedgerNotFound,
    LedgerRejected,
    LedgerTimeout,
    LedgerUnavailable,
    PaymentRequest,
    TransferRequest,
)
from reversa.simulators.fx_exchange import SimFxExchange
from reversa.simulators.fx_venue import FxMarket, FxVenue
from reversa.simulators.ledger import FaultKind, FaultPlan, MockLedger
from reversa.simulators.ledger.http import BackgroundServer, HttpLedgerClient, start_server


@pytest.fixture
def ledger() -> MockLedger:
    clock = FakeClock()
    led = MockLedger(clock=clock, faults=FaultPlan(sleep=clock.advance), sanctioned=["Bad Co"])
    led.open_account("alice", "GBP", balance=1_000_00)
    led.open_account("hold", "GBP", "holding")
    return led


@pytest.fixture
def server(ledger: MockLedger) -> Iterator[BackgroundServer]:
    venue = FxVenue([FxMarket("GBP", "EUR", 1.1647)], clock=FakeClock())
    with start_server(ledger, venue) as srv:
        yield srv


def script(client: LedgerAPI) -> list[object]:
    """The same calls, made through any LedgerAPI."""
    out: list[object] = []
    out.append(client.get_account("alice"))
    out.append(client.create_transfer(TransferRequest("t1", "alice", "hold", 100, "GBP")))
    out.append(client.create_transfer(TransferRequest("h1", "alice", "hold", 50, "GBP",
                                                      pending=True)))
    out.append(client.void_pending("v1", "h1"))
    out.append(client.find_transfers(prefix="t"))
    out.append(client.get_transfer("nope"))
    out.append(client.submit_payment(PaymentRequest("p1", "card", "alice", 10, "GBP", "Shop")))
    out.append(client.cancel_payment("p1"))
    out.append(client.get_accounts(["alice", "hold"]))
    return out


def test_http_client_matches_the_in_process_ledger(server: BackgroundServer) -> None:
    twin = MockLedger(clock=FakeClock())
    twin.open_account("alice", "GBP", balance=1_000_00)
    twin.open_account("hold", "GBP", "holding")
    with HttpLedgerClient(server.url) as client:
        over_http = script(client)
    assert over_http == script(twin)
    assert isinstance(over_http[0], Account)


def test_mock_transport_goes_through_the_same_routing(ledger: MockLedger) -> None:
    client = HttpLedgerClient.in_process(ledger)
    calls = ledger.calls["create_transfer"]
    client.create_transfer(TransferRequest("t1", "alice", "hold", 100, "GBP"))
    assert ledger.get_account("hold").posted == 100
    assert ledger.calls["create_transfer"] == calls + 1


def test_errors_keep_their_type_and_code(server: BackgroundServer) -> None:
    with HttpLedgerClient(server.url) as client:
        client.create_transfer(TransferRequest("t1", "alice", "hold", 100, "GBP"))
        with pytest.raises(IdempotencyConflict):
            client.create_transfer(TransferRequest("t1", "alice", "hold", 101, "GBP"))
        with pytest.raises(LedgerNotFound):
            client.get_account("nobody")
        with pytest.raises(LedgerRejected) as err:
            client.submit_payment(PaymentRequest("p1", "chaps", "alice", 10, "GBP", "Bad Co"))
        assert err.value.code == "sanctions_hit"


def test_crash_mid_call_drops_the_connection(ledger: MockLedger, server: BackgroundServer) -> None:
    ledger.faults.inject("create_transfer", FaultKind.CRASH, applied=True)
    with HttpLedgerClient(server.url) as client:
        with pytest.raises(LedgerUnavailable) as mid_call:
            client.create_transfer(TransferRequest("t1", "alice", "hold", 100, "GBP"))
        assert mid_call.value.in_doubt
        with pytest.raises(LedgerUnavailable) as down:
            client.get_transfer("t1")
        assert not down.value.in_doubt
        ledger.restart()
        assert client.get_transfer("t1") is not None


def test_injected_timeout_and_real_transport_timeout(ledger: MockLedger,
                                                     server: BackgroundServer) -> None:
    ledger.faults.inject("get_account", FaultKind.TIMEOUT)
    with HttpLedgerClient(server.url) as client, pytest.raises(LedgerTimeout):
        client.get_account("alice")
    # A server slower than the client's timeout: httpx's own timeout, same error.
    ledger.faults.sleep = time.sleep
    ledger.faults.inject("get_account", FaultKind.LATENCY, latency_s=0.5)
    with HttpLedgerClient(server.url, timeout=0.05) as client, pytest.raises(LedgerTimeout):
        client.get_account("alice")


def test_unreachable_server_is_not_in_doubt() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with HttpLedgerClient(f"http://127.0.0.1:{port}", timeout=1) as client, \
            pytest.raises(LedgerUnavailable) as err:
        client.get_account("alice")
    assert not err.value.in_doubt


def test_ccxt_exchange_over_http(server: BackgroundServer) -> None:
    ex = SimFxExchange(base_url=server.url)
    book = ex.fetch_order_book("GBP/EUR", 3)
    assert set(book) >= {"symbol", "bids", "asks", "timestamp", "datetime", "nonce"}
    assert len(book["bids"]) == 3
    assert book["bids"][0][0] < book["asks"][0][0]
    order = ex.create_order("GBP/EUR", "market", "sell", 1_000, None, {"clientOrderId": "k1"})
    assert ex.fetch_order("k1")["id"] == order["id"]
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("k2")
    with pytest.raises(ccxt.DuplicateOrderId):
        ex.create_order("GBP/EUR", "market", "sell", 2_000, None, {"clientOrderId": "k1"})


def test_serve_runs_as_a_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reversa.simulators.ledger.http", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        health = None
        for _ in range(100):  # wait for the socket to accept (startup, not a timing claim)
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health == {"result": {"ledger": True, "fx": True}}
        with HttpLedgerClient(f"http://127.0.0.1:{port}") as client:
            client.create_account("a", "GBP")
            assert client.get_account("a").currency == "GBP"
    finally:
        proc.terminate()
        proc.wait(10)
    assert json.dumps(health)


def test_fence_and_block_travel_over_http(ledger: MockLedger, server: BackgroundServer) -> None:
    from reversa import Fence
    from reversa.adapters.payments import LedgerFenced

    new, old = Fence("s1", 2), Fence("s1", 1)
    with HttpLedgerClient(server.url) as client:
        assert client.block_transfer("t9", fence=new) is None
        with pytest.raises(LedgerFenced) as blocked:
            client.create_transfer(TransferRequest("t9", "alice", "hold", 1, "GBP"), fence=new)
        assert blocked.value.code == "key_blocked"
        with pytest.raises(LedgerFenced) as stale:
            client.create_transfer(TransferRequest("t8", "alice", "hold", 1, "GBP"), fence=old)
        assert stale.value.code == "stale_epoch"
        client.create_transfer(TransferRequest("t8", "alice", "hold", 1, "GBP"), fence=new)
        assert client.block_transfer("t8", fence=new) is not None
        stats = client.stats()
    assert ledger.boundary.gate.epoch("s1") == 2
    assert stats["landed"] == {"fund:alice": 1, "t8": 1}
    assert stats["refused"] == {"t9": {"tombstone": 1}, "t8": {"epoch": 1}}
    assert stats["blocked"] == {"t9": 1}


def test_bad_fence_header_is_one_clear_error(server: BackgroundServer) -> None:
    reply = httpx.post(f"{server.url}/v1/ledger/get_account", json={"id": "alice"},
                       headers={"Reversa-Fence": "no-epoch"})
    assert reply.status_code == 400
    assert "Reversa-Fence" in reply.json()["error"]["message"]


def test_admin_faults_and_counters_over_http(ledger: MockLedger,
                                            server: BackgroundServer) -> None:
    from reversa import Fence

    ledger.faults.sleep = time.sleep
    with HttpLedgerClient(server.url) as client:
        client.inject_fault("create_transfer", "latency", latency_s=0.3, times=2)
        import threading

        req = TransferRequest("slow", "alice", "hold", 1, "GBP")
        calls = [threading.Thread(target=client.create_transfer, args=(req,),
                                  kwargs={"fence": Fence("s", 1)}) for _ in range(2)]
        for c in calls:
            c.start()
        for c in calls:
            c.join(10)
        stats = client.stats()
        assert stats["landed"]["slow"] == 1  # the second was a replay
        assert stats["max_concurrent"]["slow"] == 2  # both were in flight together
        client.inject_fault("get_account", "stall")
        with pytest.raises(httpx.HTTPStatusError):
            httpx.post(f"{server.url}/v1/admin/faults", json={"op": "x", "kind": "nope"}
                       ).raise_for_status()
        client.release_stalls()
        with pytest.raises(LedgerTimeout):  # released at once: a stalled call times out
            client.get_account("alice")


def test_fx_fence_and_block_over_http(server: BackgroundServer) -> None:
    from reversa import Fence
    from reversa.adapters.payments import FxFenced

    ex = SimFxExchange(base_url=server.url)
    assert ex.block_order("k9", None, {"reversaFence": Fence("s", 2).header()}) is None
    with pytest.raises(FxFenced):
        ex.create_order("GBP/EUR", "market", "sell", 10, None,
                        {"clientOrderId": "k9", "reversaFence": Fence("s", 2).header()})
    with pytest.raises(FxFenced):
        ex.create_order("GBP/EUR", "market", "sell", 10, None,
                        {"clientOrderId": "k1", "reversaFence": Fence("s", 1).header()})
    with HttpLedgerClient(server.url) as client:
        stats = client.stats("fx")
    assert stats["refused"] == {"k9": {"tombstone": 1}, "k1": {"epoch": 1}}
    assert stats["landed"] == {}
