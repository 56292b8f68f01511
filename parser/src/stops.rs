//! Where a line's stop bytes are: space, `"` and tab, which no token, time,
//! id or number can hold.
//!
//! In Envoy's built-in formats nearly every value ends at the first stop
//! after it (`GET `, `200 `, `orders.internal:8080"`). [`Stops`] finds them
//! 16 bytes at a time, once per 64-byte block of the line, so that ending a
//! value is one bit scan instead of a search of its own.

/// The stop bytes.
pub(crate) const STOP_BYTES: [u8; 3] = [b' ', b'"', b'\t'];

/// Whether `b` is a stop byte.
#[inline]
pub(crate) fn is_stop(b: u8) -> bool {
    // Spelled out: with `STOP_BYTES.contains(&b)` a default-format line
    // took 9 % more instructions (`profile_parser` under callgrind). The
    // test `is_stop_is_the_stop_bytes` keeps the two the same.
    matches!(b, b' ' | b'"' | b'\t')
}

/// A cursor over a line's stops that keeps the bit mask of the last 64-byte
/// block it read: the strict matcher asks in increasing order, so each block
/// is read once.
pub(crate) struct Stops<'a> {
    line: &'a [u8],
    /// Start of the block `mask` describes (a multiple of 64), or
    /// `usize::MAX` before the first.
    base: usize,
    /// Bit `i` is set when `line[base + i]` is a stop.
    mask: u64,
}

impl<'a> Stops<'a> {
    pub(crate) fn new(line: &'a [u8]) -> Stops<'a> {
        Stops {
            line,
            base: usize::MAX,
            mask: 0,
        }
    }

    /// The position of the first stop at or after `pos`, or the line's
    /// length if there is none.
    #[inline]
    pub(crate) fn next(&mut self, mut pos: usize) -> usize {
        loop {
            if pos >= self.line.len() {
                return self.line.len();
            }
            let base = pos & !63;
            if base != self.base {
                self.mask = block_mask(self.line, base);
                self.base = base;
            }
            let ahead = self.mask >> (pos - base);
            if ahead != 0 {
                return pos + ahead.trailing_zeros() as usize;
            }
            pos = base + 64;
        }
    }
}

/// The stops of `line[base..base + 64]` (fewer bytes at the line's end).
#[cfg(target_arch = "x86_64")]
fn block_mask(line: &[u8], base: usize) -> u64 {
    // SAFETY: SSE2 is part of the x86_64 baseline: every CPU this code
    // runs on has it, so no runtime check is needed.
    unsafe { sse2::block_mask(line, base) }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};

    use super::bytewise;
    use crate::sse2::load16;

    #[target_feature(enable = "sse2")]
    pub(super) fn block_mask(line: &[u8], base: usize) -> u64 {
        let end = line.len().min(base + 64);
        let mut mask = 0;
        let mut at = base;
        while at + 16 <= end {
            mask |= u64::from(stops16(&line[at..at + 16])) << (at - base);
            at += 16;
        }
        if at < end {
            // Fewer than 16 bytes are left, all at the end of the line.
            if line.len() >= 16 {
                // Read the line's last 16 bytes and drop the lanes before `at`:
                // no copy and no read past the line.
                let start = line.len() - 16;
                let tail = u64::from(stops16(&line[start..])) >> (at - start);
                mask |= tail << (at - base);
            } else {
                mask |= bytewise(&line[at..end]) << (at - base);
            }
        }
        mask
    }

    /// The stops of 16 bytes, one bit per byte.
    #[target_feature(enable = "sse2")]
    fn stops16(bytes: &[u8]) -> u16 {
        let v = load16(bytes);
        let hits = _mm_or_si128(
            _mm_or_si128(
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)),
                _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
            ),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\t' as i8)),
        );
        // Only the low 16 bits can be set, one per byte.
        _mm_movemask_epi8(hits) as u16
    }
}

/// The stops of `line[base..base + 64]`, eight bytes at a time, on targets
/// without the SSE2 path.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable_block_mask(line: &[u8], base: usize) -> u64 {
    let end = line.len().min(base + 64);
    let block = &line[base..end];
    let mut words = block.chunks_exact(8);
    let mut mask = 0;
    for (i, word) in (&mut words).enumerate() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        mask |= u64::from(word_stops(word)) << (i * 8);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        mask |= bytewise(tail) << (block.len() - tail.len());
    }
    mask
}

