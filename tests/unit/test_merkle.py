"""RFC 9162 Merkle hashing and proofs agree with transparency-dev/merkle, the reference Go code:
its test vectors (copied into tests/assets/transparency-dev-merkle/), its known answers
(`rfc6962/rfc6962_test.go`, `testonly/constants.go`), and proofs generated for every tree up to 16
leaves, which verify and stop verifying when any byte or hash is changed."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controlplane.errors import InvalidEntity
from controlplane.ledger.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    subtree_from_leaves,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[1] / "assets" / "transparency-dev-merkle"
INCLUSION_FILES = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((VECTORS / "consistency").rglob("*.json"))

# The one vector we answer differently, on purpose: transparency-dev compares the roots of two
# trees of equal size without looking at them, so 12-byte "roots" pass there. A root that is not
# a SHA-256 hash never came from a log, and we refuse it (fail closed).
DEVIATIONS = {
    "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": "is 12 bytes, not 32",
}

# testonly/constants.go: LeafInputs(), RootHashes() for sizes 0..8 and CompactTrees().
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
RFC_LEAF_HASHES = [leaf_hash(entry) for entry in RFC_LEAVES]
# Proofs for every tree up to 16 leaves: the RFC leaves, then eight more.
LEAF_HASHES_16 = RFC_LEAF_HASHES + [leaf_hash(b"leaf %d" % i) for i in range(8, 16)]


def _name(path: Path) -> str:
    return path.relative_to(VECTORS).as_posix()


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(document: dict[str, Any]) -> list[bytes]:
    return [_b64(h) for h in document["proof"] or []]  # "proof": null in single-leaf cases


def test_the_vectors_are_all_there() -> None:
    # transparency-dev/merkle testdata: 98 inclusion and 98 consistency cases.
    assert len(INCLUSION_FILES) == 98
    assert len(CONSISTENCY_FILES) == 98


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_name)
def test_inclusion_vector(path: Path) -> None:
    case = _load(path)
    arguments = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        _proof(case),
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*arguments)
    else:
        verify_inclusion(*arguments)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_name)
def test_consistency_vector(path: Path) -> None:
    case = _load(path)
    arguments = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        _proof(case),
    )
    deviation = DEVIATIONS.get(_name(path))
    if deviation is not None:
        assert not case["wantErr"]
        with pytest.raises(ProofError, match=deviation):
            verify_consistency(*arguments)
    elif case["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*arguments)
    else:
        verify_consistency(*arguments)


HAPPY_INCLUSION = [p for p in INCLUSION_FILES if p.parent.name.isdigit() and p.stem == "happy-path"]
HAPPY_CONSISTENCY = [
    p for p in CONSISTENCY_FILES if p.parent.name.isdigit() and p.stem == "happy-path"
]


@pytest.mark.parametrize("path", HAPPY_INCLUSION, ids=_name)
def test_generated_inclusion_proof_is_the_vectors(path: Path) -> None:
    # The happy paths are proofs over the RFC leaves (cmd/proofgen in transparency-dev/merkle).
    case = _load(path)
    index, size = case["leafIdx"], case["treeSize"]
    assert _b64(case["leafHash"]) == RFC_LEAF_HASHES[index]
    assert _b64(case["root"]) == RFC_ROOTS[size]
    assert inclusion_proof(index, size, subtree_from_leaves(RFC_LEAF_HASHES)) == _proof(case)


@pytest.mark.parametrize("path", HAPPY_CONSISTENCY, ids=_name)
def test_generated_consistency_proof_is_the_vectors(path: Path) -> None:
    case = _load(path)
    old, new = case["size1"], case["size2"]
    assert (_b64(case["root1"]), _b64(case["root2"])) == (RFC_ROOTS[old], RFC_ROOTS[new])
    generated = consistency_proof(old, new, subtree_from_leaves(RFC_LEAF_HASHES))
    assert generated == _proof(case)


def test_hashes_match_the_rfc6962_known_answers() -> None:
    # rfc6962/rfc6962_test.go
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


@pytest.mark.parametrize("size", range(9))
def test_root_of_the_rfc_leaves(size: int) -> None:
    assert root(RFC_LEAF_HASHES[:size]) == RFC_ROOTS[size]
    assert subtree_from_leaves(RFC_LEAF_HASHES)(0, size) == RFC_ROOTS[size]


def test_compact_range_grows_through_the_rfc_roots() -> None:
    # CompactTrees() of testonly/constants.go: one hash per set bit of the size.
    frontier = CompactRange()
    assert frontier.root() == EMPTY_ROOT
    for size, leaf in enumerate(RFC_LEAF_HASHES, start=1):
        frontier = frontier.append(leaf)
        assert frontier.size == size
        assert len(frontier.hashes) == size.bit_count()
        assert frontier.root() == RFC_ROOTS[size]
        assert CompactRange.from_json(frontier.to_json()) == frontier
    assert frontier.hashes == (RFC_ROOTS[8],)


def test_compact_range_agrees_with_root_up_to_16() -> None:
    frontier = CompactRange()
    for size, leaf in enumerate(LEAF_HASHES_16, start=1):
        previous = frontier
        frontier = frontier.append(leaf)
        assert previous.size == size - 1  # append leaves the old range alone
        assert frontier.root() == root(LEAF_HASHES_16[:size])


def test_compact_range_json_is_base64_with_padding() -> None:
    frontier = CompactRange().append(RFC_LEAF_HASHES[0]).append(RFC_LEAF_HASHES[1])
    frontier = frontier.append(RFC_LEAF_HASHES[2])
    assert json.loads(frontier.to_json()) == {
        "hashes": [base64.b64encode(h).decode() for h in frontier.hashes],
        "size": 3,
    }
    assert all(h.endswith("=") for h in json.loads(frontier.to_json())["hashes"])
    assert CompactRange.from_json(frontier.to_json().encode()) == frontier


GOOD_HASH = base64.b64encode(RFC_ROOTS[1]).decode()


def _range_json(size: object, *hashes: object) -> str:
    return json.dumps({"size": size, "hashes": list(hashes)})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not JSON"),
        ("[]", "exactly"),
        ('{"size": 1}', "exactly"),
        ('{"size": 1, "hashes": [], "extra": 0}', "exactly"),
        ('{"size": 1, "hashes": "x"}', "must be a list"),
        ('{"size": -1, "hashes": []}', "non-negative"),
        (_range_json(True, GOOD_HASH), "non-negative integer"),
        (_range_json("1", GOOD_HASH), "non-negative integer"),
        (_range_json(3, GOOD_HASH), "has 2 hashes"),
        (_range_json(0, GOOD_HASH), "has 0 hashes"),
        ('{"size": 1, "hashes": [1]}', "base64 string"),
        (_range_json(1, GOOD_HASH.rstrip("=")), "padded base64"),
        (_range_json(1, GOOD_HASH.replace("+", "-")), "padded base64"),
        ('{"size": 1, "hashes": ["AAAA"]}', "3 bytes, not 32"),
        # The last character carries 4 unused bits; set one and the text is no longer canonical.
        (_range_json(1, GOOD_HASH[:-2] + "1="), "canonical"),
    ],
)
def test_compact_range_json_is_validated(text: str, reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        CompactRange.from_json(text)


def test_proof_error_is_an_invalid_entity() -> None:
    error = ProofError("x")
    assert isinstance(error, InvalidEntity)
    assert error.code == "proof_invalid"


def _flipped(proof: list[bytes], position: int, offset: int) -> list[bytes]:
    changed = bytearray(proof[position])
    changed[offset] ^= 0x01
    return [*proof[:position], bytes(changed), *proof[position + 1 :]]


def _tampered(proof: list[bytes]) -> list[tuple[str, list[bytes]]]:
    """Every proof one step away: any byte of any hash changed, any hash dropped, a hash added
    anywhere (a copy of a neighbour or of the empty root)."""
    variants = [
        (f"hash {position} byte {offset}", _flipped(proof, position, offset))
        for position in range(len(proof))
        for offset in range(32)
    ]
    variants += [
        (f"hash {position} dropped", proof[:position] + proof[position + 1 :])
        for position in range(len(proof))
    ]
    for position in range(len(proof) + 1):
        for extra in (EMPTY_ROOT, proof[min(position, len(proof) - 1)] if proof else EMPTY_ROOT):
            variants.append(
                (f"hash added at {position}", [*proof[:position], extra, *proof[position:]])
            )
    return variants


def _holds(verify: Callable[..., None], *arguments: Any) -> bool:
    try:
        verify(*arguments)
    except ProofError:
        return False
    return True


@pytest.mark.parametrize("size", range(1, 17))
def test_generated_inclusion_proofs_verify_and_resist_tampering(size: int) -> None:
    leaves = LEAF_HASHES_16[:size]
    subtree = subtree_from_leaves(LEAF_HASHES_16)
    tree_root = root(leaves)
    for index in range(size):
        proof = inclusion_proof(index, size, subtree)
        verify_inclusion(leaves[index], index, size, proof, tree_root)
        accepted = [
            what
            for what, bad in _tampered(proof)
            if _holds(verify_inclusion, leaves[index], index, size, bad, tree_root)
        ]
        assert accepted == [], f"leaf {index} of {size}"


@pytest.mark.parametrize("new_size", range(1, 17))
def test_generated_consistency_proofs_verify_and_resist_tampering(new_size: int) -> None:
    subtree = subtree_from_leaves(LEAF_HASHES_16)
    new_root = root(LEAF_HASHES_16[:new_size])
    for old_size in range(1, new_size + 1):
        old_root = root(LEAF_HASHES_16[:old_size])
        proof = consistency_proof(old_size, new_size, subtree)
        assert (proof == []) == (old_size == new_size)
        verify_consistency(old_size, new_size, old_root, new_root, proof)
        accepted = [
            what
            for what, bad in _tampered(proof)
            if _holds(verify_consistency, old_size, new_size, old_root, new_root, bad)
        ]
        assert accepted == [], f"{old_size} -> {new_size}"


HASH = RFC_ROOTS[1]
ROOT_8 = RFC_ROOTS[8]
PROOF_0_OF_8 = inclusion_proof(0, 8, subtree_from_leaves(RFC_LEAF_HASHES))
PROOF_1_TO_8 = consistency_proof(1, 8, subtree_from_leaves(RFC_LEAF_HASHES))
PROOF_6_TO_8 = consistency_proof(6, 8, subtree_from_leaves(RFC_LEAF_HASHES))


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ((HASH, 8, 8, PROOF_0_OF_8, ROOT_8), "leaf index 8 is not in a tree of size 8"),
        ((HASH, 0, 0, [], EMPTY_ROOT), "leaf index 0 is not in a tree of size 0"),
        ((HASH, -1, 8, PROOF_0_OF_8, ROOT_8), "leaf index -1"),
        ((HASH[:31], 0, 8, PROOF_0_OF_8, ROOT_8), "leaf hash is 31 bytes, not 32"),
        ((HASH, 0, 8, PROOF_0_OF_8, ROOT_8 + b"\x00"), "root hash is 33 bytes"),
        ((HASH, 0, 8, PROOF_0_OF_8[:2], ROOT_8), "needs 3 hashes, the proof has 2"),
        ((HASH, 0, 8, [*PROOF_0_OF_8, HASH], ROOT_8), "needs 3 hashes, the proof has 4"),
        ((HASH, 0, 8, [*PROOF_0_OF_8[:2], b"x" * 31], ROOT_8), "proof hash 2 is 31 bytes"),
        ((RFC_LEAF_HASHES[1], 0, 8, PROOF_0_OF_8, ROOT_8), "leads to root"),
    ],
)
def test_inclusion_refusals_say_why(arguments: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_inclusion(*arguments)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ((2, 1, RFC_ROOTS[2], RFC_ROOTS[1], []), "size 2 cannot precede one of size 1"),
        ((0, 8, EMPTY_ROOT, ROOT_8, []), "from the empty tree is meaningless"),
        ((0, 0, EMPTY_ROOT, EMPTY_ROOT, []), "from the empty tree is meaningless"),
        ((8, 8, ROOT_8, ROOT_8, [ROOT_8]), "the proof must be empty"),
        ((8, 8, ROOT_8, RFC_ROOTS[7], []), "two trees of size 8 with different roots"),
        ((8, 8, ROOT_8[:16], ROOT_8[:16], []), "old root hash is 16 bytes"),
        ((1, 8, RFC_ROOTS[1], ROOT_8, []), "needs 3 hashes, the proof has 0"),
        ((1, 8, RFC_ROOTS[1], ROOT_8, PROOF_1_TO_8[:2]), "needs 3 hashes, the proof has 2"),
        ((1, 8, RFC_ROOTS[1], ROOT_8, [*PROOF_1_TO_8, HASH]), "needs 3 hashes, the proof has 4"),
        ((1, 8, RFC_ROOTS[1], ROOT_8[1:], PROOF_1_TO_8), "new root hash is 31 bytes"),
        ((1, 8, RFC_ROOTS[1], ROOT_8, [b"", *PROOF_1_TO_8[1:]]), "proof hash 0 is 0 bytes"),
        ((6, 8, RFC_ROOTS[5], ROOT_8, PROOF_6_TO_8), "leads to old root"),
        ((1, 8, RFC_ROOTS[1], RFC_ROOTS[7], PROOF_1_TO_8), "leads to new root"),
    ],
)
def test_consistency_refusals_say_why(arguments: tuple[Any, ...], reason: str) -> None:
    with pytest.raises(ProofError, match=reason):
        verify_consistency(*arguments)


def test_proof_generation_refuses_what_has_no_proof() -> None:
    subtree = subtree_from_leaves(RFC_LEAF_HASHES)
    with pytest.raises(ProofError, match="leaf index 8 is not in a tree of size 8"):
        inclusion_proof(8, 8, subtree)
    with pytest.raises(ProofError, match="from size 5 to size 4"):
        consistency_proof(5, 4, subtree)
    with pytest.raises(ProofError, match="empty tree"):
        consistency_proof(0, 4, subtree)
    with pytest.raises(ProofError, match="is outside the 8 leaves"):
        inclusion_proof(0, 9, subtree)
    assert consistency_proof(4, 4, subtree) == []
