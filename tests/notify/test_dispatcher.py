"""Webhook delivery of the outbox: signed, keyed, retried, filtered per workflow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reversa import (
    ConfigError,
    Engine,
    FakeClock,
    Inspector,
    SagaStatus,
    Store,
    TransientError,
)
from reversa.core.notify import (
    WebhookConfig,
    load_notifications,
    render,
    sign,
    verify_signature,
)
from reversa.notify import Dispatcher
from tests.core.kit import FAST, World, chain_saga, reject, transfer_registry

SECRET = "whsec-test-123"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def _escalate(store: Store, clock: FakeClock, workflow_input: dict[str, object] | None = None,
              ) -> int:
    world = World()
    world.fail["do:credit"] = reject()
    world.fail["undo:convert"] = [TransientError("down")] * FAST.max_attempts
    engine = Engine(transfer_registry(world), store, clock=clock, heartbeat=False)
    result = engine.run(chain_saga(), workflow_input or {})
    assert result.status is SagaStatus.ESCALATED and result.escalation_id is not None
    return result.escalation_id


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def _hook(**kw: object) -> WebhookConfig:
    return WebhookConfig(**{"url": "https://hooks.test/reversa", "secret_env": "HOOK_SECRET",
                            **kw})  # type: ignore[arg-type]


def test_delivers_signed_and_keyed(store: Store, clock: FakeClock) -> None:
    esc = _escalate(store, clock)
    got: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        got.append(request)
        return httpx.Response(204)

    report = Dispatcher(store, [_hook()], client=_client(handler)).run_once()
    (entry,) = Inspector(store).outbox()
    assert report.delivered == [entry.id] and entry.delivered_at is not None
    (request,) = got
    body = request.read()
    assert json.loads(body)["data"]["escalation"] == esc
    assert request.headers["Reversa-Idempotency-Key"] == entry.idempotency_key
    assert request.headers["Reversa-Event"] == "escalation.opened"
    assert verify_signature(SECRET.encode(), request.headers["Reversa-Signature"], body,
                            now=__import__("time").time())
    assert not verify_signature(b"wrong", request.headers["Reversa-Signature"], body,
                                now=__import__("time").time())
    # Delivered: the next round sends nothing.
    assert Dispatcher(store, [_hook()], client=_client(handler)).run_once().delivered == []
    assert len(got) == 1


def test_server_errors_are_retried_at_once_with_the_same_key(
    store: Store, clock: FakeClock
) -> None:
    _escalate(store, clock)
    answers = [503, 500, 200]
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Reversa-Idempotency-Key"])
        return httpx.Response(answers.pop(0))

    slept: list[float] = []
    report = Dispatcher(store, [_hook()], client=_client(handler), attempts_per_send=3,
                        sleep=slept.append).run_once()
    assert len(report.delivered) == 1 and len(set(keys)) == 1 and len(keys) == 3
    assert len(slept) == 2 and slept[1] >= slept[0]  # exponential backoff between tries


def test_a_failing_row_backs_off_and_is_given_up(store: Store, clock: FakeClock) -> None:
    _escalate(store, clock)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400)

    dispatcher = Dispatcher(store, [_hook(name="ops")], client=_client(handler),
                            attempts_per_send=1, max_attempts=2, backoff_s=10, lease_s=5)
    first = dispatcher.run_once()
    (entry,) = Inspector(store).outbox()
    assert list(first.retrying.values()) == ["ops: _Refused: HTTP 400 (not retried at once)"]
    assert entry.next_attempt_at == pytest.approx(clock.now() + 10)
    assert dispatcher.run_once().retrying == {}  # not due yet
    clock.advance(11)
    second = dispatcher.run_once()
    assert second.given_up and Inspector(store).outbox()[0].next_attempt_at is None
    assert "hooks.test" not in Inspector(store).outbox()[0].last_error  # never the URL


def test_acknowledged_webhooks_are_not_sent_again(store: Store, clock: FakeClock) -> None:
    _escalate(store, clock)
    calls: dict[str, int] = {"a": 0, "b": 0}
    b_up = [False]

    def handler(request: httpx.Request) -> httpx.Response:
        which = request.url.host.split(".")[0]
        calls[which] += 1
        return httpx.Response(200 if which == "a" or b_up[0] else 502)

    hooks = [WebhookConfig(url="https://a.test/h", secret_env="HOOK_SECRET"),
             WebhookConfig(url="https://b.test/h", secret_env="HOOK_SECRET")]
    dispatcher = Dispatcher(store, hooks, client=_client(handler), attempts_per_send=1,
                            backoff_s=1)
    assert dispatcher.run_once().retrying
    b_up[0] = True
    clock.advance(2)
    assert dispatcher.run_once().delivered
    assert calls == {"a": 1, "b": 2}
    assert sorted(Inspector(store).outbox()[0].delivered_to) == sorted(h.name for h in hooks)


def test_per_workflow_and_event_filters(store: Store, clock: FakeClock) -> None:
    _escalate(store, clock)
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(200)

    hooks = [_hook(url="https://other.test/h", workflows=("payments",)),
             _hook(url="https://resolved.test/h", events=("escalation.resolved",))]
    report = Dispatcher(store, hooks, client=_client(handler)).run_once()
    assert sent == [] and len(report.delivered) == 1
    assert "no webhook" in (Inspector(store).outbox()[0].last_error or "")


def test_slack_body() -> None:
    payload = {"event": "escalation.opened", "saga_id": "s1", "workflow": "transfer",
               "idempotency_key": "rv:s1:escalation.opened:3",
               "data": {"escalation": 3, "reason": "compensation failed"}}
    body = json.loads(render(payload, "slack"))
    assert set(body) == {"text"}
    assert "escalation #3" in body["text"] and "compensation failed" in body["text"]
    assert json.loads(render(payload, "json")) == payload


def test_signature_rejects_stale_and_malformed_headers() -> None:
    header = sign(b"k", 1000, b"{}")
    assert verify_signature(b"k", header, b"{}", now=1100)
    assert not verify_signature(b"k", header, b"{}", now=2000)  # a replay, too old
    assert not verify_signature(b"k", header, b"{ }", now=1100)
    assert not verify_signature(b"k", "garbage", b"{}", now=1100)


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.toml"
    path.write_text('[[webhook]]\nurl = "https://hooks.test/x"\nsecret_env = "HOOK_SECRET"\n'
                    'workflows = ["transfer"]\nformat = "slack"\n')
    (hook,) = load_notifications(path)
    assert hook.workflows == ("transfer",) and hook.format == "slack" and len(hook.name) == 12
    path.write_text('[[webhook]]\nurl = "https://hooks.test/x"\nsecret_env = "S"\nfromat = 1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        load_notifications(path)
    path.write_text('[[webhook]]\nurl = "ftp://x"\nsecret_env = "S"\n')
    with pytest.raises(ConfigError, match="http"):
        load_notifications(path)
    monkeypatch.delenv("HOOK_SECRET")
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        Dispatcher(Store.open(f"sqlite:///{tmp_path}/x.db"), [_hook()])
