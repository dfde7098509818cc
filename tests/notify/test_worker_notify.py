"""`reversa worker --notify FILE` delivers the outbox in its round: a new escalation
reaches a real receiver on loopback, signed, keyed, and in each configured format."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reversa import Engine, Inspector, SagaStatus, Store, TransientError
from reversa.core.notify import verify_signature
from tests.core.clirun import cli
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

SECRET = "worker-hook-secret"


class Receiver:
    """Records every POST: (path, headers, body); answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_worker_round_delivers_a_new_escalation(
    db_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    store = Store.open(db_url)  # database time, as the worker process uses
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("FX venue down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, heartbeat=False)
    result = engine.run(chain_saga(), {"amount": 10})
    engine.close()
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    config = tmp_path / "notify.toml"
    config.write_text(
        f'[[webhook]]\nname = "ops"\nurl = "{receiver.base}/json"\nsecret_env = "HOOK_SECRET"\n'
        'events = ["escalation.opened"]\n'
        f'[[webhook]]\nname = "chat"\nurl = "{receiver.base}/slack"\n'
        'secret_env = "HOOK_SECRET"\nformat = "slack"\nevents = ["escalation.opened"]\n')

    proc = cli("worker", "--once", "--db", db_url, "--notify", str(config),
               env={"HOOK_SECRET": SECRET})
    assert proc.returncode == 0, proc.stderr
    by_path = {path: (headers, body) for path, headers, body in receiver.requests}
    assert sorted(by_path) == ["/json", "/slack"] and len(receiver.requests) == 2
    headers, body = by_path["/json"]
    assert verify_signature(SECRET.encode(), headers["Reversa-Signature"], body,
                            now=time.time())
    sent = json.loads(body)
    assert sent["event"] == "escalation.opened" and sent["saga_id"] == result.saga_id
    assert sent["data"]["escalation"] == result.escalation_id
    assert headers["Reversa-Idempotency-Key"] == sent["idempotency_key"]
    slack_headers, slack_body = by_path["/slack"]
    assert slack_headers["Reversa-Idempotency-Key"] == sent["idempotency_key"]
    assert str(result.escalation_id) in json.loads(slack_body)["text"]
    (entry,) = [e for e in Inspector(store).outbox() if e.event == "escalation.opened"]
    assert entry.delivered_at is not None and sorted(entry.delivered_to) == ["chat", "ops"]
    store.close()
