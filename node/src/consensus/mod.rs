//! The adapter between ledger-core and the Malachite consensus engine. Nothing outside this
//! module names an engine type.

pub mod app;
pub mod building;
/// A lying validator, for fault tests only.
#[cfg(feature = "byzantine")]
pub mod byzantine;
pub mod certificate;
pub mod codec;
pub mod context;
pub mod misbehaviour;
pub mod signing;
pub mod streaming;
