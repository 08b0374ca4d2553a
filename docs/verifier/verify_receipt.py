#!/usr/bin/env python3
"""Independent verifier of ipledger receipts, written from docs/PROTOCOL.md alone.

It shares no code with ledger-core: the canonical encoding (PROTOCOL.md section 2) is driven by
schemas transcribed from the layout tables of sections 3-11, Ed25519 is checked under ZIP-215
(section 4) in pure Python, with the `cryptography` package (OpenSSL) as an optional fast path
whose acceptances are final and whose refusals are re-checked under ZIP-215.

Usage:
    verify_receipt.py [RECEIPT] [--genesis GENESIS] [--published-genesis-hash sha256:...]
    verify_receipt.py --self-test [--no-fast-path]

RECEIPT and GENESIS are JSON files (serde form) or .hex files (canonical binary encoding in hex).
The defaults are docs/vectors/receipt.json and docs/vectors/genesis_4.json. Prints `OK` and what
the receipt proves, or `FAIL <step>: <reason>`; exits 0 only on OK. --self-test checks the
vectors of docs/vectors against this implementation, verifies the golden receipt, and expects
every one of a list of tampered copies to be refused.
"""

import argparse
import copy
import hashlib
import json
import pathlib
import struct
import sys

HERE = pathlib.Path(__file__).resolve().parent
VECTORS = HERE.parent / "vectors"

try:  # Optional fast path (section 4: an RFC 8032 acceptance implies a ZIP-215 acceptance).
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - the pure-Python rule is complete on its own
    HAVE_CRYPTOGRAPHY = False


class Refused(Exception):
    """A receipt (or input) that does not verify; `step` names the failing step."""

    def __init__(self, step, reason):
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


# ------------------------------------------------------------------------------------------------
# Section 2: the canonical encoding, driven by schemas
# ------------------------------------------------------------------------------------------------

DECODE_BYTES_MAX = 16 * 1024 * 1024
TX_BYTES_MAX = 64 * 1024

U8, U32, U64, BOOL, STRING = ("u8",), ("u32",), ("u64",), ("bool",), ("string",)


def FIXED(n):
    return ("fixed", n)


def VEC(t):
    return ("vec", t)


def OPTION(t):
    return ("option", t)


def STRUCT(*fields):
    return ("struct", fields)


def ENUM(*variants):
    """Variants in declaration order: (json_name, kind, payload); kind is unit/struct/newtype/tuple."""
    return ("enum", variants)


def TAGGED(prefix, n):
    """Section 3: an algorithm-tagged value with one variant (tag 0) of n bytes."""
    return ("tagged", prefix, n)


DIGEST = TAGGED("sha256:", 32)
PUBLIC_KEY = TAGGED("ed25519:", 32)
SIGNATURE = TAGGED("ed25519:", 64)
PARTY_ID = STRING  # newtype of String, transparent in JSON

# Section 5.4
MONEY = STRUCT(("minor_units", U64), ("currency", STRING))
ROLE = ENUM(*[(n, "unit", None) for n in
              ["trading_center", "bank", "court", "appraiser", "rights_holder", "regulator"]])
WORK_KIND = ENUM(*[(n, "unit", None) for n in
                   ["software", "literature", "music", "film", "art", "design", "other"]])
RIGHT_KIND = ENUM(*[(n, "unit", None) for n in
                    ["patent", "utility_model", "design_patent", "trademark"]])
EVIDENCE_KIND = ENUM(*[(n, "unit", None) for n in
                       ["document", "image", "audio", "video", "web_page", "message", "other"]])
ASSET_ID = ENUM(
    ("work", "struct", [("content_hash", DIGEST)]),
    ("right", "struct", [("office", STRING), ("kind", RIGHT_KIND), ("number", STRING)]),
)
VALUATION = STRUCT(("appraiser", PARTY_ID), ("amount", MONEY), ("report_hash", DIGEST))
PLEDGE_TERMS = STRUCT(
    ("assets", VEC(ASSET_ID)), ("pledgor", PARTY_ID), ("pledgee", PARTY_ID),
    ("registrar", PARTY_ID), ("secured_amount", MONEY), ("maturity_ms", U64),
    ("first_rank", BOOL), ("valuations", VEC(VALUATION)),
)
COURT_ORDER = STRUCT(("court", PARTY_ID), ("case_ref", STRING))

# Section 10
VALIDATOR = STRUCT(("organisation", PARTY_ID), ("key", PUBLIC_KEY), ("power", U64))
ORGANISATION = STRUCT(("party", PARTY_ID), ("name", STRING), ("role", ROLE), ("key", PUBLIC_KEY))
CHAIN_PARAMS = STRUCT(("tx_lifetime_max", U64), ("block_txs_max", U32), ("block_bytes_max", U32))
CONSENSUS_PARAMS = STRUCT(("block_interval_ms", U64), ("propose_timeout_ms", U64),
                          ("vote_timeout_ms", U64), ("clock_skew_max_ms", U64))
GENESIS = STRUCT(
    ("chain_id", STRING), ("genesis_time_ms", U64), ("organisations", VEC(ORGANISATION)),
    ("validators", VEC(VALIDATOR)), ("params", CHAIN_PARAMS), ("consensus", CONSENSUS_PARAMS),
)

# Section 6
VOTE_TYPE = ENUM(("prevote", "unit", None), ("precommit", "unit", None))
VOTE = STRUCT(("vote_type", VOTE_TYPE), ("chain_id", STRING), ("height", U64), ("round", U32),
              ("block_hash", OPTION(DIGEST)))
