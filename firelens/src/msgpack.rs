//! A msgpack reader for untrusted input: it tells "need more bytes" from
//! "invalid", accepts non-minimal headers (Fluent Bit writes map32 for small
//! maps), and bounds nesting and declared sizes so a hostile frame cannot make
//! it allocate or recurse without limit.
//!
//! Spec: <https://github.com/msgpack/msgpack/blob/master/spec.md>.

/// One msgpack value, borrowing strings and binaries from the input.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    /// Any integer that fits i64 (negative or small positive).
    Int(i64),
    /// Positive integers above i64::MAX.
    UInt(u64),
    Float(f64),
    /// A str; msgpack does not guarantee it is UTF-8.
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Ext(i8, &'a [u8]),
}

impl<'a> Value<'a> {
    /// The bytes of a str or bin.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Str(b) | Value::Bin(b) => Some(b),
            _ => None,
        }
    }

    /// A str or bin that is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The entry of a map under a str key.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Appends `bytes` as a msgpack str with the smallest header that fits.
/// (Replies are small: an ack's chunk id, a handshake's hostname and digest;
/// more than u32::MAX bytes cannot be written and are cut there.)
pub fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u32::MAX as usize)];
    let len = bytes.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// Why a value could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The input ends inside the value; `needed` bytes in all would let the
    /// reader get further (not necessarily finish).
    #[error("incomplete msgpack value")]
    Incomplete { needed: usize },
    /// Not msgpack: the byte at `offset` cannot start or continue a value.
    #[error("invalid msgpack at byte {offset}: {reason}")]
    Invalid { offset: usize, reason: &'static str },
}

/// Deepest nesting accepted: forward frames need 5 levels; records with
/// nested maps a few more.
pub const MAX_DEPTH: usize = 32;

/// Reads one value from the start of `input`; returns it and its length.
pub fn read(input: &[u8]) -> Result<(Value<'_>, usize), ReadError> {
    let mut reader = Reader { input, pos: 0 };
    let value = reader.value(0)?;
    Ok((value, reader.pos))
}

/// The length of the value at the start of `input`, checked as [`read`]
/// checks it (the same errors) but without building it.
pub fn skip(input: &[u8]) -> Result<usize, ReadError> {
    Skipper::default().resume(input)
}

/// [`skip`] across calls, for a value whose bytes arrive in pieces: each
/// call goes on from the last complete part instead of walking the value
/// from its start again (a frame of 1,000 entries arrives in a dozen reads).
#[derive(Debug, Default)]
pub struct Skipper {
    /// Where the next part starts.
    pos: usize,
    /// For each container open at `pos`, the values still to come in it.
    open: Vec<usize>,
    started: bool,
    /// Where the first elements of the outermost array (or keys and values
    /// of the outermost map) start, so that a reader can go straight to
    /// one without stepping over those before it.
    children: [usize; 4],
    children_seen: usize,
}

impl Skipper {
    /// Where the first (up to four) elements of the outermost array or map
    /// start, as far as the value has been checked.
    pub fn first_children(&self) -> &[usize] {
        &self.children[..self.children_seen]
    }

    /// Whether it has begun on a value (and must be resumed on it).
    pub fn in_progress(&self) -> bool {
        self.started
    }

    /// Ready for the next value, keeping what it allocated (a connection
    /// sending one small frame after another would otherwise allocate its
    /// stack of open containers per frame).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.open.clear();
        self.started = false;
        self.children_seen = 0;
    }

    /// Goes on over `input`: the bytes given last time (the same offsets)
    /// and maybe more. The value's length once it is complete; the same
    /// errors as [`read`].
    pub fn resume(&mut self, input: &[u8]) -> Result<usize, ReadError> {
        // `self.pos` moves only past whole parts: an incomplete part leaves
        // it where the part starts, and the next call reads that part again.
        let mut reader = Reader {
            input,
            pos: self.pos,
        };
        loop {
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
            if self.started && self.open.is_empty() {
                return Ok(self.pos);
            }
            if self.open.len() > MAX_DEPTH {
                return reader.invalid("nested too deeply");
            }
            let depth = self.open.len();
            if let Some(left) = self.open.last_mut() {
                if depth > 1 || self.children_seen == self.children.len() {
                    // The common case, a record's keys and values: the rest
                    // of the innermost container, with no other bookkeeping
                    // until a container opens.
                    while *left > 0 {
                        let items = reader.header()?;
                        self.pos = reader.pos;
                        *left -= 1;
                        if items > 0 {
                            self.open.push(items);
                            break;
                        }
                    }
                    continue;
                }
            }
            let at = self.pos;
            let items = reader.header()?;
            if depth == 1 && self.children_seen < self.children.len() {
                self.children[self.children_seen] = at;
                self.children_seen += 1;
            }
            self.pos = reader.pos;
            self.started = true;
            if let Some(left) = self.open.last_mut() {
                *left -= 1;
            }
            if items > 0 {
                self.open.push(items);
            }
        }
    }
}

