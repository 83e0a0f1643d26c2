//! ONNX Runtime: loading the shared library once (`load-dynamic`) and choosing the provider.
//!
//! The library path comes from the caller (the Node binding resolves `onnxruntime-node`'s
//! copy) or `ORT_DYLIB_PATH`. Nothing is downloaded. `ORT_PROVIDER=cpu|cuda|auto` picks the
//! execution provider: `cuda` fails at load when the runtime lacks it, `auto` falls back to
//! the CPU and says so in the model's warnings.

use std::path::{Path, PathBuf};
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
        let path = dylib
            .map(|p| p.to_string_lossy().into_owned())
            .or_else(|| std::env::var("ORT_DYLIB_PATH").ok())
            .ok_or_else(|| "no ONNX Runtime library: set ORT_DYLIB_PATH (the Node package finds onnxruntime-node's)".to_string())?;
        if !Path::new(&path).is_file() {
            return Err("the ONNX Runtime library named by ORT_DYLIB_PATH does not exist".to_string());
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

/// ONNX Runtime's library, looked for as every caller here does: the one named explicitly,
/// else the one `ORT_DYLIB_PATH` names, else the `onnxruntime-node` runtime nearest the first
/// of `near` that has one.
pub fn locate(explicit: Option<&Path>, near: &[&Path]) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .or_else(|| near.iter().find_map(|d| find_onnxruntime_node(d)))
}

/// Where the `onnxruntime-node` npm package keeps its runtime, relative to a folder that
/// holds `node_modules`.
pub const ONNXRUNTIME_NODE_LIB: &str =
    "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1";

/// The `onnxruntime-node` runtime nearest to `from`, searched in `from` and each folder above
/// it, as Node resolves packages: the one place that path is known (the Node binding starts
/// from its own file, tests and benchmarks from `packages/tabr-native`).
pub fn find_onnxruntime_node(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .map(|d| d.join(ONNXRUNTIME_NODE_LIB))
        .find(|p| p.is_file())
}
