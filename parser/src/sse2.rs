//! What the SSE2 scans share (`stops.rs`, `json_out.rs`). SSE2 is part of
//! the x86_64 baseline: every CPU this code runs on has it.

use std::arch::x86_64::{__m128i, _mm_set_epi64x};

/// The first 16 bytes of `bytes` in a vector register, read as two
/// little-endian words: no pointer cast, and nothing read past the slice
/// (which must hold 16 bytes).
#[target_feature(enable = "sse2")]
pub(crate) fn load16(bytes: &[u8]) -> __m128i {
    let half = |i: usize| {
        let mut word = [0; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        i64::from_le_bytes(word)
    };
    _mm_set_epi64x(half(8), half(0))
}
