"""The adapter's public surface is explicit and pinned."""

import reversa.adapters.evm as evm
import reversa.simulators.evm as sims
from reversa.adapters.evm import PrivateEndpoint


def test_adapter_exports_are_pinned() -> None:
    assert sorted(evm.__all__) == sorted([
        "EvmWallet", "EvmNetwork", "LocalSigner", "register_evm", "EvmHandlers", "watch",
        "ConfirmationPolicy", "Confirmations", "FinalityTag", "FeePolicy", "SubmissionPolicy",
        "PrivateEndpoint", "ApproveOp", "SwapOp", "VaultDepositOp", "EvmState", "TxJournal",
        "TxScope", "TxRecord", "saga_transactions", "NonceManager", "Submitter",
        "PublicSubmitter", "PrivateSubmitter", "SignedTx", "Sent", "Settled", "TxState",
        "TxStatus", "TxRejected", "NonceTooLow", "ReplacementUnderpriced",
    ])
    for name in evm.__all__:
        assert hasattr(evm, name), name
    for name in sims.__all__:
        assert hasattr(sims, name), name


def test_private_endpoint_repr_hides_url_credentials() -> None:
    endpoint = PrivateEndpoint("https://user:s3cret@relay.example/apikey-123?token=abc")
    assert "s3cret" not in repr(endpoint) and "apikey-123" not in repr(endpoint)
    assert "relay.example" in repr(endpoint)


def test_default_policy_never_sends_reverse_swaps_publicly() -> None:
    policy = evm.SubmissionPolicy()
    assert policy.wants_private("reverse_swap", rollback=True)
    assert not policy.may_fall_back("reverse_swap")
    assert policy.may_fall_back("revoke") and policy.may_fall_back("cancel")
