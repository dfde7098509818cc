# pragma version ~=0.4.3
"""
@title Swap router
@notice Pulls the input token from the caller (who must have approved the router), pays it
        into the pool and swaps with a minimum-output bound and a deadline.
"""
from ethereum.ercs import IERC20

interface Pool:
    def swap(_token_in: address, _min_out: uint256, _to: address) -> uint256: nonpayable
    def get_amount_out(_token_in: address, _amount_in: uint256) -> uint256: view


@external
@view
def quote(_pool: address, _token_in: address, _amount_in: uint256) -> uint256:
    return staticcall Pool(_pool).get_amount_out(_token_in, _amount_in)


@external
def swap_exact_in(
    _pool: address, _token_in: address, _amount_in: uint256, _min_out: uint256, _deadline: uint256
) -> uint256:
    assert block.timestamp <= _deadline, "expired"
    assert extcall IERC20(_token_in).transferFrom(msg.sender, _pool, _amount_in), "pull failed"
    return extcall Pool(_pool).swap(_token_in, _min_out, msg.sender)
