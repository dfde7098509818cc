import copy
import pickle

import pytest

from reversa.adapters.evm import LocalSigner
from reversa.core.errors import ConfigError

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


def test_repr_and_str_never_show_the_key() -> None:
    signer = LocalSigner(KEY)
    for text in (repr(signer), str(signer), f"{signer}"):
        assert KEY[2:] not in text
        assert "redacted" in text
        assert signer.address in text


def test_signer_refuses_pickle_and_copy() -> None:
    signer = LocalSigner(KEY)
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(TypeError):
        copy.deepcopy(signer)
    with pytest.raises(TypeError):
        copy.copy(signer)


def test_malformed_key_error_does_not_quote_it() -> None:
    bad = "0x" + "zz" * 32
    with pytest.raises(ConfigError) as info:
        LocalSigner(bad)
    assert "zz" * 8 not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_sign_produces_a_recoverable_transaction() -> None:
    from eth_account import Account

    signer = LocalSigner(KEY)
    signed = signer.sign({"type": 2, "chainId": 1, "nonce": 0, "to": signer.address,
                          "value": 0, "gas": 21000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1,
                          "data": "0x"})
    assert Account.recover_transaction(signed.raw) == signer.address
    assert signed.hash.startswith("0x") and len(signed.hash) == 66