/// Reads a value whose bytes [`skip`] already checked, one part at a time:
/// array and map headers, strings, and whole values only where wanted. A
/// frame's entries are taken this way without a tree per record.
pub struct Cursor<'a> {
    reader: Reader<'a>,
}

impl<'a> Cursor<'a> {
    pub fn new(input: &'a [u8]) -> Cursor<'a> {
        Cursor {
            reader: Reader { input, pos: 0 },
        }
    }

    /// The marker byte of the next value, if any.
    pub fn peek(&self) -> Option<u8> {
        self.reader.input.get(self.reader.pos).copied()
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.reader.pos
    }

    /// The next value, whole.
    pub fn value(&mut self) -> Result<Value<'a>, ReadError> {
        self.reader.value(0)
    }

    /// Steps over the next value.
    pub fn skip(&mut self) -> Result<(), ReadError> {
        self.reader.skip(0)
    }

    /// How many values the next value is made of, itself included (a map's
    /// keys and values each count), found without building it or moving
    /// on: what decoding it would allocate is in proportion.
    pub fn items(&self) -> Result<usize, ReadError> {
        let mut reader = Reader {
            input: self.reader.input,
            pos: self.reader.pos,
        };
        reader.count_items(0)
    }

    /// The element count of the next value when it is an array (its header
    /// is read); `None`, reading nothing, when it is not.
    pub fn array_len(&mut self) -> Result<Option<usize>, ReadError> {
        self.container_len(0x90, 0xdc, 1)
    }

    /// The entry count of the next value when it is a map (its header is
    /// read); `None`, reading nothing, when it is not.
    pub fn map_len(&mut self) -> Result<Option<usize>, ReadError> {
        self.container_len(0x80, 0xde, 2)
    }

