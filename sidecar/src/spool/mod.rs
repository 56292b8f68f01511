//! The on-disk spool (`[spool] dir`): a write-ahead journal of every event
//! the CloudWatch output has accepted, so that an acked event survives a
//! crash, a kill -9 or a power loss (with `fsync = "batch"`).
//!
//! - Events are appended, rendered and redacted exactly as they will go to
//!   PutLogEvents, to numbered segment files (`00000000000000000001.seg`),
//!   with a checksum per record (format.rs). Nothing unredacted touches
//!   the disk.
//! - The output stage appends a delivery's events, then [`Spool::commit`]s
//!   (one write, and with `fsync = "batch"` one fsync when a client waits
//!   for an ack; otherwise within the next tick), and only then accepts the
//!   delivery, which acks its chunk.
//! - Every event keeps its place in the spool ([`SpoolMark`]). When
//!   CloudWatch has taken (or refused for good) a batch, the shipper
//!   [`SpoolShared::release`]s its events: a segment that is sealed (no
//!   longer written) with nothing outstanding is deleted; otherwise the
//!   delivered events are listed in the segment's `.done` file.
//! - On start, the segments left by an earlier run are read back, cut at
//!   the first damaged record (a torn write), and their events not listed
//!   as done are delivered before anything new. So after a kill -9 only the
//!   batches in flight at that moment can be sent twice.
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

pub use crate::event::SpoolMark;
use crate::event::{EventRef, StreamKey};

/// `[spool]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// The most bytes all segments may take together.
    pub max_size: u64,
    /// A segment is sealed and a new one started past this size.
    pub segment_size: u64,
    /// fsync before every ack (and within a tick for frames that ask for
    /// none); otherwise the kernel writes back when it likes, which
    /// survives a crash of Sluice but not of the machine.
    pub fsync: bool,
}

/// `[spool]`'s sizes and fsync, which apply wherever the directory comes
/// from (`spool.dir`, or a FireLens configuration's `storage.path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpoolLimits {
    pub max_size: u64,
    pub segment_size: u64,
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
    /// `state.bytes`, readable without the lock (the append path reads it
    /// for every event).
    bytes: AtomicU64,
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
    /// Events committed and not yet released. The open segment's events
    /// are added at each commit, and a batch can be delivered before its
    /// events are committed, so it can be below zero until the segment is
    /// sealed (after its last commit); from then on it is exact.
    outstanding: i64,
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

    /// CloudWatch has taken (or refused for good) these events: each
    /// segment with the ordinals of its events. Deletes the segments this
    /// finishes, and notes the rest in their `.done` files.
    pub fn release(&self, done: &[(u64, Vec<u32>)]) {
        let mut state = self.state();
        for (id, ordinals) in done {
            if let Some(segment) = state.by_id.get_mut(id) {
                segment.outstanding -= ordinals.len() as i64;
            }
            if !self.delete_if_done(&mut state, *id) && state.by_id.contains_key(id) {
                self.note_done(*id, ordinals);
            }
        }
    }

    /// Appends delivered ordinals to the segment's `.done` file. Not
    /// fsynced: a note lost in a power cut only means those events are
    /// sent twice.
    fn note_done(&self, id: u64, ordinals: &[u32]) {
        let mut bytes = Vec::with_capacity(8 + 4 * ordinals.len());
        format::write_done(&mut bytes, ordinals);
        let path = done_path(&self.dir, id);
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot note delivered events; a restart would send them again");
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

    /// Deletes the segment (and its `.done` file) if it is sealed and
    /// nothing in it is outstanding; says whether it did.
    fn delete_if_done(&self, state: &mut Segments, id: u64) -> bool {
        let done = state
            .by_id
            .get(&id)
            .is_some_and(|s| s.sealed && s.outstanding <= 0 && !s.awaiting_replay);
        if !done {
            return false;
        }
        // The notes first: a segment left without them is sent again
        // (duplicates); notes left without their segment are just removed
        // at the next start.
        let _ = std::fs::remove_file(done_path(&self.dir, id));
        let path = self.segment_path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                // Kept in the books: its bytes still count against
                // max_size, and a restart replays it (duplicates, never loss).
                tracing::error!(path = %path.display(), error = %e, "cannot delete a delivered spool segment");
                return false;
            }
        }
        if let Some(segment) = state.by_id.remove(&id) {
            state.bytes = state.bytes.saturating_sub(segment.bytes);
            self.bytes.store(state.bytes, Ordering::Relaxed);
        }
        self.counters
            .segments_deleted
            .fetch_add(1, Ordering::Relaxed);
        self.freed.notify_waiters();
        true
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
    /// Bytes written to the file.
    committed: u64,
    /// Events appended: the next one's ordinal.
    events: u32,
    /// The streams named in this segment so far, with their ids as a log
    /// stream (`[0]`) and as an EMF stream (`[1]`); keyed by the stream
    /// alone so that a lookup needs no copy.
    streams: HashMap<StreamKey, [Option<u32>; 2]>,
    /// Ids handed out in this segment.
    stream_ids: u32,
}

