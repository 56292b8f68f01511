//! Fluent Bit's `[INPUT] tail` (`plugins/in_tail`) in FireLens drop-in
//! mode: files an application writes on a volume it shares with the log
//! router (AWS's multi-config example tails `/logs/app.log`).
//!
//! - `Path` (comma-separated globs) and `Exclude_Path` name the files;
//!   they are looked for at start and every `Refresh_Interval` (60 s).
//! - A file found at start is read from its end, or from its head with
//!   `Read_from_Head`; a file found later is read from its head, as
//!   Fluent Bit reads it.
//! - Each line (its `\n` and a `\r` before it removed) is a record,
//!   `{"log": line}` (`Key` renames `log`), with `Path_Key` the file's
//!   path; with `Parser`, what the parser reads of the line instead, and
//!   its time. `Skip_Empty_Lines` skips empty lines.
//! - `Tag` (`tail.N` by default) with a `*` takes the file's path, its `/`
//!   written `.`, as in Fluent Bit.
//! - A file that is rotated (a new file at its path) is read to its end
//!   first; one that is truncated is read again from its head; one that
//!   is removed is read to its end, then let go.
//!
//! Files are polled every [`POLL`]: what a line waits for is at most that;
//! what a file holds is read at once, up to 64 MiB a poll.
//! Records go to the pipeline as deliveries without acks, holding their
//! share of the memory budget, as `tcp_input`'s do: a full budget stops
//! the reading. A line longer than [`MAX_LINE`] is cut there, never
//! dropped. Offsets are not kept across restarts (`DB` is noted).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::{Delivery, Event, MemoryBudget, Record};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fluentbit::classic::{on_off, Section};
use crate::fluentbit::parsers::{self, Parser, Parsers};
use crate::fluentbit::plugin_metrics::InputCounts;

/// How often files are looked at for new lines.
pub const POLL: Duration = Duration::from_millis(250);

/// The longest line kept whole; a longer one is cut into pieces this long.
pub const MAX_LINE: usize = 256 << 10;

/// The most read of one file at a time.
const MAX_READ: usize = 1 << 20;

/// The most reads of one file per poll (64 MiB), so that one busy file
/// cannot keep the others waiting.
const READS_PER_POLL: usize = 64;

/// One `[INPUT] tail`.
#[derive(Clone, Debug)]
pub struct TailInput {
    /// `Path`: globs.
    pub paths: Vec<String>,
    /// `Exclude_Path`.
    pub exclude: Vec<glob::Pattern>,
    pub tag: String,
    pub read_from_head: bool,
    pub refresh: Duration,
    /// `Key` (default `log`).
    pub key: String,
    pub path_key: Option<String>,
    pub skip_empty_lines: bool,
    pub parser: Option<Arc<Parser>>,
}

