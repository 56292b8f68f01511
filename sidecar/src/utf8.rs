//! Cutting text that may be UTF-8 without cutting a character: a long
//! line in pieces (the tail and tcp inputs), or a line truncated
//! (`Truncate_Long_Lines`).

/// The longest prefix of `bytes[..at]` that does not end inside a UTF-8
/// sequence (`at` itself when the bytes before it are not UTF-8, or when
/// the cut would leave nothing). Only the bytes before `at` are looked at,
/// so where a line is cut does not depend on how much of it was read.
pub fn cut_at(bytes: &[u8], at: usize) -> usize {
    let at = at.min(bytes.len());
    for back in 1..=at.min(4) {
        let byte = bytes[at - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let len = match byte {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => return at,
        };
        return if len > back && at > back {
            at - back
        } else {
            at
        };
    }
    at
}

#[cfg(test)]
mod tests {
    use super::cut_at;

    #[test]
    fn a_cut_never_ends_inside_a_character() {
        let text = "aé€😀".as_bytes(); // 1, 2, 3 and 4 bytes
        assert_eq!(
            (0..=text.len())
                .map(|at| cut_at(text, at))
                .collect::<Vec<_>>(),
            [0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10]
        );
        // Whatever follows the cut: only the bytes before it count.
        assert_eq!(cut_at(&text[..2], 2), 1);
        // Past the end: the end.
        assert_eq!(cut_at(text, 99), 10);
        // A first character longer than the cut: the cut, not nothing.
        assert_eq!(cut_at("€".as_bytes(), 2), 2);
        // Bytes that are not UTF-8: where asked.
        assert_eq!(cut_at(&[0xFF, 0xFF, 0xFF], 2), 2);
        assert_eq!(cut_at(&[b'a', 0x80, 0x80, 0x80, 0x80], 5), 5);
    }
}