SIGNED_VOTE = STRUCT(("vote", VOTE), ("validator", PUBLIC_KEY), ("signature", SIGNATURE))

# Section 5.3
GOVERNANCE_ACTION = ENUM(
    ("admit_organisation", "struct",
     [("party", PARTY_ID), ("name", STRING), ("role", ROLE), ("key", PUBLIC_KEY)]),
    ("remove_organisation", "struct", [("party", PARTY_ID)]),
    ("change_validators", "struct", [("validators", VEC(VALIDATOR)), ("effective_height", U64)]),
    ("rotate_key", "struct", [("party", PARTY_ID), ("new_key", PUBLIC_KEY)]),
)
ACTION = ENUM(
    ("enroll_rights_holder", "struct",
     [("registrar", PARTY_ID), ("party", PARTY_ID), ("name", STRING), ("key", PUBLIC_KEY),
      ("id_document_hash", DIGEST)]),
    ("register_work", "struct",
     [("content_hash", DIGEST), ("title", STRING), ("kind", WORK_KIND),
      ("authors", VEC(STRING)), ("owner", PARTY_ID)]),
    ("record_right", "struct",
     [("registrar", PARTY_ID), ("office", STRING), ("kind", RIGHT_KIND), ("number", STRING),
      ("title", STRING), ("owner", PARTY_ID)]),
    ("transfer_asset", "struct", [("asset", ASSET_ID), ("to", PARTY_ID)]),
    ("grant_licence", "struct",
     [("asset", ASSET_ID), ("licensee", PARTY_ID), ("exclusive", BOOL), ("start_ms", U64),
      ("end_ms", U64)]),
    ("register_pledge", "newtype", PLEDGE_TERMS),
    ("record_pledge_registration", "struct",
     [("registrar", PARTY_ID), ("pledge", DIGEST), ("authority", STRING),
      ("registration_number", STRING), ("date", STRING)]),
    ("release_pledge", "struct", [("pledge", DIGEST)]),
    ("enforce_pledge", "struct",
     [("pledge", DIGEST), ("transferee", PARTY_ID), ("court_order", OPTION(COURT_ORDER))]),
    ("freeze_asset", "struct", [("asset", ASSET_ID), ("court", PARTY_ID), ("case_ref", STRING)]),
    ("unfreeze_asset", "struct", [("asset", ASSET_ID), ("court", PARTY_ID), ("case_ref", STRING)]),
    ("court_order_transfer", "struct",
     [("asset", ASSET_ID), ("court", PARTY_ID), ("to", PARTY_ID), ("case_ref", STRING)]),
    ("attest_evidence", "struct",
     [("attestor", PARTY_ID), ("evidence_hash", DIGEST), ("kind", EVIDENCE_KIND),
      ("case_ref", OPTION(STRING)), ("related_asset", OPTION(ASSET_ID))]),
    ("governance", "newtype", GOVERNANCE_ACTION),
    ("report_misbehaviour", "struct",
     [("reporter", PARTY_ID), ("first", SIGNED_VOTE), ("second", SIGNED_VOTE)]),
)
TX_BODY = STRUCT(("chain_id", STRING), ("salt", FIXED(16)), ("valid_until", U64), ("action", ACTION))
TX_SIGNATURE = STRUCT(("signer", PUBLIC_KEY), ("signature", SIGNATURE))
SIGNED_TX = STRUCT(("body", TX_BODY), ("signatures", VEC(TX_SIGNATURE)))

# Sections 7-9, 11
BLOCK_HEADER = STRUCT(
    ("chain_id", STRING), ("height", U64), ("time_ms", U64), ("prev_block_hash", DIGEST),
    ("tx_count", U32), ("tx_root", DIGEST), ("ledger_root", DIGEST), ("ledger_size", U64),
    ("state_root", DIGEST), ("validator_set_hash", DIGEST), ("next_validator_set_hash", DIGEST),
    ("proposer", PUBLIC_KEY), ("last_commit_hash", OPTION(DIGEST)),
)
COMMIT_SIGNATURE = STRUCT(("validator", PUBLIC_KEY), ("signature", SIGNATURE))
COMMIT_CERTIFICATE = STRUCT(("height", U64), ("round", U32), ("block_hash", DIGEST),
                            ("signatures", VEC(COMMIT_SIGNATURE)))
LEDGER_LEAF = STRUCT(("height", U64), ("time_ms", U64), ("tx", SIGNED_TX))
INCLUSION_PROOF = STRUCT(("leaf_index", U64), ("tree_size", U64), ("path", VEC(DIGEST)))
CERTIFIED_HEADER = STRUCT(("header", BLOCK_HEADER), ("certificate", COMMIT_CERTIFICATE))
VALIDATOR_CHANGE = STRUCT(("certified", CERTIFIED_HEADER), ("next_validators", VEC(VALIDATOR)))
RECEIPT = STRUCT(
    ("format_version", U32), ("leaf", LEDGER_LEAF), ("inclusion", INCLUSION_PROOF),
    ("certified", CERTIFIED_HEADER), ("validator_changes", VEC(VALIDATOR_CHANGE)),
)


class EncodingError(Exception):
    pass


def _check_uint(value, bits):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
        raise EncodingError(f"not a u{bits}: {value!r}")


def _tagged_bytes(text, prefix, n):
    if not isinstance(text, str) or not text.startswith(prefix) or len(text) != len(prefix) + 2 * n:
        raise EncodingError(f"expected {prefix} and {n} bytes of hex, got {text!r}")
    try:
        return bytes.fromhex(text[len(prefix):])
    except ValueError as error:
        raise EncodingError(f"bad hex in {text!r}") from error


