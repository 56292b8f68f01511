//! Where rendered events go: stdout (one stream of NDJSON) or files (one
//! NDJSON file per log group and stream, for local use and debugging).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use crate::streams::{file_component, StreamKey};

/// Files kept open at once; beyond this all are flushed and closed.
const MAX_OPEN_FILES: usize = 64;

pub enum Sink {
    Stdout(BufWriter<io::Stdout>),
    Files(FileSink),
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink::Stdout(BufWriter::with_capacity(1 << 16, io::stdout()))
    }

    /// Appends one line (with its newline) for the stream `key` gives;
    /// only sinks that keep streams apart ask for it.
    pub fn write(&mut self, key: impl FnOnce() -> StreamKey, line: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(line),
            Sink::Files(files) => files.write(&key(), line),
        }
    }

    /// Everything written so far reaches the kernel (before an ack).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::Files(files) => files.flush(),
        }
    }
}

/// `<dir>/<group>/<stream>.ndjson`, group and stream escaped by
/// [`file_component`] so that no name can leave `dir`.
pub struct FileSink {
    dir: PathBuf,
    open: HashMap<StreamKey, BufWriter<File>>,
}

impl FileSink {
    pub fn new(dir: PathBuf) -> io::Result<FileSink> {
        std::fs::create_dir_all(&dir)?;
        Ok(FileSink {
            dir,
            open: HashMap::new(),
        })
    }

    fn write(&mut self, key: &StreamKey, line: &[u8]) -> io::Result<()> {
        if !self.open.contains_key(key) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.flush()?;
                self.open.clear();
            }
            let group_dir = self.dir.join(file_component(&key.group));
            std::fs::create_dir_all(&group_dir)?;
            let path = group_dir.join(format!("{}.ndjson", file_component(&key.stream)));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.open
                .insert(key.clone(), BufWriter::with_capacity(1 << 14, file));
        }
        match self.open.get_mut(key) {
            Some(out) => out.write_all(line),
            None => Err(io::Error::other("a file just opened is missing")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        for out in self.open.values_mut() {
            out.flush()?;
        }
        Ok(())
    }
}
