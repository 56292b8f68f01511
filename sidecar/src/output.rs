//! Where rendered events go: stdout (one stream of NDJSON), files (one
//! NDJSON file per log group and stream, for local use and debugging), or
//! CloudWatch Logs (one batcher per log stream).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use sluice_firelens::Reservation;

use crate::cloudwatch::ship::ShipCounters;
use crate::cloudwatch::sink::CloudWatchSink;
use crate::event::{EventRef, Message, MessageRef};
use crate::streams::{file_component, StreamKey};

/// Files kept open at once; beyond this all are flushed and closed.
const MAX_OPEN_FILES: usize = 64;

pub enum Sink {
    Stdout(BufWriter<io::Stdout>),
    Files(FileSink),
    CloudWatch(Box<CloudWatchSink>),
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink::Stdout(BufWriter::with_capacity(1 << 16, io::stdout()))
    }

    /// Sends what an earlier run left in the spool (CloudWatch only).
    pub fn replay(&mut self) {
        if let Sink::CloudWatch(cw) = self {
            cw.replay();
        }
    }

    /// The events of one or more deliveries come next, with their share of
    /// the memory budget (kept only by sinks that buffer).
    pub fn begin_delivery(&mut self, share: Option<Reservation>) {
        if let Sink::CloudWatch(cw) = self {
            cw.begin_delivery(share);
        }
    }

    /// Whether this sink takes events escaped as the contents of a JSON
    /// string (`json_out::Escaped`), as PutLogEvents bodies carry them:
    /// CloudWatch does; stdout and files take JSON lines.
    pub fn escapes(&self) -> bool {
        matches!(self, Sink::CloudWatch(_))
    }

    /// Takes one rendered event (without a newline) for the stream `key`
    /// gives; only sinks that keep streams apart ask for it. `text` is in
    /// the form [`Sink::escapes`] asks for, and `text_len` is the length of
    /// the text before any escaping.
    pub fn write<'k>(
        &mut self,
        key: impl FnOnce() -> &'k StreamKey,
        time_ms: i64,
        text: &str,
        text_len: usize,
    ) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")
            }
            Sink::Files(files) => files.write(key(), text.as_bytes()),
            Sink::CloudWatch(cw) => {
                // Borrowed: the batcher copies the text into its pages.
                cw.write(
                    key(),
                    EventRef {
                        timestamp_ms: time_ms,
                        message: MessageRef::from_escaped(text, text_len),
                        spool: None,
                    },
                );
                Ok(())
            }
        }
    }

    /// Takes one statistics (EMF) event. stdout carries only log events, so
    /// it drops them; files and CloudWatch write them to the stats stream.
    pub fn write_stats(&mut self, key: &StreamKey, time_ms: i64, text: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(_) => Ok(()),
            Sink::Files(files) => files.write(key, text.as_bytes()),
            Sink::CloudWatch(cw) => {
                let message = Message::new(text);
                cw.write_emf(
                    key,
                    EventRef {
                        timestamp_ms: time_ms,
                        message: message.view(),
                        spool: None,
                    },
                );
                Ok(())
            }
        }
    }

    /// The deliveries' events are where this sink keeps them (written to
    /// the kernel, or in a batcher): they may be accepted and acked.
    ///
    /// `acked`: a client waits for an ack of these events, so a spool
    /// fsyncs them first (otherwise a write to the kernel is enough).
    pub fn end_delivery(&mut self, acked: bool) -> io::Result<()> {
        match self {
            Sink::CloudWatch(cw) => {
                cw.end_delivery(acked);
                Ok(())
            }
            other => other.flush(),
        }
    }

    /// Called at the output stage's ticks (every 250 ms while anything
    /// waits for one): CloudWatch batches that have waited the flush
    /// interval go out; stdout and files are flushed.
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        match self {
            Sink::CloudWatch(cw) => {
                cw.tick(now);
                Ok(())
            }
            other => other.flush(),
        }
    }

    /// Whether [`Sink::tick`] has nothing to do. stdout and files are
    /// flushed at the end of every delivery and after statistics.
    pub fn is_settled(&self) -> bool {
        match self {
            Sink::CloudWatch(cw) => cw.is_settled(),
            _ => true,
        }
    }

    /// What the output stage also waits for, then calls
    /// [`Sink::send_due`]: `Some` while CloudWatch batches that are due
    /// wait for room in the shipper.
    pub fn room_signal(&self) -> Option<Arc<ShipCounters>> {
        match self {
            Sink::CloudWatch(cw) => cw.room_signal(),
            _ => None,
        }
    }

    /// CloudWatch batches that are due go out, as far as the shipper has
    /// room.
    pub fn send_due(&mut self, now: Instant) {
        if let Sink::CloudWatch(cw) = self {
            cw.send_due(now);
        }
    }

    /// Everything buffered goes out (shutdown).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::Files(files) => files.flush(),
            Sink::CloudWatch(cw) => {
                cw.finish();
                Ok(())
            }
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

    /// Appends `line` and a newline to the stream's file.
    fn write(&mut self, key: &StreamKey, line: &[u8]) -> io::Result<()> {
        if !self.open.contains_key(key) {
            if self.open.len() >= MAX_OPEN_FILES {
                self.flush()?;
                self.open.clear();
            }
            let group_dir = self.dir.join(file_component(key.group()));
            std::fs::create_dir_all(&group_dir)?;
            let path = group_dir.join(format!("{}.ndjson", file_component(key.stream())));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.open
                .insert(key.clone(), BufWriter::with_capacity(1 << 14, file));
        }
        match self.open.get_mut(key) {
            Some(out) => {
                out.write_all(line)?;
                out.write_all(b"\n")
            }
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
