# pragma version ~=0.4.3
"""
@title Reversa audit anchor
@notice An append-only record of Reversa audit checkpoints. Checkpoint n of a log
        is written once, only right after n - 1, only by the deployer, and with a
        tree size that never shrinks: what it holds can never be rewritten.
"""

event Anchored:
    log_id: indexed(bytes32)
    number: indexed(uint256)
    size: uint256
    root: bytes32
    statement: bytes32

owner: public(address)
latest: public(HashMap[bytes32, uint256])
roots: public(HashMap[bytes32, HashMap[uint256, bytes32]])
sizes: public(HashMap[bytes32, HashMap[uint256, uint256]])
statements: public(HashMap[bytes32, HashMap[uint256, bytes32]])


@deploy
def __init__():
    self.owner = msg.sender


@external
def anchor(_log: bytes32, _number: uint256, _size: uint256, _root: bytes32, _statement: bytes32):
    assert msg.sender == self.owner, "only the owner anchors"
    last: uint256 = self.latest[_log]
    assert _number == last + 1, "checkpoints are anchored in order, once each"
    assert _size >= self.sizes[_log][last], "a checkpoint log never shrinks"
    self.latest[_log] = _number
    self.roots[_log][_number] = _root
    self.sizes[_log][_number] = _size
    self.statements[_log][_number] = _statement
    log Anchored(log_id=_log, number=_number, size=_size, root=_root, statement=_statement)