impl TailInput {
    /// The section's options; `index` is this input's place among all the
    /// file's inputs (its default tag, `tail.N`, as Fluent Bit numbers
    /// them).
    pub fn from_section(
        section: &Section,
        index: usize,
        parsers: &Parsers,
        notes: &mut Vec<String>,
    ) -> Result<TailInput, String> {
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        let flag = |key: &str, value: &str| on_off("[INPUT] tail", key, value);
        let mut input = TailInput {
            paths: Vec::new(),
            exclude: Vec::new(),
            tag: format!("tail.{index}"),
            read_from_head: false,
            refresh: Duration::from_secs(60),
            key: "log".to_string(),
            path_key: None,
            skip_empty_lines: false,
            parser: None,
        };
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "name" | "alias" => {}
                "path" => input.paths.extend(list(value)),
                "exclude_path" => {
                    for pattern in list(value) {
                        input.exclude.push(glob::Pattern::new(&pattern).map_err(|e| {
                            format!("[INPUT] tail Exclude_Path {pattern:?} is not a pattern: {e}")
                        })?);
                    }
                }
                "tag" => input.tag = value.clone(),
                "read_from_head" => input.read_from_head = flag(key, value)?,
                "refresh_interval" => {
                    let seconds: f64 = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| {
                            format!("[INPUT] tail Refresh_Interval {value:?} is not a number of seconds")
                        })?;
                    input.refresh = Duration::from_secs_f64(seconds);
                }
                "key" => input.key = value.clone(),
                "path_key" => input.path_key = Some(value.clone()),
                // Read by `fluentbit::storage`: filesystem buffering.
                "storage.type" => {}
                "skip_empty_lines" => input.skip_empty_lines = flag(key, value)?,
                "parser" => input.parser = Some(parsers::named(parsers, "[INPUT] tail", value)?),
                "db" | "db.sync" | "db.locking" | "db.journal_mode" | "db.compare_filename"
                | "mem_buf_limit" | "buffer_chunk_size" | "buffer_max_size" | "skip_long_lines"
                | "rotate_wait" | "ignore_older" | "inotify_watcher"
                | "storage.pause_on_chunks_overlimit" | "multiline.parser" | "file_cache_advise"
                | "threaded" | "progress_check_interval" => notes.push(format!(
                    "{}: [INPUT] tail {key} does not apply: Sluice polls the files every 250 ms from where it started, without keeping offsets across restarts, bounds what it holds with limits.memory, cuts lines at 256 KiB, and joins stack traces with its own [multiline] joiner",
                    section.at
                )),
                _ => {
                    return Err(format!(
                        "[INPUT] tail has no option {key} Sluice serves; it takes Path, Exclude_Path, Tag, Read_from_Head, Refresh_Interval, Key, Path_Key, Skip_Empty_Lines, Parser"
                    ))
                }
            }
        }
        if input.paths.is_empty() {
            return Err("[INPUT] tail needs a Path".into());
        }
        Ok(input)
    }

    /// The tag of a file's records: `Tag`, its `*` replaced by the path
    /// with `/` written `.`.
    fn tag_for(&self, path: &Path) -> String {
        if !self.tag.contains('*') {
            return self.tag.clone();
        }
        let dotted = path
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', ".");
        self.tag.replace('*', &dotted)
    }

    /// The files the globs name now, but the excluded.
    fn files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for pattern in &self.paths {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                let excluded = self.exclude.iter().any(|p| p.matches_path(&path));
                if !excluded && path.is_file() && !found.contains(&path) {
                    found.push(path);
                }
            }
        }
        found
    }
}

/// A file being read.
struct Tailed {
    file: File,
    /// The file's device and inode: another at its path means rotation.
    id: (u64, u64),
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
    tag: Arc<str>,
}

impl Tailed {
    fn open(path: &Path, from_end: bool, tag: String) -> std::io::Result<Tailed> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(Tailed {
            file,
            id: (meta.dev(), meta.ino()),
            offset: if from_end { meta.len() } else { 0 },
            partial: Vec::new(),
            tag: Arc::from(tag.as_str()),
        })
    }

    /// The complete lines written since the last read (at most
    /// [`MAX_READ`] bytes of them); with `at_end`, the rest too.
    fn lines(&mut self, at_end: bool) -> std::io::Result<Vec<Vec<u8>>> {
        let len = self.file.metadata()?.len();
        if len < self.offset {
            // Truncated: read again from the head.
            self.offset = 0;
            self.partial.clear();
        }
        let mut buf = Vec::new();
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
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..nl]);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            push_cut(&mut lines, line);
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= MAX_LINE {
            let at = char_boundary(&self.partial, MAX_LINE);
            let tail = self.partial.split_off(at);
            lines.push(std::mem::replace(&mut self.partial, tail));
        }
        if at_end && !self.partial.is_empty() {
            lines.push(std::mem::take(&mut self.partial));
        }
        Ok(lines)
    }
}

/// Adds `line`, cut into pieces of at most [`MAX_LINE`] bytes.
fn push_cut(lines: &mut Vec<Vec<u8>>, mut line: Vec<u8>) {
    while line.len() > MAX_LINE {
        let tail = line.split_off(char_boundary(&line, MAX_LINE));
        lines.push(std::mem::replace(&mut line, tail));
    }
    lines.push(line);
}

/// The last place at or before `at` where no UTF-8 sequence is cut (`at`
/// itself when the bytes there are not UTF-8).
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&i| bytes.get(i).is_none_or(|b| (b & 0xC0) != 0x80))
        .filter(|&i| i > 0)
        .unwrap_or(at)
}

