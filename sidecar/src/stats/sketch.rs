//! A DDSketch (Masson, Rim, Lee, VLDB 2019): a mergeable distribution with a
//! guaranteed relative error on every quantile, in a few hundred bytes.
//!
//! Written here rather than taken from a crate because its serialized form
//! goes into every EMF event (so that distributions can be merged across
//! tasks later) and must stay stable and compact: `{"gamma":..,"zeros":n,
//! "bins":[[index,count],...]}`. The algorithm is a dozen lines.
//!
//! A value `v > 0` goes into bin `ceil(log_gamma(v))`, whose values all lie
//! within `alpha` of the bin's representative `2 gamma^i / (gamma + 1)`,
//! with `gamma = (1 + alpha) / (1 - alpha)`. Values of 0 (a request that took
//! less than a millisecond) are counted apart and read back as 0.

use std::sync::LazyLock;

/// The relative accuracy of every quantile.
pub const RELATIVE_ACCURACY: f64 = 0.01;

#[derive(Clone, Debug)]
pub struct Sketch {
    bins: Bins,
    zeros: u64,
    count: u64,
    sum: u64,
    max: u64,
}

/// Where the bins' counts are held. Most routes see few requests in an
/// interval, and a window over their values' whole range (347 bins
/// from 1 ms to 1 s) would hold 2.8 KB for a handful of counts: a thousand
/// containers' routes held 20 MiB that way. So a sketch keeps the bins it
/// uses in a short sorted list, and moves to the window only past
/// `SPARSE_BINS` of them, where the window is what `add` indexes fastest.
#[derive(Clone, Debug)]
enum Bins {
    /// `(index, count)`, by index; at most `SPARSE_BINS`.
    Sparse(Vec<(i32, u64)>),
    /// The counts of bins `first`, `first + 1`, ...: one window from the
    /// lowest bin used to the highest.
    Dense { first: i32, counts: Vec<u64> },
}

/// The most bins a sketch lists before it moves to a window: 512 bytes.
const SPARSE_BINS: usize = 32;

impl Default for Sketch {
    fn default() -> Sketch {
        Sketch::new()
    }
}

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Values below this (milliseconds of nearly every request) find their bin
/// in a table instead of through a logarithm: `add` runs twice for every
/// access record.
const TABLED_VALUES: usize = 4096;

/// The bin of a value above 0: `ceil(log_gamma(value))`.
fn bin_index(value: u64) -> i32 {
    static TABLE: LazyLock<Vec<i16>> = LazyLock::new(|| {
        // Bins of values below 4096 are at most ceil(ln 4096 / ln gamma),
        // about 420: they fit an i16.
        (0..TABLED_VALUES as u64)
            .map(|v| {
                if v == 0 {
                    0
                } else {
                    computed_bin_index(v) as i16
                }
            })
            .collect()
    });
    match TABLE.get(value as usize) {
        Some(&index) => i32::from(index),
        None => computed_bin_index(value),
    }
}

fn computed_bin_index(value: u64) -> i32 {
    // ln(gamma), computed once.
    static LN_GAMMA: LazyLock<f64> = LazyLock::new(|| gamma().ln());
    ((value as f64).ln() / *LN_GAMMA).ceil() as i32
}

/// The count of bin `index` in the window from `first`, the window grown
/// to hold it. Grown to the exact size: a window widens only until it
/// spans the route's values, and the spare room of a doubling would stay
/// held for the whole interval.
fn window_bin<'c>(first: &mut i32, counts: &'c mut Vec<u64>, index: i32) -> &'c mut u64 {
    if counts.is_empty() {
        *first = index;
    }
    if index < *first {
        let grow = first.abs_diff(index) as usize;
        counts.reserve_exact(grow);
        counts.splice(0..0, std::iter::repeat_n(0, grow));
        *first = index;
    }
    let at = index.abs_diff(*first) as usize;
    if at >= counts.len() {
        counts.reserve_exact(at + 1 - counts.len());
        counts.resize(at + 1, 0);
    }
    &mut counts[at]
}

