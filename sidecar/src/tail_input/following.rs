//! The files a tail input follows, and what it remembers of those it
//! does not (files left for their age, rotated files let go).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::db::Position;
use super::file::{read_file, Change, Tailed};
use super::offsets::Offsets;
use super::{Send, TailInput, READS_PER_POLL};

/// What a tail input follows, and what it remembers of the files it
/// does not.
pub(super) struct Following {
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
    released: VecDeque<((u64, u64), Position)>,
    offsets: Option<Offsets>,
    /// Paths `Tag_Regex` does not match, told once.
    untagged: HashSet<PathBuf>,
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
    pub(super) fn new(offsets: Option<Offsets>) -> Following {
        Following {
            files: HashMap::new(),
            aged: HashMap::new(),
            rotated: Vec::new(),
            released: Default::default(),
            offsets,
            untagged: HashSet::new(),
        }
    }

    /// With a `DB`: deletes the rows of files not followed now (gone while
    /// the router was not running).
    pub(super) fn forget_rows_of_others(&mut self) {
        if let Some(offsets) = &mut self.offsets {
            offsets.forget_all_but(&self.files);
        }
    }

    /// With a `DB`: saves the offsets of what the pipeline accepted.
    pub(super) fn save_accepted(&mut self) {
        if let Some(offsets) = &mut self.offsets {
            offsets.save_accepted();
        }
    }

    /// With a `DB`, at the end: saves each offset once its lines are
    /// accepted.
    pub(super) async fn save_when_accepted(&mut self) {
        if let Some(offsets) = &mut self.offsets {
            offsets.save_when_accepted().await;
        }
    }

    /// Reads and sends what every file holds now (with `stopping`, what
    /// they hold to their end); `false` when the pipeline is gone.
    pub(super) async fn read(&mut self, send: &Send<'_>, stopping: bool) -> bool {
        let now = tokio::time::Instant::now();
        // Rotated files first: what is written to them came before the
        // new files' lines.
        self.read_rotated(send, stopping, now).await
            && self.read_followed(send, stopping, now).await
    }

    /// Reads on the rotated files, and lets go of those read to their end
    /// once `Rotate_Wait` has passed.
    async fn read_rotated(
        &mut self,
        send: &Send<'_>,
        stopping: bool,
        now: tokio::time::Instant,
    ) -> bool {
        let Following {
            rotated,
            released,
            offsets,
            ..
        } = self;
        let mut kept = Vec::with_capacity(rotated.len());
        for mut old in std::mem::take(rotated) {
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
                if !send
                    .lines(offsets, &old.path, &mut old.tailed, lines, false)
                    .await
                {
                    return false;
                }
                if old.tailed.offset == at {
                    break;
                }
            }
            if unreadable || (expired && old.tailed.drained()) {
                // A message it was joining goes out with it.
                if !send
                    .lines(offsets, &old.path, &mut old.tailed, Vec::new(), true)
                    .await
                {
                    return false;
                }
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
        true
    }

    /// Reads the followed files. What a file holds is read at once (a
    /// file found with Read_from_Head, or one written fast), a share at a
    /// time so that the others get their turn, and each share waits for
    /// room in the memory budget.
    async fn read_followed(
        &mut self,
        send: &Send<'_>,
        stopping: bool,
        now: tokio::time::Instant,
    ) -> bool {
        let input = send.input;
        let Following {
            files,
            rotated,
            offsets,
            ..
        } = self;
        let successor_from_end = !input.read_from_head && !input.newly_from_head;
        let mut gone = Vec::new();
        for (path, tailed) in files.iter_mut() {
            for _ in 0..READS_PER_POLL {
                let at = (tailed.id, tailed.offset);
                let (lines, mut change) = read_file(path, tailed, stopping, successor_from_end);
                // The last lines of a file let go (or of all, when
                // stopping) finish the message they were joining.
                let last = stopping || matches!(change, Change::Gone);
                let sent = match &mut change {
                    Change::Rotated(old) => send.lines(offsets, path, old, lines, false).await,
                    _ => send.lines(offsets, path, tailed, lines, last).await,
                };
                if !sent {
                    return false;
                }
                match change {
                    Change::Rotated(old) => {
                        if let Some(offsets) = offsets {
                            offsets.renamed(&old, path);
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
        true
    }

    /// Starts following the files the globs name that are not followed
    /// yet, but those older than `Ignore_Older`.
    pub(super) fn look_for_files(&mut self, input: &TailInput, at_start: bool) {
        let now = std::time::SystemTime::now();
        let found = input.files();
        // What is remembered of paths the globs no longer find goes.
        let still: HashSet<&PathBuf> = found.iter().collect();
        self.aged.retain(|path, _| still.contains(path));
        self.untagged.retain(|path| still.contains(path));
        for path in found {
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
            let Some(tag) = input.tag_for(&path) else {
                // Told once per file, not at every look.
                if self.untagged.insert(path.clone()) {
                    tracing::warn!(path = %path.display(), "[INPUT] tail: the path does not match Tag_Regex; not followed");
                }
                continue;
            };
            match Tailed::open(&path, from_end, tag) {
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
    pub(super) fn let_go_of_older(&mut self, input: &TailInput) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail_input::tests::{dir, tail, text};
    use std::io::Write;
    use std::time::Duration;

    /// A file found after the start is read from its head, or with
    /// `Read_Newly_Discovered_Files_From_Head Off` from its end; a file
    /// found at the start from its end either way (no `Read_from_Head`).
    #[test]
    fn newly_discovered_files_from_their_head_or_end() {
        // "earlier\n" is 8 bytes: its end.
        for (newly, expected) in [("on", 0), ("off", 8)] {
            let tmp = dir();
            let d = tmp.path();
            std::fs::write(d.join("first.log"), "before\n").unwrap();
            let input = tail(&[
                ("Path", d.join("*.log").to_str().unwrap()),
                ("Read_Newly_Discovered_Files_From_Head", newly),
            ]);
            let mut following = Following::new(None);
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

    /// What is remembered of a file left for its age goes with the file.
    #[test]
    fn an_old_file_is_forgotten_once_gone() {
        let tmp = dir();
        let path = tmp.path().join("old.log");
        std::fs::write(&path, "from last week\n").unwrap();
        let week_ago = std::time::SystemTime::now() - Duration::from_secs(7 * 86_400);
        File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(week_ago)
            .unwrap();
        let input = tail(&[
            ("Path", tmp.path().join("*.log").to_str().unwrap()),
            ("Ignore_Older", "1d"),
        ]);
        let mut following = Following::new(None);
        following.look_for_files(&input, true);
        assert_eq!(following.aged.len(), 1);
        std::fs::remove_file(&path).unwrap();
        following.look_for_files(&input, false);
        assert!(following.aged.is_empty());
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
        let append = |text: &[u8]| {
            let mut file = File::options().append(true).open(&path).unwrap();
            file.write_all(text).unwrap()
        };
        age_to(two_days_ago);
        let input = tail(&[
            ("Path", d.join("*.log").to_str().unwrap()),
            ("Read_from_Head", "on"),
            ("Ignore_Older", "1d"),
            ("Ignore_Active_Older_Files", "on"),
        ]);
        let mut following = Following::new(None);
        following.look_for_files(&input, true);
        assert!(following.files.is_empty());
        let inode = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(following.aged[&path], (inode, 15));

        append(b"today\nhalf a");
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
        append(b" line\n");
        following.look_for_files(&input, false);
        let tailed = following.files.get_mut(&path).expect("followed again");
        assert_eq!(text(tailed.lines(false).unwrap()), ["half a line"]);
    }
}
