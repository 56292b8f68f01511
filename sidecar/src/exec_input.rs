//! Fluent Bit's `[INPUT] exec` (`plugins/in_exec`) in FireLens drop-in
//! mode: `/bin/sh -c Command` every `Interval_Sec` + `Interval_NSec` (the
//! first run one interval after the start), or once with `Oneshot`; each
//! line it writes is a record, `{"exec": line}`, or what `Parser` reads of
//! it. aws-for-fluent-bit's `plugin-metrics-to-cloudwatch.conf` runs `curl`
//! against the admin endpoint's `/api/v1/metrics/prometheus` this way.
//!
//! As `in_exec` reads with `fgets` into a `Buf_Size` buffer (4096 bytes by
//! default), a line longer than `Buf_Size - 1` bytes becomes several
//! records (and one longer than 256 KiB does whatever `Buf_Size` says, so
//! that what a run holds stays small), and the last line needs no
//! newline. Lines are handed on as the command writes them, each read's
//! lines one delivery, with its share of the memory budget. A run still
//! going when the next is due delays it.
//! The command's standard error is discarded (Sluice's own log is
//! redacted, a command's is not); a failing command is logged with its
//! exit status. On shutdown the command's process group gets SIGTERM.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sluice_firelens::{Event, Record};
use tokio::io::AsyncReadExt;
use tokio::task::JoinHandle;

use crate::fluentbit::classic::{on_off, whole_number, Section};
use crate::fluentbit::parsers::{self, Parser, Parsers};
use crate::fluentbit::storage::fluent_size;
use crate::input_links::InputLinks;
use crate::tcp_input::MAX_PIECE;

/// One `[INPUT] exec`.
#[derive(Clone, Debug)]
pub struct ExecInput {
    pub command: String,
    pub tag: String,
    /// Between runs (at least 1 ns; Fluent Bit's 1 s when both parts are 0).
    pub interval: Duration,
    /// `Buf_Size`: a line is cut into records of at most this less one byte.
    pub buf_size: usize,
    pub parser: Option<Arc<Parser>>,
    pub oneshot: bool,
}

impl ExecInput {
    /// The section's options; `index` is its place among the file's
    /// inputs (its default tag, `exec.N`, as Fluent Bit names it).
    pub fn from_section(
        section: &Section,
        index: usize,
        parsers: &Parsers,
        notes: &mut Vec<String>,
    ) -> Result<ExecInput, String> {
        let whole = |key: &str, value: &str| whole_number("[INPUT] exec", key, value);
        let flag = |key: &str, value: &str| on_off("[INPUT] exec", key, value);
        let mut command = None;
        let (mut seconds, mut nanos) = (1, 0);
        let mut input = ExecInput {
            command: String::new(),
            tag: format!("exec.{index}"),
            interval: Duration::ZERO,
            buf_size: 4096,
            parser: None,
            oneshot: false,
        };
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "name" | "alias" => {}
                "command" => command = Some(value.clone()),
                "tag" => input.tag = value.clone(),
                "interval_sec" => seconds = whole(key, value)?,
                "interval_nsec" => nanos = whole(key, value)?,
                "buf_size" => {
                    input.buf_size = fluent_size(value)
                        .and_then(|n| usize::try_from(n).ok())
                        .filter(|&n| n >= 2)
                        .ok_or_else(|| {
                            format!("[INPUT] exec Buf_Size {value:?} is not a size of 2 bytes or more")
                        })?
                }
                "parser" => input.parser = Some(parsers::named(parsers, "[INPUT] exec", value)?),
                "oneshot" => input.oneshot = flag(key, value)?,
                "exit_after_oneshot" | "propagate_exit_code" if !flag(key, value)? => {}
                "exit_after_oneshot" | "propagate_exit_code" => {
                    return Err(format!(
                        "[INPUT] exec {key} On: Sluice is a log router beside the task's containers, and does not exit when a command does"
                    ))
                }
                "threaded" | "mem_buf_limit" | "storage.type" => notes.push(format!(
                    "{}: [INPUT] exec {key} does not apply: Sluice runs the command on its own runtime and bounds what it holds with limits.memory",
                    section.at
                )),
                _ => {
                    return Err(format!(
                        "[INPUT] exec has no option {key} Sluice serves; it takes Command, Tag, Interval_Sec, Interval_NSec, Buf_Size, Parser, Oneshot"
                    ))
                }
            }
        }
        input.command = command.ok_or("[INPUT] exec needs a Command")?;
        if seconds <= 0 && nanos <= 0 {
            // in_exec's defaults for settings that make no interval.
            (seconds, nanos) = (1, 0);
        }
        input.interval = Duration::from_secs(seconds.max(0).unsigned_abs())
            + Duration::from_nanos(nanos.max(0).unsigned_abs());
        Ok(input)
    }
}

