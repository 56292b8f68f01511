//! Sampling of access records (logs only: statistics count every record).
//! Every error (5xx, no response, any response flag) and every request at
//! least `slow` long is kept; of the rest, a fraction `rate`, chosen by a
//! hash of the request id so that every hop of one request (each Envoy
//! logs the same x-request-id) makes the same choice.

use super::RequestFacts;

/// `[sampling]`, validated: which access records are written (statistics
/// count all).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// The fraction of ordinary requests kept, chosen by request id.
    pub rate: f64,
    /// Requests at least this slow are always kept.
    pub slow_ms: Option<u64>,
}

/// Whether the record is written.
pub fn keep(config: &SamplingConfig, facts: &RequestFacts) -> bool {
    if facts.is_error() {
        return true;
    }
    if let (Some(slow), Some(d)) = (config.slow_ms, facts.duration_ms) {
        if d >= slow {
            return true;
        }
    }
    match &facts.request_id {
        Some(id) => fraction(id) < config.rate,
        // Nothing to agree on across hops: keep it.
        None => true,
    }
}

/// FNV-1a of the id, finished with MurmurHash3's fmix64 (FNV alone leaves
/// the high bits poorly mixed for ids that differ in their last digits), as
/// a number in [0, 1): the same everywhere, for every build and platform.
pub fn fraction(id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::super::tests::facts;
    use super::*;

    #[test]
    fn errors_and_slow_requests_are_always_kept_the_rest_by_id() {
        let config = SamplingConfig {
            rate: 0.1,
            slow_ms: Some(1000),
        };
        let mut kept = 0;
        for i in 0..10_000 {
            let mut f = facts("GET /a", 200, 5);
            f.request_id = Some(format!("req-{i}").into());
            if keep(&config, &f) {
                kept += 1;
            }
            // The same id always gets the same answer.
            assert_eq!(keep(&config, &f), keep(&config, &f.clone()));
            let mut error = f.clone();
            error.status = Some(503);
            assert!(keep(&config, &error));
            error.status = Some(200);
            error.flags = Some("UF".into());
            assert!(keep(&config, &error));
            let mut slow = f.clone();
            slow.duration_ms = Some(1000);
            assert!(keep(&config, &slow));
        }
        // About a tenth: FNV spreads these ids evenly.
        assert!((900..1100).contains(&kept), "{kept}");
    }
}
