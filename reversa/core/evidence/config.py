"""How a store signs and witnesses its audit record: from arguments or the environment.

Every command that writes opens its store with :meth:`AuditConfig.from_env`
(``Store.open`` does it by default), so demos, workers, benchmarks and your own
programs honour the same settings:

``REVERSA_SIGNING_KEY``
    Path of the private key file (``reversa audit keygen``), or the key's PEM
    text itself. Heads and checkpoints are signed with it.
``REVERSA_WITNESS_DIR``
    The append-only witness directory. Needs a signing key.
``REVERSA_CHECKPOINT_INTERVAL``
    Seconds between checkpoints while heads change (default 60; ``0`` turns
    the periodic checkpoint off, leaving saga ends and store close).
``REVERSA_SIGN_INTERVAL``
    A running saga's head is signed at most this often (default 1 second;
    ``0`` signs every commit). A saga's last commit is always signed.
``REVERSA_ANCHOR_URL`` / ``REVERSA_ANCHOR_CONTRACT`` (optional)
    Also anchor each checkpoint on an EVM chain (JSON-RPC URL and the
    address of the anchor contract deployed by ``reversa audit anchor``);
    needs ``reversa[evm]``. ``REVERSA_ANCHOR_FROM`` picks the node's unlocked
    sender account (default: its first).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .signing import Signer, load_signer
from .witness import DirWitness, Witness

__all__ = ["AuditConfig"]

REDACTION_LABEL = b"reversa-redaction-v1"
_ANCHOR_MODULE = "reversa.adapters.evm.anchor"


@dataclass(frozen=True)
class AuditConfig:
    """Signing, witnessing and checkpoint timing of one store.

    Attributes:
        signer: Signs heads and checkpoints (None: unsigned; verification then
            proves only internal consistency).
        witnesses: Where checkpoints go (empty: no checkpoints).
        interval_s: Periodic checkpoint interval while heads change (None: off).
        gap_s: A checkpoint follows a saga's end within this delay.
        background: Run the checkpoint thread (tests seal explicitly).
        sign_interval_s: Sign a live saga's head at most this often (0: every
            commit). A saga's last commit (completed, compensated, failed,
            escalated) is always signed.
        redaction_key: Salt of sensitive-field digests (default: derived from
            the signer when it can derive keys; None without a signer).
    """

    signer: Signer | None = None
    witnesses: tuple[Witness, ...] = ()
    interval_s: float | None = 60.0
    gap_s: float = 1.0
    background: bool = True
    sign_interval_s: float = 1.0
    redaction_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.witnesses and self.signer is None:
            raise ConfigError("a witness needs a signing key: checkpoints are signed; set "
                              "REVERSA_SIGNING_KEY (or --signing-key) to a key made by "
                              "`reversa audit keygen --out DIR`")
        if self.redaction_key is None and self.signer is not None:
            derive = getattr(self.signer, "derive", None)
            if callable(derive):
                object.__setattr__(self, "redaction_key", derive(REDACTION_LABEL))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuditConfig:
        """Build from ``REVERSA_*`` variables (see the module doc).

        Raises:
            ConfigError: A variable names a missing or invalid key or directory.
        """
        env = os.environ if environ is None else environ
        spec = env.get("REVERSA_SIGNING_KEY", "").strip()
        signer = load_signer(spec) if spec else None
        witnesses: list[Witness] = []
        folder = env.get("REVERSA_WITNESS_DIR", "").strip()
        if folder:
            witnesses.append(DirWitness(folder))
        url = env.get("REVERSA_ANCHOR_URL", "").strip()
        if url:
            witnesses.append(_anchor_witness(url, env))
        interval = _seconds("REVERSA_CHECKPOINT_INTERVAL", env, 60.0)
        signing = _seconds("REVERSA_SIGN_INTERVAL", env, 1.0)
        return cls(signer=signer, witnesses=tuple(witnesses), interval_s=interval or None,
                   sign_interval_s=signing or 0.0)

    @property
    def enabled(self) -> bool:
        """Whether anything is signed or witnessed."""
        return self.signer is not None or bool(self.witnesses)


def _seconds(name: str, env: Mapping[str, str], default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"{name}={text!r}: use a number of seconds >= 0")
    return value


def _anchor_witness(url: str, env: Mapping[str, str]) -> Witness:
    # The core names the EVM adapter only by module path, and only when anchoring
    # is asked for: the core never imports web3 (STYLE rule 1).
    contract = env.get("REVERSA_ANCHOR_CONTRACT", "").strip()
    if not contract:
        raise ConfigError("REVERSA_ANCHOR_URL is set but REVERSA_ANCHOR_CONTRACT is not; "
                          "deploy the anchor with `reversa audit anchor --chain URL` and set "
                          "its address")
    try:
        module: Any = importlib.import_module(_ANCHOR_MODULE)
    except ImportError as exc:
        raise ConfigError(f"anchoring on chain needs the EVM extra: pip install "
                          f"'reversa[evm]' ({exc})") from None
    witness: Witness = module.ChainWitness.connect(
        url, contract, sender=env.get("REVERSA_ANCHOR_FROM") or None)
    return witness
