"""Local signing: the private key lives in one object that never shows it.

The signer is handed to the engine inside the ``services`` mapping, never in a
saga's input or a step's params, so it cannot reach the plan, the store or the
audit log. Its ``repr`` is redacted and it refuses to be pickled or copied, so
it cannot leak through a debugger dump, a log line or a stray serialiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from reversa.core.errors import ConfigError, PermanentError

__all__ = ["LocalSigner", "SignedTx"]


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: public data only.

    Attributes:
        raw: The raw signed transaction (what ``eth_sendRawTransaction`` takes).
        hash: Its transaction hash, ``0x``-prefixed hex.
    """

    raw: bytes
    hash: str


class LocalSigner:
    """Holds one account's private key and signs transactions with eth-account.

    Args:
        private_key: Hex string (with or without ``0x``) or 32 bytes.

    Raises:
        ConfigError: The key is malformed. The message never contains the key.
    """

    __slots__ = ("_account", "address")

    def __init__(self, private_key: str | bytes) -> None:
        from eth_account import Account

        try:
            account = Account.from_key(private_key)
        except Exception:
            account = None
        if account is None:
            # Raised outside the except block so the vendor exception, which may
            # quote the input, is not even kept as __context__.
            raise ConfigError(
                "LocalSigner: the private key is malformed (expected 32 bytes or 64 hex digits)"
            )
        self._account = account
        self.address: str = str(account.address)

    @classmethod
    def generate(cls) -> LocalSigner:
        """A signer with a fresh random key (for simulations)."""
        from eth_account import Account

        return cls(bytes(Account.create().key))

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        """Sign a transaction dict (EIP-1559 fields, nonce, gas, chainId).

        Raises:
            PermanentError: The transaction dict cannot be signed.
        """
        failure = ""
        try:
            signed = self._account.sign_transaction(tx)
        except Exception as exc:
            failure = type(exc).__name__
        if failure:
            raise PermanentError(
                f"could not sign transaction for {self.address}: {failure}", code="sign_failed"
            )
        return SignedTx(raw=bytes(signed.raw_transaction), hash="0x" + bytes(signed.hash).hex())

    def __repr__(self) -> str:
        return f"LocalSigner(address={self.address}, key=<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("LocalSigner cannot be pickled: it holds a private key")

    def __copy__(self) -> NoReturn:
        raise TypeError("LocalSigner cannot be copied: it holds a private key")

    def __deepcopy__(self, memo: dict[int, Any]) -> NoReturn:
        raise TypeError("LocalSigner cannot be copied: it holds a private key")
