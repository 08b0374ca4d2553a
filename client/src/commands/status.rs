//! `ipledger status`: what the node says about itself, and the height the client can certify.

use super::Context;
use crate::error::Result;
use crate::node::NodeClient;
use crate::text::utc;
use crate::Output;
use ledger_core::state::{LedgerHead, StateKey};
use serde_json::{json, Value};

pub(crate) fn run(context: &Context) -> Result<Output> {
    let node = context.node();
    let status = node.status()?;
    let mut lines = vec![format!("node {}", node.url())];
    let text = |value: &Value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    for name in [
        "chain_id",
        "genesis_hash",
        "height",
        "head_hash",
        "state_root",
        "ledger_size",
        "mempool_size",
    ] {
        if let Some(value) = status.get(name) {
            lines.push(format!("  {name:<14} {}", text(value)));
        }
    }
    if let Some(time) = status["head_time_ms"].as_u64() {
        lines.push(format!("  {:<14} {}", "head_time", utc(time)));
    }
    // Fields a newer node may add (peers, sync state, ...), printed as they come.
    let known = [
        "chain_id",
        "genesis_hash",
        "height",
        "head_hash",
        "head_time_ms",
        "state_root",
        "ledger_size",
        "mempool_size",
        "mempool_max",
        "validators",
        "validator_set_hash",
    ];
    if let Some(network) = status.get("network").and_then(Value::as_object) {
        lines.extend(describe_network(network));
    }
    if let Some(object) = status.as_object() {
        let shown = |name: &str| known.contains(&name) || name == "network";
        for (name, value) in object.iter().filter(|(name, _)| !shown(name)) {
            lines.push(format!("  {name:<14} {}", text(value)));
        }
    }
    if let Some(validators) = status["validators"].as_array() {
        lines.push(format!("  {:<14} {}", "validators", validators.len()));
    }
    let certified = certify(context, &node, &status, &mut lines);
    Ok(Output::new(
        lines,
        json!({"ok": true, "node": node.url(), "status": status, "certified": certified}),
    ))
}

/// The node's claims are not proofs: proves its head against the genesis, if we have it.
fn certify(context: &Context, node: &NodeClient, status: &Value, lines: &mut Vec<String>) -> Value {
    match context.trust() {
        Ok(trust) => match trust.read::<LedgerHead>(node, &StateKey::LedgerHead) {
            Ok(proven) => {
                let fingerprint = trust.genesis.hash();
                if status["genesis_hash"].as_str() != Some(fingerprint.to_string().as_str()) {
                    lines.push(format!(
                        "  WARNING: the node reports another genesis than {} ({fingerprint})",
                        context.genesis_path().display()
                    ));
                }
                lines.push(format!(
                    "  certified      height {} verified against genesis {fingerprint}",
                    proven.height
                ));
                json!({"height": proven.height, "genesis_fingerprint": fingerprint})
            }
            Err(error) => {
                lines.push(format!("  certified      NOT VERIFIED: {error}"));
                json!({"error": error.to_string()})
            }
        },
        Err(error) => {
            lines.push(format!("  certified      not checked ({error})"));
            Value::Null
        }
    }
}

/// The `network` member of a node's status (peers, gossip, sync), as far as it is present.
fn describe_network(network: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut lines = Vec::new();
    match network.get("peers") {
        Some(Value::Array(peers)) => {
            let names: Vec<String> = peers
                .iter()
                .map(|peer| {
                    let moniker = peer["moniker"].as_str().unwrap_or("?");
                    let role = if peer["validator"] == true {
                        "validator"
                    } else {
                        "peer"
                    };
                    format!("{moniker} ({role})")
                })
                .collect();
            lines.push(format!(
                "  {:<14} {}: {}",
                "peers",
                peers.len(),
                names.join(", ")
            ));
        }
        Some(Value::Null) => lines.push(format!(
            "  {:<14} unknown (the consensus network did not answer)",
            "peers"
        )),
        _ => {}
    }
    if let Some(Value::Array(gossip)) = network.get("gossip_peers") {
        lines.push(format!("  {:<14} {}", "gossip peers", gossip.len()));
    }
    if let Some(Value::Bool(syncing)) = network.get("syncing") {
        let last = match network.get("last_synced_height").and_then(Value::as_u64) {
            Some(height) => format!(", last block from sync: {height}"),
            None => String::new(),
        };
        let state = if *syncing {
            "catching up with its peers"
        } else {
            "in step with its peers"
        };
        lines.push(format!("  {:<14} {state}{last}", "sync"));
    }
    lines
}
