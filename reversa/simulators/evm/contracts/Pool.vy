# pragma version ~=0.4.3
"""
@title Constant-product AMM pool (x * y = k) for two ERC-20 tokens
@notice Swaps are paid in first: the caller (normally the router) transfers the input token
        to the pool, then calls `swap`, which measures the input as balance minus reserve,
        as Uniswap V2 pairs do. A 0.3% fee stays in the pool.
"""
from ethereum.ercs import IERC20

event Swap:
    token_in: indexed(address)
    amount_in: uint256
    amount_out: uint256
    receiver: indexed(address)

event Sync:
    reserve0: uint256
    reserve1: uint256

token0: public(address)
token1: public(address)
reserve0: public(uint256)
reserve1: public(uint256)
FEE_BPS: constant(uint256) = 30


@deploy
def __init__(_token0: address, _token1: address):
    assert _token0 != _token1, "identical tokens"
    self.token0 = _token0
    self.token1 = _token1


@internal
@pure
def _amount_out(amount_in: uint256, reserve_in: uint256, reserve_out: uint256) -> uint256:
    if amount_in == 0 or reserve_in == 0 or reserve_out == 0:
        return 0
    with_fee: uint256 = amount_in * (10000 - FEE_BPS)
    return with_fee * reserve_out // (reserve_in * 10000 + with_fee)


@external
@view
def get_amount_out(_token_in: address, _amount_in: uint256) -> uint256:
    if _token_in == self.token0:
        return self._amount_out(_amount_in, self.reserve0, self.reserve1)
    assert _token_in == self.token1, "unknown token"
    return self._amount_out(_amount_in, self.reserve1, self.reserve0)


@external
def sync():
    """@notice Take the reserves from the balances: how liquidity is added (transfer, then sync)."""
    self.reserve0 = staticcall IERC20(self.token0).balanceOf(self)
    self.reserve1 = staticcall IERC20(self.token1).balanceOf(self)
    log Sync(reserve0=self.reserve0, reserve1=self.reserve1)


@external
def swap(_token_in: address, _min_out: uint256, _to: address) -> uint256:
    token_out: address = empty(address)
    reserve_in: uint256 = 0
    reserve_out: uint256 = 0
    if _token_in == self.token0:
        token_out = self.token1
        reserve_in = self.reserve0
        reserve_out = self.reserve1
    else:
        assert _token_in == self.token1, "unknown token"
        token_out = self.token0
        reserve_in = self.reserve1
        reserve_out = self.reserve0
    amount_in: uint256 = staticcall IERC20(_token_in).balanceOf(self) - reserve_in
    assert amount_in > 0, "no input"
    amount_out: uint256 = self._amount_out(amount_in, reserve_in, reserve_out)
    assert amount_out > 0, "insufficient liquidity"
    assert amount_out >= _min_out, "slippage: output below minimum"
    assert extcall IERC20(token_out).transfer(_to, amount_out), "transfer failed"
    self.reserve0 = staticcall IERC20(self.token0).balanceOf(self)
    self.reserve1 = staticcall IERC20(self.token1).balanceOf(self)
    log Swap(token_in=_token_in, amount_in=amount_in, amount_out=amount_out, receiver=_to)
    log Sync(reserve0=self.reserve0, reserve1=self.reserve1)
    return amount_out
