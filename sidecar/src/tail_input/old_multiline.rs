//! in_tail's old multiline (`Multiline On`, `Parser_Firstline`,
//! `Parser_N`, `Multiline_Flush`), as v5.1.1's `tail_multiline.c` joins
//! lines:
//! - a line `Parser_Firstline` reads starts a message (the one before it
//!   goes out): its parsed keys, at its parsed time;
//! - a line one of the `Parser_N` reads (the first that does, in the order
//!   written) adds its keys to the message;
//! - any other line is appended, after a `\n`, to the last value the
//!   first line's parser gave, when that value is a string (a stack
//!   trace's lines to the `message` of `^(?<time>…) (?<message>.*)`), or
//!   to the last string value of the `Parser_N` line before it; otherwise
//!   it is a record of its own, `{"log": line}` (`Key`);
//! - a message goes out at the next first line, `Multiline_Flush` seconds
//!   after its first line, or when its file is let go; one whose first
//!   line's time is older than `Ignore_Older` is dropped with its lines.
//!
//! Where Sluice differs, and why:
//! - a line Fluent Bit drops is kept: a `Parser_N` line with no message
//!   open is a record of its own, and a raw line after a `Parser_N` line
//!   whose last value is not a string goes to the message's last string
//!   value before it;
//! - keys that several lines give are written once, the last line's
//!   value winning (Fluent Bit writes the key twice);
//! - a message stops growing at [`MAX_JOINED`] bytes: what follows is
//!   records of its own until the next first line.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use sluice_firelens::Record;
use tokio::time::Instant;

use crate::fluentbit::parsers::{Format, Parser};

/// The most bytes of appended lines one message takes (CloudWatch's
/// largest event).
pub const MAX_JOINED: usize = 1 << 20;

/// The options of `Multiline On`.
#[derive(Clone, Debug)]
pub struct OldMultiline {
    pub firstline: Arc<Parser>,
    pub continuation: Vec<Arc<Parser>>,
    /// `Multiline_Flush` (4 s by default; at least 1 s, as in_tail takes
    /// it).
    pub flush: Duration,
    /// `Ignore_Older`: a message whose first line's time is older is
    /// dropped with its lines, as in_tail skips it.
    pub ignore_older: Option<Duration>,
    /// The input's `Key`: the key of a line that joins nothing.
    pub key: String,
}

/// A record the joiner gives: where its first line starts, its time, and
/// its keys.
#[derive(Debug, PartialEq)]
pub struct Joined {
    pub start: u64,
    pub time_ns: i64,
    pub record: Record,
}

/// One file's message being joined.
#[derive(Debug)]
pub(super) struct Joining {
    /// The offset of its first line: where a restart reads again.
    pub(super) start: u64,
    time_ns: i64,
    /// Its parsed lines, in order.
    parts: Vec<Part>,
    /// The bytes of the lines after the first.
    appended: usize,
    due: Instant,
    /// Older than `Ignore_Older`: its lines are dropped.
    skipped: bool,
}

/// A parsed line of a message, and the lines appended to it.
#[derive(Debug)]
struct Part {
    fields: Map<String, Json>,
    /// The key appended lines go to: its parser's last value, when a
    /// string.
    append_to: Option<String>,
    appended: Vec<String>,
}

/// What a line is, to the joiner.
pub(super) enum Step {
    /// Taken into the message (or dropped, skipped with it).
    Taken,
    /// Records that go out now: a finished message, and the line itself
    /// when it joins nothing.
    Out(Vec<Joined>),
}

