//! Latency over a recent window: a fixed-size log-linear histogram, recorded under the dispatch
//! lock for every finished request, read by `get_stats`.
//!
//! # Why buckets, and which window
//! Recording must cost the request path next to nothing and never allocate: a sample is one
//! bucket index (a `leading_zeros`) and one increment. Buckets are log-linear, as in HDR
//! histograms: values below [`SUB`] µs each have a bucket of their own; above, every power of two
//! is cut into [`SUB`] equal buckets, so a percentile is off by less than 1/[`SUB`] (6.25 %) of
//! its value, from 1 µs to days, in a few kilobytes.
//!
//! The window is two generations of buckets: samples go into the current one; once it holds
//! [`GENERATION`] samples it becomes the previous one (the older previous one is dropped) and a
//! fresh current one starts. Percentiles are read over both, so they describe the last
//! `GENERATION..2 * GENERATION` requests — recent behaviour, not the pool's whole life — and
//! old samples leave in one step instead of one by one (a ring of raw samples would need
//! sorting, or a second structure, to read percentiles; decaying weights would need a clock
//! and floating point on the request path).

use std::time::Duration;

/// Linear buckets per power of two (and the values below it that are exact).
pub const SUB: u64 = 16;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Powers of two covered above `SUB` µs: up to 2^48 µs (about 9 years); longer values share
/// the last bucket.
const GROUPS: usize = 44;
const BUCKETS: usize = SUB as usize * (GROUPS + 1);
/// Samples per generation: the window holds between this many and twice as many samples.
pub const GENERATION: u32 = 512;

/// Percentiles of a window, and how many samples it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub samples: u64,
}

/// A latency histogram over a recent window (see the module doc).
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    current: Box<[u32; BUCKETS]>,
    previous: Box<[u32; BUCKETS]>,
    in_current: u32,
    in_previous: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            current: Box::new([0; BUCKETS]),
            previous: Box::new([0; BUCKETS]),
            in_current: 0,
            in_previous: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("samples", &self.samples())
            .finish_non_exhaustive()
    }
}

impl Histogram {
    /// Adds one sample; the oldest generation leaves once the current one is full.
    pub fn record(&mut self, value: Duration) {
        if self.in_current == GENERATION {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.fill(0);
            self.in_previous = GENERATION;
            self.in_current = 0;
        }
        self.current[bucket(micros(value))] += 1;
        self.in_current += 1;
    }

    /// Samples in the window.
    pub fn samples(&self) -> u64 {
        u64::from(self.in_current) + u64::from(self.in_previous)
    }

    /// p50, p95 and p99 of the window (nearest rank: the smallest bucket value at or below
    /// which at least that share of samples lie); all zero when it is empty.
    pub fn percentiles(&self) -> Percentiles {
        let samples = self.samples();
        if samples == 0 {
            return Percentiles::default();
        }
        let ranks = [50u64, 95, 99].map(|p| (samples * p).div_ceil(100).max(1));
        let mut found = [0u64; 3];
        let mut next = 0;
        let mut seen = 0u64;
        for index in 0..BUCKETS {
            seen += u64::from(self.current[index]) + u64::from(self.previous[index]);
            while next < 3 && seen >= ranks[next] {
                found[next] = value_of(index);
                next += 1;
            }
            if next == 3 {
                break;
            }
        }
        Percentiles {
            p50: Duration::from_micros(found[0]),
            p95: Duration::from_micros(found[1]),
            p99: Duration::from_micros(found[2]),
            samples,
        }
    }
}

fn micros(value: Duration) -> u64 {
    u64::try_from(value.as_micros()).unwrap_or(u64::MAX)
}

/// The bucket of `us` microseconds.
pub fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let exponent = 63 - us.leading_zeros(); // ≥ SUB_BITS
    let group = (exponent - SUB_BITS) as usize;
    if group >= GROUPS {
        return BUCKETS - 1;
    }
    let sub = ((us >> (exponent - SUB_BITS)) - SUB) as usize;
    SUB as usize * (group + 1) + sub
}

/// The value a bucket stands for, in µs: its exact value below `SUB`, else the middle of its
/// range (so the error is at most half a bucket either way).
pub fn value_of(index: usize) -> u64 {
    let sub = SUB as usize;
    if index < sub {
        return index as u64;
    }
    let group = (index / sub - 1) as u32;
    let low = (SUB + (index % sub) as u64) << group;
    let width = 1u64 << group;
    low + (width - 1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_sub_and_within_a_sixteenth_above() {
        for us in 0..SUB {
            assert_eq!(value_of(bucket(us)), us);
        }
        for us in [
            16,
            17,
            100,
            1_000,
            9_999,
            10_000,
            123_456,
            5_000_000,
            1 << 40,
        ] {
            let got = value_of(bucket(us));
            let error = got.abs_diff(us) as f64 / us as f64;
            assert!(error < 1.0 / SUB as f64, "{us} µs read as {got}");
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn buckets_grow_with_their_values() {
        let mut last = 0;
        for us in (0..100_000).step_by(7) {
            let index = bucket(us);
            assert!(index >= last);
            last = index;
        }
    }
}