    /// The count in an array or map header: the fix form (`fix` plus a
    /// count up to 15) or the 16- and 32-bit forms (`wide`, `wide + 1`),
    /// whose count is checked against the bytes left at `per_item` each.
    fn container_len(
        &mut self,
        fix: u8,
        wide: u8,
        per_item: usize,
    ) -> Result<Option<usize>, ReadError> {
        let Some(marker) = self.peek() else {
            return Ok(None);
        };
        if marker & 0xf0 == fix {
            self.reader.pos += 1;
            Ok(Some(usize::from(marker & 0x0f)))
        } else if marker == wide || marker == wide + 1 {
            self.reader.pos += 1;
            let width = if marker == wide { 2 } else { 4 };
            self.reader.count(width, per_item).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The seconds and nanoseconds of the next value when it is an
    /// EventTime (ext type 0 of 8 bytes, big-endian; then read); `None`,
    /// reading nothing, when it is not.
    pub fn event_time(&mut self) -> Option<(u32, u32)> {
        match self.reader.input.get(self.reader.pos..)? {
            [0xd7, 0x00, s0, s1, s2, s3, n0, n1, n2, n3, ..] => {
                self.reader.pos += 10;
                Some((
                    u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                    u32::from_be_bytes([*n0, *n1, *n2, *n3]),
                ))
            }
            _ => None,
        }
    }

    /// The bytes of the next value when it is a str or bin (then read);
    /// `None`, reading nothing, when it is not.
    pub fn bytes(&mut self) -> Result<Option<&'a [u8]>, ReadError> {
        // Read here rather than through `Reader::value`: every key and
        // string value of every record comes this way.
        let len = match self.peek() {
            Some(marker @ 0xa0..=0xbf) => {
                self.reader.pos += 1;
                usize::from(marker & 0x1f)
            }
            Some(marker @ (0xc4..=0xc6 | 0xd9..=0xdb)) => {
                self.reader.pos += 1;
                let width = match marker {
                    0xc4 | 0xd9 => 1,
                    0xc5 | 0xda => 2,
                    _ => 4,
                };
                self.reader.be(width)? as usize
            }
            _ => return Ok(None),
        };
        self.reader.take(len).map(Some)
    }
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn invalid<T>(&self, reason: &'static str) -> Result<T, ReadError> {
        Err(ReadError::Invalid {
            offset: self.pos,
            reason,
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Invalid {
            offset: self.pos,
            reason: "length overflows",
        })?;
        match self.input.get(self.pos..end) {
            Some(bytes) => {
                self.pos = end;
                Ok(bytes)
            }
            None => Err(ReadError::Incomplete { needed: end }),
        }
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, ReadError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A declared element count; each element takes at least one byte, so a
    /// count beyond the bytes left cannot be satisfied yet.
    fn count(&mut self, n: usize, per_item: usize) -> Result<usize, ReadError> {
        let count = self.be(n)? as usize;
        let needed = count
            .checked_mul(per_item)
            .and_then(|b| b.checked_add(self.pos))
            .ok_or(ReadError::Invalid {
                offset: self.pos,
                reason: "element count overflows",
            })?;
        if needed > self.input.len() {
            return Err(ReadError::Incomplete { needed });
        }
        Ok(count)
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ReadError> {
        if depth > MAX_DEPTH {
            return self.invalid("nested too deeply");
        }
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Value::Nil,
            0xc1 => return self.invalid("0xc1 is never used"),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.be(1 << (marker - 0xc4))? as usize;
                Value::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = self.be(1 << (marker - 0xc7))? as usize;
                let ty = self.byte()? as i8;
                Value::Ext(ty, self.take(n)?)
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => {
                let n = self.be(1 << (marker - 0xcc))?;
                i64::try_from(n).map_or(Value::UInt(n), Value::Int)
            }
            0xd0 => Value::Int(i64::from(self.be(1)? as u8 as i8)),
            0xd1 => Value::Int(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => Value::Int(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => Value::Int(self.be(8)? as i64),
            0xd4..=0xd8 => {
                let ty = self.byte()? as i8;
                Value::Ext(ty, self.take(1 << (marker - 0xd4))?)
            }
            0xd9..=0xdb => {
                let n = self.be(1 << (marker - 0xd9))? as usize;
                Value::Str(self.take(n)?)
            }
            0xdc | 0xdd => {
                let n = self.count(if marker == 0xdc { 2 } else { 4 }, 1)?;
                self.array(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.count(if marker == 0xde { 2 } else { 4 }, 2)?;
                self.map(n, depth)?
            }
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
        })
    }

    /// Steps over one value, with every check of [`Reader::value`].
    fn skip(&mut self, depth: usize) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return self.invalid("nested too deeply");
        }
        for _ in 0..self.header()? {
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    /// [`Reader::skip`], counting the values stepped over.
    fn count_items(&mut self, depth: usize) -> Result<usize, ReadError> {
        if depth > MAX_DEPTH {
            return self.invalid("nested too deeply");
        }
        let mut items = 1;
        for _ in 0..self.header()? {
            items += self.count_items(depth + 1)?;
        }
        Ok(items)
    }

    /// Steps over one value's marker, length and bytes; returns how many
    /// values it contains (0 unless it is an array or a map).
    #[inline(always)]
    fn header(&mut self) -> Result<usize, ReadError> {
        let marker = self.byte()?;
        let (items, bytes) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (2 * usize::from(marker & 0x0f), 0),
            0x90..=0x9f => (usize::from(marker & 0x0f), 0),
            0xa0..=0xbf => (0, usize::from(marker & 0x1f)),
            0xc1 => return self.invalid("0xc1 is never used"),
            0xc4..=0xc6 => (0, self.be(1 << (marker - 0xc4))? as usize),
            0xc7..=0xc9 => {
                let n = self.be(1 << (marker - 0xc7))? as usize;
                self.byte()?; // the ext type
                (0, n)
            }
            0xca => (0, 4),
            0xcb => (0, 8),
            0xcc..=0xcf => (0, 1 << (marker - 0xcc)),
            0xd0..=0xd3 => (0, 1 << (marker - 0xd0)),
            0xd4..=0xd8 => {
                self.byte()?; // the ext type
                (0, 1 << (marker - 0xd4))
            }
            0xd9..=0xdb => (0, self.be(1 << (marker - 0xd9))? as usize),
            0xdc | 0xdd => (self.count(if marker == 0xdc { 2 } else { 4 }, 1)?, 0),
            0xde | 0xdf => (2 * self.count(if marker == 0xde { 2 } else { 4 }, 2)?, 0),
        };
        self.take(bytes)?;
        Ok(items)
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value<'a>, ReadError> {
        let mut items = Vec::with_capacity(n.min(self.input.len() - self.pos));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value<'a>, ReadError> {
        let mut entries = Vec::with_capacity(n.min((self.input.len() - self.pos) / 2));
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every str and bin header form, read by `Cursor::bytes` as `read`
    /// reads it; other values and cut-short strings are left or refused.
    #[test]
    fn cursor_bytes_reads_every_string_form_as_read_does() {
        let text = b"sluice";
        let mut forms: Vec<Vec<u8>> = vec![[&[0xa6][..], text].concat()];
        for (str_marker, bin_marker, width) in
            [(0xd9u8, 0xc4u8, 1usize), (0xda, 0xc5, 2), (0xdb, 0xc6, 4)]
        {
            for marker in [str_marker, bin_marker] {
                let mut f = vec![marker];
                f.extend_from_slice(&(text.len() as u32).to_be_bytes()[4 - width..]);
                f.extend_from_slice(text);
                forms.push(f);
            }
        }
        for form in &forms {
            let mut c = Cursor::new(form);
            assert_eq!(c.bytes(), Ok(Some(&text[..])), "{form:?}");
            assert_eq!(c.pos(), form.len());
            let (value, used) = read(form).unwrap();
            assert_eq!((value.as_bytes(), used), (Some(&text[..]), form.len()));
            let cut = &form[..form.len() - 1];
            assert!(matches!(
                Cursor::new(cut).bytes(),
                Err(ReadError::Incomplete { .. })
            ));
        }
        let mut c = Cursor::new(&[0x05]);
        assert_eq!(c.bytes(), Ok(None));
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn an_event_time_is_read_in_place_and_anything_else_is_left() {
        let mut time = vec![0xd7, 0x00];
        time.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        time.extend_from_slice(&123_456_789u32.to_be_bytes());
        time.push(0xc0);
        let mut c = Cursor::new(&time);
        assert_eq!(c.event_time(), Some((1_700_000_000, 123_456_789)));
        assert_eq!(c.pos(), 10);
        assert_eq!(c.value(), Ok(Value::Nil));
        // Another ext type, a cut-short ext, an integer: nothing is read.
        for other in [
            &[0xd7, 0x01, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &time[..9],
            &[0x05],
        ] {
            let mut c = Cursor::new(other);
            assert_eq!(c.event_time(), None, "{other:?}");
            assert_eq!(c.pos(), 0);
        }
    }

    #[test]
    fn scalars() {
        let cases: &[(&[u8], Value<'_>)] = &[
            (&[0x05], Value::Int(5)),
            (&[0xff], Value::Int(-1)),
            (&[0xc0], Value::Nil),
            (&[0xc3], Value::Bool(true)),
            (&[0xcc, 0xff], Value::Int(255)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::UInt(u64::MAX),
            ),
            (&[0xd0, 0x80], Value::Int(-128)),
            (&[0xa3, b'a', b'b', b'c'], Value::Str(b"abc")),
            (&[0xd9, 0x01, b'x'], Value::Str(b"x")),
            (&[0xc4, 0x02, 1, 2], Value::Bin(&[1, 2])),
            (&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0], Value::Float(1.5)),
            (
                &[0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2],
                Value::Ext(0, &[0, 0, 0, 1, 0, 0, 0, 2]),
            ),
            (
                &[0xc7, 0x08, 0x00, 0, 0, 0, 1, 0, 0, 0, 2],
                Value::Ext(0, &[0, 0, 0, 1, 0, 0, 0, 2]),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                read(bytes),
                Ok((expected.clone(), bytes.len())),
                "{bytes:x?}"
            );
        }
    }

    #[test]
    fn non_minimal_map32_header() {
        // {"a": 1} with a map32 header, as Fluent Bit writes option maps.
        let bytes = [0xdf, 0, 0, 0, 1, 0xa1, b'a', 0x01];
        let (v, n) = read(&bytes).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(v.get("a"), Some(&Value::Int(1)));
    }

    #[test]
    fn incomplete_is_not_invalid() {
        let full = [0x92, 0xa3, b'a', b'b', b'c', 0x01];
        for cut in 0..full.len() {
            assert!(
                matches!(read(&full[..cut]), Err(ReadError::Incomplete { .. })),
                "cut at {cut}"
            );
        }
        // A declared length beyond the input says how much is needed.
        assert_eq!(
            read(&[0xdb, 0, 0, 1, 0]),
            Err(ReadError::Incomplete { needed: 5 + 256 })
        );
    }

    #[test]
    fn hostile_input() {
        assert!(matches!(
            read(&[0xc1]),
            Err(ReadError::Invalid { offset: 1, .. })
        ));
        // A huge declared array with no bytes behind it allocates nothing.
        assert!(matches!(
            read(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(ReadError::Incomplete { .. })
        ));
        let deep = vec![0x91; MAX_DEPTH + 2];
        assert!(matches!(
            read(&deep),
            Err(ReadError::Invalid {
                reason: "nested too deeply",
                ..
            })
        ));
    }

    /// Where the first four children of a checked array or map start,
    /// found by stepping over them with a `Cursor`.
    fn first_children(value: &[u8]) -> Vec<usize> {
        let mut c = Cursor::new(value);
        let count = match c.array_len().unwrap() {
            Some(n) => n,
            None => 2 * c.map_len().unwrap().unwrap_or(0),
        };
        let mut at = Vec::new();
        for _ in 0..count.min(4) {
            at.push(c.pos());
            c.skip().unwrap();
        }
        at
    }

    proptest::proptest! {
        /// `skip` takes exactly what `read` takes and fails where it fails.
        #[test]
        fn skip_agrees_with_read(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            proptest::prop_assert_eq!(skip(&bytes), read(&bytes).map(|(_, len)| len));
        }

        /// The same over well-formed values, nested and with every width.
        #[test]
        fn skip_agrees_with_read_on_values(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    vec![0x93], vec![0x82], vec![0xa3, b'a', b'b', b'c'], vec![0xc0],
                    vec![0xcd, 1, 2], vec![0xd3, 0, 0, 0, 0, 0, 0, 0, 1], vec![0xd7, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                    vec![0xc7, 2, 5, 1, 2], vec![0xdc, 0, 2], vec![0xde, 0, 1], vec![0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
                    vec![0xc4, 1, 9], vec![0xda, 0, 1, b'x'], vec![0x05],
                ]),
                1..24,
            )
        ) {
            let bytes: Vec<u8> = parts.concat();
            proptest::prop_assert_eq!(skip(&bytes), read(&bytes).map(|(_, len)| len));
        }

        /// Bytes arriving in pieces: each resumed answer is what `skip`
        /// says of the bytes so far, needed bytes included.
        #[test]
        fn resumed_skips_agree_with_whole_skips(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![0x93u8, 0x82, 0xa3, 0x61, 0xc0, 0xcd, 0xdc, 0x00, 0x02, 0x05, 0xd7, 0xc4]),
                0..48,
            ),
            cuts in proptest::collection::vec(0usize..48, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut skipper = Skipper::default();
            for cut in cuts {
                let resumed = skipper.resume(&bytes[..cut]);
                proptest::prop_assert_eq!(&resumed, &skip(&bytes[..cut]));
                if let Ok(len) = resumed {
                    proptest::prop_assert_eq!(skipper.first_children(), &first_children(&bytes[..len])[..]);
                }
                if !matches!(resumed, Err(ReadError::Incomplete { .. })) {
                    break;
                }
            }
        }
    }
}