impl OldMultiline {
    /// Joins `line` (at `start` in its file) into `joining`, read at
    /// `now_ns` (the time of a record without a parsed one) and `now`.
    pub(super) fn push(
        &self,
        joining: &mut Option<Joining>,
        line: &str,
        start: u64,
        now_ns: i64,
        now: Instant,
    ) -> Step {
        let now_ms = now_ns.div_euclid(1_000_000);
        if let Some(parsed) = self.firstline.parse(line, now_ms) {
            let finished = joining.take().and_then(Joining::finish);
            let append_to = last_string_key(&self.firstline, &parsed.fields);
            let time_ns = parsed.time_ns().unwrap_or(now_ns);
            let skipped = self.ignore_older.is_some_and(|age| {
                time_ns.div_euclid(1_000_000_000)
                    < now_ns.div_euclid(1_000_000_000) - age.as_secs() as i64
            });
            *joining = Some(Joining {
                start,
                time_ns,
                parts: vec![Part {
                    fields: parsed.fields,
                    append_to,
                    appended: Vec::new(),
                }],
                appended: 0,
                due: now + self.flush,
                skipped,
            });
            return Step::Out(finished.into_iter().collect());
        }
        let continued = self
            .continuation
            .iter()
            .find_map(|parser| parser.parse(line, now_ms).map(|p| (parser, p)));
        match (joining.as_mut(), continued) {
            (Some(message), _) if message.skipped => Step::Taken,
            (Some(message), Some((parser, parsed)))
                if message.appended + line.len() <= MAX_JOINED =>
            {
                message.appended += line.len() + 1;
                message.parts.push(Part {
                    append_to: last_string_key(parser, &parsed.fields),
                    fields: parsed.fields,
                    appended: Vec::new(),
                });
                Step::Taken
            }
            (_, Some((_, parsed))) => Step::Out(vec![Joined {
                start,
                time_ns: parsed.time_ns().unwrap_or(now_ns),
                record: Record::from(parsed.fields),
            }]),
            (Some(message), None)
                if message.parts[0].append_to.is_some()
                    && message.appended + line.len() <= MAX_JOINED =>
            {
                message.appended += line.len() + 1;
                if let Some(part) = message
                    .parts
                    .iter_mut()
                    .rev()
                    .find(|p| p.append_to.is_some())
                {
                    part.appended.push(line.to_string());
                }
                Step::Taken
            }
            _ => {
                let mut record = Record::default();
                record.insert(&self.key, line);
                Step::Out(vec![Joined {
                    start,
                    time_ns: now_ns,
                    record,
                }])
            }
        }
    }

    /// The message of `joining`, once `Multiline_Flush` has passed since
    /// its first line (or at once, with `all`).
    pub(super) fn due(joining: &mut Option<Joining>, now: Instant, all: bool) -> Option<Joined> {
        if joining.as_ref().is_some_and(|j| all || j.due <= now) {
            joining.take().and_then(Joining::finish)
        } else {
            None
        }
    }
}

impl Joining {
    /// The message as one record: every part's keys in order, each
    /// appended line after a `\n`; none for a skipped one.
    fn finish(self) -> Option<Joined> {
        if self.skipped {
            return None;
        }
        let mut fields = Map::new();
        for part in self.parts {
            let Part {
                fields: mut own,
                append_to,
                appended,
            } = part;
            if let Some(Json::String(text)) = append_to.as_ref().and_then(|key| own.get_mut(key)) {
                for line in &appended {
                    text.push('\n');
                    text.push_str(line);
                }
            }
            fields.append(&mut own);
        }
        Some(Joined {
            start: self.start,
            time_ns: self.time_ns,
            record: Record::from(fields),
        })
    }
}

