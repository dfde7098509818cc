"""RFC 6962 trees against Certificate Transparency's published test vectors."""

from __future__ import annotations

import pytest

from reversa.core.evidence.merkle import (
    EMPTY_ROOT,
    Frontier,
    Tree,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_inclusion,
)

# The leaves and roots of the reference tests of RFC 6962 implementations
# (certificate-transparency, trillian): MTH of the first n leaves, n = 1..8.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243",
                                     "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
PATHS = {(0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                  "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                  "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
         (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                  "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
         (0, 1): []}
HASHES = [leaf_hash(x) for x in LEAVES]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT == Frontier().root()


@pytest.mark.parametrize("n", range(1, 9))
def test_roots_match_the_reference_vectors(n: int) -> None:
    assert root(HASHES[:n]).hex() == ROOTS[n - 1]
    frontier = Frontier()
    for h in HASHES[:n]:
        frontier.append(h)
    assert frontier.root().hex() == ROOTS[n - 1]
    assert Tree(HASHES).root(0, n).hex() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size"), sorted(PATHS))
def test_audit_paths_match_the_reference_vectors(index: int, size: int) -> None:
    path = inclusion_proof(HASHES, index, size)
    assert [p.hex() for p in path] == PATHS[(index, size)]
    assert Tree(HASHES).proof(index, size) == path
    assert verify_inclusion(HASHES[index], index, size, path, bytes.fromhex(ROOTS[size - 1]))


def test_every_proof_of_every_tree_up_to_33_leaves_verifies_and_nothing_else_does() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(33)]
    tree = Tree(leaves)
    for size in range(1, 34):
        top = root(leaves[:size])
        for index in range(size):
            path = tree.proof(index, size)
            assert path == inclusion_proof(leaves, index, size)
            assert verify_inclusion(leaves[index], index, size, path, top)
            # The same path proves nothing for another leaf, index or size.
            assert not verify_inclusion(leaves[(index + 1) % 33], index, size, path, top) \
                or leaves[(index + 1) % 33] == leaves[index]
            if size > 1:  # the path of one position proves nothing at another
                other = index - 1 if index else 1
                assert not verify_inclusion(leaves[index], other, size, path, top)
            if path:
                bent = [bytes(32), *path[1:]]
                assert not verify_inclusion(leaves[index], index, size, bent, top)


def test_a_leaf_cannot_pass_for_a_node() -> None:
    # Domain separation: the node over two leaves is not the leaf of their concatenation.
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != leaf_hash(a + b)


def test_frontier_survives_json_and_keeps_appending() -> None:
    frontier = Frontier()
    for h in HASHES[:5]:
        frontier.append(h)
    again = Frontier.from_json(frontier.size, frontier.to_json())
    for h in HASHES[5:]:
        again.append(h)
    assert again.root().hex() == ROOTS[7] and again.size == 8


def test_out_of_range_proofs_are_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(HASHES, 8, 8)
    with pytest.raises(ValueError, match="not in a tree"):
        Tree(HASHES).proof(3, 2)
    assert not verify_inclusion(HASHES[0], 4, 4, [], HASHES[0])
