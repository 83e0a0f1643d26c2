//! The ONNX Runtime side of a loaded model: which execution provider it runs on and a pool of
//! sessions over one copy of the graph's bytes.
//!
//! Sessions are not shareable across concurrent runs, so calls take one from the pool, run and
//! give it back; the pool grows lazily up to `LoadOptions::sessions` (1 = a plain mutex). The
//! first session is always a CPU one: it validates the graph and its input/output names, so a
//! broken file is never blamed on CUDA.

use std::sync::{Arc, Condvar, Mutex};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use super::{model_error, runtime, LoadOptions, Manifest};
use crate::error::{Error, ErrorCode, Result};

/// A pool of ONNX sessions: calls take one, run, and give it back.
pub(super) struct Sessions {
    bytes: Arc<[u8]>,
    opts: LoadOptions,
    cuda: bool,
    idle: Mutex<(Vec<Session>, usize)>,
    ready: Condvar,
}

impl Sessions {
    /// Opens the first session on the provider `opts` asks for. Returns what loading had to
    /// settle for (`auto` falling back to the CPU) as warnings for the caller to log.
    pub(super) fn start(
        bytes: Arc<[u8]>,
        opts: &LoadOptions,
        m: &Manifest,
    ) -> Result<(Sessions, Vec<String>)> {
        // The first session on the CPU validates the graph and its inputs and outputs, so a
        // broken file is never blamed on CUDA; `choose` then opens the provider's own.
        let cpu = Self::open(&bytes, opts, false)?;
        check_io(&cpu, m)?;
        let mut cpu = Some(cpu);
        let chosen = runtime::choose(opts.provider, |cuda| match (cuda, cpu.take()) {
            (false, Some(s)) => Ok(s),
            (c, _) => Self::open(&bytes, opts, c),
        })?;
        let (first, cuda) = (chosen.value, chosen.cuda);
        let warnings: Vec<String> = chosen.warning.into_iter().collect();
        let sessions = Sessions {
            bytes,
            opts: opts.clone(),
            cuda,
            idle: Mutex::new((vec![first], 1)),
            ready: Condvar::new(),
        };
        Ok((sessions, warnings))
    }

    /// Whether the sessions run on the CUDA execution provider.
    pub(super) fn cuda(&self) -> bool {
        self.cuda
    }

    fn open(bytes: &[u8], opts: &LoadOptions, cuda: bool) -> Result<Session> {
        let fail = |_| {
            Error::new(
                ErrorCode::ModelError,
                "model.onnx cannot be loaded by ONNX Runtime",
            )
        };
        let mut b = Session::builder()
            .map_err(fail)?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(fail)?
            .with_intra_threads(opts.intra_threads.max(1))
            .map_err(fail)?;
        if cuda {
            b = runtime::with_cuda(b).map_err(|_| {
                Error::new(
                    ErrorCode::ModelError,
                    "the CUDA execution provider failed to start",
                )
            })?;
        }
        b.commit_from_memory(bytes).map_err(fail)
    }

    /// Runs `f` on an idle session, opening one if the pool may still grow, else waiting.
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Session) -> Result<R>) -> Result<R> {
        let poisoned = |_| Error::internal("session pool lock poisoned");
        let mut s = {
            let mut g = self.idle.lock().map_err(poisoned)?;
            loop {
                if let Some(s) = g.0.pop() {
                    break s;
                }
                if g.1 < self.opts.sessions.max(1) {
                    g.1 += 1;
                    drop(g);
                    match Self::open(&self.bytes, &self.opts, self.cuda) {
                        Ok(s) => break s,
                        Err(e) => {
                            if let Ok(mut g) = self.idle.lock() {
                                g.1 -= 1;
                            }
                            return Err(e);
                        }
                    }
                }
                g = self.ready.wait(g).map_err(poisoned)?;
            }
        };
        let out = f(&mut s);
        if let Ok(mut g) = self.idle.lock() {
            g.0.push(s);
        }
        self.ready.notify_one();
        out
    }
}

/// The graph takes the manifest's input and gives its output (and its evidence outputs).
fn check_io(s: &Session, m: &Manifest) -> Result<()> {
    if !s.inputs.iter().any(|i| i.name == m.onnx.input)
        || !s.outputs.iter().any(|o| o.name == m.onnx.output)
    {
        return Err(model_error(format!(
            "model.onnx must take {:?} and give {:?}",
            m.onnx.input, m.onnx.output
        )));
    }
    if let Some(e) = &m.onnx.evidence {
        for name in [&e.index, &e.distance, &e.weight, &e.label, &e.novelty] {
            if !s.outputs.iter().any(|o| &o.name == name) {
                return Err(model_error(format!(
                    "model.onnx has no output {name:?} (manifest onnx.evidence)"
                )));
            }
        }
    }
    Ok(())
}