impl PartialEq for Sketch {
    /// Equal figures, however their bins are held.
    fn eq(&self, other: &Sketch) -> bool {
        (self.zeros, self.count, self.sum, self.max)
            == (other.zeros, other.count, other.sum, other.max)
            && self.used_bins().eq(other.used_bins())
    }
}

impl Sketch {
    pub fn new() -> Sketch {
        Sketch {
            bins: Bins::Sparse(Vec::new()),
            zeros: 0,
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    /// Adds one value (milliseconds, bytes: whole numbers).
    pub fn add(&mut self, value: u64) {
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
        if value == 0 {
            self.zeros += 1;
            return;
        }
        self.add_to_bin(bin_index(value), 1);
    }

    fn add_to_bin(&mut self, index: i32, n: u64) {
        match &mut self.bins {
            Bins::Dense { first, counts } => *window_bin(first, counts, index) += n,
            Bins::Sparse(listed) => match listed.binary_search_by_key(&index, |&(i, _)| i) {
                Ok(at) => listed[at].1 += n,
                Err(at) if listed.len() < SPARSE_BINS => listed.insert(at, (index, n)),
                Err(_) => {
                    let (mut first, mut counts) = (index, Vec::new());
                    let lowest = listed.first().map_or(index, |&(i, _)| i.min(index));
                    let highest = listed.last().map_or(index, |&(i, _)| i.max(index));
                    counts.reserve_exact(highest.abs_diff(lowest) as usize + 1);
                    for &(i, listed_n) in listed.iter().chain([&(index, n)]) {
                        *window_bin(&mut first, &mut counts, i) += listed_n;
                    }
                    self.bins = Bins::Dense { first, counts };
                }
            },
        }
    }

    /// The bins that hold values, lowest first: `(index, count)`.
    fn used_bins(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let (listed, first, counts): (&[(i32, u64)], i32, &[u64]) = match &self.bins {
            Bins::Sparse(listed) => (listed, 0, &[]),
            Bins::Dense { first, counts } => (&[], *first, counts),
        };
        let window = (first..)
            .zip(counts.iter().copied())
            .filter(|&(_, n)| n > 0);
        listed.iter().copied().chain(window)
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact sum of the values added.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    /// The exact largest value added.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 to 1), within RELATIVE_ACCURACY of the
    /// true one; `None` when empty. The lower-rank convention: the value at
    /// rank `floor(q * (count - 1))` of the sorted values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).floor() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut seen = self.zeros;
        let g = gamma();
        for (index, n) in self.used_bins() {
            seen += n;
            if rank < seen {
                let estimate = 2.0 * g.powi(index) / (g + 1.0);
                // Never report more than the largest value seen.
                return Some(estimate.min(self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// Adds everything `other` holds: how an interval's figures join the
    /// totals since start, and what a reader of the exported sketches does
    /// to combine tasks.
    pub fn merge(&mut self, other: &Sketch) {
        for (index, n) in other.used_bins() {
            self.add_to_bin(index, n);
        }
        self.zeros += other.zeros;
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// The sketch as one JSON object (see the module docs).
    pub fn to_json(&self) -> serde_json::Value {
        let bins: Vec<[i64; 2]> = self
            .used_bins()
            .map(|(i, n)| [i64::from(i), n as i64])
            .collect();
        serde_json::json!({
            "gamma": gamma(),
            "zeros": self.zeros,
            "bins": bins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabled_bins_are_the_computed_ones() {
        for v in 1..TABLED_VALUES as u64 + 10 {
            assert_eq!(bin_index(v), computed_bin_index(v), "{v}");
        }
        let bins: Vec<i32> = [1, 2, 100, 4095, 4096, 1 << 40]
            .into_iter()
            .map(bin_index)
            .collect();
        assert_eq!(bins, [0, 35, 231, 416, 416, 1387]);
    }

    /// A deterministic spread of values over five orders of magnitude.
    fn values(n: usize) -> Vec<u64> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Log-uniform from 1 to 100,000, with some zeros.
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                if u < 0.02 {
                    0
                } else {
                    10f64.powf(u * 5.0) as u64
                }
            })
            .collect()
    }

    #[test]
    fn quantiles_are_within_the_relative_accuracy_of_the_exact_ones() {
        let data = values(100_000);
        let mut sketch = Sketch::new();
        data.iter().for_each(|v| sketch.add(*v));
        let mut sorted = data.clone();
        sorted.sort_unstable();
        assert_eq!(sketch.count(), 100_000);
        assert_eq!(sketch.max(), *sorted.last().unwrap());
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize] as f64;
            let estimate = sketch.quantile(q).unwrap();
            assert!(
                (estimate - exact).abs() <= RELATIVE_ACCURACY * exact + 1e-9,
                "q {q}: exact {exact}, estimate {estimate}"
            );
        }
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let data = values(10_000);
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for (i, v) in data.iter().enumerate() {
            if i % 3 == 0 { &mut a } else { &mut b }.add(*v);
            all.add(*v);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    /// The bins held: listed, or the window's first index and length.
    fn held(s: &Sketch) -> Result<Vec<(i32, u64)>, (i32, usize, usize)> {
        match &s.bins {
            Bins::Sparse(listed) => Ok(listed.clone()),
            Bins::Dense { first, counts } => Err((*first, counts.len(), counts.capacity())),
        }
    }

    #[test]
    fn few_values_keep_only_their_bins_and_many_one_exact_window() {
        let mut s = Sketch::new();
        for v in [900, 1, 100, 900] {
            s.add(v);
        }
        // Bins of 1, 100 and 900: 0, 231 and 341.
        assert_eq!(held(&s), Ok(vec![(0, 1), (231, 1), (341, 2)]));

        let mut listed = Sketch::new();
        for v in 1..=SPARSE_BINS as u64 {
            listed.add(v * 10);
        }
        assert_eq!(held(&listed).map(|bins| bins.len()), Ok(SPARSE_BINS));
        let everything: Vec<(i32, u64)> = listed.used_bins().collect();
        // One bin more moves them to a window from bin 0 (the value 1) to
        // bin ceil(ln 320 / ln gamma) = 289, exactly as wide.
        listed.add(1);
        assert_eq!(held(&listed), Err((0, 290, 290)));
        let mut expected = vec![(0, 1)];
        expected.extend(everything);
        assert_eq!(listed.used_bins().collect::<Vec<_>>(), expected);
        // A value above the window widens it exactly: 1000 is in bin 346.
        listed.add(1000);
        assert_eq!(held(&listed), Err((0, 347, 347)));
    }

    #[test]
    fn listed_and_windowed_sketches_merge_either_way() {
        let data = values(2_000);
        let (mut few, mut many, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for (i, v) in data.iter().enumerate() {
            if i < 5 { &mut few } else { &mut many }.add(*v);
            all.add(*v);
        }
        assert!(held(&few).is_ok() && held(&many).is_err());
        let mut into_few = few.clone();
        into_few.merge(&many);
        assert_eq!(into_few, all);
        assert!(held(&into_few).is_err());
        many.merge(&few);
        assert_eq!(many, all);
        assert_eq!(many.to_json(), all.to_json());
        assert_eq!(many.quantile(0.99), all.quantile(0.99));
    }

    #[test]
    fn empty_zero_and_json() {
        let mut s = Sketch::new();
        assert_eq!(s.quantile(0.5), None);
        s.add(0);
        s.add(0);
        s.add(100);
        assert_eq!(s.quantile(0.5), Some(0.0));
        let top = s.quantile(1.0).unwrap();
        assert!((top - 100.0).abs() <= 1.0, "{top}");
        // 100 is in bin ceil(ln 100 / ln gamma) = 231.
        assert_eq!(
            s.to_json(),
            serde_json::json!({"gamma": gamma(), "zeros": 2, "bins": [[231, 1]]})
        );
    }
}
