//! The on-disk spool (`[spool] dir`): a write-ahead journal of every event
//! the CloudWatch output has accepted, so that an acked event survives a
//! crash, a kill -9 or a power loss (with `fsync = "batch"`).
//!
//! - Events are appended, rendered and redacted exactly as they will go to
//!   PutLogEvents, to numbered segment files (`00000000000000000001.seg`),
//!   with a checksum per record (format.rs). Nothing unredacted touches
//!   the disk.
//! - The output stage appends a delivery's events, then [`Spool::commit`]s
//!   (one write and, by default, one fsync), and only then accepts the
//!   delivery, which acks its chunk.
//! - Every event keeps the number of its segment. When CloudWatch has taken
//!   (or refused for good) a batch, the shipper [`SpoolShared::release`]s
//!   its events; a segment that is sealed (no longer written) and has no
//!   event left outstanding is deleted.
//! - On start, the segments left by an earlier run are read back, cut at
//!   the first damaged record (a torn write), and delivered before anything
//!   new.
//! - The spool's total size is bounded by `max_size`: when it is reached,
//!   or the disk is full, the output stage waits for deliveries to free
//!   segments, the pipeline fills and the inputs stop reading. Nothing is
//!   dropped to make room.
//!
//! The events stay in memory too (the batchers hold them until CloudWatch
//! has them); the spool adds durability, and `limits.memory` still bounds
//! what is buffered.

pub mod format;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::cloudwatch::batch::LogEvent;
use crate::streams::StreamKey;

/// `[spool]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// The most bytes all segments may take together.
    pub max_size: u64,
    /// A segment is sealed and a new one started past this size.
    pub segment_size: u64,
    /// fsync after every commit (before the ack); otherwise the kernel
    /// writes back when it likes, which survives a crash of Sluice but not
    /// of the machine.
    pub fsync: bool,
}

/// What the spool has done, for logs and /metrics.
#[derive(Debug, Default)]
pub struct SpoolCounters {
    /// Events read back from an earlier run's segments.
    pub replayed_events: AtomicU64,
    /// Segments found damaged at start (a torn or corrupt record).
    pub damaged_segments: AtomicU64,
    /// Bytes cut from damaged segments.
    pub truncated_bytes: AtomicU64,
    /// Writes or fsyncs that failed (a full disk, an I/O error).
    pub write_errors: AtomicU64,
    /// Times the output stage waited for room (max_size or a full disk).
    pub full_waits: AtomicU64,
    pub segments_deleted: AtomicU64,
}

/// The bookkeeping shared by the output stage, which appends, and the
/// shipper, which releases.
#[derive(Debug)]
pub struct SpoolShared {
    dir: PathBuf,
    state: Mutex<Segments>,
    /// Woken when a segment is deleted (room may be free again).
    pub freed: Notify,
    pub counters: SpoolCounters,
}

#[derive(Debug, Default)]
struct Segments {
    by_id: BTreeMap<u64, SegmentState>,
    /// Bytes of every segment on disk, as committed.
    bytes: u64,
}

#[derive(Debug, Default)]
struct SegmentState {
    /// Events appended and not yet released.
    outstanding: u64,
    bytes: u64,
    /// No longer appended to; deleted once nothing is outstanding.
    sealed: bool,
    /// Left by an earlier run and not read back yet: kept whatever the count.
    awaiting_replay: bool,
}

impl SpoolShared {
    fn state(&self) -> MutexGuard<'_, Segments> {
        // A panic elsewhere cannot leave the counts half-updated in a way
        // that matters more than stopping the spool would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// CloudWatch has taken (or refused for good) these events: `(segment,
    /// count)` pairs. Deletes the segments this finishes.
    pub fn release(&self, done: &[(u64, u64)]) {
        let mut state = self.state();
        for &(id, count) in done {
            if let Some(segment) = state.by_id.get_mut(&id) {
                segment.outstanding = segment.outstanding.saturating_sub(count);
            }
            self.delete_if_done(&mut state, id);
        }
    }

    /// Bytes on disk, and how many segments.
    pub fn usage(&self) -> (u64, usize) {
        let state = self.state();
        (state.bytes, state.by_id.len())
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        segment_path(&self.dir, id)
    }

