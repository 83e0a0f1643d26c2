//! ONNX Runtime: loading the shared library once (`load-dynamic`) and choosing the provider.
//!
//! The library path comes from the caller or `ORT_DYLIB_PATH`; the core knows no package
//! layout (the binding and the CLI find the runtime through the `ort-node-locate` crate).
//! Nothing is downloaded. `ORT_PROVIDER=cpu|cuda|auto` picks the execution provider: `cuda`
//! fails at load when it cannot run, `auto` falls back to the CPU and says so in a warning.
//!
//! Whether CUDA can run is settled here, before ONNX Runtime is asked, so that the answer
//! names what is missing: the CUDA provider beside the loaded runtime (a GPU build, as the
//! `@org/tabr-native-linux-x64-gpu` package bundles), then each CUDA 12 / cuDNN 9 library
//! that provider links ([`CUDA_LIBRARIES`]). Those come from the system's library path or
//! from the folders `TABR_CUDA_LIBS` names (NVIDIA's PyPI wheels); they are loaded here,
//! globally, so the provider's own load finds them already in the process. glibc reads
//! `LD_LIBRARY_PATH` only at start-up, which is why a variable of our own is needed.

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

/// The libraries ONNX Runtime 1.22's CUDA provider links (its NEEDED entries outside glibc),
/// in an order where each one's own dependencies come first.
pub const CUDA_LIBRARIES: [&str; 7] = [
    "libcudart.so.12",
    "libcublasLt.so.12",
    "libcublas.so.12",
    "libcufft.so.11",
    "libcurand.so.10",
    "libnvrtc.so.12",
    "libcudnn.so.9",
];

/// The provider library a GPU build of ONNX Runtime keeps beside itself.
pub const CUDA_PROVIDER_LIB: &str = "libonnxruntime_providers_cuda.so";

/// The variable naming folders to find CUDA's libraries in (colon-separated; each searched
/// directly and in its `*/lib` subfolders, the layout of NVIDIA's wheels under
/// `site-packages/nvidia`).
pub const CUDA_LIBS_VAR: &str = "TABR_CUDA_LIBS";

static INIT: OnceLock<std::result::Result<String, String>> = OnceLock::new();
static CUDA: OnceLock<std::result::Result<(), String>> = OnceLock::new();
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

/// What a provider settled on: the value built, whether it runs on CUDA, and for `auto` that
/// fell back, the warning that says why.
pub(crate) struct Chosen<T> {
    pub value: T,
    pub cuda: bool,
    pub warning: Option<String>,
}

/// The one cpu/cuda/auto decision, for models and for v2's face networks alike: `cpu` builds
/// on the CPU; `cuda` builds on CUDA or fails (`model_error`, naming what is missing, or that
/// the provider failed to start); `auto` takes CUDA when it can and otherwise the CPU, with a
/// warning that says the same. `on(cuda)` builds the value for one side.
pub(crate) fn choose<T>(
    provider: Provider,
    mut on: impl FnMut(bool) -> Result<T>,
) -> Result<Chosen<T>> {
    if provider == Provider::Cpu {
        return Ok(Chosen {
            value: on(false)?,
            cuda: false,
            warning: None,
        });
    }
    let gpu = cuda_ready().and_then(|()| {
        on(true).map_err(|_| {
            "the CUDA execution provider failed to start (is there a usable GPU?)".to_string()
        })
    });
    match gpu {
        Ok(value) => Ok(Chosen {
            value,
            cuda: true,
            warning: None,
        }),
        Err(why) if provider == Provider::Auto => Ok(Chosen {
            value: on(false)?,
            cuda: false,
            warning: Some(format!("provider auto: {why}; running on the CPU")),
        }),
        Err(why) => Err(Error::new(
            ErrorCode::ModelError,
            format!("provider cuda: {why}"),
        )),
    }
}

/// Whether the CUDA provider can be tried in this process (settled once): `Err` says, in a
/// sentence, what is missing. Call after [`init`].
pub fn cuda_ready() -> std::result::Result<(), String> {
    CUDA.get_or_init(|| {
        let runtime = INIT
            .get()
            .and_then(|r| r.as_ref().ok())
            .ok_or_else(|| "ONNX Runtime is not loaded".to_string())?;
        let beside = Path::new(runtime)
            .parent()
            .map(|d| d.join(CUDA_PROVIDER_LIB));
        if !beside.is_some_and(|p| p.is_file()) {
            return Err(format!(
                "the loaded ONNX Runtime is a CPU build ({CUDA_PROVIDER_LIB} is not beside it; \
                 the @org/tabr-native-linux-x64-gpu package brings a CUDA build)"
            ));
        }
        let folders = std::env::var_os(CUDA_LIBS_VAR).unwrap_or_default();
        for lib in CUDA_LIBRARIES {
            if !preload(lib, &folders) {
                let what = if lib.starts_with("libcudnn") {
                    "cuDNN 9"
                } else {
                    "CUDA 12"
                };
                return Err(format!(
                    "{lib} ({what}) cannot be loaded: install CUDA 12 and cuDNN 9, or NVIDIA's \
                     wheels and name their folder in {CUDA_LIBS_VAR}"
                ));
            }
        }
        Ok(())
    })
    .clone()
}

/// Loads `lib` for the whole process: from the first of `folders` (and their `*/lib`) that
/// holds it, else by name through the system's library path.
fn preload(lib: &str, folders: &std::ffi::OsStr) -> bool {
    let candidates = std::env::split_paths(folders)
        .filter(|d| !d.as_os_str().is_empty())
        .flat_map(|d| {
            let nested = std::fs::read_dir(&d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().join("lib").join(lib));
            std::iter::once(d.join(lib))
                .chain(nested)
                .collect::<Vec<_>>()
        })
        .filter(|p| p.is_file())
        .map(|p| p.into_os_string());
    candidates
        .chain(std::iter::once(std::ffi::OsString::from(lib)))
        .any(|name| load_global(&name))
}

/// dlopen with RTLD_GLOBAL; the handle is kept for the life of the process (the provider,
/// loaded later by ONNX Runtime, links against it).
#[allow(unsafe_code)]
fn load_global(name: &std::ffi::OsStr) -> bool {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: the names are CUDA's and cuDNN's own libraries (CUDA_LIBRARIES), whose
    // initialisers only set up their own state; nothing of theirs is called from here.
    match unsafe { Library::open(Some(name), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            std::mem::forget(lib);
            true
        }
        Err(_) => false,
    }
}

/// A session builder with the CUDA execution provider registered, failing if it cannot be.
pub(crate) fn with_cuda(
    b: ort::session::builder::SessionBuilder,
) -> ort::Result<ort::session::builder::SessionBuilder> {
    let ep = ort::execution_providers::CUDAExecutionProvider::default()
        .build()
        .error_on_failure();
    b.with_execution_providers([ep])
}