/// Runs the input until `shutdown`; the handle ends once what the command
/// wrote is in the pipeline.
pub fn spawn(input: ExecInput, mut links: InputLinks) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tag: Arc<str> = Arc::from(input.tag.as_str());
        if input.oneshot {
            run(&input, &tag, &mut links).await;
            return;
        }
        // from_section makes the interval at least a nanosecond.
        let mut ticks = tokio::time::interval(input.interval.max(Duration::from_nanos(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An interval's first tick is at once: a repeating command runs
        // first one interval after the start, as Fluent Bit's timer fires.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = links.shutdown.changed() => return,
            }
            if !run(&input, &tag, &mut links).await {
                return;
            }
        }
    })
}

/// One run of the command; `false` once Sluice stops.
async fn run(input: &ExecInput, tag: &Arc<str>, links: &mut InputLinks) -> bool {
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&input.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(tag = %tag, error = %e, "[INPUT] exec: the command could not start");
            return true;
        }
    };
    let Some(mut stdout) = child.stdout.take() else {
        return true;
    };
    let mut lines = Lines::new(input.buf_size);
    let mut chunk = vec![0u8; 16 << 10];
    let mut stopping = false;
    loop {
        let read = tokio::select! {
            read = stdout.read(&mut chunk) => read,
            _ = links.shutdown.changed() => {
                stopping = true;
                Ok(0)
            }
        };
        let n = read.unwrap_or_default();
        let pieces = if n == 0 {
            lines.finish()
        } else {
            lines.push(&chunk[..n])
        };
        let events = events(input, tag, pieces);
        links.count(events.len(), n);
        if !events.is_empty() && !links.deliver(events).await {
            return false;
        }
        if n == 0 {
            break;
        }
    }
    if stopping {
        terminate(&child);
        let _ = child.wait().await;
        return false;
    }
    match child.wait().await {
        Ok(status) if !status.success() => {
            tracing::warn!(tag = %tag, %status, "[INPUT] exec: the command failed");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(tag = %tag, error = %e, "[INPUT] exec: the command's end was not seen")
        }
    }
    true
}

/// SIGTERM to the command's process group, as `in_exec` stops it.
fn terminate(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) {
        // SAFETY: kill takes any pid; a group that is gone gives ESRCH.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
    }
}

/// The records of `pieces`, read now.
fn events(input: &ExecInput, tag: &Arc<str>, pieces: Vec<Vec<u8>>) -> Vec<Event> {
    let now_ns = sluice_firelens::now_ns();
    let lines = pieces.len();
    let events: Vec<Event> = pieces
        .into_iter()
        .filter_map(|piece| {
            let line = String::from_utf8_lossy(&piece);
            let (record, time_ns) = match &input.parser {
                None => {
                    let mut record = Record::default();
                    record.insert("exec", line.as_ref());
                    (record, now_ns)
                }
                // A line the parser does not read is left out, as in_exec
                // leaves it (logging an error).
                Some(parser) => {
                    let parsed = parser.parse(&line, now_ns.div_euclid(1_000_000))?;
                    let time_ns = parsed.time_ns().unwrap_or(now_ns);
                    (Record::from(parsed.fields), time_ns)
                }
            };
            Some(Event {
                tag: tag.clone(),
                time_ns,
                record,
            })
        })
        .collect();
    if events.len() < lines {
        // The lines' text stays out of the log: it is not redacted yet.
        tracing::warn!(tag = %tag, left_out = lines - events.len(), "[INPUT] exec: the Parser did not read every line; those are left out, as Fluent Bit leaves them");
    }
    events
}

