//! One followed file: reading its lines (cut, skipped or truncated when
//! too long, each with its offset), and what became of its path.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use super::db::{Position, TailDb};
use super::old_multiline::Joining;
use super::{MAX_LINE, MAX_READ};

/// A file being read.
pub(super) struct Tailed {
    pub(super) file: File,
    /// The file's device and inode: another at its path means rotation.
    pub(super) id: (u64, u64),
    pub(super) offset: u64,
    /// The start of a line whose end has not been written yet.
    pub(super) partial: Vec<u8>,
    pub(super) tag: Arc<str>,
    /// The file's row in the `DB`.
    pub(super) row: Option<i64>,
    pub(super) long_lines: LongLines,
    /// The rest of a long line is being skipped, up to its newline.
    pub(super) skipping: bool,
    /// A long line of this file was skipped (logged once, as Fluent Bit
    /// warns once per file).
    pub(super) skipped_any: bool,
    /// The message `Multiline On` is joining from this file's lines.
    pub(super) joining: Option<Joining>,
}

/// What becomes of a line too long for the input's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongLines {
    /// Cut into pieces of [`MAX_LINE`] bytes, each a record (Sluice's
    /// way: Fluent Bit stops reading a file with such a line).
    Cut,
    /// `Skip_Long_Lines`: a line of this many bytes or more (its `\r`
    /// counted) is skipped, as in_tail skips what does not fit in
    /// `Buffer_Max_Size` (a line and its newline in the buffer less one).
    Skip(usize),
    /// `Truncate_Long_Lines`: such a line keeps its first this many bytes
    /// (no character cut), the rest is skipped.
    Truncate(usize),
}