/// The key of the last value `parser` gave, when it is a string: for a
/// regular expression, its last named group that matched (the order
/// Fluent Bit packs them in); for other formats, the last key.
fn last_string_key(parser: &Parser, fields: &Map<String, Json>) -> Option<String> {
    let last = match &parser.format {
        Format::Regex(regex) => regex
            .capture_names()
            .flatten()
            .filter(|name| fields.contains_key(*name))
            .last(),
        _ => fields.keys().next_back().map(String::as_str),
    }?;
    matches!(fields.get(last), Some(Json::String(_))).then(|| last.to_string())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    /// Parsers for a Java-like log: a first line with a time, a level and
    /// a message; `Caused by:`; `LEVEL n`.
    pub(in crate::tail_input) fn parsers() -> crate::fluentbit::parsers::Parsers {
        let sections = [
            (
                "multiline_first",
                vec![
                    ("Format", "regex"),
                    (
                        "Regex",
                        r"^(?<time>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?<level>[A-Z]+) (?<message>.*)",
                    ),
                    ("Time_Key", "time"),
                    ("Time_Format", "%Y-%m-%d %H:%M:%S"),
                ],
            ),
            (
                "cause",
                vec![("Format", "regex"), ("Regex", r"^Caused by: (?<cause>.*)")],
            ),
            (
                "levelonly",
                vec![
                    ("Format", "regex"),
                    ("Regex", r"^LEVEL (?<lvl>[0-9]+)$"),
                    ("Types", "lvl:integer"),
                ],
            ),
        ];
        let sections: Vec<_> = sections
            .iter()
            .map(|(name, entries)| {
                crate::fluentbit::tests::section(
                    SectionKind::Parser,
                    "p.conf:1",
                    &[("Name", name)],
                    entries,
                )
            })
            .collect();
        crate::fluentbit::parsers::parsers(sections.iter())
    }

    /// A joiner of these parsers: the first line's, the others', the
    /// flush in seconds, `Ignore_Older` and `Key`.
    fn joiner(
        first: &str,
        continuation: &[&str],
        flush: u64,
        ignore_older: Option<Duration>,
        key: &str,
    ) -> OldMultiline {
        let parsers = parsers();
        let named =
            |name: &str| crate::fluentbit::parsers::named(&parsers, "[INPUT] tail", name).unwrap();
        OldMultiline {
            firstline: named(first),
            continuation: continuation.iter().map(|n| named(n)).collect(),
            flush: Duration::from_secs(flush),
            ignore_older,
            key: key.to_string(),
        }
    }

    /// The file Fluent Bit v5.1.1's tail input joined, with these parsers
    /// (`Parser_Firstline multiline_first`, `Parser_1 cause`, `Parser_2
    /// levelonly`), and the records it gave, in the order of their first
    /// lines; the one line it dropped kept.
    #[test]
    fn lines_are_joined_as_in_tail_joins_them() {
        let joiner = joiner("multiline_first", &["cause", "levelonly"], 2, None, "log");
        let lines = [
            "orphan before any first line",
            "2026-11-29 06:00:00 ERROR boom",
            "    at a.b(C.java:1)",
            "    at d.e(F.java:2)",
            "Caused by: io failure",
            "    at g.h(I.java:3)",
            "2026-11-29 06:00:01 INFO fine",
            "plain continuation",
            "LEVEL 5",
            "after a non-string map",
            "2026-11-29 06:00:02 WARN last",
        ];
        let now = Instant::now();
        let mut joining = None;
        let mut out = Vec::new();
        let mut start = 0;
        for line in lines {
            if let Step::Out(records) = joiner.push(&mut joining, line, start, 7_000_000_000, now) {
                out.extend(records);
            }
            start += line.len() as u64 + 1;
        }
        assert!(
            OldMultiline::due(&mut joining, now, false).is_none(),
            "not yet due"
        );
        out.extend(OldMultiline::due(
            &mut joining,
            now + Duration::from_secs(2),
            false,
        ));
        assert!(joining.is_none());
        let records: Vec<(u64, i64, String)> = out
            .into_iter()
            .map(|j| {
                (
                    j.start,
                    j.time_ns,
                    serde_json::to_string(&j.record.to_json()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            records,
            [
                (0, 7_000_000_000, r#"{"log":"orphan before any first line"}"#.to_string()),
                (
                    29,
                    1_795_932_000_000_000_000,
                    r#"{"cause":"io failure\n    at g.h(I.java:3)","level":"ERROR","message":"boom\n    at a.b(C.java:1)\n    at d.e(F.java:2)"}"#.into()
                ),
                (
                    145,
                    1_795_932_001_000_000_000,
                    r#"{"level":"INFO","lvl":5,"message":"fine\nplain continuation\nafter a non-string map"}"#.into()
                ),
                (225, 1_795_932_002_000_000_000, r#"{"level":"WARN","message":"last"}"#.into()),
            ]
        );
    }

    /// With `Ignore_Older`, a message whose first line is older is dropped
    /// with its lines; the next first line starts afresh.
    #[test]
    fn a_message_older_than_ignore_older_is_dropped() {
        let joiner = joiner(
            "multiline_first",
            &["cause"],
            4,
            Some(Duration::from_secs(3_600)),
            "log",
        );
        // Now is 2026-11-29 06:30:00 UTC.
        let now_ns = 1_795_933_800_000_000_000;
        let now = Instant::now();
        let mut joining = None;
        let mut out = Vec::new();
        for line in [
            "2026-11-29 05:00:00 ERROR an hour and a half ago",
            "    at a.b(C.java:1)",
            "Caused by: old",
            "2026-11-29 06:00:00 ERROR half an hour ago",
            "    at d.e(F.java:2)",
        ] {
            if let Step::Out(records) = joiner.push(&mut joining, line, 0, now_ns, now) {
                out.extend(records);
            }
        }
        out.extend(OldMultiline::due(&mut joining, now, true));
        let records: Vec<String> = out
            .into_iter()
            .map(|j| serde_json::to_string(&j.record.to_json()).unwrap())
            .collect();
        assert_eq!(
            records,
            [r#"{"level":"ERROR","message":"half an hour ago\n    at d.e(F.java:2)"}"#]
        );
    }

    /// A first line whose last value is not a string takes no appended
    /// lines (each is a record of its own, under the input's `Key`); a
    /// `Parser_N` line with no message open is a record of its own; a
    /// message stops growing at MAX_JOINED bytes.
    #[test]
    fn what_joins_nothing_is_a_record_of_its_own() {
        let now = Instant::now();
        let logs = |steps: Vec<Step>| -> Vec<String> {
            steps
                .into_iter()
                .flat_map(|s| match s {
                    Step::Out(records) => records,
                    Step::Taken => Vec::new(),
                })
                .map(|j| serde_json::to_string(&j.record.to_json()).unwrap())
                .collect()
        };
        let numbers = joiner("levelonly", &["cause"], 4, None, "line");
        let mut joining = None;
        let steps = ["LEVEL 1", "raw", "Caused by: x"]
            .into_iter()
            .map(|l| numbers.push(&mut joining, l, 0, 0, now))
            .collect();
        assert_eq!(logs(steps), [r#"{"line":"raw"}"#], "under the input's Key");
        assert_eq!(
            logs(vec![Step::Out(
                OldMultiline::due(&mut joining, now, true)
                    .into_iter()
                    .collect()
            )]),
            [r#"{"cause":"x","lvl":1}"#]
        );
        let errors = joiner("multiline_first", &["cause"], 4, None, "log");
        let mut joining = None;
        assert_eq!(
            logs(vec![errors.push(
                &mut joining,
                "Caused by: nothing open",
                0,
                0,
                now
            )]),
            [r#"{"cause":"nothing open"}"#]
        );
        errors.push(&mut joining, "2026-11-29 06:00:00 ERROR big", 0, 0, now);
        let long = "x".repeat(MAX_JOINED / 2 - 1);
        let steps = (0..3)
            .map(|_| errors.push(&mut joining, &long, 0, 0, now))
            .collect::<Vec<_>>();
        assert_eq!(
            logs(steps),
            [format!(r#"{{"log":"{long}"}}"#)],
            "the third line past the bound"
        );
        // Past the bound, a Parser_N line is a record of its own too.
        assert_eq!(
            logs(vec![errors.push(
                &mut joining,
                "Caused by: late",
                0,
                0,
                now
            )]),
            [r#"{"cause":"late"}"#]
        );
    }
}
