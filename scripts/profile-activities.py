#!/usr/bin/env python3
"""Attributes a node profile's samples to the outermost ipledger activity on each stack.

Usage (the nodes of a running load, e.g. from scripts/load.sh):
    perf record -F 99 --call-graph dwarf -p "$(pgrep -d, -f 'ipledger-node run')" -o perf.data -- sleep 10
    perf script -i perf.data --no-inline > perf.txt
    scripts/profile-activities.py perf.txt

Prints one Markdown table row per activity (share of all samples, and the three largest
libraries within it), the libraries' shares across activities, and how many of the "other"
samples have no root frame (the unwinder cut the stack short before any activity's frame).
"""
import collections
import re
import sys

# Checked in this order; a sample belongs to the first activity any of whose patterns appears in
# any frame of its stack (the outermost activity: commit_block calls into the state tree, not
# the other way round).
ACTIVITIES = [
    ("pruning, on its own thread", ["prune_next_batch", "prune_until_stopped", "prune_state_nodes"]),
    ("durable commit of each block (`Store::commit_block`)", ["Store::commit_block"]),
    ("admission (API batches and gossiped batches, `admit_many`)", ["admit_many"]),
    ("validators executing proposals (streaming, or a complete block)",
     ["consensus::streaming::run", "BlockExecution", "check_block", "verify_signatures"]),
    ("proposer building blocks (`build_block`, early builds)", ["building::build", "build_block", "BlockBuilder"]),
    ("transaction gossip (libp2p gossipsub and ours)", ["gossipsub", "ipledger_node::gossip"]),
    ("consensus engine (Malachite)", ["malachitebft"]),
    ("HTTP and JSON", ["hyper::", "axum::", "serde_json"]),
    ("the consensus engine's QUIC and libp2p transport", ["quinn", "libp2p"]),
]
OTHER = "other"
LIBRARIES = [
    ("redb", r"redb::"),
    ("state tree (jmt)", r"jmt::"),
    ("Ed25519 verification", r"ed25519"),
    # glibc's malloc and free, or jemalloc's (`_rjem_` symbols) since the node links it.
    ("malloc and free", r"\b_?_?(libc_)?(malloc|free|cfree|realloc|calloc)\b|_int_|malloc_consolidate|unlink_chunk|_rjem_"),
    ("SHA-256", r"sha2::|Sha256"),
]


def samples(text):
    """Each sample's frames, innermost first, as `address symbol+offset`: a frame line ends with
    its binary's path, and a path such as `bin-jemalloc/ipledger-node` must match no pattern."""
    for block in text.split("\n\n"):
        frames = [symbol(line.strip()) for line in block.strip().split("\n")[1:] if line.strip()]
        if frames:
            yield frames


def symbol(frame):
    """The symbol of a `perf script` frame line: `address symbol+offset (binary)`."""
    return re.sub(r"\s+\([^()]*\)$", "", frame)


def activity(frames):
    for name, patterns in ACTIVITIES:
        if any(pattern in frame for frame in frames for pattern in patterns):
            return name
    return OTHER


def main(path):
    with open(path) as file:
        text = file.read()
    total = 0
    shares = collections.Counter()
    libraries = collections.Counter()
    within = collections.defaultdict(collections.Counter)
    rootless = 0
    for frames in samples(text):
        total += 1
        name = activity(frames)
        shares[name] += 1
        stack = "\n".join(frames)
        for library, pattern in LIBRARIES:
            if re.search(pattern, stack):
                libraries[library] += 1
                within[name][library] += 1
        rootless += name == OTHER and "[unknown]" in frames[-1]
    if total == 0:
        sys.exit(f"{path}: no samples (is it `perf script` output?)")
    print(f"{total} samples")
    print("| activity | share | of which |")
    print("| --- | --- | --- |")
    for name, count in shares.most_common():
        top = ", ".join(f"{lib} {100 * n / total:.1f} %" for lib, n in within[name].most_common(3))
        print(f"| {name} | {100 * count / total:.1f} % | {top} |")
    print("across activities: " + ", ".join(
        f"{lib} {100 * n / total:.1f} %" for lib, n in libraries.most_common()))
    print(f"'{OTHER}' samples whose stack the unwinder cut short (no root frame): "
          f"{rootless} ({100 * rootless / total:.1f} % of all)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
