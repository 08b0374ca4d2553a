#!/usr/bin/env bash
# The README's main command. Until the node lands (issue 3), the users' flows run through the
# ledger core on an in-memory four-validator chain: the same rules, blocks, certificates and
# receipts the network will use, in one process. Exits non-zero if any step misbehaves.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p ledger-core --features testkit --example users_flows