/// The writing side of the spool, owned by the output stage.
pub struct Spool {
    config: SpoolConfig,
    shared: Arc<SpoolShared>,
    current: Option<Current>,
    next_id: u64,
    /// Records appended and not yet committed, and how many events.
    pending: Vec<u8>,
    pending_events: i64,
    /// Written without an fsync since the last one.
    unsynced: bool,
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
        let mut notes = Vec::new();
        for entry in std::fs::read_dir(&config.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| numbered(n, "done")) {
                notes.push(id);
            }
            if let Some(id) = name.to_str().and_then(|n| numbered(n, "seg")) {
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
        for id in notes {
            if !found.contains_key(&id) {
                // Its segment was deleted just before a crash.
                let _ = std::fs::remove_file(done_path(&config.dir, id));
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
            bytes: AtomicU64::new(bytes),
            freed: Notify::new(),
            counters: SpoolCounters::default(),
        });
        Ok(Spool {
            config,
            shared,
            current: None,
            next_id,
            pending: Vec::new(),
            pending_events: 0,
            unsynced: false,
            to_replay,
            _lock: lock,
        })
    }

    pub fn shared(&self) -> Arc<SpoolShared> {
        self.shared.clone()
    }

    /// The next segment an earlier run left, with its intact events not yet
    /// delivered; a damaged tail is cut off the file first. The events
    /// count as outstanding in that segment from now on: the caller sends
    /// them.
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
            let done = std::fs::read(done_path(&self.config.dir, id))
                .map(|bytes| format::decode_done(&bytes))
                .unwrap_or_default();
            let mut events = decoded.events;
            events.retain(|e| !done.contains(&e.ordinal));
            self.shared
                .counters
                .replayed_events
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            let mut state = self.shared.state();
            if let Some(segment) = state.by_id.get_mut(&id) {
                segment.awaiting_replay = false;
                segment.outstanding = events.len() as i64;
                let was = std::mem::replace(&mut segment.bytes, decoded.intact as u64);
                state.bytes = state.bytes - was + decoded.intact as u64;
                self.shared.bytes.store(state.bytes, Ordering::Relaxed);
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

    /// Appends one event for `key`'s stream; returns its place. The
    /// event is durable after the next successful [`Spool::commit`].
    pub fn append(
        &mut self,
        key: &StreamKey,
        emf: bool,
        event: EventRef<'_>,
    ) -> Result<SpoolMark, AppendError> {
        // What this record adds at most (a stream record, the event record).
        let size = (2 * format::RECORD_HEADER
            + 20
            + key.group().len()
            + key.stream().len()
            + event.message.escaped().len()) as u64;
        if let Some(current) = &self.current {
            let written = current.committed + self.pending.len() as u64;
            if written > format::MAGIC.len() as u64 && written + size > self.config.segment_size {
                self.seal_current().map_err(AppendError::Io)?;
            }
        }
        let used = self.shared.bytes.load(Ordering::Relaxed) + self.pending.len() as u64;
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
        let known = current
            .streams
            .get(key)
            .and_then(|ids| ids[usize::from(emf)]);
        let stream = match known {
            Some(id) => id,
            None => {
                let id = current.stream_ids;
                current.stream_ids += 1;
                format::write_stream(&mut self.pending, id, key, emf);
                current.streams.entry(key.clone()).or_default()[usize::from(emf)] = Some(id);
                id
            }
        };
        format::write_event(&mut self.pending, stream, event);
        let mark = SpoolMark {
            segment: current.id,
            ordinal: current.events,
        };
        current.events += 1;
        self.pending_events += 1;
        Ok(mark)
    }

    /// Whether a commit has nothing to do: nothing appended since the last
    /// one, and nothing written that an fsync still owes.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty() && !(self.unsynced && self.config.fsync)
    }

