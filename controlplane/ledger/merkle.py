"""RFC 9162 Merkle tree hashing, the compact range of a growing log, and its proofs.

This module owns the tree arithmetic of the evidence ledger and nothing else: the leaf and node
hashes and the Merkle Tree Hash (MTH) of RFC 9162 §2.1.1 (unchanged from RFC 6962 §2.1), the
compact range (the roots of the perfect subtrees covering the leaves, enough to append and to
compute the root without the leaves), inclusion and consistency proof generation (§2.1.3.1 PATH,
§2.1.4.1 PROOF/SUBPROOF) and verification (§2.1.3.2, §2.1.4.2). It is pure Python on `hashlib`;
where leaf hashes live (Redis, tiles, an archive) is the caller's concern: generation reads them
through a `subtree(start, end)` callable that returns the MTH of the leaves [start, end).

Verification fails closed: every malformed input (a hash that is not 32 bytes, an index outside
the tree, a proof one hash too short or too long) raises `ProofError` with the reason, before any
hashing. The answers are pinned by transparency-dev/merkle's test vectors
(`tests/assets/transparency-dev-merkle/`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.errors import InvalidEntity

HASH_SIZE = 32  # SHA-256, the hash of RFC 6962 and of C2SP tlog-checkpoint roots
# RFC 9162 §2.1.1: the one-byte prefixes that keep leaf and interior hashes apart (second
# preimage resistance: a leaf can never be passed off as a node).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

# RFC 9162 §2.1.1: MTH({}) = SHA-256(), the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(InvalidEntity):
    """A Merkle proof, tree head or proof request that does not hold; `detail` says why."""

    default_code = "proof_invalid"
    title = "Proof invalid"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The interior node over two subtree hashes: SHA-256(0x01 || left || right) (§2.1.1)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1), where §2.1.1 splits a tree of n."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose hashes are given (RFC 9162 §2.1.1), in O(n) without recursion.

    Hashing level by level, pairing neighbours and carrying an odd last node up unchanged, gives
    the same tree as §2.1.1's split at the largest power of two: the left part is always perfect,
    so only the rightmost node of a level can lack a sibling.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


@dataclass(frozen=True, slots=True)
class CompactRange:
    """The frontier of a log of `size` leaves: the roots of the perfect subtrees covering
    [0, size), left to right, largest first; one per set bit of `size`.

    It is all a writer needs to append and to compute the root, so it is what the ledger keeps as
    its head (`to_json`). Instances are immutable; `append` returns a new one. Raises
    `ProofError` if the hashes do not fit `size`.
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ProofError(
                f"compact range size must be a non-negative integer, not {self.size!r}"
            )
        if len(self.hashes) != self.size.bit_count():
            raise ProofError(
                f"a compact range of size {self.size} has {self.size.bit_count()} hashes "
                f"(one per set bit), not {len(self.hashes)}"
            )
        for position, value in enumerate(self.hashes):
            _check_hash(value, f"compact range hash {position}")

    def append(self, leaf_hash: bytes) -> CompactRange:
        """The compact range with one more leaf, whose hash (`leaf_hash(entry)`) is given."""
        _check_hash(leaf_hash, "leaf hash")
        hashes = list(self.hashes)
        carry, size = leaf_hash, self.size
        # Each trailing set bit of the old size is a perfect subtree of the new leaf's height:
        # merge with it and carry up, as in binary addition of 1.
        while size & 1:
            carry = node_hash(hashes.pop(), carry)
            size >>= 1
        hashes.append(carry)
        return CompactRange(self.size + 1, tuple(hashes))

    def root(self) -> bytes:
        """MTH of the leaves [0, size): the subtree roots folded right to left (§2.1.1)."""
        if not self.hashes:
            return EMPTY_ROOT
        result = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            result = node_hash(left, result)
        return result

    def to_json(self) -> str:
        """`{"hashes":[...],"size":n}`, hashes in standard padded base64 (RFC 4648 §4), as C2SP
        notes write hashes; compact, keys sorted, so equal ranges serialise to equal bytes."""
        document = {
            "hashes": [base64.b64encode(value).decode("ascii") for value in self.hashes],
            "size": self.size,
        }
        return json.dumps(document, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CompactRange:
        """The compact range `to_json` wrote. Raises `ProofError` unless `text` is exactly that
        shape: a size, and popcount(size) canonical base64 hashes of 32 bytes."""
        try:
            document: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise ProofError(f"compact range is not JSON: {error}") from None
        if not isinstance(document, dict) or set(document) != {"hashes", "size"}:
            raise ProofError('compact range must be an object with exactly "hashes" and "size"')
        encoded = document["hashes"]
        if not isinstance(encoded, list):
            raise ProofError("compact range hashes must be a list")
        hashes = tuple(
            _decode_base64(value, f"compact range hash {position}")
            for position, value in enumerate(encoded)
        )
        return cls(document["size"], hashes)


def _decode_base64(value: object, what: str) -> bytes:
    # Canonical encoding only (re-encoding gives the same text), so one head has one JSON form.
    if not isinstance(value, str):
        raise ProofError(f"{what} must be a base64 string")
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ProofError(f"{what} is not standard padded base64 (RFC 4648 §4)") from None
    if base64.b64encode(decoded).decode("ascii") != value:
        raise ProofError(f"{what} is not canonical base64 (RFC 4648 §4)")
    return decoded


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def subtree_from_leaves(leaf_hashes: Sequence[bytes]) -> Callable[[int, int], bytes]:
    """A memoised `subtree(start, end)` over leaf hashes held in memory, for proof generation on
    small trees (tests, an archive being verified). Raises `ProofError` for a range outside the
    leaves."""
    leaves = tuple(leaf_hashes)
    cache: dict[tuple[int, int], bytes] = {}

    def subtree(start: int, end: int) -> bytes:
        if not 0 <= start <= end <= len(leaves):
            raise ProofError(f"subtree [{start}, {end}) is outside the {len(leaves)} leaves")
        if start == end:
            return EMPTY_ROOT
        if end - start == 1:
            return leaves[start]
        known = cache.get((start, end))
        if known is None:
            k = _split(end - start)
            known = node_hash(subtree(start, start + k), subtree(start + k, end))
            cache[(start, end)] = known
        return known

    return subtree


def inclusion_proof(index: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 §2.1.3.1: the sibling subtree roots from the leaf up.

    Raises `ProofError` unless 0 <= index < size.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    # §2.1.3.1 recurses into the half that holds the leaf and appends the other half's MTH after
    # the deeper path; walking down collects the same hashes top first, hence the reverse.
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(
    old_size: int, new_size: int, subtree: Callable[[int, int], bytes]
) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1; empty when the sizes are equal.

    Raises `ProofError` if old_size > new_size, or if old_size is 0: RFC 9162 defines no proof
    from the empty tree (it is consistent with every tree; a protocol that accepts it, as C2SP
    tlog-witness does, says so itself).
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless (RFC 9162)")
    # SUBPROOF(m, D[start:end], b), unrolled: each step appends the MTH of the half that m does
    # not reach into; at m == n the subtree itself is added unless it is the whole old tree
    # (b = true), whose root the verifier already has.
    path: list[bytes] = []
    start, end, m, whole_old_tree = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(subtree(start + k, end))
            end = start + k
        else:
            path.append(subtree(start, start + k))
            start += k
            m -= k
            whole_old_tree = False
    if not whole_old_tree:
        path.append(subtree(start, end))
    path.reverse()
    return path


def _inclusion_proof_length(index: int, size: int) -> int:
    # Where the paths to `index` and to `size - 1` part (`inner` levels from the bottom), then one
    # hash per left sibling on the right border above (the decomposition of transparency-dev/merkle
    # proof/verify.go). Requires 0 <= index < size.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    # The inclusion proof of leaf old_size - 1, minus the levels inside the largest perfect
    # subtree that ends the old tree, plus that subtree's root unless it is the whole old tree.
    # Requires 0 < old_size < new_size.
    shift = (old_size & -old_size).bit_length() - 1
    seeded = 0 if old_size == 1 << shift else 1
    return seeded + _inclusion_proof_length(old_size - 1, new_size) - shift


def _check_proof(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} needs {expected} hashes, the proof has {len(proof)}")
    for position, value in enumerate(proof):
        _check_hash(value, f"proof hash {position}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Returns quietly when `proof` shows the leaf `leaf_hash` at `index` in the tree of `size`
    leaves whose root is `root` (RFC 9162 §2.1.3.2). Raises `ProofError` otherwise."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    _check_proof(proof, _inclusion_proof_length(index, size), f"leaf {index} of a tree of {size}")
    # §2.1.3.2 steps 2-5, as written.
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if r != root:
        raise ProofError(
            f"inclusion proof of leaf {index} leads to root {r.hex()}, not {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Returns quietly when `proof` shows that the tree of `new_size` leaves with root
    `new_root` extends the tree of `old_size` leaves with root `old_root` (RFC 9162 §2.1.4.2).
    Raises `ProofError` otherwise, including for old_size 0, which no RFC 9162 proof covers (see
    `consistency_proof`)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"a tree of size {old_size} cannot precede one of size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless (RFC 9162)")
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    if old_size == new_size:
        # The same tree: nothing to prove, and nothing may be offered as proof.
        if proof:
            raise ProofError(f"both trees have size {old_size}, so the proof must be empty")
        if old_root != new_root:
            raise ProofError(
                f"two trees of size {old_size} with different roots: "
                f"{old_root.hex()} and {new_root.hex()}"
            )
        return
    _check_proof(
        proof,
        _consistency_proof_length(old_size, new_size),
        f"consistency from size {old_size} to {new_size}",
    )
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root:
        raise ProofError(f"consistency proof leads to old root {fr.hex()}, not {old_root.hex()}")
    if sr != new_root:
        raise ProofError(f"consistency proof leads to new root {sr.hex()}, not {new_root.hex()}")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """§2.1.4.2 steps 2-6, as written: the old and new roots the proof leads to (fr, sr).
    Requires 0 < old_size < new_size and a non-empty proof."""
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: an exact power of 2 is a subtree of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return fr, sr
