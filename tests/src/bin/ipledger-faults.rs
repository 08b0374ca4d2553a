//! `ipledger-faults`: runs the fault harness ([`ipledger_tests::faults`]) once and prints what
//! it injected and found. Exits 1 if any guarantee broke; the printed seed reruns the schedule.
//!
//! ```text
//! ipledger-faults [--seed N] [--duration-s S] [--faults crash,split,...] [--dir DIR]
//!                 [--bin target/release] [--load-threads N] [--store-cache-mib M]
//!                 [--prefill TXS]
//! ```
//!
//! The fault kinds: crash, crash-during-start, isolate, split, slow-link, lossy-link (see
//! `faults::schedule::FaultKind`); all of them unless `--faults` names some.

use anyhow::{bail, Context, Result};
use ipledger_tests::faults::schedule::FaultKind;
use ipledger_tests::faults::{run, Options};
use rand_core::{OsRng, RngCore};
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str =
    "usage: ipledger-faults [--seed N] [--duration-s S] [--faults crash,split,...] \
     [--dir DIR] [--bin target/release] [--load-threads N] [--store-cache-mib M] [--prefill TXS]\n\
     fault kinds: crash, crash-during-start, isolate, split, slow-link, lossy-link (default: all)";

fn options() -> Result<Options> {
    let mut options = Options {
        seed: OsRng.next_u64(),
        kinds: FaultKind::ALL.to_vec(),
        duration: Duration::from_secs(60),
        dir: PathBuf::new(),
        bin: PathBuf::from("target/release"),
        load_threads: 16,
        store_cache_mib: None,
        prefill: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seed" => options.seed = value.parse().context("--seed")?,
            "--duration-s" => {
                options.duration = Duration::from_secs(value.parse().context("--duration-s")?)
            }
            "--faults" => {
                options.kinds = value
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, String>>()
                    .map_err(anyhow::Error::msg)?
            }
            "--dir" => options.dir = PathBuf::from(value),
            "--bin" => options.bin = PathBuf::from(value),
            "--load-threads" => options.load_threads = value.parse().context("--load-threads")?,
            "--prefill" => options.prefill = value.parse().context("--prefill")?,
            "--store-cache-mib" => {
                options.store_cache_mib = Some(value.parse().context("--store-cache-mib")?)
            }
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if options.dir.as_os_str().is_empty() {
        options.dir = PathBuf::from(format!("target/faults/seed-{}", options.seed));
    }
    if options.dir.exists() {
        bail!("{} exists; give a new --dir", options.dir.display());
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    ipledger_tests::exit_with(run_and_report())
}

/// The fault run, from the command line to the report.
fn run_and_report() -> Result<()> {
    let options = options()?;
    let kinds: Vec<&str> = options.kinds.iter().map(|kind| kind.name()).collect();
    println!(
        "fault run: seed {} faults {} for {:?}, network in {}",
        options.seed,
        kinds.join(","),
        options.duration,
        options.dir.display()
    );
    let report = run(&options)?;
    println!("seed {}: {:.0?} in all", report.seed, report.elapsed);
    for (kind, count) in &report.faults {
        println!("  faults {kind:>20}: {count}");
    }
    println!("  kill -9             : {}", report.kills);
    println!("  link faults applied : {}", report.link_faults_applied);
    println!("  datagrams proxied   : {}", report.datagrams);
    println!("  acknowledged txs    : {}", report.acknowledged);
    println!("  unanswered submits  : {}", report.unanswered);
    println!("  blocks compared     : 1..={}", report.compared_height);
    println!("  longest recovery    : {:.1?}", report.longest_recovery);
    if report.prefilled > 0 {
        println!("  prefilled txs       : {}", report.prefilled);
    }
    for peak in &report.peak_memory {
        let windows: Vec<String> = peak
            .windows_kib
            .iter()
            .map(|kib| (kib / 1024).to_string())
            .collect();
        println!(
            "  peak memory {:>15}: {} MiB (first 10 min), {} MiB (last 10 min); each 10 min: {}",
            peak.node,
            peak.first_kib() / 1024,
            peak.last_kib / 1024,
            windows.join(" ")
        );
    }
    if report.anomalies.is_empty() {
        println!("  anomalies           : none");
        Ok(())
    } else {
        println!("  anomalies           : {}", report.anomalies.len());
        for anomaly in &report.anomalies {
            println!("    {anomaly}");
        }
        println!(
            "rerun: ipledger-faults --seed {} --duration-s {} --faults {}",
            report.seed,
            options.duration.as_secs(),
            kinds.join(",")
        );
        std::process::exit(1);
    }
}
