//! Writing JSON text by hand: the sidecar writes one object per event on the
//! hot path, where building a `serde_json::Value` first would cost an
//! allocation per field.

/// Appends `s` as a JSON string literal (with quotes), escaping `"`, `\` and
/// control characters. Everything else, including non-ASCII, is copied as is.
///
/// Runs of bytes that need no escape are found eight at a time and copied
/// whole: rendered records are mostly such runs between quotes, and this
/// runs twice for every event (the record, then the request body).
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mask = escape_mask(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
            if mask == 0 {
                i += 8;
                continue;
            }
            // The lowest flagged byte is exact (see `escape_mask`): jump to
            // it, then escape it below.
            i += (mask.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        // The short escapes are pushed a char at a time (inlined), not as
        // strings: a rendered record escaped into a request body has a
        // quote every few bytes.
        let escaped = match b {
            b'"' | b'\\' => b,
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => 0,
            _ => {
                i += 1;
                continue;
            }
        };
        // Escaped bytes are ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        out.push('\\');
        if escaped == 0 {
            out.push_str("u00");
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0xf));
        } else {
            out.push(char::from(escaped));
        }
        i += 1;
        start = i;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The bytes of `word` (little-endian) that are `"`, `\` or below 0x20: a
/// byte's high bit is set when it needs an escape. Above the first such
/// byte a borrow can flag others falsely, so only the lowest set bit is
/// exact; zero means none needs one.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte is zero in `x` exactly when its high bit ends up set here
    // (for bytes below 0x80; the `!x` term rules out the others).
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// Appends a signed integer as a JSON number.
pub fn write_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Appends an unsigned integer as a JSON number.
pub fn write_u64(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(n & 0xf)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn every_byte_escapes_at_every_offset_of_a_word() {
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', 'é', ' ', '~', '\u{7f}',
        ];
        for c in specials {
            for at in 0..17 {
                let text: String = (0..20).map(|i| if i == at { c } else { 'a' }).collect();
                let mut out = String::new();
                write_str(&mut out, &text);
                assert_eq!(out, serde_json::to_string(&text).unwrap(), "{c:?} at {at}");
            }
        }
    }

    /// Two bytes in one word: a borrow from the first may flag bytes
    /// above it, and the second must still be found.
    #[test]
    fn every_pair_of_bytes_escapes_within_a_word() {
        let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'é', '\u{7f}', 'a'];
        for first in specials {
            for second in specials {
                for at in 0..9 {
                    for gap in 1..4 {
                        let text: String = (0..16)
                            .map(|i| match i {
                                i if i == at => first,
                                i if i == at + gap => second,
                                _ => 'b',
                            })
                            .collect();
                        let mut out = String::new();
                        write_str(&mut out, &text);
                        assert_eq!(out, serde_json::to_string(&text).unwrap(), "{text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn writes_integers() {
        for n in [0, 7, 200, u64::MAX] {
            let mut out = String::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