def encode(schema, value):
    """enc(value) for a value in its JSON form (section 2)."""
    kind = schema[0]
    if kind == "u8":
        _check_uint(value, 8)
        return struct.pack("<B", value)
    if kind == "u32":
        _check_uint(value, 32)
        return struct.pack("<I", value)
    if kind == "u64":
        _check_uint(value, 64)
        return struct.pack("<Q", value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise EncodingError(f"not a bool: {value!r}")
        return b"\x01" if value else b"\x00"
    if kind == "string":
        if not isinstance(value, str):
            raise EncodingError(f"not a string: {value!r}")
        data = value.encode("utf-8")
        return struct.pack("<Q", len(data)) + data
    if kind == "fixed":
        if not isinstance(value, list) or len(value) != schema[1]:
            raise EncodingError(f"expected {schema[1]} byte values, got {value!r}")
        for byte in value:
            _check_uint(byte, 8)
        return bytes(value)
    if kind == "tagged":
        return struct.pack("<I", 0) + _tagged_bytes(value, schema[1], schema[2])
    if kind == "vec":
        if not isinstance(value, list):
            raise EncodingError(f"not a list: {value!r}")
        return struct.pack("<Q", len(value)) + b"".join(encode(schema[1], v) for v in value)
    if kind == "option":
        return b"\x00" if value is None else b"\x01" + encode(schema[1], value)
    if kind == "struct":
        if not isinstance(value, dict):
            raise EncodingError(f"not an object: {value!r}")
        out = b""
        for name, field in schema[1]:
            if name not in value:
                raise EncodingError(f"missing field {name}")
            out += encode(field, value[name])
        return out
    if kind == "enum":
        names = [v[0] for v in schema[1]]
        if isinstance(value, str):
            name, inner = value, None
        elif isinstance(value, dict) and len(value) == 1:
            (name, inner), = value.items()
        else:
            raise EncodingError(f"not an enum value: {value!r}")
        if name not in names:
            raise EncodingError(f"unknown variant {name!r}")
        index = names.index(name)
        _, vkind, payload = schema[1][index]
        out = struct.pack("<I", index)
        if vkind == "unit":
            if not isinstance(value, str):
                raise EncodingError(f"unit variant {name} written as an object")
            return out
        if isinstance(value, str):
            raise EncodingError(f"variant {name} needs fields")
        if vkind == "struct":
            return out + encode(("struct", payload), inner)
        if vkind == "newtype":
            return out + encode(payload, inner)
        raise EncodingError(f"unsupported variant kind {vkind}")
    raise EncodingError(f"unknown schema {schema!r}")


class Reader:
    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, n):
        if n > len(self.data) - self.at:
            raise EncodingError("truncated input")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk


def decode_value(schema, r):
    """The JSON form of the value whose canonical encoding starts at r (strict, section 2)."""
    kind = schema[0]
    if kind == "u8":
        return r.take(1)[0]
    if kind == "u32":
        return struct.unpack("<I", r.take(4))[0]
    if kind == "u64":
        return struct.unpack("<Q", r.take(8))[0]
    if kind == "bool":
        b = r.take(1)[0]
        if b > 1:
            raise EncodingError(f"bool byte {b}")
        return b == 1
    if kind == "string":
        n = struct.unpack("<Q", r.take(8))[0]
        try:
            return r.take(n).decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            raise EncodingError("invalid UTF-8") from error
    if kind == "fixed":
        return list(r.take(schema[1]))
    if kind == "tagged":
        tag = struct.unpack("<I", r.take(4))[0]
        if tag != 0:
            raise EncodingError(f"unknown algorithm tag {tag}")
        return schema[1] + r.take(schema[2]).hex()
    if kind == "vec":
        n = struct.unpack("<Q", r.take(8))[0]
        if n > len(r.data) - r.at:  # every element takes at least one byte
            raise EncodingError(f"length prefix {n} exceeds the input")
        return [decode_value(schema[1], r) for _ in range(n)]
    if kind == "option":
        b = r.take(1)[0]
        if b > 1:
            raise EncodingError(f"option byte {b}")
        return decode_value(schema[1], r) if b == 1 else None
    if kind == "struct":
        return {name: decode_value(field, r) for name, field in schema[1]}
    if kind == "enum":
        index = struct.unpack("<I", r.take(4))[0]
        if index >= len(schema[1]):
            raise EncodingError(f"unknown variant index {index}")
        name, vkind, payload = schema[1][index]
        if vkind == "unit":
            return name
        if vkind == "struct":
            return {name: decode_value(("struct", payload), r)}
        return {name: decode_value(payload, r)}
    raise EncodingError(f"unknown schema {schema!r}")


def decode(schema, data, limit=DECODE_BYTES_MAX):
    if len(data) > limit:
        raise EncodingError(f"{len(data)} bytes exceed the {limit}-byte limit")
    r = Reader(data)
    value = decode_value(schema, r)
    if r.at != len(data):
        raise EncodingError(f"{len(data) - r.at} trailing bytes")
    return value


def sha256(data):
    return hashlib.sha256(data).digest()


def digest_text(raw):
    return "sha256:" + raw.hex()


def raw(text):
    """The 32 (or 64) raw bytes of a tagged text form."""
    return bytes.fromhex(text.split(":", 1)[1])


# ------------------------------------------------------------------------------------------------
# Section 4: Ed25519 under ZIP-215, and the enrolment check
# ------------------------------------------------------------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)


def _add(p1, p2):  # extended twisted Edwards coordinates, a = -1
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(scalar, point):
    result = IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _neg(point):
    x, y, z, t = point
    return ((-x) % P, y, z, (-t) % P)


