//! `[INPUT] tail`'s `DB`: where each followed file was read to, kept
//! across restarts in Fluent Bit's own SQLite table (`in_tail_files`, as
//! v5.1.1's `plugins/in_tail/tail_sql.h` declares it). A router that
//! restarts goes on from there instead of from the files' ends (losing
//! what was written meanwhile) or heads (sending it all again), and Sluice
//! and Fluent Bit each take over the other's offsets.
//!
//! A row is a file by its inode (and its name with `db.compare_filename`):
//! the offset of the first byte not yet sent, and a marker of the bytes
//! before it (their XXH3 hash, at most 32 of them, as `tail_file.c`
//! computes it), which tells a file that still holds what was read from
//! one truncated and written again, or a new file on a reused inode.
//!
//! Fluent Bit saves an offset once its lines are read into its buffers;
//! Sluice once the pipeline has accepted them (after the spool, when there
//! is one), so that a crash loses none of them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

/// The most bytes before an offset that its marker hashes
/// (`FLB_TAIL_DB_OFFSET_MARKER_SIZE`).
const MARKER_WINDOW: u64 = 32;

const CREATE_FILES: &str = "CREATE TABLE IF NOT EXISTS in_tail_files (\
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, offset INTEGER, inode INTEGER, \
    created INTEGER, rotated INTEGER DEFAULT 0, offset_marker INTEGER DEFAULT 0, \
    offset_marker_size INTEGER DEFAULT 0);";

/// Columns a table made by an older Fluent Bit lacks.
const MIGRATIONS: [&str; 2] = [
    "ALTER TABLE in_tail_files ADD COLUMN offset_marker INTEGER DEFAULT 0;",
    "ALTER TABLE in_tail_files ADD COLUMN offset_marker_size INTEGER DEFAULT 0;",
];

/// The `DB` options of one tail input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbOptions {
    /// `DB`: the database file, created when missing.
    pub path: PathBuf,
    /// `db.sync`: SQLite's `synchronous` (0 off, 1 normal, 2 full, 3 extra).
    pub sync: u8,
    /// `db.locking`: SQLite's exclusive locking mode.
    pub locking: bool,
    /// `db.journal_mode`, one of SQLite's, upper case.
    pub journal_mode: &'static str,
    /// `db.compare_filename`: a row is a file's only under its name too.
    pub compare_filename: bool,
}

impl DbOptions {
    /// Fluent Bit's defaults: `normal` sync, WAL journal, no exclusive lock.
    pub fn at(path: &str) -> DbOptions {
        DbOptions {
            path: PathBuf::from(path),
            sync: 1,
            locking: false,
            journal_mode: "WAL",
            compare_filename: false,
        }
    }

    /// `db.sync`'s value, named as Fluent Bit names them (any case).
    pub fn sync_level(value: &str) -> Result<u8, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(0),
            "normal" => Ok(1),
            "full" => Ok(2),
            "extra" => Ok(3),
            _ => Err(format!(
                "[INPUT] tail db.sync {value:?} is not one of extra, full, normal, off"
            )),
        }
    }

    /// `db.journal_mode`'s value: one of the modes Fluent Bit accepts.
    pub fn journal(value: &str) -> Result<&'static str, String> {
        const MODES: [&str; 6] = ["DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF"];
        let upper = value.trim().to_ascii_uppercase();
        MODES.into_iter().find(|m| *m == upper).ok_or_else(|| {
            format!(
                "[INPUT] tail db.journal_mode {value:?} is not one of {}",
                MODES.join(", ")
            )
        })
    }
}

/// Where a file was read to, and what the bytes before that were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    /// XXH3 of the `marker_size` bytes before `offset` (0 and 0 at 0).
    pub marker: u64,
    pub marker_size: u64,
}

impl Position {
    /// `offset` in `file`, with the marker of the bytes before it.
    pub fn of(file: &File, offset: u64) -> io::Result<Position> {
        let window = offset.min(MARKER_WINDOW);
        if window == 0 {
            return Ok(Position::default());
        }
        let mut bytes = [0u8; MARKER_WINDOW as usize];
        let bytes = &mut bytes[..window as usize];
        file.read_exact_at(bytes, offset - window)?;
        Ok(Position {
            offset,
            marker: xxhash_rust::xxh3::xxh3_64(bytes),
            marker_size: window,
        })
    }

