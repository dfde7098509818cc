"""Notifications: webhook configuration, signed bodies, and the durable outbox's API.

The engine writes one outbox row per event (``escalation.opened``,
``escalation.resolved``, ``approval.requested``, ``approval.decided``) in the
same commit as the event itself, so a crash loses none. A dispatcher
(:class:`reversa.notify.Dispatcher`, extra ``notify``) delivers them later: it
claims a due row, POSTs it to every webhook configured for its workflow and
event, and records the outcome; a row it could not finish is retried with
exponential backoff. A re-send after a crash carries the same
``Reversa-Idempotency-Key``, so receivers deduplicate on it.

Bodies are signed like Stripe's webhooks: ``Reversa-Signature: t=<unix
time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` with the webhook's secret, read
from the environment variable the configuration names (never from the file).

Configuration (TOML)::

    [[webhook]]
    name = "ops"                            # optional; a hash of the URL by default
    url = "https://hooks.example.com/reversa"
    secret_env = "REVERSA_WEBHOOK_SECRET"
    workflows = ["cross-border-payment"]    # default ["*"]
    events = ["escalation.opened"]          # default ["*"]
    format = "json"                         # or "slack" (a Slack-compatible {"text": ...})
    timeout_s = 5
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from .canonical import canonical_json
from .errors import ConfigError
from .redact import mask_url
from .store import Store
from .store import schema as t

__all__ = [
    "EVENTS",
    "Outbox",
    "WebhookConfig",
    "load_notifications",
    "render",
    "sign",
    "verify_signature",
]

EVENTS = ("escalation.opened", "escalation.resolved", "approval.requested", "approval.decided")
SIGNATURE_HEADER = "Reversa-Signature"
KEY_HEADER = "Reversa-Idempotency-Key"
EVENT_HEADER = "Reversa-Event"


@dataclass(frozen=True)
class WebhookConfig:
    """One webhook: where to POST, how to sign, which workflows and events.

    Attributes:
        url: The receiver's URL (for Slack, the incoming-webhook URL: treat it as
            a secret too; it is masked in every log and error).
        secret_env: Environment variable holding the HMAC secret.
        workflows: Workflow names it wants (``"*"``: all).
        events: Events it wants (``"*"``: all of :data:`EVENTS`).
        format: ``json`` (the event as recorded) or ``slack`` (``{"text": ...}``).
        name: Stable name recorded when it acknowledged a row (default: a hash of
            the URL, so the URL itself is never stored).
        timeout_s: Per-request timeout.
    """

    url: str
    secret_env: str
    workflows: tuple[str, ...] = ("*",)
    events: tuple[str, ...] = ("*",)
    format: str = "json"
    name: str = ""
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url {mask_url(self.url)!r} must be http:// or https://")
        if self.format not in ("json", "slack"):
            raise ConfigError(f"webhook format {self.format!r}: use 'json' or 'slack'")
        unknown = [e for e in self.events if e != "*" and e not in EVENTS]
        if unknown:
            raise ConfigError(f"webhook events {unknown}: use '*' or some of {list(EVENTS)}")
        if not self.secret_env:
            raise ConfigError("a webhook needs secret_env: the environment variable holding "
                              "its signing secret")
        if self.timeout_s <= 0:
            raise ConfigError(f"webhook timeout_s={self.timeout_s}: must be positive")
        if not self.name:
            object.__setattr__(self, "name", hashlib.sha256(self.url.encode()).hexdigest()[:12])

    def wants(self, event: str, workflow: str) -> bool:
        """Whether this webhook gets ``event`` of ``workflow``."""
        return ("*" in self.workflows or workflow in self.workflows) and (
            "*" in self.events or event in self.events)

    def secret(self) -> bytes:
        """The signing secret, from the environment.

        Raises:
            ConfigError: The variable is not set.
        """
        value = os.environ.get(self.secret_env)
        if not value:
            raise ConfigError(f"webhook {self.name}: environment variable {self.secret_env} "
                              "is not set; export the signing secret there")
        return value.encode()


def load_notifications(path: str | os.PathLike[str]) -> list[WebhookConfig]:
    """Read webhook configuration from a TOML file (see the module docstring).

    Raises:
        ConfigError: Missing file, bad TOML, unknown keys or values.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no notification config at {path}; check the path") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"notification config {path} is not readable TOML: {exc}") from None
    hooks = data.get("webhook", [])
    if set(data) - {"webhook"} or not isinstance(hooks, list) or not hooks:
        raise ConfigError(f"notification config {path}: give one or more [[webhook]] tables")
    allowed = {"url", "secret_env", "workflows", "events", "format", "name", "timeout_s"}
    out = []
    for index, hook in enumerate(hooks, 1):
        unknown = sorted(set(hook) - allowed)
        if unknown:
            raise ConfigError(f"notification config {path}: webhook #{index} has unknown "
                              f"key(s) {unknown}; allowed: {sorted(allowed)}")
        if "url" not in hook or "secret_env" not in hook:
            raise ConfigError(f"notification config {path}: webhook #{index} needs url and "
                              "secret_env")
        out.append(WebhookConfig(
            url=str(hook["url"]), secret_env=str(hook["secret_env"]),
            workflows=tuple(hook.get("workflows", ("*",))),
            events=tuple(hook.get("events", ("*",))), format=str(hook.get("format", "json")),
            name=str(hook.get("name", "")), timeout_s=float(hook.get("timeout_s", 5.0))))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"notification config {path}: webhook names must be unique")
    return out


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Reversa-Signature`` header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: bytes, header: str, body: bytes, *, now: float,
                     tolerance_s: float = 300.0) -> bool:
    """What a receiver checks: the signature matches and is recent (replays refused)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def render(payload: dict[str, Any], fmt: str) -> bytes:
    """The request body for an outbox row's payload, in the webhook's format."""
    if fmt == "json":
        return canonical_json(payload).encode()
    return json.dumps({"text": _summary(payload)}, sort_keys=True).encode()


def _summary(p: dict[str, Any]) -> str:
    d = p.get("data", {})
    saga = f"saga {p.get('saga_id')} ({p.get('workflow')})"
    event = p.get("event")
    if event == "escalation.opened":
        text = f":rotating_light: escalation #{d.get('escalation')} opened for {saga}: " \
               f"{d.get('reason')}"
    elif event == "escalation.resolved":
        text = f":white_check_mark: escalation #{d.get('escalation')} of {saga} resolved " \
               f"({d.get('resolution')}) by {d.get('author')}"
    elif event == "approval.requested":
        text = f":raised_hand: approval #{d.get('approval')} ({d.get('kind')}) requested by " \
               f"{d.get('requested_by')} for {saga}: {d.get('reason')}"
    else:
        text = f":ballot_box_with_check: approval #{d.get('approval')} ({d.get('kind')}) of " \
               f"{saga} is {d.get('status')} (by {d.get('by')})"
    return f"{text} [key {p.get('idempotency_key')}]"


class Outbox:
    """The outbox table as a dispatcher sees it: due rows, claims and outcomes.

    Times are the store's clock (database time, or the injected clock).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def due(self, limit: int = 50) -> list[dict[str, Any]]:
        """Undelivered rows whose next attempt is due, oldest first."""
        o = t.outbox.c
        now = self.store.now()
        query = (select(t.outbox).where(o.delivered_at.is_(None), o.next_attempt_at.is_not(None),
                                        o.next_attempt_at <= now)
                 .order_by(o.id).limit(limit))
        with self.store._tx() as conn:
            return [dict(r) for r in conn.execute(query).mappings().all()]

    def claim(self, row: dict[str, Any], lease_s: float) -> bool:
        """Take a row for ``lease_s`` (another dispatcher skips it meanwhile; a crash
        makes it due again after the lease). False: someone else took it."""
        o = t.outbox.c
        with self.store._tx(write=True) as conn:
            now = self.store._tx_now(conn)
            done = conn.execute(update(t.outbox).where(
                o.id == row["id"], o.attempts == row["attempts"], o.delivered_at.is_(None))
                .values(attempts=row["attempts"] + 1, next_attempt_at=now + lease_s)).rowcount
        return done == 1

    def finish(self, row_id: int, *, delivered_to: Sequence[str], delivered: bool,
               retry_in_s: float | None, error: str | None) -> None:
        """Record the outcome of one claimed row: delivered, due again in
        ``retry_in_s``, or (``retry_in_s`` None) given up."""
        values: dict[str, Any] = {"delivered_to": json.dumps(sorted(delivered_to)),
                                  "last_error": error}
        with self.store._tx(write=True) as conn:
            now = self.store._tx_now(conn)
            if delivered:
                values.update(delivered_at=now, next_attempt_at=None)
            else:
                values.update(next_attempt_at=None if retry_in_s is None else now + retry_in_s)
            conn.execute(update(t.outbox).where(t.outbox.c.id == row_id).values(**values))