#[cfg(not(target_arch = "x86_64"))]
fn block_mask(line: &[u8], base: usize) -> u64 {
    portable_block_mask(line, base)
}

/// The stops of up to 64 bytes, one at a time.
fn bytewise(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| is_stop(b))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

/// The stops of eight bytes (little-endian), one bit per byte.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn word_stops(word: u64) -> u8 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // 0x80 in exactly the bytes of `x` that are zero: adding 0x7f to the
    // low seven bits of a byte sets its high bit unless they are all zero,
    // and never carries into the next byte.
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    let flags = zero_bytes(word ^ (ONES * u64::from(b' ')))
        | zero_bytes(word ^ (ONES * u64::from(b'"')))
        | zero_bytes(word ^ (ONES * u64::from(b'\t')));
    // Byte k's flag, moved to bit 8k, lands at bit 56 + k of the product:
    // the multiplier has bit 56 - 7k for each k, and no two partial
    // products share a bit, so nothing carries.
    ((flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_next(line: &[u8], pos: usize) -> usize {
        (pos..line.len())
            .find(|&i| is_stop(line[i]))
            .unwrap_or(line.len())
    }

    fn naive_mask(line: &[u8], base: usize) -> u64 {
        bytewise(&line[base..line.len().min(base + 64)])
    }

    /// Bytes that are stops, that differ from a stop in one bit, and
    /// bytes at or above 0x80, which SWAR tricks get wrong most easily.
    fn tricky_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            Just(b' '),
            Just(b'"'),
            Just(b'\t'),
            Just(b'a'),
            Just(0u8),
            Just(b' ' | 0x80),
            Just(b'"' ^ 1),
            Just(b'\t' ^ 1),
            Just(0xff),
            any::<u8>(),
        ]
    }

    proptest! {
        #[test]
        fn next_matches_a_byte_by_byte_search(
            line in proptest::collection::vec(tricky_byte(), 0..300),
            steps in proptest::collection::vec(0usize..80, 1..20),
        ) {
            let mut stops = Stops::new(&line);
            let mut pos = 0;
            for step in steps {
                pos += step;
                prop_assert_eq!(stops.next(pos), naive_next(&line, pos), "pos {}", pos);
            }
        }

        #[test]
        fn block_masks_match_bytewise(line in proptest::collection::vec(tricky_byte(), 0..300)) {
            for base in (0..line.len()).step_by(64) {
                prop_assert_eq!(block_mask(&line, base), naive_mask(&line, base));
                prop_assert_eq!(portable_block_mask(&line, base), naive_mask(&line, base));
            }
        }
    }

    #[test]
    fn finds_every_stop_of_a_line_in_order() {
        let line = br#"[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80""#;
        let mut stops = Stops::new(line);
        let mut found = Vec::new();
        let mut pos = 0;
        loop {
            let at = stops.next(pos);
            if at == line.len() {
                break;
            }
            found.push(at);
            pos = at + 1;
        }
        let expected: Vec<usize> = (0..line.len()).filter(|&i| is_stop(line[i])).collect();
        assert_eq!(found, expected);
        assert_eq!(found.len(), 26);
        assert_eq!(&found[..4], &[26, 27, 32, 50]);
    }

    #[test]
    fn is_stop_is_the_stop_bytes() {
        let stops: Vec<u8> = (0..=255u8).filter(|&b| is_stop(b)).collect();
        let mut expected = STOP_BYTES.to_vec();
        expected.sort_unstable();
        assert_eq!(stops, expected);
        assert_eq!(stops, [b'\t', b' ', b'"']);
    }

    #[test]
    fn word_stops_flags_exactly_the_stop_bytes() {
        let word = u64::from_le_bytes(*b" \"\t!\x00\xa0\xa2#");
        assert_eq!(word_stops(word), 0b0000_0111);
        let word = u64::from_le_bytes(*b"abc\tdef ");
        assert_eq!(word_stops(word), 0b1000_1000);
    }
}
