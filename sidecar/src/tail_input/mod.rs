//! Fluent Bit's `[INPUT] tail` (`plugins/in_tail`) in FireLens drop-in
//! mode: files an application writes on a volume it shares with the log
//! router (AWS's multi-config example tails `/logs/app.log`).
//!
//! - `Path` (comma-separated globs) and `Exclude_Path` name the files;
//!   they are looked for at start and every `Refresh_Interval` (60 s).
//! - A file found at start is read from its end, or from its head with
//!   `Read_from_Head`; a file found later is read from its head (its end
//!   with `Read_Newly_Discovered_Files_From_Head Off`), as Fluent Bit
//!   reads it. A file last written longer ago than `Ignore_Older` is left
//!   until it is written again.
//! - Each line (its `\n` and a `\r` before it removed) is a record,
//!   `{"log": line}` (`Key` renames `log`), with `Path_Key` the file's
//!   path and `Offset_Key` the line's offset; with `Parser`, what the
//!   parser reads of the line instead, and its time. `Skip_Empty_Lines`
//!   skips empty lines. With `Multiline On`, lines are joined into
//!   messages first ([`old_multiline`]).
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
//! ([`db`]): a file the table knows is read on from where its
//! lines were last accepted by the pipeline, when it still holds what was
//! read before that. Deliveries then wait to be accepted, and the offset
//! is saved once they are.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::{Event, Record};
use tokio::task::JoinHandle;

use crate::fluentbit::classic::{on_off, Section};
use crate::fluentbit::parsers::{self, Parser, Parsers};
use crate::input_links::InputLinks;

pub mod db;
mod file;
mod following;
mod offsets;
pub mod old_multiline;

use db::{DbOptions, TailDb};
use file::{Line, LongLines, Tailed};
use following::Following;
use offsets::Offsets;
use old_multiline::{OldMultiline, Step};

/// How often files are looked at for new lines.
pub const POLL: Duration = Duration::from_millis(250);

/// The longest line kept whole; a longer one is cut into pieces this long.
pub const MAX_LINE: usize = 256 << 10;