impl Tailed {
    pub(super) fn open(path: &Path, from_end: bool, tag: String) -> std::io::Result<Tailed> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(Tailed {
            file,
            id: (meta.dev(), meta.ino()),
            offset: if from_end { meta.len() } else { 0 },
            partial: Vec::new(),
            tag: Arc::from(tag.as_str()),
            row: None,
            long_lines: LongLines::Cut,
            skipping: false,
            skipped_any: false,
            joining: None,
        })
    }

    pub(super) fn with_long_lines(mut self, long_lines: LongLines) -> Tailed {
        self.long_lines = long_lines;
        self
    }

    /// Where the next start should read from: the line not yet whole,
    /// and the lines of a message being joined, are read again.
    pub(super) fn position(&self) -> Position {
        let offset = (self.offset - self.partial.len() as u64)
            .min(self.joining.as_ref().map_or(u64::MAX, |j| j.start));
        Position::of(&self.file, offset).unwrap_or(Position {
            offset,
            ..Position::default()
        })
    }

    /// Takes the `DB`'s offset for this file when the file still holds
    /// what was read before it (else stays where [`Tailed::open`] put it),
    /// and the row to save to, made if there is none: as
    /// `set_file_position` does with a database. `true` when it goes on
    /// from the row's offset.
    pub(super) fn resume(&mut self, db: &TailDb, path: &Path) -> rusqlite::Result<bool> {
        let name = path.to_string_lossy();
        let len = self.file.metadata().map_or(0, |m| m.len());
        let mut resumed = false;
        let row = match db.find(self.id.1, &name)? {
            Some(row) => {
                if row.position.offset > 0 && row.position.still_in(&self.file, len) {
                    self.offset = row.position.offset;
                    resumed = true;
                }
                db.save(row.id, self.position())?;
                row.id
            }
            None => db.insert(&name, self.id.1, self.position())?,
        };
        self.row = Some(row);
        Ok(resumed)
    }

    /// The complete lines written since the last read (at most
    /// [`MAX_READ`] bytes of them); with `at_end`, the rest too.
    pub(super) fn lines(&mut self, at_end: bool) -> std::io::Result<Vec<Line>> {
        let len = self.file.metadata()?.len();
        if len < self.offset {
            // Truncated: read again from the head.
            self.offset = 0;
            self.partial.clear();
            self.skipping = false;
        }
        let mut buf = Vec::new();
        // The file offset of `rest`'s first byte below.
        let mut at = self.offset;
        if len > self.offset {
            self.file.seek(SeekFrom::Start(self.offset))?;
            (&mut self.file)
                .take(MAX_READ as u64)
                .read_to_end(&mut buf)?;
            self.offset += buf.len() as u64;
        }
        let mut lines = Vec::new();
        let mut rest = &buf[..];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            if std::mem::take(&mut self.skipping) {
                // The end of a long line: skipped with the rest of it.
                self.partial.clear();
            } else {
                let start = at - self.partial.len() as u64;
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..nl]);
                self.complete(&mut lines, start, line);
            }
            rest = &rest[nl + 1..];
            at += nl as u64 + 1;
        }
        if !self.skipping {
            self.partial.extend_from_slice(rest);
            self.overflow(&mut lines);
        }
        // A line without its newline goes only once the whole file is
        // read: before that, its end may be in what the next read brings.
        if at_end && !self.partial.is_empty() && self.offset >= len {
            let start = self.partial_start();
            lines.push(Line::at(start, std::mem::take(&mut self.partial)));
        }
        Ok(lines)
    }

    /// The file offset of the line not yet whole.
    fn partial_start(&self) -> u64 {
        self.offset - self.partial.len() as u64
    }

    /// Whether everything the file holds has been read.
    pub(super) fn drained(&self) -> bool {
        self.file.metadata().is_ok_and(|m| m.len() <= self.offset)
    }

    /// Adds a line whose newline was read, as the input takes long lines.
    fn complete(&mut self, lines: &mut Vec<Line>, start: u64, mut line: Vec<u8>) {
        match self.long_lines {
            LongLines::Skip(limit) if line.len() >= limit => self.skipped(),
            LongLines::Truncate(limit) if line.len() >= limit => {
                line.truncate(crate::utf8::cut_at(&line, limit));
                lines.push(Line::at(start, line));
            }
            long_lines => {
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if long_lines == LongLines::Cut {
                    push_cut(lines, start, line);
                } else {
                    lines.push(Line::at(start, line));
                }
            }
        }
    }

    /// Once the line not yet whole is as long as a line may be: its pieces
    /// go, or it is truncated or skipped, up to its newline.
    fn overflow(&mut self, lines: &mut Vec<Line>) {
        match self.long_lines {
            LongLines::Cut => {
                while self.partial.len() >= MAX_LINE {
                    let start = self.partial_start();
                    let at = crate::utf8::cut_at(&self.partial, MAX_LINE);
                    let tail = self.partial.split_off(at);
                    let piece = std::mem::replace(&mut self.partial, tail);
                    lines.push(Line::at(start, piece));
                }
            }
            LongLines::Skip(limit) if self.partial.len() >= limit => {
                self.partial.clear();
                self.skipping = true;
                self.skipped();
            }
            LongLines::Truncate(limit) if self.partial.len() >= limit => {
                let start = self.partial_start();
                let mut line = std::mem::take(&mut self.partial);
                line.truncate(crate::utf8::cut_at(&line, limit));
                lines.push(Line::at(start, line));
                self.skipping = true;
            }
            _ => {}
        }
    }

    fn skipped(&mut self) {
        if !std::mem::replace(&mut self.skipped_any, true) {
            tracing::warn!(tag = %self.tag, "[INPUT] tail: a file has lines longer than Buffer_Max_Size; skipping them (Skip_Long_Lines)");
        }
    }
}

/// A line of a file, without its newline.
#[derive(Debug)]
pub(super) struct Line {
    /// The file offset of its first byte (`Offset_Key`).
    pub(super) start: u64,
    pub(super) bytes: Vec<u8>,
}

impl Line {
    pub(super) fn at(start: u64, bytes: Vec<u8>) -> Line {
        Line { start, bytes }
    }
}