/// Follows `input`'s files until `shutdown`, then reads what they hold
/// once more and ends.
pub fn spawn(
    input: TailInput,
    pipeline: mpsc::Sender<Delivery>,
    budget: Arc<MemoryBudget>,
    mut shutdown: watch::Receiver<bool>,
    counts: Option<Arc<InputCounts>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut files: HashMap<PathBuf, Tailed> = HashMap::new();
        look_for_files(&input, &mut files, true);
        let mut next_look = tokio::time::Instant::now() + input.refresh;
        let mut poll = tokio::time::interval(POLL);
        loop {
            let stopping = tokio::select! {
                _ = poll.tick() => false,
                _ = shutdown.changed() => true,
            };
            if tokio::time::Instant::now() >= next_look {
                look_for_files(&input, &mut files, false);
                next_look = tokio::time::Instant::now() + input.refresh;
            }
            let mut gone = Vec::new();
            for (path, tailed) in files.iter_mut() {
                // What a file holds is read at once (a file found with
                // Read_from_Head, or one written fast), a share at a time
                // so that the others get their turn, and each share waits
                // for room in the memory budget.
                for _ in 0..READS_PER_POLL {
                    let at = (tailed.id, tailed.offset);
                    let (lines, done) = read_file(path, tailed, stopping);
                    if !lines.is_empty() {
                        if let Some(counts) = &counts {
                            let bytes = lines.iter().map(|l| l.len() + 1).sum();
                            counts.add(lines.len(), bytes);
                        }
                        let events = events(&input, path, &tailed.tag, lines);
                        if !events.is_empty()
                            && !crate::tcp_input::deliver(events, &pipeline, &budget).await
                        {
                            return;
                        }
                    }
                    if done {
                        gone.push(path.clone());
                        break;
                    }
                    if (tailed.id, tailed.offset) == at {
                        break;
                    }
                }
            }
            for path in gone {
                files.remove(&path);
            }
            if stopping {
                return;
            }
        }
    })
}

/// Starts following the files the globs name that are not followed yet.
fn look_for_files(input: &TailInput, files: &mut HashMap<PathBuf, Tailed>, at_start: bool) {
    for path in input.files() {
        if files.contains_key(&path) {
            continue;
        }
        let from_end = at_start && !input.read_from_head;
        match Tailed::open(&path, from_end, input.tag_for(&path)) {
            Ok(tailed) => {
                tracing::info!(path = %path.display(), from_end, "[INPUT] tail: following");
                files.insert(path, tailed);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "[INPUT] tail: cannot open")
            }
        }
    }
}

/// The lines of one file, following a rotation; `true` when the file is
/// gone and read to its end.
fn read_file(path: &Path, tailed: &mut Tailed, at_end: bool) -> (Vec<Vec<u8>>, bool) {
    let now_at_path = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let replaced = now_at_path != Some(tailed.id);
    // Of a file that was rotated or removed, the rest is read before it is
    // let go.
    let mut lines = match tailed.lines(at_end || replaced) {
        Ok(lines) => lines,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "[INPUT] tail: cannot read");
            return (Vec::new(), true);
        }
    };
    let drained = tailed
        .file
        .metadata()
        .map(|m| m.len() <= tailed.offset)
        .unwrap_or(true);
    if !(replaced && drained) {
        return (lines, false);
    }
    match now_at_path {
        // Rotated: the new file at the path, from its head.
        Some(_) => match Tailed::open(path, false, tailed.tag.to_string()) {
            Ok(next) => {
                *tailed = next;
                if let Ok(more) = tailed.lines(at_end) {
                    lines.extend(more);
                }
                (lines, false)
            }
            Err(_) => (lines, true),
        },
        None => (lines, true),
    }
}