/// The largest `Buffer_Max_Size` taken: the most of one line held (with
/// `Skip_Long_Lines` or `Truncate_Long_Lines`) before it is whole.
const MAX_BUFFER: usize = 16 << 20;

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
    /// `Tag_Regex`: named groups of a file's path, which `Tag` takes as
    /// `<name>`.
    pub tag_regex: Option<regex::Regex>,
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
    /// `Multiline On`: in_tail's old multiline.
    pub old_multiline: Option<OldMultiline>,
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
        // A parser an option names, the option named in the error.
        let parser_for = |key: &str, value: &str| {
            parsers::named(parsers, "[INPUT] tail", value)
                .map_err(|e| e.replacen("[INPUT] tail Parser ", &format!("[INPUT] tail {key} "), 1))
        };
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
            tag_regex: None,
            skip_empty_lines: false,
            parser: None,
            db: None,
            ignore_older: None,
            ignore_active_older_files: false,
            long_lines: LongLines::Cut,
            rotate_wait: Duration::from_secs(5),
            old_multiline: None,
        };
        // `Multiline On` and its parsers, read once every key is.
        let (mut multiline, mut firstline, mut continuation, mut multiline_flush) =
            (false, None, Vec::new(), Duration::from_secs(4));
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
                "tag_regex" => {
                    input.tag_regex = Some(crate::fluentbit::onig::regex(value).map_err(|e| {
                        format!("[INPUT] tail Tag_Regex {value:?} is not a pattern Sluice can compile: {e}")
                    })?)
                }
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
                "multiline" => multiline = flag(key, value)?,
                "multiline_flush" => {
                    // An integer of seconds; 0 or less is 1, as in_tail takes it.
                    let seconds: i64 = value.trim().parse().map_err(|_| {
                        format!("[INPUT] tail Multiline_Flush {value:?} is not a whole number of seconds")
                    })?;
                    multiline_flush = Duration::from_secs(seconds.max(1) as u64);
                }
                "parser_firstline" => firstline = Some(parser_for(key, value)?),
                lower if lower.starts_with("parser_") => continuation.push(parser_for(key, value)?),
                _ => {
                    return Err(format!(
                        "[INPUT] tail has no option {key} Sluice serves; it takes Path, Exclude_Path, Tag, Tag_Regex, Read_from_Head, Read_Newly_Discovered_Files_From_Head, Refresh_Interval, Key, Path_Key, Offset_Key, Skip_Empty_Lines, Parser, DB, db.sync, db.locking, db.journal_mode, db.compare_filename, Ignore_Older, Ignore_Active_Older_Files, Skip_Long_Lines, Truncate_Long_Lines, Buffer_Max_Size, Rotate_Wait, Multiline, Parser_Firstline, Parser_N, Multiline_Flush"
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
        if input.tag_regex.is_some() {
            let mut rest = input.tag.as_str();
            while let Some((_, after)) = rest.split_once('<') {
                match after.split_once('>') {
                    Some((name, next)) if !name.contains('<') => rest = next,
                    _ => {
                        return Err(format!(
                            "[INPUT] tail Tag {:?} has a < without its >: with Tag_Regex, <name> takes a group of the path",
                            input.tag
                        ))
                    }
                }
            }
        }
        // A line and its newline fill the buffer but one byte, as in_tail
        // reads it; `Truncate_Long_Lines` first, as in_tail tries it first.
        // What a file's line holds before it is whole is outside the
        // memory budget, so the buffer is at most MAX_BUFFER.
        if buffer_max.is_some_and(|bytes| bytes > MAX_BUFFER as u64) && (truncate_long || skip_long)
        {
            notes.push(format!(
                "{}: [INPUT] tail Buffer_Max_Size is taken as 16 MiB, the most Sluice holds of one line",
                section.at
            ));
        }
        let limit = buffer_max
            .unwrap_or(32_768)
            .min(MAX_BUFFER as u64)
            .saturating_sub(1) as usize;
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
        if multiline {
            let Some(firstline) = firstline else {
                return Err("[INPUT] tail Multiline On needs a Parser_Firstline".into());
            };
            if input.parser.is_some() {
                // in_tail applies a Parser first, and joins nothing.
                notes.push(format!(
                    "{}: [INPUT] tail Multiline does not apply with a Parser, which in_tail applies instead",
                    section.at
                ));
            } else {
                input.old_multiline = Some(OldMultiline {
                    firstline,
                    continuation,
                    flush: multiline_flush,
                    ignore_older: input.ignore_older,
                    key: input.key.clone(),
                });
            }
        } else if firstline.is_some() || !continuation.is_empty() {
            notes.push(format!(
                "{}: [INPUT] tail Parser_Firstline and Parser_N do not apply without Multiline On",
                section.at
            ));
        }
        if input.ignore_active_older_files && input.ignore_older.is_none() {
            notes.push(format!(
                "{}: [INPUT] tail Ignore_Active_Older_Files does not apply without an Ignore_Older",
                section.at
            ));
        }
        Ok(input)
    }

    /// What `check-config` says of the input: its paths, then what
    /// decides which lines are read and how they become records.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("Tag {}", self.tag)];
        if let Some(regex) = &self.tag_regex {
            parts.push(format!("Tag_Regex {}", regex.as_str()));
        }
        let start = if self.read_from_head { "head" } else { "end" };
        parts.push(match &self.db {
            Some(db) => format!(
                "from the {start} or the offsets in DB {}",
                db.path.display()
            ),
            None => format!("from the {start}"),
        });
        if let Some(parser) = &self.parser {
            parts.push(format!("Parser {}", parser.name));
        }
        if let Some(joiner) = &self.old_multiline {
            let mut names = vec![joiner.firstline.name.as_str()];
            names.extend(joiner.continuation.iter().map(|p| p.name.as_str()));
            parts.push(format!(
                "Multiline {} flushed after {}s",
                names.join(" then "),
                joiner.flush.as_secs()
            ));
        }
        for (name, key) in [
            ("Path_Key", &self.path_key),
            ("Offset_Key", &self.offset_key),
        ] {
            if let Some(key) = key {
                parts.push(format!("{name} {key}"));
            }
        }
        if let Some(age) = self.ignore_older {
            parts.push(format!("Ignore_Older {}s", age.as_secs()));
        }
        parts.push(format!("Rotate_Wait {}s", self.rotate_wait.as_secs()));
        parts.push(match self.long_lines {
            LongLines::Cut => format!("lines over {} KiB cut", MAX_LINE >> 10),
            LongLines::Skip(limit) => format!("lines of {limit} bytes or more skipped"),
            LongLines::Truncate(limit) => format!("lines truncated to {limit} bytes"),
        });
        format!("{} ({})", self.paths.join(", "), parts.join(", "))
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
    /// with `/` written `.`; with `Tag_Regex`, each `<name>` by that group
    /// of the path (`_` when it matched nothing), and none when the path
    /// does not match, as `tag_compose` makes it.
    fn tag_for(&self, path: &Path) -> Option<String> {
        let path = path.to_string_lossy();
        let Some(regex) = &self.tag_regex else {
            let dotted = path.trim_start_matches('/').replace('/', ".");
            return Some(self.tag.replace('*', &dotted));
        };
        let groups = regex.captures(&path)?;
        let mut tag = String::new();
        let mut rest = self.tag.as_str();
        // `from_section` checked that every `<` is closed.
        while let Some((before, after)) = rest.split_once('<') {
            let (name, next) = after.split_once('>').unwrap_or((after, ""));
            tag.push_str(before);
            tag.push_str(groups.name(name).map_or("_", |m| m.as_str()));
            rest = next;
        }
        tag.push_str(rest);
        Some(tag)
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
pub fn spawn(start: TailStart, mut links: InputLinks) -> JoinHandle<()> {
    let TailStart { input, db } = start;
    let mut following = Following::new(db.map(Offsets::new));
    tokio::spawn(async move {
        following.look_for_files(&input, true);
        following.forget_rows_of_others();
        let mut next_look = tokio::time::Instant::now() + input.refresh;
        let mut poll = tokio::time::interval(POLL);
        loop {
            let stopping = tokio::select! {
                _ = poll.tick() => false,
                _ = links.shutdown.changed() => true,
            };
            following.save_accepted();
            if tokio::time::Instant::now() >= next_look {
                following.let_go_of_older(&input);
                following.look_for_files(&input, false);
                next_look = tokio::time::Instant::now() + input.refresh;
            }
            let send = Send {
                input: &input,
                links: &links,
            };
            if !following.read(&send, stopping).await {
                return;
            }
            if stopping {
                break;
            }
        }
        // What was sent is accepted once the stage has written it; the
        // pipeline is let go first, so that the stage does not wait for
        // this input.
        drop(links);
        following.save_when_accepted().await;
    })
}

/// How a tail input sends what it reads.
struct Send<'a> {
    input: &'a TailInput,
    links: &'a InputLinks,
}

impl Send<'_> {
    /// Sends the records of `lines`, read from `tailed` (at `path`), and
    /// a joined message that is due (any, with `last`: the file is let go
    /// or Sluice stops), with a `DB` to save its offset once they are
    /// accepted; `false` when the pipeline is gone.
    async fn lines(
        &self,
        offsets: &mut Option<Offsets>,
        path: &Path,
        tailed: &mut Tailed,
        lines: Vec<Line>,
        last: bool,
    ) -> bool {
        let bytes = lines.iter().map(|l| l.bytes.len() + 1).sum();
        let events = events(self.input, path, tailed, lines, last);
        // As in_tail counts them: the bytes read, and the records made of
        // them (a joined message is one; a skipped empty line none).
        self.links.count(events.len(), bytes);
        match offsets {
            _ if events.is_empty() => true,
            None => self.links.deliver(events).await,
            Some(offsets) => offsets.deliver(events, tailed, self.links).await,
        }
    }
}

/// The records of `lines` read from `tailed`, as events of its tag: each
/// line's, or with `Multiline On` the messages the lines finish, and one
/// that is due (any, with `last`).
fn events(
    input: &TailInput,
    path: &Path,
    tailed: &mut Tailed,
    lines: Vec<Line>,
    last: bool,
) -> Vec<Event> {
    let now = sluice_firelens::now_ns();
    let path_text = path.to_string_lossy();
    let event = |start: u64, time_ns: i64, mut record: Record| {
        if let Some(key) = &input.path_key {
            record.insert(key, path_text.as_ref());
        }
        if let Some(key) = &input.offset_key {
            record.insert_json(key, serde_json::Value::from(start));
        }
        Event {
            tag: tailed.tag.clone(),
            time_ns,
            record,
        }
    };
    let mut events = Vec::new();
    let lines = lines
        .into_iter()
        .filter(|line| !(input.skip_empty_lines && line.bytes.is_empty()));
    let Some(joiner) = &input.old_multiline else {
        for Line { start, bytes } in lines {
            let line = String::from_utf8_lossy(&bytes);
            let parsed = input
                .parser
                .as_ref()
                .and_then(|p| p.parse(&line, now.div_euclid(1_000_000)));
            events.push(match parsed {
                Some(parsed) => {
                    let time_ns = parsed.time_ns().unwrap_or(now);
                    event(start, time_ns, Record::from(parsed.fields))
                }
                None => {
                    let mut record = Record::default();
                    record.insert(&input.key, line.as_ref());
                    event(start, now, record)
                }
            });
        }
        return events;
    };
    let instant = tokio::time::Instant::now();
    for Line { start, bytes } in lines {
        let line = String::from_utf8_lossy(&bytes);
        if let Step::Out(records) = joiner.push(&mut tailed.joining, &line, start, now, instant) {
            events.extend(
                records
                    .into_iter()
                    .map(|j| event(j.start, j.time_ns, j.record)),
            );
        }
    }
    if let Some(j) = OldMultiline::due(&mut tailed.joining, instant, last) {
        events.push(event(j.start, j.time_ns, j.record));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;
    use crate::input_links::tests::links;
    use db::Position;
    use sluice_firelens::Delivery;
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use tokio::sync::{mpsc, watch};

    pub(super) fn section(entries: &[(&str, &str)]) -> Section {
        crate::fluentbit::tests::section(
            SectionKind::Input,
            "t.conf:1",
            &[("Name", "tail")],
            entries,
        )
    }

    /// A directory of the test's own, removed when dropped.
    pub(super) fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("sluice-tail-")
            .tempdir()
            .unwrap()
    }

    /// The input of a `[INPUT] tail` section with `entries` (no named
    /// parsers).
    pub(super) fn tail(entries: &[(&str, &str)]) -> TailInput {
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        TailInput::from_section(&section(entries), 0, &parsers, &mut Vec::new()).unwrap()
    }

    /// `input` running with a pipeline of its own (a 1 MiB budget): its
    /// task, the pipeline's end, and its stop signal.
    fn started(
        input: TailInput,
    ) -> (
        JoinHandle<()>,
        mpsc::Receiver<Delivery>,
        watch::Sender<bool>,
    ) {
        let (links, rx, stop_tx) = links(4, None);
        (spawn(TailStart::open(input).unwrap(), links), rx, stop_tx)
    }

    pub(super) fn text(lines: Vec<Line>) -> Vec<String> {
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
                &[("Truncate_Long_Lines", "on"), ("Buffer_Max_Size", "1G")],
                &mut notes
            ),
            LongLines::Truncate((16 << 20) - 1)
        );
        assert_eq!(
            notes,
            ["t.conf:1: [INPUT] tail Buffer_Max_Size is taken as 16 MiB, the most Sluice holds of one line"]
        );
        notes.clear();
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
            (vec![("Path", "/x"), ("Docker_Mode", "On")], "[INPUT] tail has no option Docker_Mode Sluice serves; it takes Path, Exclude_Path, Tag, Tag_Regex, Read_from_Head, Read_Newly_Discovered_Files_From_Head, Refresh_Interval, Key, Path_Key, Offset_Key, Skip_Empty_Lines, Parser, DB, db.sync, db.locking, db.journal_mode, db.compare_filename, Ignore_Older, Ignore_Active_Older_Files, Skip_Long_Lines, Truncate_Long_Lines, Buffer_Max_Size, Rotate_Wait, Multiline, Parser_Firstline, Parser_N, Multiline_Flush"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.sync", "always")], "[INPUT] tail db.sync \"always\" is not one of extra, full, normal, off"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.journal_mode", "fast")], "[INPUT] tail db.journal_mode \"fast\" is not one of DELETE, TRUNCATE, PERSIST, MEMORY, WAL, OFF"),
            (vec![("Path", "/x"), ("DB", "/d"), ("db.locking", "yes please")], "[INPUT] tail db.locking \"yes please\" is not On or Off"),
            (vec![("Path", "/x"), ("DB", " ")], "[INPUT] tail DB is empty: it names the database file"),
            (vec![("Path", "/x"), ("Multiline", "On")], "[INPUT] tail Multiline On needs a Parser_Firstline"),
            (vec![("Path", "/x"), ("Multiline", "On"), ("Parser_Firstline", "nope")], "[INPUT] tail Parser_Firstline nope: no parser of that name"),
            (vec![("Path", "/x"), ("Parser_2", "nope")], "[INPUT] tail Parser_2 nope: no parser of that name"),
            (vec![("Path", "/x"), ("Multiline_Flush", "4s")], "[INPUT] tail Multiline_Flush \"4s\" is not a whole number of seconds"),
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
            star.tag_for(Path::new("/var/log/app.log")).as_deref(),
            Some("app.var.log.app.log")
        );
        // Tag_Regex, as Fluent Bit's documentation writes it for pods'
        // log files; a group that matched nothing is `_`.
        let named = tail(&[
            ("Path", "/x"),
            ("Tag", "aws.<service>.<task>.<missing>"),
            (
                "Tag_Regex",
                r"^/logs/(?<service>[a-z]+)-(?<task>[0-9a-f]+)(?<missing>X)?\.log$",
            ),
        ]);
        assert_eq!(
            named.tag_for(Path::new("/logs/orders-9a8b.log")).as_deref(),
            Some("aws.orders.9a8b._")
        );
        assert_eq!(named.tag_for(Path::new("/logs/other.txt")), None);
        for (tag, error) in [
            ("a.<b", "[INPUT] tail Tag \"a.<b\" has a < without its >: with Tag_Regex, <name> takes a group of the path"),
            ("a.<b<c>", "[INPUT] tail Tag \"a.<b<c>\" has a < without its >: with Tag_Regex, <name> takes a group of the path"),
        ] {
            let section = section(&[("Path", "/x"), ("Tag", tag), ("Tag_Regex", "(?<b>.)")]);
            assert_eq!(
                TailInput::from_section(&section, 0, &parsers, &mut Vec::new()).unwrap_err(),
                error
            );
        }
    }

    /// `Multiline On` in the running input: the file Fluent Bit v5.1.1's
    /// tail input joined (old_multiline's test), written in two parts; the
    /// last message goes out `Multiline_Flush` after its first line, with
    /// `Path_Key` and `Offset_Key` on every record.
    #[tokio::test]
    async fn old_multiline_joins_a_file_s_lines() {
        let tmp = dir();
        let path = tmp.path().join("app.log");
        std::fs::write(
            &path,
            "orphan before any first line\n2026-11-29 06:00:00 ERROR boom\n    at a.b(C.java:1)\n",
        )
        .unwrap();
        let parsers = old_multiline::tests::parsers();
        let section = section(&[
            ("Path", path.to_str().unwrap()),
            ("Read_from_Head", "on"),
            ("Multiline", "On"),
            ("Parser_Firstline", "multiline_first"),
            ("Parser_1", "cause"),
            ("Multiline_Flush", "1"),
            ("Offset_Key", "at"),
        ]);
        let input = TailInput::from_section(&section, 0, &parsers, &mut Vec::new()).unwrap();
        let (task, mut rx, stop_tx) = started(input);
        let mut records = Vec::new();
        let mut more = true;
        while records.len() < 3 {
            let delivery = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a delivery within 10 s")
                .expect("the input goes on");
            records.extend(delivery.events.iter().map(|e| {
                (
                    e.time_ns,
                    serde_json::to_string(&e.record.to_json()).unwrap(),
                )
            }));
            if std::mem::take(&mut more) {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap()
                    .write_all(b"Caused by: io failure\n2026-11-29 06:00:01 INFO fine\n")
                    .unwrap();
            }
        }
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert_eq!(
            records[0].1,
            r#"{"at":0,"log":"orphan before any first line"}"#
        );
        assert_eq!(
            records[1..],
            [
                (
                    1_795_932_000_000_000_000,
                    r#"{"at":29,"cause":"io failure","level":"ERROR","message":"boom\n    at a.b(C.java:1)"}"#.to_string()
                ),
                (
                    1_795_932_001_000_000_000,
                    r#"{"at":103,"level":"INFO","message":"fine"}"#.to_string()
                ),
            ]
        );
        assert!(rx.recv().await.is_none(), "nothing more");
    }

    /// Plugin metrics count the bytes read and the records made of them:
    /// a skipped empty line is no record, a joined message one.
    #[tokio::test]
    async fn plugin_metrics_count_records_made_and_bytes_read() {
        use std::sync::atomic::Ordering;
        let tmp = dir();
        let path = tmp.path().join("app.log");
        std::fs::write(&path, "one\n\ntwo\n").unwrap();
        let input = tail(&[("Path", path.to_str().unwrap()), ("Skip_Empty_Lines", "on")]);
        let counts = Arc::new(crate::fluentbit::plugin_metrics::InputCounts::default());
        let (links, mut rx, _stop) = links(4, Some(counts.clone()));
        let send = Send {
            input: &input,
            links: &links,
        };
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        let lines = t.lines(false).unwrap();
        assert!(send.lines(&mut None, &path, &mut t, lines, false).await);
        assert_eq!(rx.recv().await.unwrap().events.len(), 2);
        assert_eq!(
            (
                counts.records.load(Ordering::Relaxed),
                counts.bytes.load(Ordering::Relaxed)
            ),
            (2, 9)
        );
    }

    #[test]
    fn check_config_says_what_decides_the_lines_read() {
        let parsers = old_multiline::tests::parsers();
        let section = section(&[
            ("Path", "/logs/app.log"),
            ("Multiline", "On"),
            ("Parser_Firstline", "multiline_first"),
            ("Parser_1", "cause"),
        ]);
        let joined = TailInput::from_section(&section, 0, &parsers, &mut Vec::new()).unwrap();
        assert_eq!(
            joined.describe(),
            "/logs/app.log (Tag tail.0, from the end, Multiline multiline_first then cause flushed after 4s, Rotate_Wait 5s, lines over 256 KiB cut)"
        );
        assert_eq!(
            tail(&[("Path", "/logs/*.log"), ("Tag", "app")]).describe(),
            "/logs/*.log (Tag app, from the end, Rotate_Wait 5s, lines over 256 KiB cut)"
        );
        assert_eq!(
            tail(&[
                ("Path", "/logs/*.log, /more/*.txt"),
                ("Tag", "app.<name>"),
                ("Tag_Regex", "(?<name>[a-z]+)"),
                ("Read_from_Head", "on"),
                ("DB", "/var/log/flb-storage/tail.db"),
                ("Parser", "json"),
                ("Path_Key", "file"),
                ("Offset_Key", "at"),
                ("Ignore_Older", "1h"),
                ("Rotate_Wait", "30"),
                ("Skip_Long_Lines", "on"),
            ])
            .describe(),
            "/logs/*.log, /more/*.txt (Tag app.<name>, Tag_Regex (?<name>[a-z]+), from the head or the offsets in DB /var/log/flb-storage/tail.db, Parser json, Path_Key file, Offset_Key at, Ignore_Older 3600s, Rotate_Wait 30s, lines of 32767 bytes or more skipped)"
        );
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

    /// `Offset_Key`: each record carries its line's offset in the file, as
    /// Fluent Bit v5.1.1's tail input gives it (its `\r\n` and empty lines
    /// counted), next to `Path_Key`.
    #[test]
    fn offset_key_is_each_line_s_offset() {
        let tmp = dir();
        let path = tmp.path().join("app.log");
        std::fs::write(&path, "ab\ncd\r\n\nlast\n").unwrap();
        let input = tail(&[
            ("Path", path.to_str().unwrap()),
            ("Offset_Key", "off"),
            ("Path_Key", "p"),
        ]);
        let mut t = Tailed::open(&path, false, "app".into()).unwrap();
        let lines = t.lines(false).unwrap();
        let records: Vec<String> = events(&input, &path, &mut t, lines, false)
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
        let input = tail(&[("Path", path.to_str().unwrap()), ("Read_from_Head", "on")]);
        let (task, mut rx, stop_tx) = started(input);
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
        let input = tail(&[
            ("Path", path.to_str().unwrap()),
            ("Read_from_Head", "on"),
            ("DB", db_path.to_str().unwrap()),
        ]);
        let append = |text: &str| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap()
        };

        let (task, mut rx, stop) = started(input.clone());
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
        let (task, mut rx, stop) = started(input.clone());
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
        let (task, mut rx, stop) = started(input.clone());
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["another file entirely"]);
        delivery.accept();
        let _ = stop.send(true);
        task.await.unwrap();
    }

    /// With a `DB`, a rotated file's row takes the file's new name at
    /// once, as Fluent Bit renames it: with `db.compare_filename`, a
    /// restart during `Rotate_Wait` finds it under the name the globs find.
    #[tokio::test]
    async fn with_a_db_a_rotated_files_row_takes_its_new_name() {
        let tmp = dir();
        let d = tmp.path();
        let (path, moved) = (d.join("app.log"), d.join("app.log.1"));
        std::fs::write(&path, "before\n").unwrap();
        let input = tail(&[
            ("Path", path.to_str().unwrap()),
            ("Read_from_Head", "on"),
            ("Rotate_Wait", "30"),
            ("DB", d.join("tail.db").to_str().unwrap()),
            ("DB.compare_filename", "on"),
        ]);
        let (task, mut rx, stop) = started(input.clone());
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["before"]);
        delivery.accept();
        let inode = std::fs::metadata(&path).unwrap().ino();
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, "new file\n").unwrap();
        let (lines, delivery) = next_lines(&mut rx).await;
        assert_eq!(lines, ["new file"]);
        delivery.accept();
        let db = TailDb::open(input.db.as_ref().unwrap()).unwrap();
        let row = db.find(inode, moved.to_str().unwrap()).unwrap();
        assert_eq!(
            row.map(|r| r.position),
            Some(Position::of(&File::open(&moved).unwrap(), 7).unwrap())
        );
        let _ = stop.send(true);
        task.await.unwrap();
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
        let input = tail(&[
            ("Path", d.join("app.log*").to_str().unwrap()),
            ("Read_from_Head", "on"),
            ("Rotate_Wait", "1"),
            ("Refresh_Interval", "0.2"),
        ]);
        let (task, mut rx, stop_tx) = started(input);
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
