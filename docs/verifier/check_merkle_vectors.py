#!/usr/bin/env python3
"""Recompute the Merkle tree test vectors of the protocol document and check them.

Usage: python3 check_merkle_vectors.py [DOC.md]
       (default: docs/PROTOCOL.md)

This script shares no code with ledger-core. It follows RFC 9162's recursive definitions
(MTH §2.1.1, PATH §2.1.3.1, PROOF/SUBPROOF §2.1.4.1) using only hashlib, runs the RFC's
verification algorithms (§2.1.3.2, §2.1.4.2), encodes proofs with the byte layout the document
states, and compares every `name = hex` line of the document's vector block with its own result.
It also checks the Certificate Transparency project's published RFC 6962 vectors, which use the
same hashing, so that a mistake shared by this script and the Rust code would still be caught.
Exits non-zero on any mismatch.
"""

import hashlib
import pathlib
import re
import struct
import sys


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split(n):
    """The largest power of two strictly less than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries):
    n = len(entries)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hash(entries[0])
    k = split(n)
    return node_hash(mth(entries[:k]), mth(entries[k:]))


def path(m, entries):
    n = len(entries)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def subproof(m, entries, b):
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = split(n)
    if m <= k:
        return subproof(m, entries[:k], b) + [mth(entries[k:])]
    return subproof(m - k, entries[k:], False) + [mth(entries[:k])]


def verify_inclusion(leaf_index, tree_size, leaf, inclusion_path, root):
    """RFC 9162 §2.1.3.2, step by step."""
    if leaf_index >= tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf
    for p in inclusion_path:
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
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, consistency_path):
    """RFC 9162 §2.1.4.2 for 0 < first < second, step by step."""
    if not 0 < first < second or not consistency_path:
        return False
    if first & (first - 1) == 0:
        consistency_path = [first_hash] + consistency_path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = consistency_path[0]
    for c in consistency_path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def encode_proof(first, second, hashes):
    """bincode, fixed-width little-endian: u64, u64, u64 length, then per Digest u32 tag 0 and 32 bytes."""
    out = struct.pack("<QQQ", first, second, len(hashes))
    for h in hashes:
        out += struct.pack("<I", 0) + h
    return out


def check_ct_vectors():
    entries = [bytes.fromhex(h) for h in
               ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                "606162636465666768696a6b6c6d6e6f"]]
    roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    for n, root in enumerate(roots):
        assert mth(entries[:n]).hex() == root, f"CT root of {n} leaves"
    h = {
        1: "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        2: "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        3: "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        4: "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        5: "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        6: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        7: "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    }
    hexes = lambda hashes: [x.hex() for x in hashes]
    assert hexes(path(0, entries)) == [h[1], h[2], h[3]], "CT inclusion proof 0/8"
    assert hexes(path(5, entries)) == [h[4], h[5], h[6]], "CT inclusion proof 5/8"
    assert hexes(subproof(2, entries, True)) == [h[2], h[3]], "CT consistency proof 2->8"
    assert hexes(subproof(6, entries, True)) == [h[7], h[5], h[6]], "CT consistency proof 6->8"


def check_own_algorithms():
    """The script's verifiers accept every honest proof for trees of up to 20 leaves."""
    entries = [b"x%d" % i for i in range(20)]
    for n in range(1, 21):
        root = mth(entries[:n])
        for i in range(n):
            assert verify_inclusion(i, n, leaf_hash(entries[i]), path(i, entries[:n]), root)
        for m in range(1, n):
            proof = subproof(m, entries[:n], True)
            assert verify_consistency(m, n, mth(entries[:m]), root, proof)


def document_vectors():
    entries = [b"leaf-%d" % i for i in range(7)]
    values = {}
    for i, data in enumerate(entries):
        values[f"leaf_data[{i}]"] = data.hex()
        values[f"leaf_hash[{i}]"] = leaf_hash(data).hex()
    for start, end in [(0, 2), (2, 4), (0, 4), (4, 6), (4, 7)]:
        values[f"mth[{start}:{end}]"] = mth(entries[start:end]).hex()
    root3, root7 = mth(entries[:3]), mth(entries)
    values["root[3]"], values["root[7]"] = root3.hex(), root7.hex()
    inclusion = path(3, entries)
    assert verify_inclusion(3, 7, leaf_hash(entries[3]), inclusion, root7)
    for k, h in enumerate(inclusion):
        values[f"inclusion_proof(3,7).path[{k}]"] = h.hex()
    values["inclusion_proof(3,7).encoded"] = encode_proof(3, 7, inclusion).hex()
    consistency = subproof(3, entries, True)
    assert verify_consistency(3, 7, root3, root7, consistency)
    for k, h in enumerate(consistency):
        values[f"consistency_proof(3,7).path[{k}]"] = h.hex()
    values["consistency_proof(3,7).encoded"] = encode_proof(3, 7, consistency).hex()
    return values


def main():
    doc = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent / "PROTOCOL.md"
    check_ct_vectors()
    check_own_algorithms()
    expected = document_vectors()
    found = dict(re.findall(r"^(\S+) = ([0-9a-f]+)$", doc.read_text(), re.MULTILINE))
    errors = [f"{name}: document has {found.get(name)}, computed {value}"
              for name, value in expected.items() if found.get(name) != value]
    errors += [f"{name}: in the document but not computed here" for name in found if name not in expected]
    for error in errors:
        print("MISMATCH", error)
    if errors:
        sys.exit(1)
    print(f"ok: CT vectors, {len(expected)} document vectors in {doc} match")


if __name__ == "__main__":
    main()
