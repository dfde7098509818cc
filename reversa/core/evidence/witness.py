"""Signed checkpoints and the witnesses that keep them outside the database.

A checkpoint states "the log of sealed saga heads of database ``log`` had
``size`` leaves with Merkle root ``root`` at time ``ts``", chains to the
previous checkpoint's digest and is signed by the audit key. A witness keeps
every checkpoint where whoever can write the database cannot rewrite it:

- :class:`DirWitness` (the default): an append-only directory, one file per
  checkpoint (``<dir>/<log id>/<number>.json``), created exclusively, read-only,
  fsynced, never rewritten;
- the EVM anchor (``reversa.adapters.evm.anchor``): an append-only contract.

A witness that already holds a *different* checkpoint under the same number
refuses it (:class:`WitnessConflict`): that is what a database restored from an
older copy, then written to, looks like.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..canonical import canonical_json, sha256_hex
from ..errors import ConfigError, ReversaError
from .signing import Signer, Verifier

__all__ = [
    "Checkpoint",
    "DirWitness",
    "Witness",
    "WitnessConflict",
    "WitnessError",
    "Witnessed",
]

CHECKPOINT_DOMAIN = b"reversa-checkpoint-v1\n"


class WitnessError(ReversaError):
    """A witness could not record or return checkpoints."""

    default_code = "witness_failed"


class WitnessConflict(WitnessError):
    """The witness holds another checkpoint under the same number."""

    default_code = "witness_conflict"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One signed checkpoint (the statement a witness keeps).

    Attributes:
        log: Id of the database's checkpoint log (``reversa_audit_meta``).
        number: 1, 2, 3... per log.
        size: Leaves (sealed heads) in the log at this checkpoint.
        root: RFC 6962 Merkle root of those leaves, hex.
        ts: Store time of the checkpoint, epoch seconds.
        prev: :meth:`digest` of checkpoint ``number - 1`` (None for the first).
        key: Id of the signing key.
        alg: Signature algorithm.
        sig: Base64 signature of :meth:`message`.
    """

    log: str
    number: int
    size: int
    root: str
    ts: float
    prev: str | None
    key: str
    alg: str
    sig: str = ""

    def message(self) -> bytes:
        """The signed bytes: every field but the signature."""
        body = asdict(self)
        del body["sig"]
        return CHECKPOINT_DOMAIN + canonical_json(body).encode()

    def signed(self, signer: Signer) -> Checkpoint:
        """This checkpoint signed by ``signer``."""
        unsigned = replace(self, key=signer.key_id, alg=signer.algorithm, sig="")
        return replace(unsigned, sig=base64.b64encode(signer.sign(unsigned.message())).decode())

    def verify(self, verifier: Verifier) -> bool:
        """Whether the signature is ``verifier``'s."""
        try:
            raw = base64.b64decode(self.sig, validate=True)
        except ValueError:
            return False
        return verifier.verify(self.message(), raw)

    def to_json(self) -> str:
        """The statement as stored and witnessed (canonical JSON)."""
        return canonical_json(asdict(self))

    def digest(self) -> str:
        """SHA-256 of :meth:`to_json`: what the next checkpoint and the chain anchor hold."""
        return sha256_hex(self.to_json())

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse a statement.

        Raises:
            WitnessError: It is not a checkpoint statement.
        """
        try:
            data = json.loads(text)
            return cls(log=str(data["log"]), number=int(data["number"]),
                       size=int(data["size"]), root=str(data["root"]), ts=float(data["ts"]),
                       prev=None if data["prev"] is None else str(data["prev"]),
                       key=str(data["key"]), alg=str(data["alg"]), sig=str(data["sig"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise WitnessError(f"not a checkpoint statement ({type(exc).__name__})") from None


@dataclass(frozen=True, slots=True)
class Witnessed:
    """What a witness holds for one checkpoint number.

    Attributes:
        source: Which witness (``dir:/path`` or ``chain:...``).
        number: Checkpoint number.
        size: Tree size it commits to.
        root: Merkle root, hex.
        digest: Digest of the full signed statement.
        statement: The statement itself, when the witness keeps it (a
            directory does; a chain anchor keeps only its digest and root).
    """

    source: str
    number: int
    size: int
    root: str
    digest: str
    statement: Checkpoint | None = None


@runtime_checkable
class Witness(Protocol):
    """Somewhere outside the database that keeps checkpoints and never rewrites them."""

    name: str

    def publish(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint`` (idempotent for the identical statement).

        Raises:
            WitnessConflict: Another statement holds that number.
            WitnessError: It could not be recorded.
        """
        ...

    def latest(self, log: str) -> int:
        """The highest checkpoint number held for ``log`` (0 for none)."""
        ...

    def read(self, log: str) -> Sequence[Witnessed]:
        """Every checkpoint held for ``log``, by number."""
        ...


class DirWitness:
    """An append-only directory of checkpoint files.

    Args:
        path: The directory (created if missing). Put it where the database's
            writers cannot rewrite files: another host's mount, a WORM bucket
            sync, or at least another Unix user with this process allowed to
            create files only.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"witness directory {self.path} cannot be created "
                              f"({exc.strerror}); point REVERSA_WITNESS_DIR at a writable "
                              "directory") from None
        self.name = f"dir:{self.path}"

    def _file(self, log: str, number: int) -> Path:
        return self.path / log / f"{number:012d}.json"

    def publish(self, checkpoint: Checkpoint) -> None:
        """Create the checkpoint's file exclusively (read-only, fsynced)."""
        folder = self.path / checkpoint.log
        target = self._file(checkpoint.log, checkpoint.number)
        data = (checkpoint.to_json() + "\n").encode()
        try:
            folder.mkdir(exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        except FileExistsError:
            held = target.read_bytes()
            if held != data:
                raise WitnessConflict(
                    f"witness {self.path} already holds a different checkpoint "
                    f"#{checkpoint.number} for this database: the database was restored "
                    "from an older copy (or forked) and written to since; run `reversa "
                    "audit verify` and investigate") from None
            return
        except OSError as exc:
            raise WitnessError(f"witness {self.path}: cannot create {target.name} "
                               f"({exc.strerror})") from None
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(folder)

    def latest(self, log: str) -> int:
        """Highest checkpoint number on file for ``log``."""
        numbers = self._numbers(log)
        return numbers[-1] if numbers else 0

    def _numbers(self, log: str) -> list[int]:
        folder = self.path / log
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    def read(self, log: str) -> list[Witnessed]:
        """Every checkpoint file of ``log``, parsed.

        Raises:
            WitnessError: A file is not a checkpoint, or names another number.
        """
        out = []
        for number in self._numbers(log):
            path = self._file(log, number)
            statement = Checkpoint.from_json(path.read_text("utf-8"))
            if statement.number != number or statement.log != log:
                raise WitnessError(f"witness file {path} holds checkpoint "
                                   f"#{statement.number} of log {statement.log}: the witness "
                                   "directory was edited")
            out.append(Witnessed(self.name, number, statement.size, statement.root,
                                 statement.digest(), statement))
        return out

    def logs(self) -> list[str]:
        """Log ids (databases) this directory witnesses."""
        return sorted(p.name for p in self.path.iterdir() if p.is_dir())


def _fsync_dir(folder: Path) -> None:
    # The new name must survive a crash too, not only the file's bytes.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
