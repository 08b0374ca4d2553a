//! The users' flows over a running local network: `ipledger-demo DIR`, where DIR was made by
//! `scripts/local-net.sh start DIR`. Exits non-zero if any step misbehaves.

use anyhow::{Context, Result};
use ipledger_tests::{flows, Net};
use std::time::Instant;

fn main() -> Result<()> {
    let dir = std::env::args_os().nth(1).context(
        "usage: ipledger-demo DIR (a network directory from scripts/local-net.sh start DIR)",
    )?;
    let started = Instant::now();
    let mut net = Net::open(&dir)?;
    flows::run(&mut net)?;
    println!("users' flows took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
