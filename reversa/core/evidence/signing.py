"""Keys that live outside the database: signing audit heads and checkpoints.

Two implementations of one small interface, so a KMS or an HSM can replace
either: :class:`Ed25519Signer` (asymmetric; an auditor verifies with the public
key alone) and :class:`HmacSigner` (symmetric; verifying needs the secret).

Key files (``reversa audit keygen``):

- ``reversa-audit.key``: the Ed25519 private key, PKCS#8 PEM, mode 0600;
- ``reversa-audit.pub``: the public key, SubjectPublicKeyInfo PEM;
- an HMAC key is a PEM-style block ``REVERSA HMAC KEY`` holding 32 random bytes.

No message raised here ever contains key material: loading errors are raised
outside the ``except`` block that caught the library's error, so a vendor
message quoting the input is not even kept as ``__context__``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any, NoReturn, Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = [
    "Ed25519Signer",
    "Ed25519Verifier",
    "HmacSigner",
    "Signer",
    "Verifier",
    "generate_keys",
    "load_signer",
    "load_verifier",
]

PRIVATE_NAME = "reversa-audit.key"
PUBLIC_NAME = "reversa-audit.pub"
HMAC_NAME = "reversa-audit.hmac"
_HMAC_BEGIN = "-----BEGIN REVERSA HMAC KEY-----"
_HMAC_END = "-----END REVERSA HMAC KEY-----"
_INSTALL = "Ed25519 needs the 'cryptography' package: pip install 'reversa[audit]'"


@runtime_checkable
class Signer(Protocol):
    """Signs audit heads and checkpoints; the key never leaves it.

    Attributes:
        key_id: Short public fingerprint of the key (stored beside signatures,
            so verification picks the right key after a rotation).
        algorithm: ``"ed25519"`` or ``"hmac-sha256"`` (or a KMS's own name).
    """

    key_id: str
    algorithm: str

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``."""
        ...


@runtime_checkable
class Verifier(Protocol):
    """Checks signatures made by one key."""

    key_id: str
    algorithm: str

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``message``."""
        ...


class Ed25519Verifier:
    """An Ed25519 public key.

    Args:
        public_pem: The key as SubjectPublicKeyInfo PEM.
    """

    algorithm = "ed25519"

    def __init__(self, public_pem: bytes) -> None:
        ed = _ed25519()
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_public_key(public_pem)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, ed.Ed25519PublicKey):
            _bad_key("not an Ed25519 public key in PEM form")
        self._key = key
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
        self.public_pem = public_pem

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        from cryptography.exceptions import InvalidSignature

        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer:
    """An Ed25519 private key held in this process.

    Create with :meth:`from_pem`, :meth:`from_file` or :func:`load_signer`.
    Its ``repr`` never shows the key, and it refuses to be pickled.
    """

    algorithm = "ed25519"
    __slots__ = ("_key", "_seed_digest", "key_id", "verifier")

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives import serialization

        self._key = key
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self.verifier = Ed25519Verifier(public)
        self.key_id: str = self.verifier.key_id
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        # Only a one-way digest of the seed is kept for deriving other keys.
        self._seed_digest = hashlib.sha256(b"reversa-derive\x00" + raw).digest()

    @classmethod
    def from_pem(cls, pem: bytes) -> Ed25519Signer:
        """Load a PKCS#8 PEM private key (unencrypted)."""
        ed = _ed25519()
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, ed.Ed25519PrivateKey):
            _bad_key("not an unencrypted Ed25519 private key in PEM form")
        return cls(key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Ed25519Signer:
        """Load the private key file written by ``reversa audit keygen``."""
        return cls.from_pem(_read_key(path))

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A fresh random key (tests and ``keygen``)."""
        return cls(_ed25519().Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes)."""
        return bytes(self._key.sign(message))

    def derive(self, label: bytes) -> bytes:
        """A 32-byte secret for another purpose (salting digests), bound to this key."""
        return hmac.new(self._seed_digest, label, hashlib.sha256).digest()

    def private_pem(self) -> bytes:
        """The private key as PKCS#8 PEM (only ``keygen`` writes it, to a 0600 file)."""
        from cryptography.hazmat.primitives import serialization

        return bytes(self._key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Ed25519Signer holds a private key and cannot be pickled")


class HmacSigner:
    """HMAC-SHA256 with a 32-byte secret: signer and verifier in one.

    Verification needs the same secret, so whoever verifies could also forge:
    use it where the verifier is as trusted as the writer (or behind a KMS
    that exposes only sign/verify); prefer :class:`Ed25519Signer` otherwise.
    """

    algorithm = "hmac-sha256"
    __slots__ = ("_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ConfigError("an HMAC audit key needs at least 32 bytes of secret")
        self._secret = bytes(secret)
        fingerprint = hashlib.sha256(b"reversa-hmac-id\x00" + secret).hexdigest()
        self.key_id: str = "hmac:" + fingerprint[:16]

    @classmethod
    def generate(cls) -> HmacSigner:
        """A fresh random secret."""
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_text(cls, text: str) -> HmacSigner:
        """Parse the ``REVERSA HMAC KEY`` block."""
        body = text.strip()
        if not (body.startswith(_HMAC_BEGIN) and body.endswith(_HMAC_END)):
            _bad_key("not a REVERSA HMAC KEY block")
        inner = body[len(_HMAC_BEGIN):-len(_HMAC_END)].strip()
        try:
            secret = base64.b64decode(inner, validate=True)
        except ValueError:
            secret = b""
        if len(secret) < 32:
            _bad_key("the REVERSA HMAC KEY block does not hold 32 bytes of base64")
        return cls(secret)

    def to_text(self) -> str:
        """The key file's text (only ``keygen`` writes it, to a 0600 file)."""
        return f"{_HMAC_BEGIN}\n{base64.b64encode(self._secret).decode()}\n{_HMAC_END}\n"

    def sign(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message``."""
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Constant-time comparison with the expected MAC."""
        return hmac.compare_digest(self.sign(message), signature)

    def derive(self, label: bytes) -> bytes:
        """A 32-byte secret for another purpose, bound to this key."""
        return hmac.new(self._secret, b"reversa-derive\x00" + label, hashlib.sha256).digest()

    @property
    def verifier(self) -> HmacSigner:
        """The verifier of this key (itself: HMAC is symmetric)."""
        return self

    def __repr__(self) -> str:
        return f"HmacSigner(key_id={self.key_id!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an HmacSigner holds a secret key and cannot be pickled")


def load_signer(spec: str) -> Ed25519Signer | HmacSigner:
    """A signer from a key file path, or from the key's text itself.

    ``spec`` is what ``REVERSA_SIGNING_KEY`` / ``--signing-key`` hold: the path
    of a private key file (Ed25519 PEM or REVERSA HMAC KEY block), or that
    file's content (for secrets injected as environment variables).

    Raises:
        ConfigError: The file is missing, unreadable or not a key. The message
            names the path (never the content) and the fix.
    """
    text = spec if spec.lstrip().startswith("-----BEGIN") else None
    where = "the key given inline" if text is not None else f"key file {spec}"
    if text is None:
        text = _read_key(spec).decode("utf-8", errors="replace")
    if _HMAC_BEGIN in text:
        return HmacSigner.from_text(text)
    if "PRIVATE KEY-----" in text:
        return Ed25519Signer.from_pem(text.encode())
    raise ConfigError(f"{where} holds no private key (expected an Ed25519 PEM or a REVERSA "
                      "HMAC KEY block); create one with `reversa audit keygen --out DIR`")


def load_verifier(path: str | os.PathLike[str]) -> Ed25519Verifier | HmacSigner:
    """A verifier from a public key file (Ed25519) or an HMAC key file.

    Raises:
        ConfigError: The file is missing, unreadable or not a key.
    """
    text = _read_key(path, public=True).decode("utf-8", errors="replace")
    if _HMAC_BEGIN in text:
        return HmacSigner.from_text(text)
    if "PUBLIC KEY-----" in text:
        return Ed25519Verifier(text.encode())
    if "PRIVATE KEY-----" in text:
        raise ConfigError(f"{path} is a private key; verification needs only the public key "
                          f"({PUBLIC_NAME}, written next to it by `reversa audit keygen`)")
    raise ConfigError(f"{path} holds no public key; pass the {PUBLIC_NAME} file written by "
                      "`reversa audit keygen`")


def generate_keys(out: str | os.PathLike[str], *, hmac_key: bool = False) -> dict[str, Path]:
    """Write a new key pair (or HMAC key) into directory ``out``.

    The private file is created with mode 0600 and never overwritten.

    Returns:
        ``{"private": path, "public": path, "key_id": ...}`` (no public file for HMAC).

    Raises:
        ConfigError: A key file already exists there, or the directory cannot be written.
    """
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder}: {exc.strerror}; choose a writable "
                          "directory") from None
    written: dict[str, Any] = {}
    if hmac_key:
        signer = HmacSigner.generate()
        written["private"] = _write_new(folder / HMAC_NAME, signer.to_text().encode(), 0o600)
    else:
        ed = Ed25519Signer.generate()
        for name in (PRIVATE_NAME, PUBLIC_NAME):
            if (folder / name).exists():
                raise ConfigError(f"{folder / name} already exists; keys are never "
                                  "overwritten: choose another --out directory")
        written["private"] = _write_new(folder / PRIVATE_NAME, ed.private_pem(), 0o600)
        written["public"] = _write_new(folder / PUBLIC_NAME, ed.verifier.public_pem, 0o644)
        signer = ed  # type: ignore[assignment]
    written["key_id"] = signer.key_id
    return written


def _write_new(path: Path, data: bytes, mode: int) -> Path:
    # O_EXCL: never replace an existing key; the mode is set at creation, so the
    # secret is never readable by others, not even for an instant.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; keys are never overwritten: choose "
                          "another --out directory") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed the public file's mode
    return path