/// Adds `line`, cut into pieces of at most [`MAX_LINE`] bytes.
fn push_cut(lines: &mut Vec<Line>, mut start: u64, mut line: Vec<u8>) {
    while line.len() > MAX_LINE {
        let tail = line.split_off(crate::utf8::cut_at(&line, MAX_LINE));
        let piece = std::mem::replace(&mut line, tail);
        let next = start + piece.len() as u64;
        lines.push(Line::at(start, piece));
        start = next;
    }
    lines.push(Line::at(start, line));
}

/// What became of a followed file's path since the last read.
pub(super) enum Change {
    Same,
    /// Another file is at the path (rotated): the old one, read as far as
    /// it goes, to be read on for `Rotate_Wait`; the new one is followed
    /// from its head (or its end, `successor_from_end`).
    Rotated(Tailed),
    /// Removed, and read to its end: let go.
    Gone,
}

/// The lines of one followed file, and what became of its path. The lines
/// of a rotated file are the old file's; the new one is read next.
pub(super) fn read_file(
    path: &Path,
    tailed: &mut Tailed,
    at_end: bool,
    successor_from_end: bool,
) -> (Vec<Line>, Change) {
    let now_at_path = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let removed = now_at_path.is_none();
    // Of a removed file, the rest is read before it is let go.
    let lines = match tailed.lines(at_end || removed) {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "[INPUT] tail: cannot read");
            return (Vec::new(), Change::Gone);
        }
    };
    match now_at_path {
        None if tailed.drained() => (lines, Change::Gone),
        Some(id) if id != tailed.id => {
            match Tailed::open(path, successor_from_end, tailed.tag.to_string()) {
                Ok(next) => {
                    let next = next.with_long_lines(tailed.long_lines);
                    (lines, Change::Rotated(std::mem::replace(tailed, next)))
                }
                // Gone again, or not readable: looked at the next time.
                Err(_) => (lines, Change::Same),
            }
        }
        _ => (lines, Change::Same),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail_input::db::DbOptions;
    use crate::tail_input::tests::{dir, tail, text};
    use std::io::Write;

    #[test]
    fn lines_across_writes_truncation_and_long_lines() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("app.log");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"before start\n").unwrap();
        // Found at start without Read_from_Head: from the end.
        let mut t = Tailed::open(&path, true, "app".into()).unwrap();
        assert!(t.lines(false).unwrap().is_empty());
        w.write_all(b"one\r\ntw").unwrap();
        assert_eq!(text(t.lines(false).unwrap()), ["one"]);
        w.write_all(b"o\n\nthree").unwrap();
        assert_eq!(text(t.lines(false).unwrap()), ["two", ""]);
        // At the end, the line without its newline goes too.
        assert_eq!(text(t.lines(true).unwrap()), ["three"]);
        // Truncated: from the head again.
        let mut w = File::create(&path).unwrap();
        w.write_all(b"new\n").unwrap();
        assert_eq!(text(t.lines(false).unwrap()), ["new"]);
        // A line longer than MAX_LINE is cut, never dropped.
        let long = vec![b'x'; MAX_LINE + 10];
        w.write_all(&long).unwrap();
        w.write_all(b"\n").unwrap();
        let lines = t.lines(false).unwrap();
        let starts_and_lengths = |lines: &[Line]| {
            lines
                .iter()
                .map(|l| (l.start, l.bytes.len()))
                .collect::<Vec<_>>()
        };
        let cut_at = 4 + MAX_LINE as u64;
        assert_eq!(starts_and_lengths(&lines), [(4, MAX_LINE), (cut_at, 10)]);
        // And never inside a character.
        let mut accented = vec![b'x'; MAX_LINE - 1];
        accented.extend_from_slice("é\n".as_bytes());
        w.write_all(&accented).unwrap();
        let lines = t.lines(false).unwrap();
        let next = cut_at + 11;
        assert_eq!(
            starts_and_lengths(&lines),
            [(next, MAX_LINE - 1), (next + MAX_LINE as u64 - 1, 2)]
        );
    }

    /// The lines a whole file holds, as a reference: each complete line,
    /// skipped or truncated at `limit` (its `\r` counted), else without
    /// its `\r`, and a last one without its newline if it is truncated;
    /// with each line's offset.
    fn model_lines(content: &[u8], long_lines: LongLines) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut start = 0u64;
        let complete = content.len() - content.iter().rev().take_while(|&&b| b != b'\n').count();
        for raw in content[..complete]
            .split(|&b| b == b'\n')
            .take(content[..complete].iter().filter(|&&b| b == b'\n').count())
        {
            let next = start + raw.len() as u64 + 1;
            let mut line = raw.to_vec();
            match long_lines {
                LongLines::Skip(limit) if line.len() >= limit => {}
                LongLines::Truncate(limit) if line.len() >= limit => {
                    line.truncate(crate::utf8::cut_at(&line, limit));
                    out.push((start, line));
                }
                _ => {
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    out.push((start, line));
                }
            }
            start = next;
        }
        // A line whose newline is not written yet goes truncated once it
        // reaches the limit, as in_tail truncates a full buffer.
        let rest = &content[complete..];
        if let LongLines::Truncate(limit) = long_lines {
            if rest.len() >= limit {
                out.push((start, rest[..crate::utf8::cut_at(rest, limit)].to_vec()));
            }
        }
        out
    }

    proptest::proptest! {
        /// However a file is written (in any pieces, read after each),
        /// its lines are the whole file's: the same lines, skipped or
        /// truncated the same way, at the same offsets, never cut inside
        /// a character.
        #[test]
        fn lines_do_not_depend_on_how_the_file_is_written(
            content in proptest::collection::vec(
                proptest::sample::select(vec![b'\n', b'\r', b'a', 0xC3, 0xA9, 0xE2, 0x82, 0xAC]),
                0..300,
            ),
            pieces in proptest::collection::vec(1usize..40, 1..30),
            skip in proptest::bool::ANY,
            limit in 2usize..24,
        ) {
            let long_lines = if skip { LongLines::Skip(limit) } else { LongLines::Truncate(limit) };
            let tmp = dir();
            let path = tmp.path().join("app.log");
            let mut w = File::create(&path).unwrap();
            let mut t = Tailed::open(&path, false, "app".into()).unwrap().with_long_lines(long_lines);
            let mut got = Vec::new();
            let mut written = 0;
            for &n in pieces.iter().cycle() {
                if written >= content.len() {
                    break;
                }
                let end = (written + n).min(content.len());
                w.write_all(&content[written..end]).unwrap();
                written = end;
                got.extend(t.lines(false).unwrap().into_iter().map(|l| (l.start, l.bytes)));
            }
            proptest::prop_assert_eq!(got, model_lines(&content, long_lines));
        }
    }

    #[test]
    fn a_file_resumes_only_from_a_position_it_still_holds() {
        let tmp = dir();
        let d = tmp.path();
        let db = TailDb::open(&DbOptions::at(d.join("tail.db").to_str().unwrap())).unwrap();
        let path = d.join("app.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let name = path.to_str().unwrap();

        // No row: where `open` put it, and a row for it from there.
        let mut t = Tailed::open(&path, true, "app".into()).unwrap();
        assert!(!t.resume(&db, &path).unwrap());
        assert_eq!(t.offset, 8);
        let row = db.find(t.id.1, name).unwrap().unwrap();
        assert_eq!(
            (Some(row.id), row.position),
            (t.row, Position::of(&t.file, 8).unwrap())
        );

        // A row it bears out: from its offset.
        db.save(row.id, Position::of(&t.file, 4).unwrap()).unwrap();
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        assert!(t.resume(&db, &path).unwrap());
        assert_eq!((t.offset, t.row), (4, Some(row.id)));
        assert_eq!(text(t.lines(false).unwrap()), ["two"]);

        // A row whose marker the file does not bear out (other bytes before
        // the offset), or past the file's end: where `open` put it, saved.
        for (offset, marker) in [(4, 1), (400, 0)] {
            db.save(
                row.id,
                Position {
                    offset,
                    marker,
                    marker_size: 4,
                },
            )
            .unwrap();
            let mut t = Tailed::open(&path, false, "app".into()).unwrap();
            assert!(!t.resume(&db, &path).unwrap());
            assert_eq!(t.offset, 0);
            assert_eq!(
                db.find(t.id.1, name).unwrap().unwrap().position,
                Position::default()
            );
        }
    }

    /// `Skip_Long_Lines` and `Truncate_Long_Lines` with a 32-byte
    /// `Buffer_Max_Size`: the records Fluent Bit v5.1.1's tail input
    /// gives for the same file, read in one go and in small writes.
    #[test]
    fn long_lines_are_skipped_or_truncated_as_in_tail_does() {
        let mut file = Vec::new();
        for n in [28, 29, 30, 31, 32, 33, 40] {
            file.extend(std::iter::repeat_n(b'0' + (n % 10) as u8, n));
            file.extend(format!("\nok{n}\n").bytes());
        }
        file.extend("é".repeat(20).bytes());
        file.extend(b"\nend\n");
        let digits = |n: usize, len: usize| ((n % 10).to_string()).repeat(len);
        let skipped = [
            digits(28, 28),
            "ok28".into(),
            digits(29, 29),
            "ok29".into(),
            digits(30, 30),
            "ok30".into(),
            "ok31".into(),
            "ok32".into(),
            "ok33".into(),
            "ok40".into(),
            "end".into(),
        ];
        let truncated = [
            digits(28, 28),
            "ok28".into(),
            digits(29, 29),
            "ok29".into(),
            digits(30, 30),
            "ok30".into(),
            digits(31, 31),
            "ok31".into(),
            digits(32, 31),
            "ok32".into(),
            digits(33, 31),
            "ok33".into(),
            digits(40, 31),
            "ok40".into(),
            "é".repeat(15),
            "end".into(),
        ];
        for (option, expected) in [
            ("Skip_Long_Lines", &skipped[..]),
            ("Truncate_Long_Lines", &truncated[..]),
        ] {
            let input = tail(&[("Path", "/x"), ("Buffer_Max_Size", "32"), (option, "On")]);
            for write in [file.len(), 7] {
                let tmp = dir();
                let path = tmp.path().join("app.log");
                let mut w = File::create(&path).unwrap();
                let mut t = Tailed::open(&path, false, "app".into())
                    .unwrap()
                    .with_long_lines(input.long_lines);
                let mut lines = Vec::new();
                for chunk in file.chunks(write) {
                    w.write_all(chunk).unwrap();
                    lines.extend(text(t.lines(false).unwrap()));
                }
                assert_eq!(lines, expected, "{option}, writes of {write}");
            }
        }
    }

    #[test]
    fn a_rotated_file_is_handed_back_and_the_new_one_read_from_its_head() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("app.log");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"a\n").unwrap();
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        let (lines, change) = read_file(&path, &mut t, false, false);
        assert_eq!(text(lines), ["a"]);
        assert!(matches!(change, Change::Same));
        w.write_all(b"b\n").unwrap();
        std::fs::rename(&path, d.join("app.log.1")).unwrap();
        w.write_all(b"c\nhalf").unwrap();
        let mut fresh = File::create(&path).unwrap();
        fresh.write_all(b"d\n").unwrap();
        let (lines, change) = read_file(&path, &mut t, false, false);
        assert_eq!(text(lines), ["b", "c"]);
        let Change::Rotated(mut old) = change else {
            panic!("rotated")
        };
        let (lines, change) = read_file(&path, &mut t, false, false);
        assert_eq!(text(lines), ["d"]);
        assert!(matches!(change, Change::Same));
        // What the application still writes to the old file is read on.
        w.write_all(b" a line\nlate\n").unwrap();
        assert_eq!(text(old.lines(true).unwrap()), ["half a line", "late"]);
        assert!(old.drained());
        // Removed: read to its end, then let go.
        fresh.write_all(b"e").unwrap();
        std::fs::remove_file(&path).unwrap();
        let (lines, change) = read_file(&path, &mut t, false, false);
        assert_eq!(text(lines), ["e"]);
        assert!(matches!(change, Change::Gone));
    }
}
