//! A tail input's `DB` while it runs: each delivery's offsets, saved once
//! the pipeline accepts the delivery.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use sluice_firelens::Event;
use tokio::sync::oneshot;

use super::db::{Position, TailDb};
use super::file::Tailed;
use crate::input_links::InputLinks;

/// The `DB` of a running tail input, and the offsets waiting for their
/// lines to be accepted.
pub(super) struct Offsets {
    db: TailDb,
    /// In the order sent, so in the order the stage accepts them.
    waiting: VecDeque<(oneshot::Receiver<()>, i64, Position)>,
    /// Whether the last write to the `DB` failed (logged once, until one
    /// succeeds again).
    failing: bool,
}

impl Offsets {
    pub(super) fn new(db: TailDb) -> Offsets {
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
    pub(super) fn resume(&mut self, tailed: &mut Tailed, path: &Path) {
        let resumed = tailed.resume(&self.db, path);
        if self.check("resume", resumed) == Some(true) {
            tracing::info!(path = %path.display(), offset = tailed.offset, "[INPUT] tail: going on from the DB's offset");
        }
    }

    /// `old`, followed until now at `path`, was rotated: its row takes
    /// the name the file has now (`app.log.1`), which the kernel keeps for
    /// the open file, as Fluent Bit reads it from `/proc/self/fd`. With
    /// `db.compare_filename`, a restart during `Rotate_Wait` then finds the
    /// row under the name the globs find the file by.
    pub(super) fn renamed(&mut self, old: &Tailed, path: &Path) {
        let Some(row) = old.row else {
            return;
        };
        let fd = std::os::fd::AsRawFd::as_raw_fd(&old.file);
        let Ok(now) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
            return;
        };
        // A file removed (not renamed) keeps its old name, marked.
        let Some(name) = now.to_str().filter(|n| !n.ends_with(" (deleted)")) else {
            return;
        };
        if now != path {
            let renamed = self.db.rename(row, name);
            self.check("rename", renamed);
        }
    }

    /// A file read to its end and let go: its row goes.
    pub(super) fn let_go(&mut self, row: Option<i64>) {
        if let Some(row) = row {
            let deleted = self.db.delete(row);
            self.check("delete", deleted);
        }
    }

    /// Rows of files not followed now (gone while Sluice was not running).
    pub(super) fn forget_all_but(&mut self, files: &HashMap<PathBuf, Tailed>) {
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
    pub(super) async fn deliver(
        &mut self,
        events: Vec<Event>,
        tailed: &Tailed,
        links: &InputLinks,
    ) -> bool {
        let Some(accepted) = links.deliver_with_ack(events).await else {
            return false;
        };
        if let Some(row) = tailed.row {
            self.waiting.push_back((accepted, row, tailed.position()));
        }
        true
    }

    /// Saves the offsets whose lines were accepted since the last look.
    pub(super) fn save_accepted(&mut self) {
        while let Some((accepted, _, _)) = self.waiting.front_mut() {
            match accepted.try_recv() {
                Ok(()) => {
                    if let Some((_, row, position)) = self.waiting.pop_front() {
                        let saved = self.db.save(row, position);
                        self.check("save", saved);
                    }
                }
                Err(oneshot::error::TryRecvError::Empty) => return,
                // Dropped, not accepted: the stage stopped without it.
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.waiting.pop_front();
                }
            }
        }
    }

    /// At the end: waits for every delivery, saving each accepted one's
    /// offset.
    pub(super) async fn save_when_accepted(&mut self) {
        while let Some((accepted, row, position)) = self.waiting.pop_front() {
            if accepted.await.is_ok() {
                let saved = self.db.save(row, position);
                self.check("save", saved);
            }
        }
    }
}
