//! The five per-channel statistics of POC-ABS v1 (spec §5).
//!
//! `mean`, population `std`, `max`, `p95` with numpy's default linear interpolation between
//! closest ranks, and `spike`: the fraction of values above `median + 3·MAD`. Everything is
//! computed in f64 over the whole series of one video.

/// Number of statistics per channel.
pub const N_STATS: usize = 5;

/// Statistic names, in vector order.
pub const STAT_NAMES: [&str; N_STATS] = ["mean", "std", "max", "p95", "spike"];

/// Percentile `q` in [0, 100] of sorted data, numpy's `linear` method.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let pos = q / 100.0 * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = pos - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

/// Median of sorted data (mean of the two middle values for even lengths).
pub fn median_sorted(sorted: &[f64]) -> f64 {
    percentile_sorted(sorted, 50.0)
}

/// The five statistics of one series, in [`STAT_NAMES`] order. An empty series gives NaNs.
pub fn summarize(xs: &[f64]) -> [f64; N_STATS] {
    let n = xs.len();
    if n == 0 {
        return [f64::NAN; N_STATS];
    }
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / nf;
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let max = sorted[n - 1];
    let p95 = percentile_sorted(&sorted, 95.0);
    let median = median_sorted(&sorted);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = median_sorted(&dev);
    let threshold = median + 3.0 * mad;
    let spikes = xs.iter().filter(|&&x| x > threshold).count();
    [mean, var.sqrt(), max, p95, spikes as f64 / nf]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_interpolates_like_numpy() {
        // numpy.percentile(range(1, 11), 95) == 9.55
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((percentile_sorted(&xs, 95.0) - 9.55).abs() < 1e-12);
        // numpy.percentile([0, 10], 95) == 9.5
        assert!((percentile_sorted(&[0.0, 10.0], 95.0) - 9.5).abs() < 1e-12);
        assert_eq!(percentile_sorted(&[4.0], 95.0), 4.0);
        assert_eq!(median_sorted(&[1.0, 2.0, 3.0, 4.0]), 2.5);
    }

    #[test]
    fn summarize_matches_hand_values() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0]);
        assert!((s[0] - 2.5).abs() < 1e-12);
        assert!((s[1] - 1.25f64.sqrt()).abs() < 1e-12);
        assert_eq!(s[2], 4.0);
        assert!((s[3] - 3.85).abs() < 1e-12);
        assert_eq!(s[4], 0.0);
    }

    #[test]
    fn spike_with_zero_mad_counts_everything_above_the_median() {
        // median 0, MAD 0: every value > 0 is a spike.
        let xs = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 2.0, 0.0];
        let s = summarize(&xs);
        assert!((s[4] - 0.2).abs() < 1e-12);
    }

    #[test]
    fn spike_uses_three_mads() {
        // median 5.5, |x - 5.5| has median 2.5, threshold 5.5 + 7.5 = 13: only 100 spikes.
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0];
        let s = summarize(&xs);
        assert!((s[4] - 0.1).abs() < 1e-12);
    }
}
