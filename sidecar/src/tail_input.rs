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
//! - A file that is rotated (a new file at its path) is read on for
//!   `Rotate_Wait` and until read to its end, while the new one is read
//!   from its head; one that is truncated is read again from its head;
//!   one that is removed is read to its end, then let go. A file is
//!   followed once, whatever paths the globs find it at.
//!
//! Files are polled every [`POLL`]: what a line waits for is at most that;
//! what a file holds is read at once, up to 64 MiB a poll.
//! Records go to the pipeline as deliveries without acks, holding their
//! share of the memory budget, as `tcp_input`'s do: a full budget stops
//! the reading. A line longer than [`MAX_LINE`] is cut there, never
//! dropped; with `Skip_Long_Lines` or `Truncate_Long_Lines`, one that does
//! not fit in `Buffer_Max_Size` is skipped or truncated, as in_tail does.
//!
//! With `DB`, each file's offset is kept in Fluent Bit's SQLite table
//! ([`crate::tail_db`]): a file the table knows is read on from where its
//! lines were last accepted by the pipeline, when it still holds what was
//! read before that. Deliveries then wait to be accepted, and the offset
//! is saved once they are.

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
use crate::tail_db::{DbOptions, Position, TailDb};

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
    /// `Read_Newly_Discovered_Files_From_Head` (default on): files found
    /// after the start, and a rotated file's successor, from their head.
    pub newly_from_head: bool,
    pub refresh: Duration,
    /// `Key` (default `log`).
    pub key: String,
    pub path_key: Option<String>,
    /// `Offset_Key`: each record's line's offset in its file.
    pub offset_key: Option<String>,
    pub skip_empty_lines: bool,
    pub parser: Option<Arc<Parser>>,
    /// `DB` and its `db.*` options.
    pub db: Option<DbOptions>,
    /// `Ignore_Older`: files last written longer ago than this are not
    /// followed.
    pub ignore_older: Option<Duration>,
    /// `Ignore_Active_Older_Files`: a followed file is let go once it is
    /// that old too.
    pub ignore_active_older_files: bool,
    /// `Skip_Long_Lines` or `Truncate_Long_Lines` with `Buffer_Max_Size`.
    pub long_lines: LongLines,
    /// `Rotate_Wait`: how long a rotated file is read on (for what the
    /// application still writes to it), and longer until read to its end.
    pub rotate_wait: Duration,
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
            newly_from_head: true,
            refresh: Duration::from_secs(60),
            key: "log".to_string(),
            path_key: None,
            offset_key: None,
            skip_empty_lines: false,
            parser: None,
            db: None,
            ignore_older: None,
            ignore_active_older_files: false,
            long_lines: LongLines::Cut,
            rotate_wait: Duration::from_secs(5),
        };
        let (mut skip_long, mut truncate_long, mut buffer_max) = (false, false, None);
        // `db.*` apply to the `DB`, wherever they are written.
        let mut db_options = Vec::new();
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
                "read_newly_discovered_files_from_head" => {
                    input.newly_from_head = flag(key, value)?
                }
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
                "offset_key" => input.offset_key = Some(value.clone()),
                // Read by `fluentbit::storage`: filesystem buffering.
                "storage.type" => {}
                "skip_empty_lines" => input.skip_empty_lines = flag(key, value)?,
                "parser" => input.parser = Some(parsers::named(parsers, "[INPUT] tail", value)?),
                "db" => input.db = Some(DbOptions::at(value.trim())),
                "db.sync" | "db.locking" | "db.journal_mode" | "db.compare_filename" => {
                    db_options.push((key, value))
                }
                "ignore_older" => input.ignore_older = seconds(key, value)?,
                "rotate_wait" => input.rotate_wait = seconds(key, value)?.unwrap_or_default(),
                "ignore_active_older_files" => input.ignore_active_older_files = flag(key, value)?,
                "skip_long_lines" => skip_long = flag(key, value)?,
                "truncate_long_lines" => truncate_long = flag(key, value)?,
                "buffer_max_size" => {
                    buffer_max = Some(
                        crate::fluentbit::storage::fluent_size(value)
                            .filter(|&bytes| bytes >= 2)
                            .ok_or_else(|| {
                                format!("[INPUT] tail Buffer_Max_Size {value:?} is not a size of at least 2 bytes")
                            })?,
                    )
                }
                "mem_buf_limit" | "buffer_chunk_size" | "inotify_watcher" | "watcher_interval"
                | "static_batch_size" | "event_batch_size" | "progress_check_interval_nsec"
                | "storage.pause_on_chunks_overlimit" | "multiline.parser" | "file_cache_advise"
                | "threaded" | "progress_check_interval" => notes.push(format!(
                    "{}: [INPUT] tail {key} does not apply: Sluice polls the files every 250 ms, bounds what it holds with limits.memory, and joins stack traces with its own [multiline] joiner",
                    section.at
                )),
                _ => {
                    return Err(format!(
                        "[INPUT] tail has no option {key} Sluice serves; it takes Path, Exclude_Path, Tag, Read_from_Head, Read_Newly_Discovered_Files_From_Head, Refresh_Interval, Key, Path_Key, Offset_Key, Skip_Empty_Lines, Parser, DB, db.sync, db.locking, db.journal_mode, db.compare_filename, Ignore_Older, Ignore_Active_Older_Files, Skip_Long_Lines, Truncate_Long_Lines, Buffer_Max_Size, Rotate_Wait"
                    ))
                }
            }
        }
        for (key, value) in db_options {
            let Some(db) = &mut input.db else {
                notes.push(format!(
                    "{}: [INPUT] tail {key} does not apply without a DB",
                    section.at
                ));
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "db.sync" => db.sync = DbOptions::sync_level(value)?,
                "db.locking" => db.locking = flag(key, value)?,
                "db.journal_mode" => db.journal_mode = DbOptions::journal(value)?,
                _ => db.compare_filename = flag(key, value)?,
            }
        }
        if input
            .db
            .as_ref()
            .is_some_and(|db| db.path.as_os_str().is_empty())
        {
            return Err("[INPUT] tail DB is empty: it names the database file".into());
        }
        if input.paths.is_empty() {
            return Err("[INPUT] tail needs a Path".into());
        }
        // A line and its newline fill the buffer but one byte, as in_tail
        // reads it; `Truncate_Long_Lines` first, as in_tail tries it first.
        let limit = buffer_max
            .unwrap_or(32_768)
            .saturating_sub(1)
            .min(usize::MAX as u64) as usize;
        input.long_lines = match (truncate_long, skip_long) {
            (true, _) => LongLines::Truncate(limit),
            (false, true) => LongLines::Skip(limit),
            (false, false) => {
                if buffer_max.is_some() {
                    notes.push(format!(
                        "{}: [INPUT] tail Buffer_Max_Size does not apply without Skip_Long_Lines or Truncate_Long_Lines: Sluice cuts a line longer than 256 KiB into pieces, where Fluent Bit stops reading the file",
                        section.at
                    ));
                }
                LongLines::Cut
            }
        };
        if input.ignore_active_older_files && input.ignore_older.is_none() {
            notes.push(format!(
                "{}: [INPUT] tail Ignore_Active_Older_Files does not apply without an Ignore_Older",
                section.at
            ));
        }
        Ok(input)
    }

    /// Whether a file last written at `meta`'s time is older than
    /// `Ignore_Older` at `now`, in whole seconds as Fluent Bit compares
    /// them.
    fn too_old(&self, meta: &std::fs::Metadata, now: std::time::SystemTime) -> bool {
        let seconds = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        match (self.ignore_older, meta.modified()) {
            (Some(age), Ok(modified)) => {
                seconds(now).saturating_sub(age.as_secs()) > seconds(modified)
            }
            _ => false,
        }
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

/// A time option's value (`Ignore_Older`, `Rotate_Wait`): whole seconds,
/// or with `m`, `h` or `d` (any case), as `flb_utils_time_to_seconds`
/// reads it; 0 is none.
fn seconds(key: &str, value: &str) -> Result<Option<Duration>, String> {
    let value = value.trim();
    let (number, unit) = match value.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => (&value[..at], c.to_ascii_lowercase()),
        _ => (value, 's'),
    };
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 && !number.starts_with('+') => {
            Ok(Some(Duration::from_secs(n.saturating_mul(scale))).filter(|d| !d.is_zero()))
        }
        _ => Err(format!(
            "[INPUT] tail {key} {value:?} is not a whole number of seconds, or of m, h or d"
        )),
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
    /// The file's row in the `DB`.
    row: Option<i64>,
    long_lines: LongLines,
    /// The rest of a long line is being skipped, up to its newline.
    skipping: bool,
    /// A long line of this file was skipped (logged once, as Fluent Bit
    /// warns once per file).
    skipped_any: bool,
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
    fn open(path: &Path, from_end: bool, tag: String) -> std::io::Result<Tailed> {
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
        })
    }

    fn with_long_lines(mut self, long_lines: LongLines) -> Tailed {
        self.long_lines = long_lines;
        self
    }

    /// Where the next start should read from: the line not yet whole is
    /// read again.
    fn position(&self) -> Position {
        let offset = self.offset - self.partial.len() as u64;
        Position::of(&self.file, offset).unwrap_or(Position {
            offset,
            ..Position::default()
        })
    }

    /// Takes the `DB`'s offset for this file when the file still holds
    /// what was read before it (else stays where [`Tailed::open`] put it),
    /// and the row to save to, made if there is none: as
    /// `set_file_position` does with a database.
    fn resume(&mut self, db: &TailDb, path: &Path) -> rusqlite::Result<()> {
        let name = path.to_string_lossy();
        let len = self.file.metadata().map_or(0, |m| m.len());
        let row = match db.find(self.id.1, &name)? {
            Some(row) => {
                if row.position.offset > 0 && row.position.still_in(&self.file, len) {
                    self.offset = row.position.offset;
                }
                db.save(row.id, self.position())?;
                row.id
            }
            None => db.insert(&name, self.id.1, self.position())?,
        };
        self.row = Some(row);
        Ok(())
    }

    /// The complete lines written since the last read (at most
    /// [`MAX_READ`] bytes of them); with `at_end`, the rest too.
    fn lines(&mut self, at_end: bool) -> std::io::Result<Vec<Line>> {
        let len = self.file.metadata()?.len();
        if len < self.offset {
            // Truncated: read again from the head.
            self.offset = 0;
            self.partial.clear();
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
    fn drained(&self) -> bool {
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
struct Line {
    /// The file offset of its first byte (`Offset_Key`).
    start: u64,
    bytes: Vec<u8>,
}

impl Line {
    fn at(start: u64, bytes: Vec<u8>) -> Line {
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

/// A tail input ready to start: its options, and its `DB` opened.
pub struct TailStart {
    pub input: TailInput,
    pub db: Option<TailDb>,
}

impl TailStart {
    /// Opens the input's `DB`, if it has one: one that cannot be opened
    /// stops the start, as it stops Fluent Bit's.
    pub fn open(input: TailInput) -> Result<TailStart, String> {
        let db = input.db.as_ref().map(TailDb::open).transpose()?;
        Ok(TailStart { input, db })
    }
}

/// Follows `input`'s files until `shutdown`, then reads what they hold
/// once more and ends (with a `DB`, once what it sent is accepted and its
/// offsets saved).
pub fn spawn(
    start: TailStart,
    pipeline: mpsc::Sender<Delivery>,
    budget: Arc<MemoryBudget>,
    mut shutdown: watch::Receiver<bool>,
    counts: Option<Arc<InputCounts>>,
) -> JoinHandle<()> {
    let TailStart { input, db } = start;
    let mut following = Following {
        files: HashMap::new(),
        aged: HashMap::new(),
        rotated: Vec::new(),
        released: Default::default(),
        offsets: db.map(Offsets::new),
    };
    tokio::spawn(async move {
        following.look_for_files(&input, true);
        if let Some(offsets) = &mut following.offsets {
            offsets.forget_all_but(&following.files);
        }
        let mut next_look = tokio::time::Instant::now() + input.refresh;
        let mut poll = tokio::time::interval(POLL);
        loop {
            let stopping = tokio::select! {
                _ = poll.tick() => false,
                _ = shutdown.changed() => true,
            };
            if let Some(offsets) = &mut following.offsets {
                offsets.save_accepted();
            }
            if tokio::time::Instant::now() >= next_look {
                following.let_go_of_older(&input);
                following.look_for_files(&input, false);
                next_look = tokio::time::Instant::now() + input.refresh;
            }
            let Following {
                files,
                rotated,
                released,
                offsets,
                ..
            } = &mut following;
            let send = Send {
                input: &input,
                pipeline: &pipeline,
                budget: &budget,
                counts: counts.as_deref(),
            };
            // Rotated files first: what is written to them came before
            // the new files' lines.
            let now = tokio::time::Instant::now();
            let mut kept = Vec::with_capacity(rotated.len());
            for mut old in rotated.drain(..) {
                let expired = stopping || now >= old.until;
                let mut unreadable = false;
                for _ in 0..READS_PER_POLL {
                    let at = old.tailed.offset;
                    let lines = match old.tailed.lines(expired) {
                        Ok(lines) => lines,
                        Err(e) => {
                            tracing::warn!(path = %old.path.display(), error = %e, "[INPUT] tail: cannot read a rotated file");
                            unreadable = true;
                            break;
                        }
                    };
                    if !send.lines(offsets, &old.path, &old.tailed, lines).await {
                        return;
                    }
                    if old.tailed.offset == at {
                        break;
                    }
                }
                if unreadable || (expired && old.tailed.drained()) {
                    if let Some(offsets) = offsets {
                        offsets.let_go(old.tailed.row);
                    }
                    if released.len() == RELEASED {
                        released.pop_front();
                    }
                    released.push_back((old.tailed.id, old.tailed.position()));
                } else {
                    kept.push(old);
                }
            }
            *rotated = kept;
            let mut gone = Vec::new();
            for (path, tailed) in files.iter_mut() {
                // What a file holds is read at once (a file found with
                // Read_from_Head, or one written fast), a share at a time
                // so that the others get their turn, and each share waits
                // for room in the memory budget.
                for _ in 0..READS_PER_POLL {
                    let at = (tailed.id, tailed.offset);
                    let successor_from_end = !input.read_from_head && !input.newly_from_head;
                    let (lines, change) = read_file(path, tailed, stopping, successor_from_end);
                    let sent = match &change {
                        Change::Rotated(old) => send.lines(offsets, path, old, lines).await,
                        _ => send.lines(offsets, path, tailed, lines).await,
                    };
                    if !sent {
                        return;
                    }
                    match change {
                        Change::Rotated(old) => {
                            if let Some(offsets) = offsets {
                                offsets.resume(tailed, path);
                            }
                            rotated.push(Rotated {
                                path: path.clone(),
                                tailed: old,
                                until: now + input.rotate_wait,
                            });
                        }
                        Change::Gone => {
                            gone.push(path.clone());
                            break;
                        }
                        Change::Same if (tailed.id, tailed.offset) == at => break,
                        Change::Same => {}
                    }
                }
            }
            for path in gone {
                if let Some(tailed) = files.remove(&path) {
                    if let Some(offsets) = offsets {
                        offsets.let_go(tailed.row);
                    }
                }
            }
            if stopping {
                break;
            }
        }
        // What was sent is accepted once the stage has written it; the
        // pipeline is let go first, so that the stage does not wait for
        // this input.
        drop(pipeline);
        if let Some(offsets) = &mut following.offsets {
            offsets.save_when_accepted().await;
        }
    })
}

/// How a tail input sends what it reads.
struct Send<'a> {
    input: &'a TailInput,
    pipeline: &'a mpsc::Sender<Delivery>,
    budget: &'a MemoryBudget,
    counts: Option<&'a InputCounts>,
}

impl Send<'_> {
    /// Sends the records of `lines`, read from `tailed` (at `path`), with
    /// a `DB` to save its offset once they are accepted; `false` when the
    /// pipeline is gone.
    async fn lines(
        &self,
        offsets: &mut Option<Offsets>,
        path: &Path,
        tailed: &Tailed,
        lines: Vec<Line>,
    ) -> bool {
        if lines.is_empty() {
            return true;
        }
        if let Some(counts) = self.counts {
            let bytes = lines.iter().map(|l| l.bytes.len() + 1).sum();
            counts.add(lines.len(), bytes);
        }
        let events = events(self.input, path, &tailed.tag, lines);
        match offsets {
            _ if events.is_empty() => true,
            None => crate::tcp_input::deliver(events, self.pipeline, self.budget).await,
            Some(offsets) => {
                offsets
                    .deliver(events, tailed, self.pipeline, self.budget)
                    .await
            }
        }
    }
}

/// What a tail input follows, and what it remembers of the files it
/// does not.
struct Following {
    files: HashMap<PathBuf, Tailed>,
    /// Files left alone for their age (`Ignore_Older`): their inode, and
    /// where reading starts if they are written again (their size when
    /// found old, or where a followed one was let go), as Fluent Bit
    /// registers an ignored file's size.
    aged: HashMap<PathBuf, (u64, u64)>,
    /// Rotated files, read on until `Rotate_Wait` has passed and they are
    /// read to their end, in the order they were rotated.
    rotated: Vec<Rotated>,
    /// Rotated files let go, by device and inode, and where they were
    /// read to: if the globs name one later (`app.log*` finds
    /// `app.log.1`), it is read on from there, not again from its head
    /// (Fluent Bit reads it again). The last [`RELEASED`] of them.
    released: std::collections::VecDeque<((u64, u64), Position)>,
    offsets: Option<Offsets>,
}

/// How many let-go rotated files [`Following::released`] remembers.
const RELEASED: usize = 256;

/// A rotated file, still read.
struct Rotated {
    /// The path it was followed at.
    path: PathBuf,
    tailed: Tailed,
    until: tokio::time::Instant,
}

impl Following {
    /// Starts following the files the globs name that are not followed
    /// yet, but those older than `Ignore_Older`.
    fn look_for_files(&mut self, input: &TailInput, at_start: bool) {
        let now = std::time::SystemTime::now();
        for path in input.files() {
            if self.files.contains_key(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // A rotated file the globs also name (app.log.1) is followed
            // once, as Fluent Bit knows its files by inode.
            let id = (meta.dev(), meta.ino());
            let followed = |t: &Tailed| t.id == id;
            if self.files.values().any(followed) || self.rotated.iter().any(|r| followed(&r.tailed))
            {
                continue;
            }
            if input.too_old(&meta, now) {
                if self
                    .aged
                    .get(&path)
                    .is_none_or(|(inode, _)| *inode != meta.ino())
                {
                    tracing::debug!(path = %path.display(), "[INPUT] tail: older than Ignore_Older, not followed");
                    self.aged.insert(path, (meta.ino(), meta.len()));
                }
                continue;
            }
            // Written again since it was left for its age: what is new.
            let mut resume_at = self
                .aged
                .remove(&path)
                .filter(|&(inode, at)| inode == meta.ino() && at <= meta.len())
                .map(|(_, at)| at);
            // A rotated file let go: from where it was read to, while it
            // still holds what was read.
            if let Some(at) = self.released.iter().position(|(r, _)| *r == id) {
                let (_, position) = self.released.remove(at).unwrap_or_default();
                let holds = File::open(&path).is_ok_and(|f| position.still_in(&f, meta.len()));
                if holds {
                    resume_at = Some(position.offset);
                }
            }
            let from_end = !input.read_from_head
                && (at_start || !input.newly_from_head)
                && resume_at.is_none();
            match Tailed::open(&path, from_end, input.tag_for(&path)) {
                Ok(tailed) => {
                    let mut tailed = tailed.with_long_lines(input.long_lines);
                    if let Some(at) = resume_at {
                        tailed.offset = at;
                    }
                    if let Some(offsets) = &mut self.offsets {
                        offsets.resume(&mut tailed, &path);
                    }
                    tracing::info!(path = %path.display(), offset = tailed.offset, "[INPUT] tail: following");
                    self.files.insert(path, tailed);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "[INPUT] tail: cannot open")
                }
            }
        }
    }

    /// With `Ignore_Active_Older_Files`, lets go of the followed files
    /// that grew older than `Ignore_Older`, remembering where they were
    /// read to (their row in the `DB` stays, as Fluent Bit keeps it).
    fn let_go_of_older(&mut self, input: &TailInput) {
        if !input.ignore_active_older_files {
            return;
        }
        let now = std::time::SystemTime::now();
        let aged = &mut self.aged;
        self.files.retain(|path, tailed| {
            let old = tailed
                .file
                .metadata()
                .is_ok_and(|meta| input.too_old(&meta, now));
            if old {
                tracing::info!(path = %path.display(), "[INPUT] tail: older than Ignore_Older, let go");
                aged.insert(path.clone(), (tailed.id.1, tailed.position().offset));
            }
            !old
        });
    }
}

/// The `DB` of a running tail input, and the offsets waiting for their
/// lines to be accepted.
struct Offsets {
    db: TailDb,
    /// In the order sent, so in the order the stage accepts them.
    waiting: std::collections::VecDeque<(tokio::sync::oneshot::Receiver<()>, i64, Position)>,
    /// Whether the last write to the `DB` failed (logged once, until one
    /// succeeds again).
    failing: bool,
}

impl Offsets {
    fn new(db: TailDb) -> Offsets {
        Offsets {
            db,
            waiting: Default::default(),
            failing: false,
        }
    }

    /// Logs a failed write once; offsets are then not saved (a restart
    /// reads some lines again) until writes succeed again.
    fn check<T>(&mut self, what: &str, result: rusqlite::Result<T>) -> Option<T> {
        match result {
            Ok(value) => {
                if std::mem::take(&mut self.failing) {
                    tracing::info!(db = %self.db.path().display(), "[INPUT] tail DB: offsets are saved again");
                }
                Some(value)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(db = %self.db.path().display(), error = %e, what, "[INPUT] tail DB: cannot save offsets; a restart may send some lines again");
                }
                None
            }
        }
    }

    /// `tailed` resumes from its row, or gets one.
    fn resume(&mut self, tailed: &mut Tailed, path: &Path) {
        let resumed = tailed.resume(&self.db, path);
        if self.check("resume", resumed).is_some() {
            tracing::info!(path = %path.display(), offset = tailed.offset, "[INPUT] tail: offset from DB");
        }
    }

    /// A file read to its end and let go: its row goes.
    fn let_go(&mut self, row: Option<i64>) {
        if let Some(row) = row {
            let deleted = self.db.delete(row);
            self.check("delete", deleted);
        }
    }

    /// Rows of files not followed now (gone while Sluice was not running).
    fn forget_all_but(&mut self, files: &HashMap<PathBuf, Tailed>) {
        let inodes: Vec<u64> = files.values().map(|t| t.id.1).collect();
        let forgotten = self.db.keep_only(&inodes);
        if let Some(count) = self.check("forget", forgotten).filter(|c| *c > 0) {
            tracing::info!(
                count,
                "[INPUT] tail DB: rows of files no longer there deleted"
            );
        }
    }

    /// Sends `events` read from `tailed`, to save its offset once the
    /// pipeline accepts them; `false` when the pipeline is gone.
    async fn deliver(
        &mut self,
        events: Vec<Event>,
        tailed: &Tailed,
        pipeline: &mpsc::Sender<Delivery>,
        budget: &MemoryBudget,
    ) -> bool {
        let reserved = crate::tcp_input::reserve_for(&events, budget).await;
        let (delivery, accepted) = Delivery::with_ack(events, reserved);
        if pipeline.send(delivery).await.is_err() {
            return false;
        }
        if let Some(row) = tailed.row {
            self.waiting.push_back((accepted, row, tailed.position()));
        }
        true
    }

    /// Saves the offsets whose lines were accepted since the last look.
    fn save_accepted(&mut self) {
        while let Some((accepted, _, _)) = self.waiting.front_mut() {
            match accepted.try_recv() {
                Ok(()) => {
                    if let Some((_, row, position)) = self.waiting.pop_front() {
                        let saved = self.db.save(row, position);
                        self.check("save", saved);
                    }
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
                // Dropped, not accepted: the stage stopped without it.
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    self.waiting.pop_front();
                }
            }
        }
    }

    /// At the end: waits for every delivery, saving each accepted one's
    /// offset.
    async fn save_when_accepted(&mut self) {
        while let Some((accepted, row, position)) = self.waiting.pop_front() {
            if accepted.await.is_ok() {
                let saved = self.db.save(row, position);
                self.check("save", saved);
            }
        }
    }
}

/// What became of a followed file's path since the last read.
enum Change {
    Same,
    /// Another file is at the path (rotated): the old one, read as far as
    /// it goes, to be read on for `Rotate_Wait`; the new one is followed
    /// from its head.
    Rotated(Tailed),
    /// Removed, and read to its end: let go.
    Gone,
}

/// The lines of one followed file, and what became of its path. The lines
/// of a rotated file are the old file's; the new one is read next.
fn read_file(
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

/// The records of `lines`, as events of `tag`.
fn events(input: &TailInput, path: &Path, tag: &Arc<str>, lines: Vec<Line>) -> Vec<Event> {
    let now = sluice_firelens::now_ns();
    let path_text = path.to_string_lossy();
    lines
        .into_iter()
        .filter(|line| !(input.skip_empty_lines && line.bytes.is_empty()))
        .map(|Line { start, bytes }| {
            let line = String::from_utf8_lossy(&bytes);
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
            if let Some(key) = &input.offset_key {
                record.insert_json(key, serde_json::Value::from(start));
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

    fn text(lines: Vec<Line>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l.bytes).unwrap())
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
                ("db.sync", "full"),
                ("DB", "/var/flb/tail.db"),
                ("DB.locking", "true"),
                ("db.journal_mode", "delete"),
                ("Rotate_Wait", "1m"),
                ("Inotify_Watcher", "false"),
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
        assert_eq!(
            t.db,
            Some(DbOptions {
                path: "/var/flb/tail.db".into(),
                sync: 2,
                locking: true,
                journal_mode: "DELETE",
                compare_filename: false,
            })
        );
        assert_eq!(t.rotate_wait, Duration::from_secs(60));
        assert_eq!(notes, ["t.conf:1: [INPUT] tail Inotify_Watcher does not apply: Sluice polls the files every 250 ms, bounds what it holds with limits.memory, and joins stack traces with its own [multiline] joiner"]);
        let mut notes = Vec::new();
        let without = TailInput::from_section(
            &section(&[("Path", "/x"), ("db.sync", "full")]),
            0,
            &parsers,
            &mut notes,
        )
        .unwrap();
        assert_eq!(without.db, None);
        assert_eq!(
            notes,
            ["t.conf:1: [INPUT] tail db.sync does not apply without a DB"]
        );
        let mut notes = Vec::new();
        let sizes = |entries: &[(&str, &str)], notes: &mut Vec<String>| {
            let mut all = vec![("Path", "/x")];
            all.extend_from_slice(entries);
            TailInput::from_section(&section(&all), 0, &parsers, notes)
                .unwrap()
                .long_lines
        };
        assert_eq!(sizes(&[], &mut notes), LongLines::Cut);
        assert_eq!(
            sizes(&[("Skip_Long_Lines", "on")], &mut notes),
            LongLines::Skip(32_767)
        );
        assert_eq!(
            sizes(
                &[("Skip_Long_Lines", "on"), ("Buffer_Max_Size", "1M")],
                &mut notes
            ),
            LongLines::Skip(999_999)
        );
        assert_eq!(
            sizes(
                &[("Skip_Long_Lines", "on"), ("Truncate_Long_Lines", "on")],
                &mut notes
            ),
            LongLines::Truncate(32_767)
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            sizes(
                &[
                    ("Buffer_Max_Size", "64k"),
                    ("Ignore_Active_Older_Files", "on")
                ],
                &mut notes
            ),
            LongLines::Cut
        );
        assert_eq!(
            notes,
            [
                "t.conf:1: [INPUT] tail Buffer_Max_Size does not apply without Skip_Long_Lines or Truncate_Long_Lines: Sluice cuts a line longer than 256 KiB into pieces, where Fluent Bit stops reading the file",
                "t.conf:1: [INPUT] tail Ignore_Active_Older_Files does not apply without an Ignore_Older",
            ]
        );
        for (entries, error) in [
            (vec![], "[INPUT] tail needs a Path"),
            (vec![("Path", "/x"), ("Read_from_Head", "maybe")], "[INPUT] tail Read_from_Head \"maybe\" is not On or Off"),
            (vec![("Path", "/x"), ("Refresh_Interval", "1m")], "[INPUT] tail Refresh_Interval \"1m\" is not a number of seconds"),
            (vec![("Path", "/x"), ("Parser", "nope")], "[INPUT] tail Parser nope: no parser of that name"),
            (vec![("Path", "/x"), ("Docker_Mode", "On")], "[INPUT] tail has no option Docker_Mode Sluice serves; it takes Path, Exclude_Path, Tag, Read_from_Head, Read_Newly_Discovered_Files_From_Head, Refresh_Interval, Key, Path_Key, Offset_Key, Skip_Empty_Lines, Parser, DB, db.sync, db.locking, db.journal_mode, db.compare_filename, Ignore_Older, Ignore_Active_Older_Files, Skip_Long_Lines, Truncate_Long_Lines, Buffer_Max_Size, Rotate_Wait"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.sync", "always")], "[INPUT] tail db.sync \"always\" is not one of extra, full, normal, off"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.journal_mode", "fast")], "[INPUT] tail db.journal_mode \"fast\" is not one of DELETE, TRUNCATE, PERSIST, MEMORY, WAL, OFF"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.locking", "yes please")], "[INPUT] tail db.locking \"yes please\" is not On or Off"),
            (vec![("Path", "/x"), ("DB", " ")], "[INPUT] tail DB is empty: it names the database file"),
            (vec![("Path", "/x"), ("Buffer_Max_Size", "lots")], "[INPUT] tail Buffer_Max_Size \"lots\" is not a size of at least 2 bytes"),
            (vec![("Path", "/x"), ("Skip_Long_Lines", "sometimes")], "[INPUT] tail Skip_Long_Lines \"sometimes\" is not On or Off"),
            (vec![("Path", "/x"), ("Ignore_Older", "a while")], "[INPUT] tail Ignore_Older \"a while\" is not a whole number of seconds, or of m, h or d"),
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

    /// A file found after the start is read from its head, or with
    /// `Read_Newly_Discovered_Files_From_Head Off` from its end; a file
    /// found at the start from its end either way (no `Read_from_Head`).
    #[test]
    fn newly_discovered_files_from_their_head_or_end() {
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        // "earlier\n" is 8 bytes: its end.
        for (newly, expected) in [("on", 0), ("off", 8)] {
            let tmp = dir();
            let d = tmp.path();
            std::fs::write(d.join("first.log"), "before\n").unwrap();
            let input = TailInput::from_section(
                &section(&[
                    ("Path", d.join("*.log").to_str().unwrap()),
                    ("Read_Newly_Discovered_Files_From_Head", newly),
                ]),
                0,
                &parsers,
                &mut Vec::new(),
            )
            .unwrap();
            let mut following = Following {
                files: HashMap::new(),
                aged: HashMap::new(),
                rotated: Vec::new(),
                released: Default::default(),
                offsets: None,
            };
            following.look_for_files(&input, true);
            assert_eq!(following.files[&d.join("first.log")].offset, 7);
            std::fs::write(d.join("second.log"), "earlier\n").unwrap();
            following.look_for_files(&input, false);
            assert_eq!(
                following.files[&d.join("second.log")].offset,
                expected,
                "{newly}"
            );
        }
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

    /// `Offset_Key`: each record carries its line's offset in the file, as
    /// Fluent Bit v5.1.1's tail input gives it (its `\r\n` and empty lines
    /// counted), next to `Path_Key`.
    #[test]
    fn offset_key_is_each_line_s_offset() {
        let tmp = dir();
        let path = tmp.path().join("app.log");
        std::fs::write(&path, "ab\ncd\r\n\nlast\n").unwrap();
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let input = TailInput::from_section(
            &section(&[
                ("Path", path.to_str().unwrap()),
                ("Offset_Key", "off"),
                ("Path_Key", "p"),
            ]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        let records: Vec<String> = events(&input, &path, &t.tag.clone(), t.lines(false).unwrap())
            .iter()
            .map(|e| serde_json::to_string(&e.record.to_json()).unwrap())
            .collect();
        let p = path.to_str().unwrap();
        assert_eq!(
            records,
            [
                format!(r#"{{"log":"ab","off":0,"p":"{p}"}}"#),
                format!(r#"{{"log":"cd","off":3,"p":"{p}"}}"#),
                format!(r#"{{"log":"","off":7,"p":"{p}"}}"#),
                format!(r#"{{"log":"last","off":8,"p":"{p}"}}"#),
            ]
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
        let task = spawn(TailStart::open(input).unwrap(), tx, budget, stop_rx, None);
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

    /// The `log` values of the next delivery, and the delivery.
    async fn next_lines(rx: &mut mpsc::Receiver<Delivery>) -> (Vec<String>, Delivery) {
        let delivery = rx.recv().await.expect("the input goes on");
        let lines = delivery
            .events
            .iter()
            .map(|e| e.record.get_str("log").unwrap().to_string())
            .collect();
        (lines, delivery)
    }

    /// With a `DB`, a restart goes on after the last lines the pipeline
    /// accepted: a delivery dropped without being accepted is read again,
    /// and what was written while stopped is read once.
    #[tokio::test]
    async fn with_a_db_a_restart_goes_on_after_the_accepted_lines() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("app.log");
        let db_path = d.join("tail.db");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let input = TailInput::from_section(
            &section(&[
                ("Path", path.to_str().unwrap()),
                ("Read_from_Head", "on"),
                ("DB", db_path.to_str().unwrap()),
            ]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let run = |input: TailInput| {
            let (tx, rx) = mpsc::channel(4);
            let (stop_tx, stop_rx) = watch::channel(false);
            let start = TailStart::open(input).unwrap();
            (spawn(start, tx, budget.clone(), stop_rx, None), rx, stop_tx)
        };
        let append = |text: &str| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap()
        };

        let (task, mut rx, stop) = run(input.clone());
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["one", "two"]);
        delivery.accept();
        append("three\n");
        let (lines, not_accepted) = next_lines(&mut rx).await;
        assert_eq!(lines, ["three"]);
        drop(not_accepted);
        let _ = stop.send(true);
        task.await.unwrap();

        let inode = std::fs::metadata(&path).unwrap().ino();
        let saved = |db: &TailDb| {
            db.find(inode, path.to_str().unwrap())
                .unwrap()
                .unwrap()
                .position
        };
        let file = File::open(&path).unwrap();
        assert_eq!(
            saved(&TailDb::open(input.db.as_ref().unwrap()).unwrap()),
            Position::of(&file, 8).unwrap()
        );

        append("four\n");
        let (task, mut rx, stop) = run(input.clone());
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["three", "four"]);
        delivery.accept();
        let _ = stop.send(true);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "nothing more");
        assert_eq!(
            saved(&TailDb::open(input.db.as_ref().unwrap()).unwrap()),
            Position::of(&file, 19).unwrap()
        );

        // Written again from the head while stopped: the saved offset is
        // no longer what the file holds, and it is read from its head.
        std::fs::write(&path, "another file entirely\n").unwrap();
        let (task, mut rx, stop) = run(input.clone());
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["another file entirely"]);
        delivery.accept();
        let _ = stop.send(true);
        task.await.unwrap();
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
        t.resume(&db, &path).unwrap();
        assert_eq!(t.offset, 8);
        let row = db.find(t.id.1, name).unwrap().unwrap();
        assert_eq!(
            (Some(row.id), row.position),
            (t.row, Position::of(&t.file, 8).unwrap())
        );

        // A row it bears out: from its offset.
        db.save(row.id, Position::of(&t.file, 4).unwrap()).unwrap();
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        t.resume(&db, &path).unwrap();
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
            t.resume(&db, &path).unwrap();
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
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        for (option, expected) in [
            ("Skip_Long_Lines", &skipped[..]),
            ("Truncate_Long_Lines", &truncated[..]),
        ] {
            let input = TailInput::from_section(
                &section(&[("Path", "/x"), ("Buffer_Max_Size", "32"), (option, "On")]),
                0,
                &parsers,
                &mut Vec::new(),
            )
            .unwrap();
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
    fn ignore_older_is_read_as_fluent_bit_reads_it() {
        let day = 86_400;
        for (value, secs) in [
            ("0", None),
            ("45", Some(45)),
            ("10s", Some(10)),
            ("5m", Some(300)),
            ("2H", Some(7_200)),
            ("1d", Some(day)),
            (" 3D ", Some(3 * day)),
        ] {
            assert_eq!(
                seconds("Ignore_Older", value),
                Ok(secs.map(Duration::from_secs)),
                "{value}"
            );
        }
        for value in ["", "d", "1w", "-1", "+1", "1.5h", "one day"] {
            assert_eq!(
                seconds("Ignore_Older", value),
                Err(format!(
                    "[INPUT] tail Ignore_Older {:?} is not a whole number of seconds, or of m, h or d",
                    value.trim()
                ))
            );
        }
    }

    /// `Ignore_Older`: a file last written before it is not followed; once
    /// written again, only what is new is read. With
    /// `Ignore_Active_Older_Files`, a followed file that grows old is let
    /// go, and read on from where it was when written again.
    #[test]
    fn files_older_than_ignore_older_are_left_until_written_again() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("old.log");
        std::fs::write(&path, "from last week\n").unwrap();
        let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
        let age_to = |when: std::time::SystemTime| {
            File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap()
        };
        age_to(two_days_ago);
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let input = TailInput::from_section(
            &section(&[
                ("Path", d.join("*.log").to_str().unwrap()),
                ("Read_from_Head", "on"),
                ("Ignore_Older", "1d"),
                ("Ignore_Active_Older_Files", "on"),
            ]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        let mut following = Following {
            files: HashMap::new(),
            aged: HashMap::new(),
            rotated: Vec::new(),
            released: Default::default(),
            offsets: None,
        };
        following.look_for_files(&input, true);
        assert!(following.files.is_empty());
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(following.aged[&path], (inode, 15));

        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"today\nhalf a")
            .unwrap();
        following.look_for_files(&input, false);
        let tailed = following.files.get_mut(&path).expect("followed again");
        assert_eq!(text(tailed.lines(false).unwrap()), ["today"]);
        assert!(following.aged.is_empty());

        // Still fresh: kept.
        following.let_go_of_older(&input);
        assert_eq!(following.files.len(), 1);
        age_to(two_days_ago);
        following.let_go_of_older(&input);
        assert!(following.files.is_empty());
        // Where the whole lines end: the half line is read again.
        assert_eq!(following.aged[&path], (inode, 21));
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b" line\n")
            .unwrap();
        following.look_for_files(&input, false);
        let tailed = following.files.get_mut(&path).expect("followed again");
        assert_eq!(text(tailed.lines(false).unwrap()), ["half a line"]);
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

    /// `Rotate_Wait`: lines the application writes to a rotated file after
    /// the router moved on to the new one still arrive, and a rotated file
    /// the globs also name is never read twice, during the wait or after.
    #[tokio::test]
    async fn a_rotated_file_is_read_on_for_rotate_wait() {
        let tmp = dir();
        let d = tmp.path();
        let path = d.join("app.log");
        let mut w = File::create(&path).unwrap();
        w.write_all(b"before\n").unwrap();
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let input = TailInput::from_section(
            &section(&[
                ("Path", d.join("app.log*").to_str().unwrap()),
                ("Read_from_Head", "on"),
                ("Rotate_Wait", "1"),
                ("Refresh_Interval", "0.2"),
            ]),
            0,
            &parsers,
            &mut Vec::new(),
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let budget = Arc::new(MemoryBudget::new(1 << 20));
        let task = spawn(TailStart::open(input).unwrap(), tx, budget, stop_rx, None);
        async fn next(rx: &mut mpsc::Receiver<Delivery>) -> Vec<String> {
            let wait = tokio::time::timeout(Duration::from_secs(10), next_lines(rx));
            wait.await.expect("a delivery within 10 s").0
        }
        assert_eq!(next(&mut rx).await, ["before"]);
        std::fs::rename(&path, d.join("app.log.1")).unwrap();
        std::fs::write(&path, "new file\n").unwrap();
        assert_eq!(next(&mut rx).await, ["new file"]);
        w.write_all(b"late, to the old file\n").unwrap();
        assert_eq!(next(&mut rx).await, ["late, to the old file"]);
        // Past Rotate_Wait, the old file is let go; the globs name it
        // (app.log.1), so a refresh finds it again, and it is read on from
        // where it was, not from its head.
        tokio::time::sleep(Duration::from_millis(1_700)).await;
        w.write_all(b"later still\n").unwrap();
        assert_eq!(next(&mut rx).await, ["later still"]);
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "nothing more, nothing twice");
    }
}