def _is_identity(point):
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def decode_point(b):
    """ZIP-215 decoding: y reduced mod p, x = 0 with the sign bit set accepted. None if no point."""
    n = int.from_bytes(b, "little")
    sign = n >> 255
    y = (n & ((1 << 255) - 1)) % P
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = (P - x) % P
    return (x, y, 1, x * y % P)


_BY = 4 * pow(5, P - 2, P) % P
_BX = decode_point(_BY.to_bytes(32, "little"))[0]
BASE = (_BX, _BY, 1, _BX * _BY % P)


def zip215_verify(key32, message, sig64):
    s = int.from_bytes(sig64[32:], "little")
    if s >= L:
        return False
    a = decode_point(key32)
    r = decode_point(sig64[:32])
    if a is None or r is None:
        return False
    k = int.from_bytes(hashlib.sha512(sig64[:32] + key32 + message).digest(), "little") % L
    check = _add(_add(_mul(s, BASE), _neg(r)), _neg(_mul(k, a)))
    return _is_identity(_mul(8, check))


def ed25519_verify(key32, message, sig64):
    """ZIP-215 verdict; an OpenSSL acceptance is final (it implies ZIP-215 acceptance)."""
    if HAVE_CRYPTOGRAPHY:
        try:
            Ed25519PublicKey.from_public_bytes(key32).verify(sig64, message)
            return True
        except (InvalidSignature, ValueError):
            pass
    return zip215_verify(key32, message, sig64)


def key_is_strong(key32):
    """Enrolment check: decodes, and [8]A is not the identity."""
    a = decode_point(key32)
    return a is not None and not _is_identity(_mul(8, a))


# ------------------------------------------------------------------------------------------------
# Sections 5-11: hashes and checks
# ------------------------------------------------------------------------------------------------

TX_DOMAIN = b"ipledger/tx/v1"
VOTE_DOMAIN = b"ipledger/vote/v1"
VALIDATORS_MAX = 100
VOTING_POWER_MAX = 1_000_000
GENESIS_ORGANISATIONS_MAX = 1000
RECEIPT_VALIDATOR_CHANGES_MAX = 10_000
RECEIPT_FORMAT_VERSION = 1
MERKLE_PATH_LEN_MAX = 64


def tx_id(body):
    return sha256(encode(TX_BODY, body))


def tx_sign_bytes(id_raw):
    return TX_DOMAIN + struct.pack("<I", 0) + id_raw


def header_hash(header):
    return sha256(encode(BLOCK_HEADER, header))


def validator_set_hash(validators):
    return sha256(encode(VEC(VALIDATOR), validators))


