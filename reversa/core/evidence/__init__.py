"""Evidence an auditor accepts: signed heads, state records, witnessed checkpoints, exports.

The audit chain (``reversa.core.audit``) proves a saga's log is internally
consistent. This package makes it evidence against someone who can write the
database:

- state records (:mod:`.records`): each commit's chain entry covers the rows it
  wrote, so ``audit verify`` cross-checks the tables with the chain;
- signatures (:mod:`.signing`): each chain head is signed with a key held
  outside the database (Ed25519, or HMAC; a KMS fits the ``Signer`` interface);
- checkpoints (:mod:`.checkpoints`, :mod:`.merkle`, :mod:`.witness`): sealed
  heads form an RFC 6962 log whose signed roots live in a witness;
- exports (:mod:`.export`): JSON Lines an auditor verifies offline.

Configure a store with :class:`AuditConfig` (or ``REVERSA_SIGNING_KEY`` and
``REVERSA_WITNESS_DIR``). See ``docs/audit.md``.
"""

from .config import AuditConfig
from .signing import (
    Ed25519Signer,
    Ed25519Verifier,
    HmacSigner,
    Signer,
    Verifier,
    generate_keys,
    load_signer,
    load_verifier,
)
from .witness import Checkpoint, DirWitness, Witness, WitnessConflict, Witnessed, WitnessError

__all__ = [
    "AuditConfig",
    "Checkpoint",
    "DirWitness",
    "Ed25519Signer",
    "Ed25519Verifier",
    "HmacSigner",
    "Signer",
    "Verifier",
    "Witness",
    "WitnessConflict",
    "WitnessError",
    "Witnessed",
    "generate_keys",
    "load_signer",
    "load_verifier",
]
