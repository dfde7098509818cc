"""The redactor: credentials on services and in URLs never leave the server."""

from __future__ import annotations

import pytest

from reversa.mcp.redact import Redactor


class Client:
    def __init__(self) -> None:
        self.token = "tok_1234567890"
        self.name = "ledger"  # not a credential


class Exploding:
    @property
    def token(self) -> str:
        raise RuntimeError("not configured")


def test_credentials_on_services_are_masked_everywhere() -> None:
    ccxt = pytest.importorskip("ccxt")
    exchange = ccxt.Exchange({"apiKey": "ak_abcdef123", "secret": "sk_fedcba321"})
    redactor = Redactor({"fx": exchange, "ledger": Client(), "keys": {"api_key": b"\x01" * 16},
                         "odd": Exploding()})
    data = {"error": "auth failed for ak_abcdef123 with sk_fedcba321",
            "nested": [{"tok_1234567890": "ledger"}], "hex": "0x" + "01" * 16,
            "url": "postgresql://u:hunter2@db/x", "n": 3}
    assert redactor.clean(data) == {
        "error": "auth failed for *** with ***", "nested": [{"***": "ledger"}], "hex": "***",
        "url": "postgresql://u:***@db/x", "n": 3}


def test_short_values_are_not_treated_as_secrets() -> None:
    class Tiny:
        token = "ab"

    assert Redactor({"t": Tiny()}).text("a cab arrived") == "a cab arrived"