def genesis_hash(genesis):
    return sha256(encode(GENESIS, genesis))


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def party_id_ok(party):
    data = party.encode("utf-8")
    allowed = set(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
    return 1 <= len(data) <= 64 and all(b in allowed for b in data)


def check_validator_set(validators, is_operator):
    if not 1 <= len(validators) <= VALIDATORS_MAX:
        raise Refused("validator set", f"{len(validators)} validators; 1 to {VALIDATORS_MAX} allowed")
    keys = [raw(v["key"]) for v in validators]
    if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
        raise Refused("validator set", "validators must be sorted by key, each key once")
    for v in validators:
        if not 1 <= v["power"] <= VOTING_POWER_MAX:
            raise Refused("validator set", f"power {v['power']} of {v['key']}")
        if not key_is_strong(raw(v["key"])):
            raise Refused("validator set", f"key {v['key']} is malformed or of small order")
        if not is_operator(v["organisation"]):
            raise Refused("validator set", f"{v['organisation']} may not run a validator")


def check_genesis(genesis):
    chain_id = genesis["chain_id"]
    if not (1 <= len(chain_id.encode()) <= 64 and all(0x21 <= ord(c) <= 0x7E for c in chain_id)):
        raise Refused("genesis", f"chain id {chain_id!r}")
    orgs = genesis["organisations"]
    if len(orgs) > GENESIS_ORGANISATIONS_MAX:
        raise Refused("genesis", "too many organisations")
    parties, keys = set(), set()
    for org in orgs:
        if not party_id_ok(org["party"]):
            raise Refused("genesis", f"organisation id {org['party']!r}")
        if org["role"] == "rights_holder":
            raise Refused("genesis", f"{org['party']} is a rights holder")
        if not key_is_strong(raw(org["key"])):
            raise Refused("genesis", f"{org['party']} has a weak key")
        if org["party"] in parties or org["key"] in keys:
            raise Refused("genesis", f"{org['party']}: identifier or key appears twice")
        parties.add(org["party"])
        keys.add(org["key"])
    if not any(org["role"] == "trading_center" for org in orgs):
        raise Refused("genesis", "no trading center")
    operators = {org["party"] for org in orgs if org["role"] != "regulator"}
    check_validator_set(genesis["validators"], lambda party: party in operators)
    params = genesis["params"]
    if min(params["tx_lifetime_max"], params["block_txs_max"], params["block_bytes_max"]) == 0:
        raise Refused("genesis", "limits must be positive")


def check_certificate(step, certificate, chain_id, height, block_hash, validators):
    """Section 8, in order."""
    if certificate["height"] != height or raw(certificate["block_hash"]) != block_hash:
        raise Refused(step, "certificate is for another height or block")
    signers = [raw(s["validator"]) for s in certificate["signatures"]]
    if any(signers[i] >= signers[i + 1] for i in range(len(signers) - 1)):
        raise Refused(step, "certificate signatures unsorted or repeated")
    power = {raw(v["key"]): v["power"] for v in validators}
    signed = 0
    for key in signers:
        if key not in power:
            raise Refused(step, f"signer ed25519:{key.hex()} is not in the validator set")
        signed += power[key]
    total = sum(power.values())
    if not signed * 3 > total * 2:
        raise Refused(step, f"{signed} of {total} voting power signed; more than 2/3 needed")
    precommit = {
        "vote_type": "precommit",
        "chain_id": chain_id,
        "height": certificate["height"],
        "round": certificate["round"],
        "block_hash": certificate["block_hash"],
    }
    message = VOTE_DOMAIN + encode(VOTE, precommit)
    for entry in certificate["signatures"]:
        if not ed25519_verify(raw(entry["validator"]), message, raw(entry["signature"])):
            raise Refused(step, f"signature by {entry['validator']} does not verify")


def check_certified(step, genesis, validators, certified):
    header = certified["header"]
    if header["chain_id"] != genesis["chain_id"]:
        raise Refused(step, f"header is for chain {header['chain_id']!r}")
    if raw(header["validator_set_hash"]) != validator_set_hash(validators):
        raise Refused(step, "header's validator_set_hash is not the set the changes lead to")
    check_certificate(step, certified["certificate"], genesis["chain_id"], header["height"],
                      header_hash(header), validators)


def inclusion_root(leaf_index, tree_size, path, leaf):
    """Section 9.3 (RFC 9162 §2.1.3.2); None if the proof is malformed."""
    if leaf_index >= tree_size or len(path) > MERKLE_PATH_LEN_MAX:
        return None
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return None
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
    return r if sn == 0 else None


def verify_receipt(receipt, genesis):
    """Section 11, step by step. Returns what the receipt proves, or raises Refused."""
    if receipt["format_version"] != RECEIPT_FORMAT_VERSION:
        raise Refused("1 version", f"format version {receipt['format_version']}")
    check_genesis(genesis)
    changes = receipt["validator_changes"]
    if len(changes) > RECEIPT_VALIDATOR_CHANGES_MAX:
        raise Refused("3 validator change walk", "too many changes")
    validators, last = genesis["validators"], 0
    for number, change in enumerate(changes):
        step = f"3 validator change #{number}"
        header = change["certified"]["header"]
        check_certified(step, genesis, validators, change["certified"])
        if header["height"] <= last:
            raise Refused(step, "changes must increase in height")
        if header["next_validator_set_hash"] == header["validator_set_hash"]:
            raise Refused(step, "the header announces no change")
        if validator_set_hash(change["next_validators"]) != raw(header["next_validator_set_hash"]):
            raise Refused(step, "next_validators does not hash to next_validator_set_hash")
        check_validator_set(change["next_validators"], lambda party: True)
        validators, last = change["next_validators"], header["height"]
    header = receipt["certified"]["header"]
    if header["height"] <= last:
        raise Refused("4 certified header", "not above the last validator change")
    check_certified("4 certified header", genesis, validators, receipt["certified"])
    leaf = receipt["leaf"]
    if leaf["height"] > header["height"]:
        raise Refused("5 leaf height", "leaf is after the certified header")
    inclusion = receipt["inclusion"]
    if inclusion["tree_size"] != header["ledger_size"]:
        raise Refused("6 tree size", "proof tree size differs from the header's ledger_size")
    root = inclusion_root(inclusion["leaf_index"], inclusion["tree_size"],
                          [raw(p) for p in inclusion["path"]], leaf_hash(encode(LEDGER_LEAF, leaf)))
    if root != raw(header["ledger_root"]):
        raise Refused("7 inclusion", "the proof does not reach the header's ledger_root")
    id_raw = tx_id(leaf["tx"]["body"])
    message = tx_sign_bytes(id_raw)
    for entry in leaf["tx"]["signatures"]:
        if not ed25519_verify(raw(entry["signer"]), message, raw(entry["signature"])):
            raise Refused("8 transaction signatures", f"signature by {entry['signer']} fails")
    return {
        "genesis_hash": digest_text(genesis_hash(genesis)),
        "tx_id": digest_text(id_raw),
        "height": leaf["height"],
        "time_ms": leaf["time_ms"],
        "signers": [entry["signer"] for entry in leaf["tx"]["signatures"]],
        "certified_height": header["height"],
    }


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------

def load(path, schema):
    text = pathlib.Path(path).read_text()
    if str(path).endswith(".hex"):
        try:
            return decode(schema, bytes.fromhex(text.strip()))
        except (ValueError, EncodingError) as error:
            raise Refused("decode", f"{path}: {error}") from error
    value = json.loads(text)
    try:
        encode(schema, value)  # every field present and well typed
    except EncodingError as error:
        raise Refused("decode", f"{path}: {error}") from error
    return value


def verify_or_refuse(receipt, genesis):
    """verify_receipt, with encoding errors of tampered values reported as refusals."""
    try:
        return verify_receipt(receipt, genesis)
    except (EncodingError, KeyError, TypeError, ValueError, IndexError) as error:
        raise Refused("decode", repr(error)) from error


# ------------------------------------------------------------------------------------------------
# Self-test
# ------------------------------------------------------------------------------------------------

def vector(name):
    return (VECTORS / name).read_text().strip()


ZIP215_CASES = [  # (key, signature, ZIP-215 verdict, enrolable) from PROTOCOL.md section 4
    ("9433f2c3339c648fdb474df0043442ccf1ccd2c1487284ff66df7a8db3b2daf4",
     "3cf7afce1d4384d6d732d1fc9b52f07a355d88ab4e834ed17a2809246d7a52d2"
     "a7d3034e5bdd5cbe0f0392a28f2d2a50a9a866ac208ce8395cb5cd7b720c5400", True, True),
    ("0100000000000000000000000000000000000000000000000000000000000000",
     "01" + "00" * 63, True, False),
    ("0100000000000000000000000000000000000000000000000000000000000080",
     "01" + "00" * 63, True, False),
    ("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     "01" + "00" * 63, True, False),
    ("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
     "01" + "00" * 63, True, False),
    ("9433f2c3339c648fdb474df0043442ccf1ccd2c1487284ff66df7a8db3b2daf4",
     "6a84d583f06569edb3f5ed77df65544b27d6948b4f0b2cb76f33dd8413b20719"
     "bbbe0712ffb3541f5114d3b7ce83935679ac273fedba12baf5410a19b5b1580a", True, True),
    ("9433f2c3339c648fdb474df0043442ccf1ccd2c1487284ff66df7a8db3b2daf4",
     "0100000000000000000000000000000000000000000000000000000000000080"
     "581d5b9006700204841cdb586dfe5f4c18d45ce5880036ffffb1684e6124df0f", True, True),
    ("9433f2c3339c648fdb474df0043442ccf1ccd2c1487284ff66df7a8db3b2daf4",
     "3cf7afce1d4384d6d732d1fc9b52f07a355d88ab4e834ed17a2809246d7a52d2"
     "94a7f9aa75406f16e69f89456e270965a9a866ac208ce8395cb5cd7b720c5410", False, True),
    ("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
     "01" + "00" * 63, False, True),
    ("0300000000000000000000000000000000000000000000000000000000000000",
     "01" + "00" * 63, False, True),
    ("0200000000000000000000000000000000000000000000000000000000000000",
     "01" + "00" * 63, False, False),
]


def check_vectors(receipt, genesis):
    """Recompute the docs/vectors values from this implementation of the spec."""
    problems = []

    def expect(what, got, want):
        if got != want:
            problems.append(f"{what}: computed {got}, vector {want}")

    expect("genesis_4.hex", encode(GENESIS, genesis).hex(), vector("genesis_4.hex"))
    expect("genesis hash", digest_text(genesis_hash(genesis)), vector("genesis_4_hash.txt"))
    expect("validator set", encode(VEC(VALIDATOR), genesis["validators"]).hex(),
           vector("validator_set_genesis_4.hex"))
    expect("validator set hash", digest_text(validator_set_hash(genesis["validators"])),
           vector("validator_set_hash_genesis_4.txt"))
    change = receipt["validator_changes"][0]
    expect("set after change", digest_text(validator_set_hash(change["next_validators"])),
           vector("validator_set_hash_after_change.txt"))
    expect("receipt.hex", encode(RECEIPT, receipt).hex(), vector("receipt.hex"))
    expect("receipt.hex decodes to receipt.json", decode(RECEIPT, bytes.fromhex(vector("receipt.hex"))),
           receipt)
    leaf = receipt["leaf"]
    expect("ledger leaf", encode(LEDGER_LEAF, leaf).hex(), vector("ledger_leaf_register_pledge.hex"))
    expect("leaf hash", digest_text(leaf_hash(encode(LEDGER_LEAF, leaf))),
           vector("ledger_leaf_hash_register_pledge.txt"))
    expect("signed pledge", encode(SIGNED_TX, leaf["tx"]).hex(),
           vector("signed_tx_register_pledge.hex"))
    expect("pledge id", digest_text(tx_id(leaf["tx"]["body"])), vector("tx_id_register_pledge.txt"))
    header4 = change["certified"]["header"]
    expect("header 4", encode(BLOCK_HEADER, header4).hex(), vector("block_header_4.hex"))
    expect("block hash 4", digest_text(header_hash(header4)), vector("block_hash_4.txt"))
    cert4 = change["certified"]["certificate"]
    expect("certificate 4", encode(COMMIT_CERTIFICATE, cert4).hex(), vector("commit_certificate_4.hex"))
    expect("certificate 4 hash", digest_text(sha256(encode(COMMIT_CERTIFICATE, cert4))),
           receipt["certified"]["header"]["last_commit_hash"])
    expect("certificate hash vector", vector("commit_certificate_4_hash.txt"),
           receipt["certified"]["header"]["last_commit_hash"])
    precommit = {"vote_type": "precommit", "chain_id": "ipledger-test", "height": 4, "round": 0,
                 "block_hash": digest_text(header_hash(header4))}
    expect("vote", encode(VOTE, precommit).hex(), vector("vote_precommit_4.hex"))
    expect("vote sign bytes", (VOTE_DOMAIN + encode(VOTE, precommit)).hex(),
           vector("vote_sign_bytes_precommit_4.hex"))
    nil = {"vote_type": "prevote", "chain_id": "ipledger-test", "height": 5, "round": 1,
           "block_hash": None}
    expect("nil prevote", (VOTE_DOMAIN + encode(VOTE, nil)).hex(), vector("vote_sign_bytes_nil_prevote.hex"))
    signed_vote = decode(SIGNED_VOTE, bytes.fromhex(vector("signed_vote_precommit_4.hex")))
    expect("signed vote verifies", ed25519_verify(raw(signed_vote["validator"]),
                                                  VOTE_DOMAIN + encode(VOTE, signed_vote["vote"]),
                                                  raw(signed_vote["signature"])), True)
    header1 = decode(BLOCK_HEADER, bytes.fromhex(vector("block_header_1.hex")))
    expect("block hash 1", digest_text(header_hash(header1)), vector("block_hash_1.txt"))
    expect("block 1 follows the genesis", header1["prev_block_hash"], vector("genesis_4_hash.txt"))
    work = decode(SIGNED_TX, bytes.fromhex(vector("signed_tx_register_work.hex")))
    expect("work body", encode(TX_BODY, work["body"]).hex(), vector("tx_body_register_work.hex"))
    work_id = tx_id(work["body"])
    expect("work id", digest_text(work_id), vector("tx_id_register_work.txt"))
    expect("work sign bytes", tx_sign_bytes(work_id).hex(), vector("tx_sign_bytes_register_work.hex"))
    for entry in work["signatures"]:
        expect("work signature", ed25519_verify(raw(entry["signer"]), tx_sign_bytes(work_id),
                                                raw(entry["signature"])), True)
        # Step 8 of a receipt check cannot be reached by tampering with a receipt (the leaf hash
        # covers the signatures, so step 7 refuses first); check the signature rule directly.
        bad = bytearray(raw(entry["signature"]))
        bad[5] ^= 1
        expect("altered work signature", ed25519_verify(raw(entry["signer"]), tx_sign_bytes(work_id),
                                                        bytes(bad)), False)
    expect("digest abc", encode(DIGEST, digest_text(sha256(b"abc"))).hex(), vector("digest_sha256_abc.hex"))
    expect("alice key", encode(PUBLIC_KEY, vector("public_key_alice.txt")).hex(),
           vector("public_key_alice.hex"))
    actions = sorted(VECTORS.glob("action_*.json"))
    if len(actions) != 18:
        problems.append(f"expected 18 action vectors, found {len(actions)}")
    for path in actions:
        value = json.loads(path.read_text())
        binary = vector(path.with_suffix(".hex").name)
        expect(path.name, encode(ACTION, value).hex(), binary)
        expect(path.name + " decodes", decode(ACTION, bytes.fromhex(binary)), value)
    for case, (key, signature, valid, enrolable) in enumerate(ZIP215_CASES):
        key_b, sig_b = bytes.fromhex(key), bytes.fromhex(signature)
        expect(f"ZIP-215 case {case}", zip215_verify(key_b, b"Zcash", sig_b), valid)
        expect(f"ZIP-215 case {case} (with fast path)", ed25519_verify(key_b, b"Zcash", sig_b), valid)
        expect(f"enrolment case {case}", key_is_strong(key_b), enrolable)
    same_a = decode_point(bytes.fromhex("f0" + "ff" * 30 + "7f"))
    same_b = decode_point(bytes.fromhex("03" + "00" * 31))
    expect("y = p + 3 and y = 3 are one point", same_a == same_b, True)
    # Strictness of the decoder (section 2).
    for label, schema, data in [
        ("trailing byte", U32, "0100000000"),
        ("bool 2", BOOL, "02"),
        ("option 2", OPTION(U8), "0200"),
        ("bad UTF-8", STRING, "0100000000000000ff"),
        ("unknown tag", DIGEST, "01000000" + "00" * 32),
        ("unknown variant", ROLE, "06000000"),
        ("truncated", U64, "01000000"),
    ]:
        try:
            decode(schema, bytes.fromhex(data))
            problems.append(f"decoder accepted {label}")
        except EncodingError:
            pass
    return problems


def mutations(receipt, genesis):
    """(description, receipt, genesis) triples, each of which must be refused."""
    out = []

    def mutate(description, edit, target="receipt"):
        r, g = copy.deepcopy(receipt), copy.deepcopy(genesis)
        edit(r if target == "receipt" else g)
        out.append((description, r, g))

    def flip_text(text, position=-1):
        digits = list(text)
        digits[position] = "0" if digits[position] != "0" else "1"
        return "".join(digits)

    action = lambda r: r["leaf"]["tx"]["body"]["action"]["register_pledge"]
    mutate("format version", lambda r: r.__setitem__("format_version", 2))
    mutate("leaf height", lambda r: r["leaf"].__setitem__("height", 3))
    mutate("leaf height after header", lambda r: r["leaf"].__setitem__("height", 6))
    mutate("leaf time", lambda r: r["leaf"].__setitem__("time_ms", r["leaf"]["time_ms"] + 1))
    mutate("salt byte", lambda r: r["leaf"]["tx"]["body"]["salt"].__setitem__(15, 1))
    mutate("valid_until", lambda r: r["leaf"]["tx"]["body"].__setitem__("valid_until", 54))
    mutate("secured amount", lambda r: action(r)["secured_amount"].__setitem__("minor_units", 1))
    mutate("pledgee", lambda r: action(r).__setitem__("pledgee", "bank-b"))
    mutate("first_rank", lambda r: action(r).__setitem__("first_rank", False))
    mutate("tx signature byte", lambda r: r["leaf"]["tx"]["signatures"][2].__setitem__(
        "signature", flip_text(r["leaf"]["tx"]["signatures"][2]["signature"], 20)))
    mutate("tx signature dropped and signer swapped", lambda r: r["leaf"]["tx"]["signatures"][0].__setitem__(
        "signer", r["leaf"]["tx"]["signatures"][1]["signer"]))
    mutate("inclusion path", lambda r: r["inclusion"]["path"].__setitem__(
        0, flip_text(r["inclusion"]["path"][0])))
    mutate("inclusion path extended", lambda r: r["inclusion"]["path"].append(r["inclusion"]["path"][0]))
    mutate("leaf index", lambda r: r["inclusion"].__setitem__("leaf_index", 3))
    mutate("tree size", lambda r: r["inclusion"].__setitem__("tree_size", 6))
    mutate("header state root", lambda r: r["certified"]["header"].__setitem__(
        "state_root", flip_text(r["certified"]["header"]["state_root"])))
    mutate("header ledger root", lambda r: r["certified"]["header"].__setitem__(
        "ledger_root", flip_text(r["certified"]["header"]["ledger_root"])))
    mutate("header time", lambda r: r["certified"]["header"].__setitem__("time_ms", 1))
    mutate("header chain id", lambda r: r["certified"]["header"].__setitem__("chain_id", "other"))
    mutate("certificate round", lambda r: r["certified"]["certificate"].__setitem__("round", 1))
    mutate("certificate signature byte", lambda r: r["certified"]["certificate"]["signatures"][1].__setitem__(
        "signature", flip_text(r["certified"]["certificate"]["signatures"][1]["signature"], 70)))
    # Header 5's set has powers 1, 1 and 2 (total 4): any two signers of power 1 + 2 = 3 are a
    # quorum (9 > 8), one signer is not.
    mutate("certificate below quorum", lambda r: r["certified"]["certificate"]["signatures"].__delitem__(
        slice(0, 2)))
    mutate("certificate signers unsorted", lambda r: r["certified"]["certificate"]["signatures"].reverse())
    mutate("certificate signer repeated", lambda r: r["certified"]["certificate"]["signatures"].__setitem__(
        2, r["certified"]["certificate"]["signatures"][1]))
    mutate("validator change omitted", lambda r: r["validator_changes"].clear())
    mutate("new set power", lambda r: r["validator_changes"][0]["next_validators"][0].__setitem__("power", 9))
    mutate("change header proposer", lambda r: r["validator_changes"][0]["certified"]["header"].__setitem__(
        "proposer", r["validator_changes"][0]["certified"]["header"]["proposer"][:-1] + "0"))
    mutate("change certificate below quorum (2 of 4)", lambda r: r["validator_changes"][0][
        "certified"]["certificate"]["signatures"].__delitem__(slice(0, 2)))
    mutate("change repeated", lambda r: r["validator_changes"].append(r["validator_changes"][0]))
    mutate("genesis validator power", lambda g: g["validators"][0].__setitem__("power", 2), "genesis")
    mutate("genesis chain id", lambda g: g.__setitem__("chain_id", "ipledger-prod"), "genesis")
    mutate("genesis without trading center",
           lambda g: g["organisations"].__delitem__(0), "genesis")
    mutate("genesis small-order key", lambda g: g["organisations"][4].__setitem__(
        "key", "ed25519:01" + "00" * 31), "genesis")
    return out


def binary_flips(receipt_hex):
    """Receipts with one byte changed at spread positions of the binary form."""
    data = bytes.fromhex(receipt_hex)
    positions = sorted(set(list(range(0, len(data), max(1, len(data) // 40))) + [len(data) - 1]))
    for position in positions:
        changed = bytearray(data)
        changed[position] ^= 0x01
        yield position, bytes(changed)


def self_test():
    genesis = load(VECTORS / "genesis_4.json", GENESIS)
    genesis_bin = load(VECTORS / "genesis_4.hex", GENESIS)
    receipt = load(VECTORS / "receipt.json", RECEIPT)
    failures = []
    if genesis_bin != genesis:
        failures.append("genesis_4.hex and genesis_4.json disagree")
    failures += check_vectors(receipt, genesis)
    try:
        proven = verify_receipt(receipt, genesis)
        if proven["genesis_hash"] != vector("genesis_4_hash.txt"):
            failures.append("reported genesis hash differs from the vector")
    except Refused as refusal:
        failures.append(f"the golden receipt was refused: {refusal}")
    refused = 0
    cases = mutations(receipt, genesis)
    for description, r, g in cases:
        try:
            verify_or_refuse(r, g)
            failures.append(f"tampered receipt accepted: {description}")
        except Refused:
            refused += 1
    flips = 0
    for position, data in binary_flips(vector("receipt.hex")):
        flips += 1
        try:
            verify_or_refuse(decode(RECEIPT, data), genesis)
            failures.append(f"receipt with byte {position} changed was accepted")
        except (Refused, EncodingError):
            refused += 1
    for failure in failures:
        print("FAIL", failure)
    if failures:
        return 1
    backend = "OpenSSL fast path + pure-Python ZIP-215" if HAVE_CRYPTOGRAPHY else "pure-Python ZIP-215"
    print(f"self-test OK: vectors agree, golden receipt verifies, {refused} of "
          f"{len(cases) + flips} tampered copies refused ({backend})")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("receipt", nargs="?", default=str(VECTORS / "receipt.json"))
    parser.add_argument("--genesis", default=str(VECTORS / "genesis_4.json"))
    parser.add_argument("--published-genesis-hash", help="fail unless the genesis has this hash")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--no-fast-path", action="store_true",
                        help="do not use the cryptography package even if it is installed")
    args = parser.parse_args()
    if args.no_fast_path:
        global HAVE_CRYPTOGRAPHY
        HAVE_CRYPTOGRAPHY = False
    if args.self_test:
        return self_test()
    try:
        genesis = load(args.genesis, GENESIS)
        receipt = load(args.receipt, RECEIPT)
        proven = verify_or_refuse(receipt, genesis)
        if args.published_genesis_hash and proven["genesis_hash"] != args.published_genesis_hash:
            raise Refused("genesis hash", f"{proven['genesis_hash']} is not the published one")
    except Refused as refusal:
        print(f"FAIL {refusal.step}: {refusal.reason}")
        return 1
    print("OK")
    print(json.dumps(proven, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