    /// Writes what was appended since the last commit; with `sync` (and
    /// `spool.fsync`), fsyncs everything written so far. On a failed write
    /// the file is cut back to what was committed and the records stay
    /// pending for the next try.
    pub fn commit(&mut self, sync: bool) -> io::Result<()> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        let sync = sync && self.config.fsync;
        if self.pending.is_empty() {
            if sync && self.unsynced {
                self.sync_current()?;
            }
            return Ok(());
        }
        let written = current.file.write_all(&self.pending).and_then(|()| {
            if sync {
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
        // Earlier writes are synced with this one (fdatasync covers the file).
        self.unsynced = !sync;
        let added = self.pending.len() as u64;
        current.committed += added;
        self.pending.clear();
        let mut state = self.shared.state();
        state.bytes += added;
        self.shared.bytes.store(state.bytes, Ordering::Relaxed);
        let segment = state.by_id.entry(current.id).or_default();
        segment.bytes += added;
        segment.outstanding += std::mem::take(&mut self.pending_events);
        Ok(())
    }

    fn sync_current(&mut self) -> io::Result<()> {
        if let Some(current) = &self.current {
            if let Err(e) = current.file.sync_data() {
                self.shared
                    .counters
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        self.unsynced = false;
        Ok(())
    }

    /// Commits (fsynced) and seals the open segment: it is deleted once
    /// its events are delivered. Called when it is full, when the spool
    /// is, and at shutdown.
    pub fn seal_current(&mut self) -> io::Result<()> {
        self.commit(true)?;
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
        self.next_id += 1;
        if self.config.fsync {
            // The new name must survive a power loss too. If the directory
            // cannot be synced, the segment is still used: its records are
            // synced, and only a power loss could lose its name.
            if let Err(e) = File::open(&self.config.dir).and_then(|d| d.sync_all()) {
                self.shared
                    .counters
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cannot fsync the spool directory");
            }
        }
        self.shared
            .state()
            .by_id
            .insert(id, SegmentState::default());
        self.pending.extend_from_slice(format::MAGIC);
        self.current = Some(Current {
            id,
            file,
            committed: 0,
            events: 0,
            streams: HashMap::new(),
            stream_ids: 0,
        });
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn done_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.done"))
}

/// The number in a segment's (`.seg`) or notes' (`.done`) file name, as
/// `extension` asks; `None` for any other file.
fn numbered(name: &str, extension: &str) -> Option<u64> {
    let digits = name.strip_suffix(extension)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where events are spooled, by segment, for [`SpoolShared::release`].
pub fn marks_by_segment(marks: impl IntoIterator<Item = SpoolMark>) -> Vec<(u64, Vec<u32>)> {
    let mut by_segment: Vec<(u64, Vec<u32>)> = Vec::new();
    for mark in marks {
        match by_segment.iter_mut().find(|(id, _)| *id == mark.segment) {
            Some((_, ordinals)) => ordinals.push(mark.ordinal),
            None => by_segment.push((mark.segment, vec![mark.ordinal])),
        }
    }
    by_segment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{LogEvent, Message};

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_size: 1 << 20,
            segment_size: 64 << 10,
            fsync: true,
        }
    }

    fn key(stream: &str) -> StreamKey {
        StreamKey::new("/ecs/g".into(), stream.into())
    }

    fn event(n: usize) -> LogEvent {
        LogEvent {
            timestamp_ms: n as i64,
            message: Message::new(&format!("event {n:05} {}", "x".repeat(1000))),
            spool: None,
        }
    }

    /// The spool's files but its lock.
    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "lock")
            .collect();
        names.sort();
        names
    }

    /// A directory of the test's own, removed when dropped.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("sluice-spool-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn segments_rotate_and_go_once_delivered() {
        let tmp = temp_dir("rotate");
        let dir = tmp.path();
        let mut spool = Spool::open(config(dir)).unwrap();
        let shared = spool.shared();
        let mut marks = Vec::new();
        for n in 0..150 {
            marks.push(spool.append(&key("a"), false, event(n).view()).unwrap());
        }
        spool.commit(true).unwrap();
        // 1,033 bytes a record, 64 KiB segments: 63 events each.
        assert_eq!(files(dir).len(), 3);
        let by_segment = marks_by_segment(marks);
        let counts: Vec<(u64, usize)> = by_segment.iter().map(|(id, o)| (*id, o.len())).collect();
        assert_eq!(counts, [(1, 63), (2, 63), (3, 24)]);
        assert_eq!(by_segment[2].1, (0..24).collect::<Vec<u32>>());
        // The open segment stays while it is appended to, with a note of
        // what was delivered.
        shared.release(&by_segment);
        assert_eq!(
            files(dir),
            ["00000000000000000003.done", "00000000000000000003.seg"]
        );
        spool.seal_current().unwrap();
        assert!(files(dir).is_empty());
        assert_eq!(shared.usage(), (0, 0));
        assert_eq!(shared.counters.segments_deleted.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn what_was_committed_is_replayed_after_a_crash_and_a_torn_tail_is_cut() {
        let tmp = temp_dir("replay");
        let dir = tmp.path();
        {
            let mut spool = Spool::open(config(dir)).unwrap();
            for n in 0..10 {
                spool.append(&key("a"), false, event(n).view()).unwrap();
                spool
                    .append(&key("s"), true, event(100 + n).view())
                    .unwrap();
            }
            spool.commit(true).unwrap();
            // CloudWatch has the first two of each stream (ordinals 0-3).
            spool.shared().release(&[(1, vec![0, 2]), (1, vec![1, 3])]);
            // Appended, never committed: not acked, not on disk.
            spool.append(&key("a"), false, event(99).view()).unwrap();
            // The process dies here: no seal, no more releases.
        }
        let path = dir.join("00000000000000000001.seg");
        let whole = std::fs::metadata(&path).unwrap().len();
        // A torn write: part of an event record (which starts after the
        // 8-byte header and the 25-byte stream record) after the last whole one.
        let mut torn = std::fs::read(&path).unwrap();
        let tail = torn[33..300].to_vec();
        torn.extend_from_slice(&tail);
        std::fs::write(&path, &torn).unwrap();

        let mut spool = Spool::open(config(dir)).unwrap();
        let shared = spool.shared();
        assert_eq!(shared.usage(), (torn.len() as u64, 1));
        let (id, events) = spool.replay_next().unwrap();
        assert_eq!(id, 1);
        // 20 committed, 4 of them delivered already.
        assert_eq!(events.len(), 16);
        assert_eq!((events[0].ordinal, events[15].ordinal), (4, 19));
        assert_eq!(events[0].message, event(2).message);
        assert_eq!((events[1].key.stream(), events[1].emf), ("s", true));
        assert_eq!(events[15].timestamp_ms, 109);
        assert!(spool.replay_next().is_none());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(shared.counters.damaged_segments.load(Ordering::Relaxed), 1);
        assert_eq!(
            shared.counters.truncated_bytes.load(Ordering::Relaxed),
            torn.len() as u64 - whole
        );
        // New events go to a new segment; the replayed one goes when its
        // events are delivered.
        let mark = spool.append(&key("a"), false, event(5).view()).unwrap();
        assert_eq!(
            mark,
            SpoolMark {
                segment: 2,
                ordinal: 0
            }
        );
        shared.release(&[(1, (4..20).collect())]);
        assert_eq!(files(dir), ["00000000000000000002.seg"]);
    }

    #[test]
    fn a_full_spool_refuses_until_segments_are_freed() {
        let tmp = temp_dir("full");
        let dir = tmp.path();
        let mut spool = Spool::open(SpoolConfig {
            max_size: 128 << 10,
            ..config(dir)
        })
        .unwrap();
        let shared = spool.shared();
        let mut appended = 0;
        let full = loop {
            match spool.append(&key("a"), false, event(appended).view()) {
                Ok(_) => appended += 1,
                Err(e) => break e,
            }
            spool.commit(true).unwrap();
        };
        assert!(matches!(full, AppendError::Full), "{full:?}");
        assert_eq!(appended, 126);
        assert!(shared.usage().0 <= 128 << 10);
        // Both segments are sealed now; delivering the first makes room.
        shared.release(&[(1, (0..63).collect())]);
        assert!(spool.append(&key("a"), false, event(0).view()).is_ok());
    }

    /// What the output stage's idle wait asks: a commit owes nothing once
    /// what was appended is written and, with `fsync`, synced.
    #[test]
    fn settled_once_appends_are_written_and_synced() {
        let tmp = temp_dir("settled");
        let dir = tmp.path();
        let mut spool = Spool::open(config(dir)).unwrap();
        assert!(spool.is_settled());
        spool.append(&key("a"), false, event(0).view()).unwrap();
        assert!(!spool.is_settled());
        spool.commit(false).unwrap();
        assert!(!spool.is_settled(), "written, but the fsync is owed");
        spool.commit(true).unwrap();
        assert!(spool.is_settled());
        drop(spool);

        let mut spool = Spool::open(SpoolConfig {
            fsync: false,
            ..config(dir)
        })
        .unwrap();
        spool.append(&key("a"), false, event(1).view()).unwrap();
        spool.commit(false).unwrap();
        assert!(spool.is_settled(), "without fsync, written is enough");
        drop(spool);
    }

    #[test]
    fn one_process_per_directory() {
        let tmp = temp_dir("lock");
        let dir = tmp.path();
        let _first = Spool::open(config(dir)).unwrap();
        let second = Spool::open(config(dir)).err().unwrap();
        assert!(
            second.to_string().contains("in use by another process"),
            "{second}"
        );
    }

    #[test]
    fn only_segment_names_are_segments() {
        assert_eq!(numbered("00000000000000000042.seg", "seg"), Some(42));
        assert_eq!(numbered("00000000000000000042.done", "done"), Some(42));
        assert_eq!(numbered("00000000000000000042.done", "seg"), None);
        assert_eq!(numbered("42.seg", "seg"), None);
        assert_eq!(numbered("0000000000000000004x.seg", "seg"), None);
        assert_eq!(numbered("00000000000000000042.corrupt", "seg"), None);
        assert_eq!(numbered("00000000000000000042seg", "seg"), None);
        assert_eq!(numbered("lock", "seg"), None);
    }
}