    /// Whether `file` still holds what was read up to this position: it is
    /// that long, and the bytes before the offset are the ones marked (a
    /// position saved without a marker is taken as it is, as Fluent Bit
    /// takes it).
    pub fn still_in(&self, file: &File, len: u64) -> bool {
        if self.offset > len {
            return false;
        }
        if self.offset == 0 || self.marker_size == 0 {
            return true;
        }
        Position::of(file, self.offset).is_ok_and(|now| now == *self)
    }
}

/// A file's row: its id and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub id: i64,
    pub position: Position,
}

/// An open `DB`.
pub struct TailDb {
    conn: Connection,
    compare_filename: bool,
    path: PathBuf,
}

impl TailDb {
    /// Opens (or creates) the database and its table, with the options'
    /// pragmas, as `flb_tail_db_open` does.
    pub fn open(options: &DbOptions) -> Result<TailDb, String> {
        let failed = |e: rusqlite::Error| {
            let mut message = format!("[INPUT] tail DB {}: {e}", options.path.display());
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) {
                // SQLite writes the database and its journal beside it:
                // the directory must be the running user's to write.
                // SAFETY: geteuid has no preconditions.
                let uid = unsafe { libc::geteuid() };
                message.push_str(&format!(
                    " (Sluice runs as uid {uid}, which must be able to write its directory; in the image, /var/log/flb-storage is)"
                ));
            }
            message
        };
        let conn = Connection::open(&options.path).map_err(failed)?;
        conn.execute_batch(CREATE_FILES).map_err(failed)?;
        conn.execute_batch(&format!("PRAGMA synchronous={};", options.sync))
            .map_err(failed)?;
        if options.locking {
            conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE;")
                .map_err(failed)?;
        }
        // journal_mode answers with the mode it set: a query, not a batch.
        conn.query_row(
            &format!("PRAGMA journal_mode={};", options.journal_mode),
            [],
            |_| Ok(()),
        )
        .map_err(failed)?;
        for migration in MIGRATIONS {
            if let Err(e) = conn.execute_batch(migration) {
                if !e.to_string().contains("duplicate column name") {
                    return Err(failed(e));
                }
            }
        }
        Ok(TailDb {
            conn,
            compare_filename: options.compare_filename,
            path: options.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest row of `inode`. With `db.compare_filename`, a row of the
    /// inode under another name is a file gone since: it is deleted, and
    /// there is no row, as `flb_tail_db_file_set` decides.
    pub fn find(&self, inode: u64, name: &str) -> rusqlite::Result<Option<Row>> {
        let found = self
            .conn
            .query_row(
                "SELECT id, name, offset, offset_marker, offset_marker_size \
                 FROM in_tail_files WHERE inode=?1 ORDER BY id DESC LIMIT 1;",
                params![inode as i64],
                |row| {
                    let id: i64 = row.get(0)?;
                    let stored: Option<String> = row.get(1)?;
                    let offset: Option<i64> = row.get(2)?;
                    let marker: Option<i64> = row.get(3)?;
                    let marker_size: Option<i64> = row.get(4)?;
                    let position = Position {
                        offset: offset.unwrap_or(0).max(0) as u64,
                        marker: marker.unwrap_or(0) as u64,
                        marker_size: marker_size.unwrap_or(0).max(0) as u64,
                    };
                    Ok((Row { id, position }, stored))
                },
            )
            .optional()?;
        match found {
            Some((row, stored)) if self.compare_filename && stored.as_deref() != Some(name) => {
                self.delete(row.id)?;
                Ok(None)
            }
            Some((row, _)) => Ok(Some(row)),
            None => Ok(None),
        }
    }

    /// A new row for the file `name` with `inode`; its id.
    pub fn insert(&self, name: &str, inode: u64, position: Position) -> rusqlite::Result<i64> {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.conn.execute(
            "INSERT INTO in_tail_files \
             (name, offset, inode, created, offset_marker, offset_marker_size) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6);",
            params![
                name,
                position.offset as i64,
                inode as i64,
                created,
                position.marker as i64,
                position.marker_size as i64
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Saves the row's position. A row deleted meanwhile (its file let go)
    /// stays deleted.
    pub fn save(&self, id: i64, position: Position) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE in_tail_files SET offset=?1, offset_marker=?2, offset_marker_size=?3 \
             WHERE id=?4;",
            params![
                position.offset as i64,
                position.marker as i64,
                position.marker_size as i64,
                id
            ],
        )?;
        Ok(())
    }

    /// The row's file now has the name `name` (it was rotated), as
    /// `flb_tail_db_file_rotate` records it.
    pub fn rename(&self, id: i64, name: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE in_tail_files SET name=?1 WHERE id=?2;",
            params![name, id],
        )?;
        Ok(())
    }

    pub fn delete(&self, id: i64) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM in_tail_files WHERE id=?1;", params![id])?;
        Ok(())
    }

    /// Deletes the rows of inodes not in `followed` (files gone while the
    /// router was not running), as Fluent Bit does after its first scan;
    /// how many.
    pub fn keep_only(&self, followed: &[u64]) -> rusqlite::Result<usize> {
        let tx = self.conn.unchecked_transaction()?;
        let stale: Vec<i64> = {
            let mut rows = tx.prepare("SELECT id, inode FROM in_tail_files;")?;
            let all = rows.query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
            })?;
            let mut stale = Vec::new();
            for entry in all {
                let (id, inode) = entry?;
                if !inode.is_some_and(|i| followed.contains(&(i as u64))) {
                    stale.push(id);
                }
            }
            stale
        };
        for id in &stale {
            tx.execute("DELETE FROM in_tail_files WHERE id=?1;", params![id])?;
        }
        tx.commit()?;
        Ok(stale.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn options(dir: &Path) -> DbOptions {
        DbOptions::at(dir.join("tail.db").to_str().unwrap())
    }

    fn file_with(dir: &Path, name: &str, text: &[u8]) -> File {
        let path = dir.join(name);
        File::create(&path).unwrap().write_all(text).unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn options_are_read_as_fluent_bit_names_them() {
        assert_eq!(DbOptions::sync_level("Extra"), Ok(3));
        assert_eq!(DbOptions::sync_level("full"), Ok(2));
        assert_eq!(DbOptions::sync_level("NORMAL"), Ok(1));
        assert_eq!(DbOptions::sync_level("off"), Ok(0));
        assert_eq!(
            DbOptions::sync_level("sometimes"),
            Err("[INPUT] tail db.sync \"sometimes\" is not one of extra, full, normal, off".into())
        );
        assert_eq!(DbOptions::journal("wal"), Ok("WAL"));
        assert_eq!(DbOptions::journal("Truncate"), Ok("TRUNCATE"));
        assert_eq!(
            DbOptions::journal("wal; DROP TABLE in_tail_files"),
            Err("[INPUT] tail db.journal_mode \"wal; DROP TABLE in_tail_files\" is not one of DELETE, TRUNCATE, PERSIST, MEMORY, WAL, OFF".into())
        );
    }

    #[test]
    fn a_marker_is_the_xxh3_of_at_most_32_bytes_before_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"0123456789abcdefghijklmnopqrstuvwxyz\nshort\n";
        let file = file_with(dir.path(), "a.log", text);
        assert_eq!(Position::of(&file, 0).unwrap(), Position::default());
        assert_eq!(
            Position::of(&file, 5).unwrap(),
            Position {
                offset: 5,
                marker: xxhash_rust::xxh3::xxh3_64(b"01234"),
                marker_size: 5
            }
        );
        assert_eq!(
            Position::of(&file, 37).unwrap(),
            Position {
                offset: 37,
                marker: xxhash_rust::xxh3::xxh3_64(&text[5..37]),
                marker_size: 32
            }
        );
        // XXH3-64 itself, against the C reference's values (Python's
        // xxhash, which wraps it, as Fluent Bit's cfl does).
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b"01234"), 0x2774_a76a_01b1_60f2);
        assert_eq!(
            xxhash_rust::xxh3::xxh3_64(&text[..32]),
            0xe722_775a_6ab9_de58
        );
    }

    #[test]
    fn a_position_holds_only_while_the_file_holds_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = file_with(dir.path(), "a.log", b"first line\nsecond line\n");
        let at = Position::of(&file, 11).unwrap();
        assert!(at.still_in(&file, 23));
        assert!(!at.still_in(&file, 10), "shorter than the offset");
        let rewritten = file_with(dir.path(), "a.log", b"other line\nsecond line\n");
        assert!(
            !at.still_in(&rewritten, 23),
            "other bytes before the offset"
        );
        let unmarked = Position {
            offset: 11,
            ..Position::default()
        };
        assert!(unmarked.still_in(&rewritten, 23));
    }

    #[test]
    fn rows_are_found_by_inode_saved_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = TailDb::open(&options(dir.path())).unwrap();
        assert_eq!(db.find(42, "/logs/app.log").unwrap(), None);
        let at = Position {
            offset: 100,
            marker: u64::MAX - 1,
            marker_size: 32,
        };
        let id = db.insert("/logs/app.log", 42, at).unwrap();
        assert_eq!(
            db.find(42, "/logs/other.log").unwrap(),
            Some(Row { id, position: at })
        );
        let later = Position { offset: 250, ..at };
        db.save(id, later).unwrap();
        assert_eq!(
            db.find(42, "/logs/app.log").unwrap().unwrap().position,
            later
        );
        db.delete(id).unwrap();
        assert_eq!(db.find(42, "/logs/app.log").unwrap(), None);
        // A save after the delete does not bring the row back.
        db.save(id, at).unwrap();
        assert_eq!(db.find(42, "/logs/app.log").unwrap(), None);
    }

    #[test]
    fn with_compare_filename_a_row_under_another_name_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = TailDb::open(&DbOptions {
            compare_filename: true,
            ..options(dir.path())
        })
        .unwrap();
        let id = db.insert("/logs/old.log", 7, Position::default()).unwrap();
        assert_eq!(db.find(7, "/logs/new.log").unwrap(), None);
        let count: i64 = db
            .conn
            .query_row("SELECT count(*) FROM in_tail_files", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 0, "row {id} deleted");
        // Renamed as its file was (rotated), the row is the new name's.
        let id = db.insert("/logs/app.log", 8, Position::default()).unwrap();
        db.rename(id, "/logs/app.log.1").unwrap();
        assert_eq!(
            db.find(8, "/logs/app.log.1").unwrap().map(|r| r.id),
            Some(id)
        );
    }

    #[test]
    fn rows_of_files_no_longer_followed_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let db = TailDb::open(&options(dir.path())).unwrap();
        db.insert("/logs/a.log", 1, Position::default()).unwrap();
        let b = db.insert("/logs/b.log", 2, Position::default()).unwrap();
        db.insert("/logs/c.log", 3, Position::default()).unwrap();
        assert_eq!(db.keep_only(&[2, 9]).unwrap(), 2);
        assert_eq!(db.find(2, "/logs/b.log").unwrap().map(|r| r.id), Some(b));
        assert_eq!(db.find(1, "/logs/a.log").unwrap(), None);
        assert_eq!(db.find(3, "/logs/c.log").unwrap(), None);
    }

    #[test]
    fn a_table_fluent_bit_made_before_offset_markers_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tail.db");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE in_tail_files (id INTEGER PRIMARY KEY, name TEXT NOT NULL, \
                 offset INTEGER, inode INTEGER, created INTEGER, rotated INTEGER DEFAULT 0);\
                 INSERT INTO in_tail_files (name, offset, inode, created) VALUES ('/logs/app.log', 77, 5, 1);",
            )
            .unwrap();
        }
        let db = TailDb::open(&options(dir.path())).unwrap();
        assert_eq!(
            db.find(5, "/logs/app.log").unwrap().unwrap().position,
            Position {
                offset: 77,
                marker: 0,
                marker_size: 0
            }
        );
        // Opened again: the columns are there, nothing to migrate.
        drop(db);
        TailDb::open(&options(dir.path())).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_refused_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("tail.db");
        let error = TailDb::open(&DbOptions::at(path.to_str().unwrap()))
            .err()
            .unwrap();
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            error,
            format!(
                "[INPUT] tail DB {}: unable to open database file: {} (Sluice runs as uid {uid}, which must be able to write its directory; in the image, /var/log/flb-storage is)",
                path.display(),
                path.display()
            )
        );
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tail.db"), vec![b'x'; 4096]).unwrap();
        let error = TailDb::open(&options(dir.path())).err().unwrap();
        assert!(
            error.starts_with(&format!(
                "[INPUT] tail DB {}: ",
                dir.path().join("tail.db").display()
            )),
            "{error}"
        );
    }
}
