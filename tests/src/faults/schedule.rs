//! Fault schedules: a seed fixes every fault, its target, its parameters and its timing.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The kinds of fault a run can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// `kill -9` of one node, restarted after a while.
    Crash,
    /// `kill -9` of one node, restarted, and killed again during its start-up.
    CrashDuringStart,
    /// Every link of one node cut, then healed.
    Isolate,
    /// The links between two pairs of nodes cut: no side has a quorum, so no block may commit.
    Split,
    /// The links between two nodes delayed: consensus datagrams and gossip chunks.
    SlowLink,
    /// Consensus datagrams on every link dropped, duplicated and reordered.
    LossyLink,
    /// `kill -9` of two nodes at once: no quorum is left, so no block may commit until they are
    /// restarted.
    CrashTwo,
}

impl FaultKind {
    /// Every kind, in the order runs list them.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Crash,
        FaultKind::CrashDuringStart,
        FaultKind::Isolate,
        FaultKind::Split,
        FaultKind::SlowLink,
        FaultKind::LossyLink,
        FaultKind::CrashTwo,
    ];

    /// The kind's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::CrashDuringStart => "crash-during-start",
            FaultKind::Isolate => "isolate",
            FaultKind::Split => "split",
            FaultKind::SlowLink => "slow-link",
            FaultKind::LossyLink => "lossy-link",
            FaultKind::CrashTwo => "crash-two",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;
    fn from_str(text: &str) -> Result<FaultKind, String> {
        FaultKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown fault kind {text:?}; the kinds are {}",
                    names.join(", ")
                )
            })
    }
}

/// One fault of a schedule.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Kill node `node`, restart it after `down`.
    Crash { node: usize, down: Duration },
    /// Kill node `node`, restart it, kill it again `after` the restart, restart it.
    CrashDuringStart { node: usize, after: Duration },
    /// Cut every link of `node` for `span`.
    Isolate { node: usize, span: Duration },
    /// Cut the links between `{pair.0, pair.1}` and the other two nodes for `span`.
    Split {
        pair: (usize, usize),
        span: Duration,
    },
    /// Delay the links between `a` and `b` by `delay_ms` for `span`.
    SlowLink {
        a: usize,
        b: usize,
        delay_ms: u64,
        span: Duration,
    },
    /// Drop, duplicate and reorder the (consensus) datagrams on every link, both ways, for
    /// `span`.
    LossyLink {
        loss: f64,
        duplicate: f64,
        reorder: f64,
        span: Duration,
    },
    /// Kill nodes `pair.0` and `pair.1`, restart both after `down`.
    CrashTwo {
        pair: (usize, usize),
        down: Duration,
    },
}

impl Fault {
    /// The fault's kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::CrashDuringStart { .. } => FaultKind::CrashDuringStart,
            Fault::Isolate { .. } => FaultKind::Isolate,
            Fault::Split { .. } => FaultKind::Split,
            Fault::SlowLink { .. } => FaultKind::SlowLink,
            Fault::LossyLink { .. } => FaultKind::LossyLink,
            Fault::CrashTwo { .. } => FaultKind::CrashTwo,
        }
    }
}

/// A fault and the quiet time before it.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Time without faults before this one starts.
    pub quiet_before: Duration,
    /// The fault.
    pub fault: Fault,
}

/// The steps of a run of the given `kinds` on `nodes` nodes, about `duration` long in all.
///
/// The same seed, kinds, node count and duration always give the same steps; nothing else
/// influences them.
pub fn schedule(seed: u64, kinds: &[FaultKind], nodes: usize, duration: Duration) -> Vec<Step> {
    assert!(
        !kinds.is_empty(),
        "a schedule needs at least one fault kind"
    );
    assert!(nodes >= 4, "splits and quorum faults need four nodes");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut millis =
        |low: u64, high: u64| Duration::from_millis(low + rng.next_u64() % (high - low));
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    while total < duration {
        let quiet_before = millis(1_000, 4_000);
        let pick = millis(0, 1_000_000).as_millis() as usize;
        let kind = kinds[pick % kinds.len()];
        let node = pick / 7 % nodes;
        // A second node, for the faults that take two: never `node` itself.
        let other = (node + 1 + pick / 131 % (nodes - 1)) % nodes;
        let pair = (node.min(other), node.max(other));
        let fault = match kind {
            FaultKind::Crash => Fault::Crash {
                node,
                down: millis(200, 6_000),
            },
            FaultKind::CrashDuringStart => Fault::CrashDuringStart {
                node,
                after: millis(0, 1_500),
            },
            FaultKind::Isolate => Fault::Isolate {
                node,
                span: millis(2_000, 8_000),
            },
            FaultKind::Split => Fault::Split {
                pair,
                span: millis(3_000, 8_000),
            },
            FaultKind::SlowLink => Fault::SlowLink {
                a: node,
                b: other,
                delay_ms: millis(20, 400).as_millis() as u64,
                span: millis(2_000, 8_000),
            },
            FaultKind::LossyLink => Fault::LossyLink {
                loss: (pick % 30) as f64 / 100.0,
                duplicate: (pick / 30 % 20) as f64 / 100.0,
                reorder: (pick / 600 % 20) as f64 / 100.0,
                span: millis(2_000, 8_000),
            },
            FaultKind::CrashTwo => Fault::CrashTwo {
                pair,
                down: millis(3_000, 8_000),
            },
        };
        total += quiet_before + fault_span(&fault);
        steps.push(Step {
            quiet_before,
            fault,
        });
    }
    steps
}

/// How long a fault lasts (restarts excluded).
pub fn fault_span(fault: &Fault) -> Duration {
    match fault {
        Fault::Crash { down, .. } | Fault::CrashTwo { down, .. } => *down,
        Fault::CrashDuringStart { after, .. } => *after,
        Fault::Isolate { span, .. }
        | Fault::Split { span, .. }
        | Fault::SlowLink { span, .. }
        | Fault::LossyLink { span, .. } => *span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_seed_fixes_the_schedule_and_it_uses_only_the_asked_kinds(
            seed in any::<u64>(),
            mask in 1u8..128,
            seconds in 1u64..600,
        ) {
            let kinds: Vec<FaultKind> = FaultKind::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, kind)| kind)
                .collect();
            let duration = Duration::from_secs(seconds);
            let steps = schedule(seed, &kinds, 4, duration);
            prop_assert_eq!(&steps, &schedule(seed, &kinds, 4, duration));
            let total: Duration = steps.iter().map(|s| s.quiet_before + fault_span(&s.fault)).sum();
            prop_assert!(total >= duration);
            for step in &steps {
                prop_assert!(kinds.contains(&step.fault.kind()));
                match step.fault {
                    Fault::Crash { node, .. }
                    | Fault::CrashDuringStart { node, .. }
                    | Fault::Isolate { node, .. } => prop_assert!(node < 4),
                    Fault::Split { pair: (a, b), .. } | Fault::CrashTwo { pair: (a, b), .. } => {
                        prop_assert!(a < b && b < 4)
                    }
                    Fault::SlowLink { a, b, .. } => prop_assert!(a != b && a < 4 && b < 4),
                    Fault::LossyLink { loss, duplicate, reorder, .. } => {
                        prop_assert!(loss < 1.0 && duplicate < 1.0 && reorder < 1.0)
                    }
                }
            }
        }
    }

    #[test]
    fn kinds_read_back_from_their_names() {
        for kind in FaultKind::ALL {
            assert_eq!(kind.name().parse::<FaultKind>(), Ok(kind));
        }
        assert!("flood".parse::<FaultKind>().unwrap_err().contains("crash"));
    }
}