    fn delete_if_done(&self, state: &mut Segments, id: u64) {
        let done = state
            .by_id
            .get(&id)
            .is_some_and(|s| s.sealed && s.outstanding == 0 && !s.awaiting_replay);
        if !done {
            return;
        }
        let path = self.segment_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                // Kept in the books: its bytes still count against
                // max_size, and a restart replays it (duplicates, never loss).
                tracing::error!(path = %path.display(), error = %e, "cannot delete a delivered spool segment");
                return;
            }
        }
        if let Some(segment) = state.by_id.remove(&id) {
            state.bytes = state.bytes.saturating_sub(segment.bytes);
        }
        self.counters
            .segments_deleted
            .fetch_add(1, Ordering::Relaxed);
        self.freed.notify_waiters();
    }
}

/// Why an event could not be appended now.
#[derive(Debug)]
pub enum AppendError {
    /// `max_size` is reached: wait for deliveries to free segments.
    Full,
    Io(io::Error),
}

/// The segment being appended to.
struct Current {
    id: u64,
    file: File,
    /// Bytes written to the file (and fsynced, with `fsync`).
    committed: u64,
    /// Streams named in this segment, with their ids.
    streams: HashMap<(StreamKey, bool), u32>,
}

/// The writing side of the spool, owned by the output stage.
pub struct Spool {
    config: SpoolConfig,
    shared: Arc<SpoolShared>,
    current: Option<Current>,
    next_id: u64,
    /// Records appended and not yet committed.
    pending: Vec<u8>,
    /// Segments left by an earlier run, oldest first.
    to_replay: VecDeque<u64>,
    /// Held for the life of the process: one Sluice per spool directory.
    _lock: File,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool directory, locks it, and finds
    /// what an earlier run left for [`Spool::replay_next`].
    pub fn open(config: SpoolConfig) -> io::Result<Spool> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(config.dir.join("lock"))?;
        if let Err(e) = lock.try_lock() {
            return Err(io::Error::other(format!(
                "the spool directory is in use by another process ({e})"
            )));
        }
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(&config.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(segment_id) {
                let bytes = entry.metadata()?.len();
                found.insert(
                    id,
                    SegmentState {
                        bytes,
                        sealed: true,
                        awaiting_replay: true,
                        ..SegmentState::default()
                    },
                );
            }
        }
        let next_id = found.keys().next_back().map_or(1, |last| last + 1);
        let to_replay = found.keys().copied().collect();
        let bytes = found.values().map(|s| s.bytes).sum();
        let shared = Arc::new(SpoolShared {
            dir: config.dir.clone(),
            state: Mutex::new(Segments {
                by_id: found,
                bytes,
            }),
            freed: Notify::new(),
            counters: SpoolCounters::default(),
        });
        Ok(Spool {
            config,
            shared,
            current: None,
            next_id,
            pending: Vec::new(),
            to_replay,
            _lock: lock,
        })
    }

    pub fn shared(&self) -> Arc<SpoolShared> {
        self.shared.clone()
    }

    /// The next segment an earlier run left, with its intact events; a
    /// damaged tail is cut off the file first. The events count as
    /// outstanding in that segment from now on: the caller sends them.
    pub fn replay_next(&mut self) -> Option<(u64, Vec<format::SpooledEvent>)> {
        while let Some(id) = self.to_replay.pop_front() {
            let path = self.shared.segment_path(id);
            let decoded = match std::fs::read(&path) {
                Ok(bytes) => {
                    let decoded = format::decode(&bytes);
                    if let Some(why) = decoded.damage {
                        self.repair(&path, &decoded, bytes.len(), why);
                    }
                    decoded
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a spool segment; leaving it in place");
                    continue;
                }
            };
            let events = decoded.events;
            self.shared
                .counters
                .replayed_events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            let mut state = self.shared.state();
            if let Some(segment) = state.by_id.get_mut(&id) {
                segment.awaiting_replay = false;
                segment.outstanding = events.len() as u64;
                let was = std::mem::replace(&mut segment.bytes, decoded.intact as u64);
                state.bytes = state.bytes - was + decoded.intact as u64;
            }
            self.shared.delete_if_done(&mut state, id);
            drop(state);
            if !events.is_empty() {
                tracing::info!(
                    segment = id,
                    events = events.len(),
                    "replaying a spool segment left by an earlier run"
                );
                return Some((id, events));
            }
        }
        None
    }

    /// Cuts a damaged segment back to its intact records; one that is not
    /// a segment at all is renamed aside (`.corrupt`) for a person to see.
    fn repair(&self, path: &Path, decoded: &format::Decoded, len: usize, why: &str) {
        let c = &self.shared.counters;
        c.damaged_segments.fetch_add(1, Ordering::Relaxed);
        c.truncated_bytes
            .fetch_add((len - decoded.intact) as u64, Ordering::Relaxed);
        tracing::warn!(
            path = %path.display(),
            reason = why,
            intact_bytes = decoded.intact,
            cut_bytes = len - decoded.intact,
            events_kept = decoded.events.len(),
            "a spool segment is damaged (a torn write?); keeping what is before the damage"
        );
        let result = if decoded.intact == 0 {
            std::fs::rename(path, path.with_extension("corrupt"))
        } else {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(decoded.intact as u64).and_then(|()| f.sync_all()))
        };
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot repair a damaged spool segment");
        }
    }

    /// Appends one event for `key`'s stream; returns its segment. The
    /// event is durable after the next successful [`Spool::commit`].
    pub fn append(
        &mut self,
        key: &StreamKey,
        emf: bool,
        event: &LogEvent,
    ) -> Result<u64, AppendError> {
        // What this record adds at most (a stream record, the event record).
        let size = (2 * format::RECORD_HEADER
            + 16
            + key.group.len()
            + key.stream.len()
            + event.message.len()) as u64;
        if let Some(current) = &self.current {
            let written = current.committed + self.pending.len() as u64;
            if written > format::MAGIC.len() as u64 && written + size > self.config.segment_size {
                self.seal_current().map_err(AppendError::Io)?;
            }
        }
        let used = self.shared.usage().0 + self.pending.len() as u64;
        if used > 0 && used + size > self.config.max_size {
            // Seal so that the segment can go once its events are delivered.
            self.seal_current().map_err(AppendError::Io)?;
            return Err(AppendError::Full);
        }
        if self.current.is_none() {
            self.start_segment().map_err(AppendError::Io)?;
        }
        let Some(current) = self.current.as_mut() else {
            return Err(AppendError::Io(io::Error::other("no open segment")));
        };
        let next_stream = current.streams.len() as u32;
        let stream = match current.streams.get(&(key.clone(), emf)) {
            Some(&id) => id,
            None => {
                format::write_stream(&mut self.pending, next_stream, key, emf);
                current.streams.insert((key.clone(), emf), next_stream);
                next_stream
            }
        };
        format::write_event(&mut self.pending, stream, event);
        let id = current.id;
        self.shared.state().by_id.entry(id).or_default().outstanding += 1;
        Ok(id)
    }

    /// Writes what was appended since the last commit (and fsyncs it with
    /// `fsync`). On failure the file is cut back to what was committed and
    /// the records stay pending for the next try.
    pub fn commit(&mut self) -> io::Result<()> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = current.file.write_all(&self.pending).and_then(|()| {
            if self.config.fsync {
                current.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            self.shared
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
            // A partial write would leave half a record before the next
            // whole one; the reader would stop there and lose the rest.
            let _ = current.file.set_len(current.committed);
            return Err(e);
        }
        let added = self.pending.len() as u64;
        current.committed += added;
        self.pending.clear();
        let mut state = self.shared.state();
        state.bytes += added;
        state.by_id.entry(current.id).or_default().bytes += added;
        Ok(())
    }

    /// Commits and seals the open segment: it is deleted once its events
    /// are delivered. Called when it is full, when the spool is, and at
    /// shutdown.
    pub fn seal_current(&mut self) -> io::Result<()> {
        self.commit()?;
        if let Some(current) = self.current.take() {
            let mut state = self.shared.state();
            state.by_id.entry(current.id).or_default().sealed = true;
            self.shared.delete_if_done(&mut state, current.id);
        }
        Ok(())
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let id = self.next_id;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(&self.config.dir, id))?;
        if self.config.fsync {
            // The new name must survive a power loss too.
            File::open(&self.config.dir)?.sync_all()?;
        }
        self.next_id += 1;
        self.shared
            .state()
            .by_id
            .insert(id, SegmentState::default());
        self.pending.extend_from_slice(format::MAGIC);
        self.current = Some(Current {
            id,
            file,
            committed: 0,
            streams: HashMap::new(),
        });
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The number in a segment's file name; `None` for any other file.
fn segment_id(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `(segment, count)` for the spooled events among `events`, for
/// [`SpoolShared::release`].
pub fn segment_counts(events: &[LogEvent]) -> Vec<(u64, u64)> {
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for id in events.iter().filter_map(|e| e.segment) {
        match counts.iter_mut().find(|(seen, _)| *seen == id) {
            Some((_, n)) => *n += 1,
            None => counts.push((id, 1)),
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_size: 1 << 20,
            segment_size: 64 << 10,
            fsync: true,
        }
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey {
            group: "/ecs/g".into(),
            stream: stream.into(),
        }
    }

    fn event(n: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: n as i64,
            message: format!("event {n:05} {}", "x".repeat(1000)),
            segment: None,
        }
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".seg"))
            .collect();
        names.sort();
        names
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn segments_rotate_and_go_once_delivered() {
        let dir = temp_dir("rotate");
        let mut spool = Spool::open(config(&dir)).unwrap();
        let shared = spool.shared();
        let mut marks = Vec::new();
        for n in 0..150 {
            let mut e = event(n);
            e.segment = Some(spool.append(&key("a"), false, &e).unwrap());
            marks.push(e);
        }
        spool.commit().unwrap();
        // 1,033 bytes a record, 64 KiB segments: 63 events each.
        assert_eq!(segments(&dir).len(), 3);
        let counts = segment_counts(&marks);
        assert_eq!(counts, [(1, 63), (2, 63), (3, 24)]);
        // The open segment stays while it is appended to.
        shared.release(&counts);
        assert_eq!(segments(&dir), ["00000000000000000003.seg"]);
        spool.seal_current().unwrap();
        assert!(segments(&dir).is_empty());
        assert_eq!(shared.usage(), (0, 0));
        assert_eq!(shared.counters.segments_deleted.load(Ordering::Relaxed), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_was_committed_is_replayed_after_a_crash_and_a_torn_tail_is_cut() {
        let dir = temp_dir("replay");
        {
            let mut spool = Spool::open(config(&dir)).unwrap();
            for n in 0..10 {
                spool.append(&key("a"), false, &event(n)).unwrap();
                spool.append(&key("s"), true, &event(100 + n)).unwrap();
            }
            spool.commit().unwrap();
            // Appended, never committed: not acked, not on disk.
            spool.append(&key("a"), false, &event(99)).unwrap();
            // The process dies here: no seal, no release.
        }
        let path = dir.join("00000000000000000001.seg");
        let whole = std::fs::metadata(&path).unwrap().len();
        // A torn write: part of an event record (which starts after the
        // 8-byte header and the 25-byte stream record) after the last whole one.
        let mut torn = std::fs::read(&path).unwrap();
        let tail = torn[33..300].to_vec();
        torn.extend_from_slice(&tail);
        std::fs::write(&path, &torn).unwrap();

        let mut spool = Spool::open(config(&dir)).unwrap();
        let shared = spool.shared();
        assert_eq!(shared.usage(), (torn.len() as u64, 1));
        let (id, events) = spool.replay_next().unwrap();
        assert_eq!(id, 1);
        assert_eq!(events.len(), 20);
        assert_eq!(events[0].message, event(0).message);
        assert_eq!((events[1].key.stream.as_str(), events[1].emf), ("s", true));
        assert_eq!(events[19].timestamp_ms, 109);
        assert!(spool.replay_next().is_none());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(shared.counters.damaged_segments.load(Ordering::Relaxed), 1);
        assert_eq!(
            shared.counters.truncated_bytes.load(Ordering::Relaxed),
            torn.len() as u64 - whole
        );
        // New events go to a new segment; the replayed one goes when its
        // events are delivered.
        assert_eq!(spool.append(&key("a"), false, &event(5)).unwrap(), 2);
        shared.release(&[(1, 20)]);
        assert_eq!(segments(&dir), ["00000000000000000002.seg"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_spool_refuses_until_segments_are_freed() {
        let dir = temp_dir("full");
        let mut spool = Spool::open(SpoolConfig {
            max_size: 128 << 10,
            ..config(&dir)
        })
        .unwrap();
        let shared = spool.shared();
        let mut appended = 0;
        let full = loop {
            match spool.append(&key("a"), false, &event(appended)) {
                Ok(_) => appended += 1,
                Err(e) => break e,
            }
            spool.commit().unwrap();
        };
        assert!(matches!(full, AppendError::Full), "{full:?}");
        assert_eq!(appended, 126);
        assert!(shared.usage().0 <= 128 << 10);
        // Both segments are sealed now; delivering the first makes room.
        shared.release(&[(1, 63)]);
        assert!(spool.append(&key("a"), false, &event(0)).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_process_per_directory() {
        let dir = temp_dir("lock");
        let _first = Spool::open(config(&dir)).unwrap();
        let second = Spool::open(config(&dir)).err().unwrap();
        assert!(
            second.to_string().contains("in use by another process"),
            "{second}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_segment_names_are_segments() {
        assert_eq!(segment_id("00000000000000000042.seg"), Some(42));
        assert_eq!(segment_id("42.seg"), None);
        assert_eq!(segment_id("0000000000000000004x.seg"), None);
        assert_eq!(segment_id("00000000000000000042.corrupt"), None);
        assert_eq!(segment_id("lock"), None);
    }
}
