//! The adapter between ledger-core and the Malachite consensus engine. Nothing outside this
//! module names an engine type.

pub mod app;
pub mod certificate;
pub mod codec;
pub mod context;
pub mod signing;
pub mod streaming;
