"""Deliver the outbox: signed POSTs, retried with tenacity, backed off per row.

One round (:meth:`Dispatcher.run_once`) takes every due row, claims it (so two
dispatchers do not send it at once; a crash makes it due again once the claim
lapses), and POSTs it to each webhook that wants it and has not acknowledged it
yet. A request is retried a few times at once (tenacity, exponential, bounded)
on a transport error, a 5xx or a 429; a row still unfinished is tried again
later with exponential backoff, and given up after ``max_attempts`` rounds with
the last error recorded. Delivery is at least once: a dispatcher killed after
sending and before recording re-sends with the same idempotency key.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from ..core.errors import ConfigError
from ..core.notify import (
    EVENT_HEADER,
    KEY_HEADER,
    SIGNATURE_HEADER,
    Outbox,
    WebhookConfig,
    render,
    sign,
)
from ..core.redact import scrub
from ..core.store import Store

__all__ = ["DispatchReport", "Dispatcher"]

log = logging.getLogger("reversa.notify")


class _Retryable(Exception):
    """A response worth retrying (5xx, 429)."""


@dataclass
class DispatchReport:
    """What one round did (outbox row ids)."""

    delivered: list[int] = field(default_factory=list)
    retrying: dict[int, str] = field(default_factory=dict)
    given_up: dict[int, str] = field(default_factory=dict)


class Dispatcher:
    """Sends due outbox rows to the configured webhooks.

    Args:
        store: The saga store whose outbox to deliver.
        configs: Webhooks (see :func:`reversa.core.notify.load_notifications`).
        client: An ``httpx.Client`` (tests inject transports); one is made if None.
        lease_s: How long a claimed row is this dispatcher's before another may
            retry it (longer than one row's sending takes).
        attempts_per_send: Immediate tries of one request (tenacity).
        max_attempts: Rounds after which a row is given up.
        backoff_s: First delay before a failed row is tried again (doubling, at
            most ``max_backoff_s``).
        sleep: Sleep used between immediate tries (tests pass a no-op).

    Raises:
        ConfigError: A webhook's secret is not in the environment.
    """

    def __init__(
        self,
        store: Store,
        configs: Sequence[WebhookConfig],
        *,
        client: httpx.Client | None = None,
        lease_s: float = 60.0,
        attempts_per_send: int = 3,
        max_attempts: int = 12,
        backoff_s: float = 5.0,
        max_backoff_s: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.outbox = Outbox(store)
        self.configs = list(configs)
        self._secrets = {c.name: c.secret() for c in self.configs}  # fail fast if unset
        self._client = client or httpx.Client(follow_redirects=False)
        self._owns_client = client is None
        self.lease_s = lease_s
        self.attempts_per_send = attempts_per_send
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        if attempts_per_send < 1 or max_attempts < 1:
            raise ConfigError("attempts_per_send and max_attempts must be at least 1")

    def close(self) -> None:
        """Close the HTTP client if this dispatcher made it."""
        if self._owns_client:
            self._client.close()

    def run_once(self, limit: int = 50) -> DispatchReport:
        """Deliver what is due now; returns what happened to each row touched."""
        report = DispatchReport()
        for row in self.outbox.due(limit):
            if self.outbox.claim(row, self.lease_s):
                self._deliver(row, report)
        return report

    def _deliver(self, row: dict[str, Any], report: DispatchReport) -> None:
        payload = json.loads(row["payload_json"])
        done = set(json.loads(row["delivered_to"]))
        wanted = [c for c in self.configs if c.wants(row["event"], row["workflow"])]
        errors = []
        for config in wanted:
            if config.name in done:
                continue
            error = self._send(config, row, payload)
            if error is None:
                done.add(config.name)
            else:
                errors.append(f"{config.name}: {error}")
        attempts = int(row["attempts"]) + 1
        if not errors:
            note = None if wanted else "no webhook is configured for this workflow and event"
            self.outbox.finish(row["id"], delivered_to=sorted(done), delivered=True,
                               retry_in_s=None, error=note)
            report.delivered.append(row["id"])
            log.info("delivered %s %s", row["event"], row["idempotency_key"],
                     extra={"event": "delivered", "saga": row["saga_id"],
                            "fields": {"outbox": row["id"], "webhooks": sorted(done)}})
            return
        error = "; ".join(errors)
        give_up = attempts >= self.max_attempts
        delay = None if give_up else min(self.backoff_s * 2 ** (attempts - 1),
                                          self.max_backoff_s)
        self.outbox.finish(row["id"], delivered_to=sorted(done), delivered=False,
                           retry_in_s=delay, error=error)
        if give_up:
            report.given_up[row["id"]] = error
        else:
            report.retrying[row["id"]] = error
        log.warning("%s %s not delivered (attempt %d): %s", row["event"],
                    row["idempotency_key"], attempts, error,
                    extra={"event": "given_up" if give_up else "retrying",
                           "saga": row["saga_id"], "fields": {"outbox": row["id"]}})

    def _send(self, config: WebhookConfig, row: dict[str, Any],
              payload: dict[str, Any]) -> str | None:
        """POST one row to one webhook; None on success, else why not (no URL in it)."""
        body = render(payload, config.format)
        secret = self._secrets[config.name]

        def post() -> None:
            headers = {"Content-Type": "application/json",
                       SIGNATURE_HEADER: sign(secret, int(time.time()), body),
                       KEY_HEADER: row["idempotency_key"], EVENT_HEADER: row["event"]}
            response = self._client.post(config.url, content=body, headers=headers,
                                         timeout=config.timeout_s)
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code >= 300:
                raise _Refused(f"HTTP {response.status_code} (not retried at once)")

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts_per_send),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(lambda e: isinstance(e, _Retryable | httpx.TransportError)),
            sleep=self._sleep, reraise=False)
        try:
            retrying(post)
        except RetryError as exc:
            return _describe(exc.last_attempt.exception(), config)
        except (_Refused, httpx.HTTPError) as exc:
            return _describe(exc, config)
        return None


class _Refused(Exception):
    """A 3xx/4xx answer: the receiver refused it (retried in a later round only)."""


def _describe(exc: BaseException | None, config: WebhookConfig) -> str:
    # Never the URL: a Slack webhook URL is itself a credential.
    text = str(exc) if exc is not None else "unknown error"
    text = text.replace(config.url, f"<{config.name}>")
    return scrub(f"{type(exc).__name__}: {text}" if exc is not None else text)
