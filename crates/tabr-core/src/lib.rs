//! # tabr-core
//!
//! The native core of tabr-serve: the POC-ABS video feature extractor (v1,
//! `spec/poc-abs-v1.md`; v2, `docs/spec/poc-abs-v2.md`), shared by the HTTP service (through
//! the napi binding) and the offline `tabr-features` CLI, so training and serving features are
//! the same numbers.
//!
//! Layout: [`spec`] (the contracts' data), [`video`] (decode and limits), [`face`] (v1's Haar
//! box, v2's face models and alignment, and the face-method seam), [`poc`] (phase-only correlation),
//! [`stats`] (the five statistics), [`extract`] (the streaming pipeline), [`flow`]
//! (Farnebäck), [`model`] (TabR models), [`error`] (stable codes).
#![deny(missing_docs)]

pub mod contracts;
pub mod error;
pub mod extract;
pub mod face;
pub mod flow;
pub mod model;
pub mod poc;
pub mod spec;
pub mod stats;
#[cfg(feature = "synth")]
pub mod synth;
pub mod video;

pub use error::{Error, ErrorCode, Result};

// The version list: what this build is, which feature specs it implements and which model
// directories it reads. The Node package exports these three as they are (`VERSION`,
// `FEATURE_SPECS`, `MODEL_FORMATS`), and its tests hold package.json to `VERSION`.

/// This build's version: the workspace version in `Cargo.toml`, which the npm packages carry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The feature specs this build implements, as `name/version` (a manifest's `features`).
pub const FEATURE_SPECS: [&str; spec::Spec::ALL.len()] = [spec::Spec::V1.id(), spec::Spec::V2.id()];
pub use extract::{
    BoxChange, CancelFlag, Extractor, FaceAssets, Features, Meta, Series, StageTimings,
    VideoSummary,
};
pub use model::manifest::MODEL_FORMATS;
pub use spec::{feature_names, Limits, Spec, SpecParams, N_FEATURES};
pub use video::VideoSource;
