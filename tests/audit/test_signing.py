"""Audit keys: Ed25519 and HMAC behind one interface; key files and their secrecy."""

from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest

from reversa import ConfigError
from reversa.core.evidence import (
    AuditConfig,
    Ed25519Signer,
    HmacSigner,
    Signer,
    Verifier,
    generate_keys,
    load_signer,
    load_verifier,
)


def test_keygen_writes_a_0600_private_key_and_a_public_key(tmp_path: Path) -> None:
    written = generate_keys(tmp_path / "keys")
    private, public = Path(written["private"]), Path(written["public"])
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644
    signer = load_signer(str(private))
    verifier = load_verifier(public)
    assert isinstance(signer, Signer) and isinstance(verifier, Verifier)
    assert signer.key_id == verifier.key_id == written["key_id"]
    signature = signer.sign(b"head")
    assert verifier.verify(b"head", signature)
    assert not verifier.verify(b"head!", signature)
    assert not Ed25519Signer.generate().verifier.verify(b"head", signature)


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    generate_keys(tmp_path)
    before = (tmp_path / "reversa-audit.key").read_bytes()
    with pytest.raises(ConfigError, match="already exists"):
        generate_keys(tmp_path)
    assert (tmp_path / "reversa-audit.key").read_bytes() == before


def test_hmac_key_signs_and_verifies_with_the_same_secret(tmp_path: Path) -> None:
    written = generate_keys(tmp_path, hmac_key=True)
    signer = load_signer(str(written["private"]))
    assert isinstance(signer, HmacSigner) and signer.algorithm == "hmac-sha256"
    verifier = load_verifier(written["private"])
    assert verifier.verify(b"m", signer.sign(b"m"))
    assert not HmacSigner.generate().verify(b"m", signer.sign(b"m"))
    assert stat.S_IMODE(Path(written["private"]).stat().st_mode) == 0o600


def test_a_key_can_come_inline_from_the_environment(tmp_path: Path) -> None:
    written = generate_keys(tmp_path)
    pem = Path(written["private"]).read_text()
    config = AuditConfig.from_env({"REVERSA_SIGNING_KEY": pem})
    assert config.signer is not None and config.signer.key_id == written["key_id"]
    assert config.redaction_key is not None and len(config.redaction_key) == 32


def test_key_material_never_shows(tmp_path: Path) -> None:
    written = generate_keys(tmp_path)
    pem = Path(written["private"]).read_text()
    body = "".join(pem.splitlines()[1:-1])
    signer = load_signer(str(written["private"]))
    assert body not in repr(signer) and written["key_id"] in repr(signer)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(signer)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(HmacSigner.generate())
    # A variable that holds a key where a path belongs: the error does not echo it.
    raw = body[:60]
    with pytest.raises(ConfigError) as caught:
        load_signer(raw)
    assert raw not in caught.value.message
    # A broken PEM given inline: named, never quoted.
    broken = pem.replace(body[10:30], "A" * 20)
    with pytest.raises(ConfigError) as caught:
        load_signer(broken)
    assert body[:30] not in caught.value.message and "keygen" in caught.value.message


def test_verification_refuses_a_private_key_file(tmp_path: Path) -> None:
    written = generate_keys(tmp_path)
    with pytest.raises(ConfigError, match="is a private key"):
        load_verifier(written["private"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_verifier(tmp_path / "missing.pub")
    (tmp_path / "junk.pub").write_text("hello")
    with pytest.raises(ConfigError, match="holds no public key"):
        load_verifier(tmp_path / "junk.pub")


def test_a_witness_without_a_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a signing key"):
        AuditConfig.from_env({"REVERSA_WITNESS_DIR": str(tmp_path / "w")})
    with pytest.raises(ConfigError, match="REVERSA_CHECKPOINT_INTERVAL"):
        AuditConfig.from_env({"REVERSA_CHECKPOINT_INTERVAL": "soon"})
    assert AuditConfig.from_env({}).enabled is False
