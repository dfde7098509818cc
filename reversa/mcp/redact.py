"""Nothing secret leaves the server: every tool output passes through :class:`Redactor`.

Tools return what the store recorded (plans, inputs, results, errors, audit
entries) and never a service object, so credentials held by services (an
exchange's API key, a ledger token, a signer) have no path to an agent unless a
handler put one into a result or an error. This is the last line against that:
credential-looking values found on the services are masked wherever they occur,
and so are passwords in URLs and ``token=...`` pairs (``reversa.core.redact``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core.redact import MASK, scrub

__all__ = ["CREDENTIAL_ATTRS", "Redactor"]

CREDENTIAL_ATTRS = ("apiKey", "secret", "password", "token", "privateKey", "api_key",
                    "api_secret", "access_token", "auth_token")
"""Attribute and key names whose string values are credentials (ccxt's among them)."""

_MIN_SECRET = 6  # shorter values would mask ordinary words


class Redactor:
    """Masks known secrets and credential patterns in JSON-like data.

    Args:
        services: The services handed to handlers; credential attributes on
            each (and on the values of mapping services) are collected.
        extra: More secret strings to mask (agent tokens, say).
    """

    def __init__(self, services: Mapping[str, Any], extra: Iterable[str] = ()) -> None:
        found = set(extra)
        for service in services.values():
            found.update(_credentials(service))
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted((s for s in found if len(s) >= _MIN_SECRET), key=len,
                               reverse=True)

    def text(self, value: str) -> str:
        """One string, masked."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return scrub(value)

    def clean(self, data: Any) -> Any:
        """A copy of JSON-like ``data`` with every string (and key) masked."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            return {self.text(str(k)): self.clean(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.clean(v) for v in data]
        return data


def _credentials(service: Any) -> set[str]:
    out: set[str] = set()
    sources: list[Any] = [service]
    if isinstance(service, Mapping):
        sources.extend(service.values())
    for obj in sources:
        for name in CREDENTIAL_ATTRS:
            value = _read(obj, name)
            if isinstance(value, bytes):
                out.update({value.hex(), "0x" + value.hex()})
            elif isinstance(value, str) and value:
                out.add(value)
    return out


def _read(obj: Any, name: str) -> Any:
    try:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    except Exception:  # a property that cannot answer holds nothing to mask
        return None
