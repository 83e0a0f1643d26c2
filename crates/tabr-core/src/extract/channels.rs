//! Spec §4, per frame pair: dense flow between the two crops (through the [`Flow`] seam),
//! the global POC (head motion), the residual |flow| per region and the region POCs: the 18
//! channels of one pair.

use std::time::Instant;

use opencv::core::MatTraitConst;

use crate::error::{Error, Result};
use crate::flow::{Flow, FlowFrame};
use crate::poc::{with_thread_engine, Patch};
use crate::spec::{PixelRect, N_CHANNELS, REGIONS};

/// One pair's channels (or its error) and the time its stages took.
pub(super) struct PairOut {
    pub(super) index: usize,
    pub(super) channels: Result<[f64; N_CHANNELS]>,
    pub(super) flow_ns: u64,
    pub(super) poc_ns: u64,
}

thread_local! {
    static FLOW: std::cell::RefCell<Vec<[f32; 2]>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One pair's channels on a pool worker (its flow buffer is per thread); a panic becomes
/// `internal`.
pub(super) fn pair_job(
    index: usize,
    flow: &dyn Flow,
    a: &FlowFrame,
    b: &FlowFrame,
    rects: &[PixelRect; 8],
) -> PairOut {
    let mut flow_ns = 0;
    let mut poc_ns = 0;
    let channels = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        FLOW.with(|f| {
            pair_channels(
                flow,
                a,
                b,
                rects,
                &mut f.borrow_mut(),
                &mut flow_ns,
                &mut poc_ns,
            )
        })
    }))
    .unwrap_or_else(|_| Err(Error::internal("a pair computation panicked")));
    PairOut {
        index,
        channels,
        flow_ns,
        poc_ns,
    }
}

/// Spec §4: flow, global POC, residual |flow| and region POCs of one pair.
fn pair_channels(
    method: &dyn Flow,
    a: &FlowFrame,
    b: &FlowFrame,
    rects: &[PixelRect; 8],
    uv: &mut Vec<[f32; 2]>,
    flow_ns: &mut u64,
    poc_ns: &mut u64,
) -> Result<[f64; N_CHANNELS]> {
    let n = a.crop().cols() as usize;
    uv.resize(n * n, [0.0; 2]);
    let t0 = Instant::now();
    method.compute(a, b, uv)?;
    let t1 = Instant::now();
    let (pa, pb) = (a.pixels(), b.pixels());
    let mut ch = [0.0; N_CHANNELS];
    with_thread_engine(|e| {
        let g = e.poc(
            &Patch::sub(pa, n, 0, 0, n, n),
            &Patch::sub(pb, n, 0, 0, n, n),
        );
        let (gx, gy) = (g.dx as f32, g.dy as f32);
        for (k, r) in rects.iter().enumerate() {
            let mut sum = 0.0f64;
            for y in r.y..r.y + r.h {
                let row = &uv[y * n + r.x..y * n + r.x + r.w];
                let s: f32 = row
                    .iter()
                    .map(|v| ((v[0] - gx).powi(2) + (v[1] - gy).powi(2)).sqrt())
                    .sum();
                sum += f64::from(s);
            }
            ch[2 * k] = sum / (r.w * r.h) as f64;
            let rp = e.poc(
                &Patch::sub(pa, n, r.x, r.y, r.w, r.h),
                &Patch::sub(pb, n, r.x, r.y, r.w, r.h),
            );
            ch[2 * k + 1] = 1.0 - rp.peak;
        }
        ch[2 * REGIONS.len()] = (g.dx * g.dx + g.dy * g.dy).sqrt();
        ch[2 * REGIONS.len() + 1] = 1.0 - g.peak;
    });
    *flow_ns += (t1 - t0).as_nanos() as u64;
    *poc_ns += t1.elapsed().as_nanos() as u64;
    Ok(ch)
}