/// The records of `lines`, as events of `tag`.
fn events(input: &TailInput, path: &Path, tag: &Arc<str>, lines: Vec<Vec<u8>>) -> Vec<Event> {
    let now = sluice_firelens::now_ns();
    let path_text = path.to_string_lossy();
    lines
        .into_iter()
        .filter(|line| !(input.skip_empty_lines && line.is_empty()))
        .map(|line| {
            let line = String::from_utf8_lossy(&line);
            let mut time_ns = now;
            let mut record = match input
                .parser
                .as_ref()
                .and_then(|p| p.parse(&line, now.div_euclid(1_000_000)))
            {
                Some(parsed) => {
                    time_ns = parsed.time_ns().unwrap_or(now);
                    Record::from(parsed.fields)
                }
                None => {
                    let mut record = Record::default();
                    record.insert(&input.key, line.as_ref());
                    record
                }
            };
            if let Some(key) = &input.path_key {
                record.insert(key, path_text.as_ref());
            }
            Event {
                tag: tag.clone(),
                time_ns,
                record,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;
    use std::io::Write;

    fn section(entries: &[(&str, &str)]) -> Section {
        crate::fluentbit::tests::section(
            SectionKind::Input,
            "t.conf:1",
            &[("Name", "tail")],
            entries,
        )
    }

    /// A directory of the test's own, removed when dropped.
    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("sluice-tail-")
            .tempdir()
            .unwrap()
    }

    fn text(lines: Vec<Vec<u8>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn options_as_fluent_bit_reads_them() {
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let mut notes = Vec::new();
        let t = TailInput::from_section(
            &section(&[
                ("Path", "/logs/*.log, /logs/app.txt"),
                ("Exclude_Path", "*.gz"),
                ("Read_from_Head", "True"),
                ("Refresh_Interval", "5"),
                ("Path_Key", "file"),
                ("Parser", "json"),
                ("DB", "/var/flb/tail.db"),
            ]),
            2,
            &parsers,
            &mut notes,
        )
        .unwrap();
        assert_eq!(t.paths, ["/logs/*.log", "/logs/app.txt"]);
        assert_eq!((t.tag.as_str(), t.read_from_head), ("tail.2", true));
        assert_eq!(t.refresh, Duration::from_secs(5));
        assert_eq!(t.path_key.as_deref(), Some("file"));
        assert_eq!(t.parser.as_ref().unwrap().name, "json");
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("t.conf:1: [INPUT] tail DB does not apply"),
            "{notes:?}"
        );
        for (entries, error) in [
            (vec![], "[INPUT] tail needs a Path"),
            (vec![("Path", "/x"), ("Read_from_Head", "maybe")], "[INPUT] tail Read_from_Head \"maybe\" is not On or Off"),
            (vec![("Path", "/x"), ("Refresh_Interval", "1m")], "[INPUT] tail Refresh_Interval \"1m\" is not a number of seconds"),
            (vec![("Path", "/x"), ("Parser", "nope")], "[INPUT] tail Parser nope: no parser of that name"),
            (vec![("Path", "/x"), ("Docker_Mode", "On")], "[INPUT] tail has no option Docker_Mode Sluice serves; it takes Path, Exclude_Path, Tag, Read_from_Head, Refresh_Interval, Key, Path_Key, Skip_Empty_Lines, Parser"),
        ] {
            assert_eq!(
                TailInput::from_section(&section(&entries), 0, &parsers, &mut Vec::new()).unwrap_err(),
                error
            );
        }
        let star = TailInput::from_section(
            &section(&[("Path", "/x"), ("Tag", "app.*")]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(
            star.tag_for(Path::new("/var/log/app.log")),
            "app.var.log.app.log"
        );
    }

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
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, 10]
        );
        // And never inside a character.
        let mut accented = vec![b'x'; MAX_LINE - 1];
        accented.extend_from_slice("é\n".as_bytes());
        w.write_all(&accented).unwrap();
        let lines = t.lines(false).unwrap();
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE - 1, 2]
        );
    }

    /// A file larger than many reads, found with Read_from_Head: every
    /// line arrives once, in order, whole across the reads' boundaries,
    /// under a budget smaller than the file.
    #[tokio::test]
    async fn a_large_file_is_read_whole_under_a_small_budget() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("big.log");
        let lines: Vec<String> = (0..40_000)
            .map(|i| format!("line {i:06} {}", "x".repeat(90)))
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let input = TailInput::from_section(
            &section(&[("Path", path.to_str().unwrap()), ("Read_from_Head", "on")]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let task = spawn(input, tx, budget, stop_rx, None);
        let mut seen = Vec::new();
        while seen.len() < lines.len() {
            let delivery = rx.recv().await.expect("the input goes on");
            for event in &delivery.events {
                seen.push(event.record.get_str("log").unwrap().to_string());
            }
        }
        assert_eq!(seen, lines);
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "nothing more");
    }

    #[test]
    fn a_rotated_file_is_read_to_its_end_then_the_new_one_from_its_head() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("app.log");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"a\n").unwrap();
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        assert_eq!(text(read_file(&path, &mut t, false).0), ["a"]);
        w.write_all(b"b\n").unwrap();
        std::fs::rename(&path, d.join("app.log.1")).unwrap();
        w.write_all(b"c\n").unwrap();
        let mut fresh = File::create(&path).unwrap();
        fresh.write_all(b"d\n").unwrap();
        let (lines, done) = read_file(&path, &mut t, false);
        assert_eq!(
            (text(lines), done),
            (vec!["b".to_string(), "c".into(), "d".into()], false)
        );
        // Removed: read to its end, then let go.
        fresh.write_all(b"e").unwrap();
        std::fs::remove_file(&path).unwrap();
        let (lines, done) = read_file(&path, &mut t, false);
        assert_eq!((text(lines), done), (vec!["e".to_string()], true));
    }
}