def _read_key(path: str | os.PathLike[str], *, public: bool = False) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except FileNotFoundError:
        problem = "does not exist"
    except IsADirectoryError:
        problem = "is a directory"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror})"
    if public:
        raise ConfigError(f"key file {_shown(path)} {problem}; pass the {PUBLIC_NAME} file "
                          "written by `reversa audit keygen --out DIR`")
    raise ConfigError(f"key file {_shown(path)} {problem}; create keys with `reversa audit keygen "
                      "--out DIR` and point REVERSA_SIGNING_KEY (or --signing-key) at the "
                      f"{PRIVATE_NAME} file")


def _shown(path: str | os.PathLike[str]) -> str:
    # A variable meant to hold a path may hold a key by mistake: never echo
    # something that does not look like a path.
    text = str(path)
    if "\n" in text or len(text) > 1024:
        return "(value not shown: not a path)"
    parent = Path(text).expanduser().parent
    looks_like_path = text.endswith((".key", ".pem", ".hmac")) or (
        str(parent) not in ("", ".") and parent.is_dir())
    return text if looks_like_path or len(text) <= 24 else "(value not shown: not a path)"


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return ed25519


def _bad_key(why: str) -> NoReturn:
    raise ConfigError(f"audit key: {why}; create keys with `reversa audit keygen --out DIR`")
