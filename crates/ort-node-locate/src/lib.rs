//! Where ONNX Runtime's shared library sits in a Node install: beside the addon in a release
//! platform package (`@org/tabr-native-linux-x64-gnu` and `-gpu` bundle it), else in the
//! `onnxruntime-node` npm package of a development tree.
//!
//! Why a crate of its own: the core (`tabr-core`) loads whatever library its caller names and
//! knows nothing of Node's package layout (ARCHITECTURE.md's first rule). The callers that do
//! start from a Node package (the binding from its own file; the CLI, the tests and the
//! benchmarks from this source tree, where `make build` installs `onnxruntime-node` beside the
//! binding) share this one implementation of that layout.

use std::path::{Path, PathBuf};

/// The library's name beside the addon in a release platform package (its SONAME).
pub const BUNDLED_LIB: &str = "libonnxruntime.so.1";

/// The library's place inside a folder that holds `node_modules`.
pub const ONNXRUNTIME_NODE_LIB: &str =
    "node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1";

/// The `onnxruntime-node` runtime nearest to `from`, searched in `from` and each folder above
/// it, as Node resolves packages.
pub fn nearest(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .map(|d| d.join(ONNXRUNTIME_NODE_LIB))
        .find(|p| p.is_file())
}

/// The runtime for an addon in `addon_dir`: the one bundled beside it (a release), else the
/// `onnxruntime-node` runtime nearest it (a development tree).
pub fn for_addon(addon_dir: &Path) -> Option<PathBuf> {
    Some(addon_dir.join(BUNDLED_LIB))
        .filter(|p| p.is_file())
        .or_else(|| nearest(addon_dir))
}

/// ONNX Runtime as every front end here looks for it: the one named explicitly, else the one
/// `ORT_DYLIB_PATH` names, else the `onnxruntime-node` runtime nearest the first of `near`
/// that has one.
pub fn locate(explicit: Option<&Path>, near: &[&Path]) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .or_else(|| near.iter().find_map(|d| nearest(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_package_upwards() {
        let tmp = std::env::temp_dir().join(format!("ort-node-locate-{}", std::process::id()));
        let lib = tmp.join(ONNXRUNTIME_NODE_LIB);
        std::fs::create_dir_all(lib.parent().expect("parent")).expect("mkdir");
        std::fs::write(&lib, b"").expect("write");
        let deep = tmp.join("a/b/c");
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(nearest(&deep), Some(lib.clone()));
        assert_eq!(nearest(Path::new("/")), None);
        let named = Path::new("/x/libonnxruntime.so");
        assert_eq!(locate(Some(named), &[&deep]).as_deref(), Some(named));
        // A bundled runtime beside the addon wins over any package above it.
        assert_eq!(for_addon(&deep), Some(lib.clone()));
        std::fs::write(deep.join(BUNDLED_LIB), b"").expect("write");
        assert_eq!(for_addon(&deep), Some(deep.join(BUNDLED_LIB)));
        std::fs::remove_dir_all(&tmp).expect("clean");
    }
}
