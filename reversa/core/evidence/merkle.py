"""Merkle hash trees as Certificate Transparency defines them (RFC 6962 section 2.1).

Leaves hash as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``, so a leaf can never pass for a node (the
second-preimage attack on plain Merkle trees). A tree of ``n`` leaves splits at
the largest power of two below ``n``; an odd node is carried up, never
duplicated (unlike Bitcoin's trees, CVE-2012-2459).

:class:`Frontier` appends leaves in O(log n) memory: it keeps only the roots of
the perfect subtrees along the right edge, which is all a checkpoint needs to
extend the tree without reading earlier leaves back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "Tree",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the hash of an empty tree."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """PATH(index, D[0:size]): the audit path proving leaf ``index`` is in the tree.

    Raises:
        ValueError: ``index`` is outside the tree.
    """
    size = len(leaves) if size is None else size
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    return _path(leaves[:size], index)


def _path(leaves: Sequence[bytes], m: int) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(leaves[:k], m), root(leaves[k:])]
    return [*_path(leaves[k:], m - k), root(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes
) -> bool:
    """Check an audit path (the algorithm of RFC 9162 section 2.1.3.2).

    Args:
        leaf: The leaf's hash (:func:`leaf_hash` of its data).
        index: Its 0-based position.
        size: The tree size the proof is for.
        proof: The audit path, nearest sibling first.
        expected_root: The signed root of that tree.
    """
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


@dataclass
class Frontier:
    """An append-only tree kept as the roots of its right-edge perfect subtrees.

    Attributes:
        size: Leaves appended so far.
        peaks: ``(height, hash)`` of each perfect subtree, largest first; their
            sizes are the binary digits of ``size``.
    """

    size: int = 0
    peaks: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the right end."""
        height, h = 0, leaf
        while self.peaks and self.peaks[-1][0] == height:
            _, left = self.peaks.pop()
            h = node_hash(left, h)
            height += 1
        self.peaks.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the peaks folded from the right."""
        if not self.peaks:
            return EMPTY_ROOT
        r = self.peaks[-1][1]
        for _, h in reversed(self.peaks[:-1]):
            r = node_hash(h, r)
        return r

    def to_json(self) -> list[list[int | str]]:
        """Peaks as JSON (stored with each checkpoint)."""
        return [[height, h.hex()] for height, h in self.peaks]

    @classmethod
    def from_json(cls, size: int, peaks: Sequence[Sequence[int | str]]) -> Frontier:
        """Rebuild from :meth:`to_json`."""
        return cls(size, [(int(p[0]), bytes.fromhex(str(p[1]))) for p in peaks])


class Tree:
    """A fixed set of leaves answering many proofs: subtree roots are computed once.

    :func:`inclusion_proof` recomputes subtrees for each proof; an export proves
    every saga of a tree, so this caches each subtree root it computes (O(n)
    hashes in total for any number of proofs).
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self._roots: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int = 0, hi: int | None = None) -> bytes:
        """MTH of ``leaves[lo:hi]``."""
        hi = len(self.leaves) if hi is None else hi
        if hi - lo == 0:
            return EMPTY_ROOT
        if hi - lo == 1:
            return self.leaves[lo]
        cached = self._roots.get((lo, hi))
        if cached is None:
            k = _split(hi - lo)
            cached = node_hash(self.root(lo, lo + k), self.root(lo + k, hi))
            self._roots[(lo, hi)] = cached
        return cached

    def proof(self, index: int, size: int) -> list[bytes]:
        """PATH(index, D[0:size])."""
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
        out: list[bytes] = []
        lo, hi = 0, size
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                out.append(self.root(lo + k, hi))
                hi = lo + k
            else:
                out.append(self.root(lo, lo + k))
                lo = lo + k
        out.reverse()  # nearest sibling first
        return out
