"""A dispatcher killed between sending and recording loses nothing; the re-send carries
the same idempotency key, so the receiver sees every notification exactly once by key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reversa import Engine, Inspector, SagaStatus, Store, TransientError
from reversa.core.notify import verify_signature
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

pytestmark = pytest.mark.chaos
ROOT = Path(__file__).resolve().parents[2]
SECRET = "crash-test-secret"


class Receiver:
    """A webhook receiver on loopback that records every request; the first one hangs
    (no answer) until released, so its sender can be killed mid-send."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bool]] = []  # (idempotency key, signature valid)
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(SECRET.encode(), self.headers["Reversa-Signature"], body,
                                      now=time.time())
                receiver.requests.append((self.headers["Reversa-Idempotency-Key"], ok))
                if len(receiver.requests) == 1:
                    receiver.first_arrived.set()
                    receiver.release.wait(60)
                try:
                    self.send_response(200)
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _dispatcher(db_url: str, config: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "HOOK_SECRET": SECRET}
    return subprocess.Popen(
        [sys.executable, "-m", "reversa", "notify", "--config", str(config), "--db", db_url,
         "--lease-s", "1", "--poll-s", "0.05"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_killed_dispatcher_redelivers_with_the_same_key(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    store = Store.open(db_url)  # database time, as the dispatcher process uses
    for _ in range(2):
        world = World()
        world.fail["do:credit"] = reject()
        world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
        engine = Engine(transfer_registry(world), store, heartbeat=False)
        assert engine.run(chain_saga()).status is SagaStatus.ESCALATED
        engine.close()
    # Written in the escalations' own commits, before any dispatcher ran.
    keys = {e.idempotency_key for e in Inspector(store).outbox()}
    assert len(keys) == 2
    config = tmp_path / "notify.toml"
    config.write_text(f'[[webhook]]\nurl = "{receiver.url}"\nsecret_env = "HOOK_SECRET"\n'
                      "timeout_s = 30\n")

    first = _dispatcher(db_url, config)
    try:
        _wait(receiver.first_arrived.is_set, "the first delivery to arrive")
        first.send_signal(signal.SIGKILL)  # sent, never recorded as delivered
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    receiver.release.set()
    assert all(e.delivered_at is None for e in Inspector(store).outbox()
               if e.idempotency_key == receiver.requests[0][0])

    second = _dispatcher(db_url, config)
    try:
        _wait(lambda: all(e.delivered_at is not None for e in Inspector(store).outbox()),
              "every notification to be delivered after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    store.close()
    assert second.returncode == 0, second.stderr
    seen = [key for key, _ in receiver.requests]
    assert all(ok for _, ok in receiver.requests)
    assert set(seen) == keys  # nothing lost
    assert seen.count(receiver.requests[0][0]) == 2  # the killed send was repeated...
    assert len(seen) == len(keys) + 1  # ...and nothing else was sent twice
