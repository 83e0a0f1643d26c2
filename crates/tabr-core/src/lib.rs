//! # tabr-core
//!
//! The native core of tabr-serve: the POC-ABS v1 video feature extractor
//! (`spec/poc-abs-v1.md`), shared by the HTTP service (through the napi binding) and the
//! offline `tabr-features` CLI, so training and serving features are the same numbers.
//!
//! Layout: [`spec`] (the contract's data), [`video`] (decode and limits), [`face`] (Haar box
//! schedule pieces), [`poc`] (phase-only correlation), [`stats`] (the five statistics),
//! [`extract`] (the streaming pipeline), [`error`] (stable codes).
#![deny(missing_docs)]

pub mod error;
pub mod extract;
pub mod face;
pub mod model;
pub mod poc;
pub mod spec;
pub mod stats;
pub mod synth;
pub mod video;

pub use error::{Error, ErrorCode, Result};
pub use extract::{BoxChange, CancelFlag, Extractor, Features, Meta, StageTimings};
pub use spec::{feature_names, SpecParams, N_FEATURES};
