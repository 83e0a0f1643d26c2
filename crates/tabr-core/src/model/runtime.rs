//! ONNX Runtime: loading the shared library once (`load-dynamic`) and choosing the provider.
//!
//! The library path comes from the caller or `ORT_DYLIB_PATH`; the core knows no package
//! layout (the binding and the CLI find `onnxruntime-node`'s copy through the
//! `ort-node-locate` crate). Nothing is downloaded. `ORT_PROVIDER=cpu|cuda|auto` picks the
//! execution provider: `cuda` fails at load when the runtime lacks it, `auto` falls back to
//! the CPU and says so in the model's warnings.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, ErrorCode, Result};

/// The execution provider asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// CPU only (default).
    #[default]
    Cpu,
    /// CUDA, or fail.
    Cuda,
    /// CUDA when the runtime has it, else CPU with a warning.
    Auto,
}

impl Provider {
    /// Parses `cpu`, `cuda` or `auto`.
    pub fn parse(s: &str) -> Result<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "auto" => Ok(Provider::Auto),
            other => Err(Error::new(
                ErrorCode::ModelError,
                format!("ORT_PROVIDER must be cpu, cuda or auto, not {other:?}"),
            )),
        }
    }

    /// From `ORT_PROVIDER` (default `cpu`).
    pub fn from_env() -> Result<Provider> {
        Provider::parse(&std::env::var("ORT_PROVIDER").unwrap_or_default())
    }
}

static INIT: OnceLock<std::result::Result<String, String>> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::new(());

/// Loads the ONNX Runtime library once per process. Later calls with another path keep the
/// first (one runtime per process); the path in use is returned.
pub fn init(dylib: Option<&Path>) -> Result<String> {
    let _guard = LOCK
        .lock()
        .map_err(|_| Error::internal("runtime lock poisoned"))?;
    let r = INIT.get_or_init(|| {
        // Each failure names where the path came from: the caller's option or the variable.
        let (path, source) = match dylib {
            // A caller that read ORT_DYLIB_PATH itself passes its value: named as the variable.
            Some(p) if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|v| Path::new(&v) == p) => (
                p.to_string_lossy().into_owned(),
                "the ONNX Runtime library named by ORT_DYLIB_PATH",
            ),
            Some(p) => (p.to_string_lossy().into_owned(), "the ONNX Runtime library given"),
            None => (
                std::env::var("ORT_DYLIB_PATH").map_err(|_| {
                    "no ONNX Runtime library: name one (ortDylibPath, --ort-dylib) or set ORT_DYLIB_PATH".to_string()
                })?,
                "the ONNX Runtime library named by ORT_DYLIB_PATH",
            ),
        };
        if !Path::new(&path).is_file() {
            return Err(format!("{source} does not exist"));
        }
        // ort loads the library here; a wrong or incompatible file is refused, not a crash.
        let loaded = std::panic::catch_unwind(|| ort::init_from(path.clone()).with_name("tabr-serve").commit());
        match loaded {
            Ok(Ok(_)) => Ok(path),
            _ => Err("the ONNX Runtime library could not be loaded (ONNX Runtime ≥ 1.22 is needed)".to_string()),
        }
    });
    r.clone().map_err(|m| Error::new(ErrorCode::ModelError, m))
}