/// Cuts a command's output as `fgets` into a `buf_size` buffer does: at
/// each newline (dropped), and after `buf_size - 1` bytes of a longer line.
struct Lines {
    max: usize,
    partial: Vec<u8>,
}

impl Lines {
    fn new(buf_size: usize) -> Lines {
        Lines {
            max: (buf_size - 1).min(MAX_PIECE),
            partial: Vec::new(),
        }
    }

    /// The pieces `bytes` completes.
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut pieces = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                pieces.push(std::mem::take(&mut self.partial));
                continue;
            }
            self.partial.push(b);
            if self.partial.len() == self.max {
                pieces.push(std::mem::take(&mut self.partial));
            }
        }
        pieces
    }

    /// The output ended: a last line without a newline.
    fn finish(&mut self) -> Vec<Vec<u8>> {
        if self.partial.is_empty() {
            Vec::new()
        } else {
            vec![std::mem::take(&mut self.partial)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input_links::tests::links;
    use sluice_firelens::Delivery;
    use tokio::sync::mpsc;

    fn input(command: &str, interval: Duration, oneshot: bool) -> ExecInput {
        ExecInput {
            command: command.to_string(),
            tag: "probe".to_string(),
            interval,
            buf_size: 4096,
            parser: None,
            oneshot,
        }
    }

    /// The lines of the deliveries `rx` holds until `count` are seen.
    async fn lines(rx: &mut mpsc::Receiver<Delivery>, count: usize) -> Vec<String> {
        let mut seen = Vec::new();
        while seen.len() < count {
            let delivery = rx.recv().await.expect("the input goes on");
            for event in &delivery.events {
                assert_eq!(&*event.tag, "probe");
                seen.push(event.record.get_str("exec").unwrap().to_string());
            }
        }
        seen
    }

    #[tokio::test]
    async fn a_command_runs_every_interval_until_the_stop() {
        let (links, mut rx, stop_tx) = links(4, None);
        let command = "echo run; echo again";
        let task = spawn(input(command, Duration::from_millis(20), false), links);
        assert_eq!(
            lines(&mut rx, 6).await,
            ["run", "again", "run", "again", "run", "again"]
        );
        let _ = stop_tx.send(true);
        task.await.unwrap();
    }

    /// A command still running at the stop is ended, and what it wrote
    /// before is delivered.
    #[tokio::test]
    async fn a_running_command_is_ended_at_the_stop() {
        let (links, mut rx, stop_tx) = links(4, None);
        let task = spawn(
            input("echo started; exec sleep 600", Duration::ZERO, true),
            links,
        );
        assert_eq!(lines(&mut rx, 1).await, ["started"]);
        let _ = stop_tx.send(true);
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "nothing more");
    }

    /// With a Parser, a line it reads is its record (and its time), and
    /// one it does not read is left out.
    #[test]
    fn a_parser_reads_the_lines() {
        let parsers = crate::fluentbit::parsers::parsers(std::iter::empty());
        let mut exec = input("date", Duration::from_secs(1), false);
        exec.parser = Some(parsers["json"].as_ref().unwrap().clone());
        let lines = vec![
            br#"{"a":1,"time":"10/Oct/2000:13:55:36 -0700"}"#.to_vec(),
            b"not json".to_vec(),
        ];
        let events = events(&exec, &Arc::from("probe"), lines);
        let records: Vec<(String, i64)> = events
            .iter()
            .map(|e| {
                let json = serde_json::Value::Object(e.record.to_json()).to_string();
                (json, e.time_ns)
            })
            .collect();
        assert_eq!(
            records,
            [(r#"{"a":1}"#.to_string(), 971_211_336_000_000_000)]
        );
    }

    #[test]
    fn lines_cut_as_fgets_cuts_them() {
        let mut lines = Lines::new(6);
        assert_eq!(
            lines.push(b"ab\n\nlonger line\nta"),
            [&b"ab"[..], b"", b"longe", b"r lin", b"e"]
        );
        assert_eq!(lines.push(b"il"), Vec::<Vec<u8>>::new());
        assert_eq!(lines.finish(), [b"tail".to_vec()]);
        assert!(lines.finish().is_empty());
    }
}
