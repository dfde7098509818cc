# pragma version ~=0.4.3
"""
@title Yield vault (ERC-4626 style, simplified)
@notice Deposits mint shares at the current assets-per-share price; yield is added by the
        owner with `accrue` (a transfer in), which raises the price of every share.
"""
from ethereum.ercs import IERC20

event Deposit:
    owner: indexed(address)
    assets: uint256
    shares: uint256

event Withdraw:
    owner: indexed(address)
    assets: uint256
    shares: uint256

asset: public(address)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(_asset: address):
    self.asset = _asset


@internal
@view
def _total_assets() -> uint256:
    return staticcall IERC20(self.asset).balanceOf(self)


@external
@view
def totalAssets() -> uint256:
    return self._total_assets()


@external
@view
def convertToAssets(_shares: uint256) -> uint256:
    if self.totalSupply == 0:
        return _shares
    return _shares * self._total_assets() // self.totalSupply


@external
def deposit(_assets: uint256) -> uint256:
    assert _assets > 0, "zero deposit"
    shares: uint256 = _assets
    if self.totalSupply > 0:
        shares = _assets * self.totalSupply // self._total_assets()
    assert extcall IERC20(self.asset).transferFrom(msg.sender, self, _assets), "pull failed"
    self.totalSupply += shares
    self.balanceOf[msg.sender] += shares
    log Deposit(owner=msg.sender, assets=_assets, shares=shares)
    return shares


@external
def redeem(_shares: uint256) -> uint256:
    assert self.balanceOf[msg.sender] >= _shares, "insufficient shares"
    assets: uint256 = _shares * self._total_assets() // self.totalSupply
    self.balanceOf[msg.sender] -= _shares
    self.totalSupply -= _shares
    assert extcall IERC20(self.asset).transfer(msg.sender, assets), "transfer failed"
    log Withdraw(owner=msg.sender, assets=assets, shares=_shares)
    return assets
