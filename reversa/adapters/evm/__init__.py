"""EVM adapter: governed rollback for on-chain workflows.

Transactions are signed locally (eth-account) and sent raw (web3.py), under a
per-account nonce manager that learns the chain's pending nonce after a
crash, and journaled in the saga store, under the step's idempotency key,
before they leave the process (a write fenced by the saga's lease). A step
completes only at its network's confirmation policy; a reorg puts it back in
doubt. An in-doubt step is blocked: its keys are tombstoned in the journal and
a pending transaction is cancelled by a same-nonce replacement. Rollbacks go
through a private endpoint; approvals are always revoked; a reverse swap is
bounded by the forward rate and the maximum acceptable rollback cost, or
escalates.

Typical wiring::

    registry = Registry()
    evm = register_evm(registry)
    wallet = EvmWallet(EvmNetwork("mainnet", w3, confirmation=FinalityTag("safe"),
                                  private=PrivateEndpoint("https://rpc.example/protect")),
                       LocalSigner(key))
    engine = Engine(registry, store, services={"evm": wallet})  # the journal is the store's

See ``docs/evm.md``.
"""

from .approve import ApproveOp
from .errors import NonceTooLow, ReplacementUnderpriced, TxRejected
from .journal import TxJournal, TxRecord, TxScope, saga_transactions
from .network import EvmNetwork
from .nonces import NonceManager
from .policy import (
    ConfirmationPolicy,
    Confirmations,
    FeePolicy,
    FinalityTag,
    PrivateEndpoint,
    SubmissionPolicy,
)
from .registration import EvmHandlers, register_evm
from .signer import LocalSigner, SignedTx
from .state import EvmState, watch
from .status import TxState, TxStatus
from .submit import PrivateSubmitter, PublicSubmitter, Submitter
from .swap import SwapOp
from .vault import VaultDepositOp
from .wallet import EvmWallet, Sent, Settled

__all__ = [
    # wiring
    "EvmWallet",
    "EvmNetwork",
    "LocalSigner",
    "register_evm",
    "EvmHandlers",
    "watch",
    # policies
    "ConfirmationPolicy",
    "Confirmations",
    "FinalityTag",
    "FeePolicy",
    "SubmissionPolicy",
    "PrivateEndpoint",
    # operations
    "ApproveOp",
    "SwapOp",
    "VaultDepositOp",
    "EvmState",
    # transactions
    "TxJournal",
    "TxScope",
    "TxRecord",
    "saga_transactions",
    "NonceManager",
    "Submitter",
    "PublicSubmitter",
    "PrivateSubmitter",
    "SignedTx",
    "Sent",
    "Settled",
    "TxState",
    "TxStatus",
    # errors
    "TxRejected",
    "NonceTooLow",
    "ReplacementUnderpriced",
]
