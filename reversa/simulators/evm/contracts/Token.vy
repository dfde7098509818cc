# pragma version ~=0.4.3
"""
@title Simulation ERC-20 token
@notice A plain ERC-20 with an owner-only mint. With `zero_first` set it refuses to change a
        non-zero allowance to another non-zero value (as USDT does), so callers must approve
        zero before approving a new amount.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
zero_first: public(bool)
owner: public(address)


@deploy
def __init__(_name: String[32], _symbol: String[8], _decimals: uint8, _zero_first: bool):
    self.name = _name
    self.symbol = _symbol
    self.decimals = _decimals
    self.zero_first = _zero_first
    self.owner = msg.sender


@external
def mint(_to: address, _value: uint256):
    assert msg.sender == self.owner, "only owner"
    self.totalSupply += _value
    self.balanceOf[_to] += _value
    log Transfer(sender=empty(address), receiver=_to, value=_value)


@external
def transfer(_to: address, _value: uint256) -> bool:
    assert self.balanceOf[msg.sender] >= _value, "insufficient balance"
    self.balanceOf[msg.sender] -= _value
    self.balanceOf[_to] += _value
    log Transfer(sender=msg.sender, receiver=_to, value=_value)
    return True


@external
def transferFrom(_from: address, _to: address, _value: uint256) -> bool:
    assert self.balanceOf[_from] >= _value, "insufficient balance"
    assert self.allowance[_from][msg.sender] >= _value, "insufficient allowance"
    self.allowance[_from][msg.sender] -= _value
    self.balanceOf[_from] -= _value
    self.balanceOf[_to] += _value
    log Transfer(sender=_from, receiver=_to, value=_value)
    return True


@external
def approve(_spender: address, _value: uint256) -> bool:
    if self.zero_first:
        assert _value == 0 or self.allowance[msg.sender][_spender] == 0, "approve zero first"
    self.allowance[msg.sender][_spender] = _value
    log Approval(owner=msg.sender, spender=_spender, value=_value)
    return True
