#!/usr/bin/env python3
"""Independent check of the state-proof test vectors in docs/PROTOCOL.md (state proofs).

Written from the text of the state-proof section of docs/PROTOCOL.md alone (hashlib only, no ledger-core or jmt code): it builds the
golden tree as a logical sparse Merkle tree, derives its root and proofs, encodes the proofs with
the canonical layout, verifies them with the algorithm of that section, and checks that every vector
printed there is exactly what it computed. Also checks that tampered proofs are refused.

Run: python3 docs/verifier/check_state_vectors.py   (exit status 0 = all vectors agree)
"""

import hashlib
import pathlib
import re
import struct
import sys

PLACEHOLDER = b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
LEAF_SEPARATOR = b"JMT::LeafNode"
INTERNAL_SEPARATOR = b"JMT::IntrnalNode"
SIBLINGS_MAX = 256

GOLDEN = {b"k1": b"v1", b"k2": b"v2", b"k3": b"v3"}


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(key_hash, value_hash):
    return sha256(LEAF_SEPARATOR + key_hash + value_hash)


def internal_hash(left, right):
    return sha256(INTERNAL_SEPARATOR + left + right)


def bit(key_hash, index):
    """Bit `index` of a 32-byte hash, 0 = most significant bit of byte 0."""
    return (key_hash[index // 8] >> (7 - index % 8)) & 1


def subtree_hash(leaves, depth):
    """Hash of the subtree at `depth` holding `leaves` [(key_hash, value_hash)]."""
    if not leaves:
        return PLACEHOLDER
    if len(leaves) == 1:
        return leaf_hash(*leaves[0])
    left = [leaf for leaf in leaves if bit(leaf[0], depth) == 0]
    right = [leaf for leaf in leaves if bit(leaf[0], depth) == 1]
    return internal_hash(subtree_hash(left, depth + 1), subtree_hash(right, depth + 1))


def prove(leaves, key_hash):
    """(leaf or None, siblings deepest first) for `key_hash`, by walking down from the root."""
    siblings_from_top = []
    depth = 0
    while len(leaves) > 1:
        side = bit(key_hash, depth)
        other = [leaf for leaf in leaves if bit(leaf[0], depth) != side]
        leaves = [leaf for leaf in leaves if bit(leaf[0], depth) == side]
        siblings_from_top.append(subtree_hash(other, depth + 1))
        depth += 1
    leaf = leaves[0] if leaves else None
    return leaf, list(reversed(siblings_from_top))


def encode_digest(digest):
    return struct.pack("<I", 0) + digest


def encode_proof(leaf, siblings):
    out = b"\x00" if leaf is None else b"\x01" + encode_digest(leaf[0]) + encode_digest(leaf[1])
    out += struct.pack("<Q", len(siblings))
    return out + b"".join(encode_digest(sibling) for sibling in siblings)


def decode_digest(data, at):
    (tag,) = struct.unpack_from("<I", data, at)
    if tag != 0 or len(data) < at + 36:
        raise ValueError("bad digest")
    return data[at + 4 : at + 36], at + 36


def decode_proof(data):
    if data[0] not in (0, 1):
        raise ValueError("bad option tag")
    at, leaf = 1, None
    if data[0] == 1:
        key_hash, at = decode_digest(data, at)
        value_hash, at = decode_digest(data, at)
        leaf = (key_hash, value_hash)
    (count,) = struct.unpack_from("<Q", data, at)
    at += 8
    if len(data) != at + 36 * count:
        raise ValueError("length does not match the sibling count")
    siblings = []
    for _ in range(count):
        sibling, at = decode_digest(data, at)
        siblings.append(sibling)
    return leaf, siblings


def verify(root, key, value, leaf, siblings):
    """The verification algorithm of the state-proof section; returns None if valid, else the reason."""
    if len(siblings) > SIBLINGS_MAX:
        return "TooManySiblings"
    key_hash = sha256(key)
    if value is not None:
        if leaf is None:
            return "MissingLeaf"
        if leaf[0] != key_hash:
            return "KeyMismatch"
        if leaf[1] != sha256(value):
            return "ValueMismatch"
    elif leaf is not None:
        if leaf[0] == key_hash:
            return "UnexpectedLeaf"
        shared = 0
        while shared < 256 and bit(key_hash, shared) == bit(leaf[0], shared):
            shared += 1
        if shared < len(siblings):
            return "LeafOffPath"
    node = PLACEHOLDER if leaf is None else leaf_hash(*leaf)
    for index, sibling in enumerate(siblings):
        depth = len(siblings) - 1 - index
        node = internal_hash(sibling, node) if bit(key_hash, depth) else internal_hash(node, sibling)
    return None if node == root else "RootMismatch"


def check(condition, what):
    """Fails loudly; unlike `assert`, still runs under `python3 -O`."""
    if not condition:
        raise SystemExit(f"state vector check failed: {what}")


def flip(data, index):
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def check_tampering(root, key, value, leaf, siblings):
    """Every one-byte change to the root, a sibling or the leaf, and (for presence) to the key or
    the value, must be refused."""
    for index in range(32):
        check(verify(flip(root, index), key, value, leaf, siblings) == "RootMismatch", "root")
        for position in range(len(siblings)):
            altered = siblings[:position] + [flip(siblings[position], index)] + siblings[position + 1 :]
            check(verify(root, key, value, leaf, altered) is not None, f"sibling {position}")
        if leaf is not None:
            altered_key = (flip(leaf[0], index), leaf[1])
            check(verify(root, key, value, altered_key, siblings) is not None, "leaf key hash")
            altered_value = (leaf[0], flip(leaf[1], index))
            check(verify(root, key, value, altered_value, siblings) is not None, "leaf value hash")
    if value is not None:
        check(verify(root, key + b"x", value, leaf, siblings) == "KeyMismatch", "key")
        check(verify(root, key, value + b"x", leaf, siblings) == "ValueMismatch", "value")
        check(verify(root, key, None, leaf, siblings) == "UnexpectedLeaf", "absence of a present key")


def main():
    text = (pathlib.Path(__file__).parent.parent / "PROTOCOL.md").read_text()
    printed = dict(re.findall(r"^([a-z0-9_]+) *= *([0-9a-f]+)$", text, re.MULTILINE))
    leaves = sorted((sha256(key), sha256(value)) for key, value in GOLDEN.items())
    root = subtree_hash(leaves, 0)
    check(sha256(b"") == bytes.fromhex(printed["empty_value_hash"]), "sha256 sanity")
    check(PLACEHOLDER.hex() == printed["empty_root"], "empty_root")
    leaf_of = {key: leaf_hash(sha256(key), sha256(value)) for key, value in GOLDEN.items()}
    node_00 = internal_hash(leaf_of[b"k2"], leaf_of[b"k3"])
    node_0 = internal_hash(node_00, leaf_of[b"k1"])
    intermediate = {
        "node_00": node_00,
        "node_0": node_0,
        **{"key_hash_" + key.decode(): sha256(key) for key in [b"k1", b"k2", b"k3", b"k8", b"k9"]},
        **{"value_hash_" + value.decode(): sha256(value) for value in GOLDEN.values()},
        **{"leaf_" + key.decode(): leaf for key, leaf in leaf_of.items()},
    }
    for name, value in intermediate.items():
        check(value.hex() == printed[name], f"{name}: computed {value.hex()}")
    check(root.hex() == printed["root"], f"root: computed {root.hex()}")
    check(root == internal_hash(node_0, PLACEHOLDER), "root from the drawn tree")
    cases = [(b"k2", b"v2", "proof_k2"), (b"k9", None, "proof_k9"), (b"k8", None, "proof_k8")]
    for key, value, name in cases:
        leaf, siblings = prove(leaves, sha256(key))
        encoded = encode_proof(leaf, siblings)
        check(encoded.hex() == printed[name], f"{name}: computed {encoded.hex()}")
        check(decode_proof(encoded) == (leaf, siblings), f"{name} decodes")
        check(verify(root, key, value, leaf, siblings) is None, name)
        check_tampering(root, key, value, leaf, siblings)
    # Every key of the golden tree, present or absent, proves and verifies.
    for number in range(100):
        key = b"k%d" % number
        leaf, siblings = prove(leaves, sha256(key))
        check(verify(root, key, GOLDEN.get(key), leaf, siblings) is None, key)
    print(f"state vectors OK: root {root.hex()}, {len(cases)} proofs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
