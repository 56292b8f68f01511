//! Fluent Bit's `[INPUT] dummy` (`plugins/in_dummy`) in FireLens drop-in
//! mode: the records of `Dummy` (each JSON object in it; default
//! `{"message":"dummy"}`), `Copies` times, every interval (`Rate` a second,
//! or `Interval_Sec` + `Interval_NSec`), the first one interval after the
//! start or at once with `Flush_on_startup`, `Samples` times at most.
//!
//! Times: the time a record is made, or with `Start_time_sec` /
//! `Start_time_nsec` that time at the first generation and as much later
//! as the generation is; with `Fixed_timestamp` every record has the first
//! one's. When generations fall behind (a high `Rate`), those due (up to
//! 1,000) are made at once. Records are handed on in deliveries of at most
//! 1,000, each with its share of the memory budget.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value as Json};
use sluice_firelens::{Event, Record};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::fluentbit::classic::{on_off, whole_number, Section};
use crate::input_links::InputLinks;

/// `Dummy`'s default.
const DEFAULT_DUMMY: &str = r#"{"message":"dummy"}"#;

/// The most generations owed at once: when the pipeline cannot keep up
/// with the rate, the ticks beyond are dropped, as Fluent Bit's timer
/// drops the ticks it missed.
const MAX_GENERATIONS_AT_ONCE: u64 = 1000;

/// The most records in one delivery, so that many copies or generations
/// are handed on in steps, each with its share of the memory budget.
const EVENTS_PER_DELIVERY: usize = 1000;

/// One `[INPUT] dummy`.
#[derive(Clone, Debug)]
pub struct DummyInput {
    pub tag: String,
    /// One generation's records: each JSON object of `Dummy`, with its
    /// size as Fluent Bit holds it (the input's bytes, in its plugin
    /// metrics: [`Record::msgpack_event_size`]).
    pub records: Vec<(Map<String, Json>, usize)>,
    /// Between generations (Fluent Bit's 1 s unless a rate or an interval
    /// says otherwise).
    pub interval: Duration,
    /// `Copies`: the records made each generation this many times.
    pub copies: usize,
    /// `Samples`: generations in all; none for no end.
    pub samples: Option<u64>,
    /// `Start_time_sec` and `Start_time_nsec`: the first generation's
    /// time, in ns since the epoch.
    pub start_ns: Option<i64>,
    pub fixed_timestamp: bool,
    pub flush_on_startup: bool,
}

impl DummyInput {
    /// The section's options; `index` is its place among the file's
    /// inputs (its default tag, `dummy.N`, as Fluent Bit names it).
    pub fn from_section(
        section: &Section,
        index: usize,
        notes: &mut Vec<String>,
    ) -> Result<DummyInput, String> {
        let whole = |key: &str, value: &str| whole_number("[INPUT] dummy", key, value);
        let flag = |key: &str, value: &str| on_off("[INPUT] dummy", key, value);
        let mut dummy = DEFAULT_DUMMY.to_string();
        let (mut rate, mut seconds, mut nanos, mut copies, mut samples) = (1, 0, 0, 1, 0);
        let (mut start_sec, mut start_nsec) = (-1, -1);
        let mut input = DummyInput {
            tag: format!("dummy.{index}"),
            records: Vec::new(),
            interval: Duration::ZERO,
            copies: 1,
            samples: None,
            start_ns: None,
            fixed_timestamp: false,
            flush_on_startup: false,
        };
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "name" | "alias" => {}
                "tag" => input.tag = value.clone(),
                // As Fluent Bit takes an empty one: the default.
                "dummy" if value.is_empty() => {}
                "dummy" => dummy = value.clone(),
                "rate" => rate = whole(key, value)?,
                "interval_sec" => seconds = whole(key, value)?,
                "interval_nsec" => nanos = whole(key, value)?,
                "copies" => copies = whole(key, value)?,
                "samples" => samples = whole(key, value)?,
                "start_time_sec" => start_sec = whole(key, value)?,
                "start_time_nsec" => start_nsec = whole(key, value)?,
                "fixed_timestamp" => input.fixed_timestamp = flag(key, value)?,
                "flush_on_startup" => input.flush_on_startup = flag(key, value)?,
                "metadata" => notes.push(format!(
                    "{}: [INPUT] dummy Metadata does not apply: Sluice's records carry no metadata, and CloudWatch outputs send none",
                    section.at
                )),
                "threaded" | "mem_buf_limit" | "storage.type" => notes.push(format!(
                    "{}: [INPUT] dummy {key} does not apply: Sluice makes the records on its own runtime and bounds what it holds with limits.memory",
                    section.at
                )),
                _ => {
                    return Err(format!(
                        "[INPUT] dummy has no option {key} Sluice serves; it takes Dummy, Tag, Rate, Interval_Sec, Interval_NSec, Copies, Samples, Start_time_sec, Start_time_nsec, Fixed_timestamp, Flush_on_startup, Metadata"
                    ))
                }
            }
        }
        input.records = match objects(&dummy) {
            Some(records) => records,
            None => {
                // As in_dummy takes it: the default, with a warning.
                notes.push(format!(
                    "{}: [INPUT] dummy Dummy is not JSON: its records are the default, {DEFAULT_DUMMY}, as in Fluent Bit",
                    section.at
                ));
                objects(DEFAULT_DUMMY).expect("the default is JSON")
            }
        };
        if input.records.is_empty() {
            notes.push(format!(
                "{}: [INPUT] dummy Dummy holds no JSON object: the input makes no records, as in Fluent Bit",
                section.at
            ));
        }
        input.interval = interval(rate, seconds, nanos);
        input.copies = usize::try_from(copies).unwrap_or(0);
        input.samples = u64::try_from(samples).ok().filter(|&n| n > 0);
        if start_sec >= 0 || start_nsec >= 0 {
            input.start_ns =
                Some(start_sec.max(0).saturating_mul(1_000_000_000) + start_nsec.max(0));
        }
        Ok(input)
    }

    /// The records of `generations` generations at `time_ns`, each with
    /// its size, made as they are taken.
    fn events<'a>(
        &'a self,
        tag: &'a Arc<str>,
        time_ns: i64,
        generations: u64,
    ) -> impl Iterator<Item = (Event, usize)> + 'a {
        let one = (0..self.copies).flat_map(move |_| self.records.iter());
        (0..generations)
            .flat_map(move |_| one.clone())
            .map(move |(record, len)| {
                let event = Event {
                    tag: tag.clone(),
                    time_ns,
                    record: Record::from(record.clone()),
                };
                (event, *len)
            })
    }
}

/// The JSON objects of `text`, one after another (other values are
/// skipped, as in_dummy skips what is not a map); `None` when it is not
/// JSON.
fn objects(text: &str) -> Option<Vec<(Map<String, Json>, usize)>> {
    let values = serde_json::Deserializer::from_str(text).into_iter::<Json>();
    let mut records = Vec::new();
    for value in values {
        if let Json::Object(map) = value.ok()? {
            let size = Record::from(map.clone()).msgpack_event_size();
            records.push((map, size));
        }
    }
    Some(records)
}

/// in_dummy's interval: `Interval_Sec` + `Interval_NSec` when either is
/// above 0 (a negative one makes both 0), else a second over `Rate` when
/// it is above 1, else 1 s.
fn interval(rate: i64, seconds: i64, nanos: i64) -> Duration {
    let (seconds, nanos) = if seconds < 0 || nanos < 0 {
        (0, 0)
    } else {
        (seconds, nanos)
    };
    if seconds > 0 || nanos > 0 {
        Duration::from_secs(seconds.unsigned_abs()) + Duration::from_nanos(nanos.unsigned_abs())
    } else if rate > 1 {
        Duration::from_nanos(1_000_000_000 / rate.unsigned_abs())
    } else {
        Duration::from_secs(1)
    }
}

/// Runs the input until `shutdown` or its last sample.
pub fn spawn(input: DummyInput, mut links: InputLinks) -> JoinHandle<()> {
    tokio::spawn(async move {
        let tag: Arc<str> = Arc::from(input.tag.as_str());
        let mut clock = Generations::new(&input, Instant::now(), sluice_firelens::now_ns());
        loop {
            let due = clock.take_due(Instant::now());
            if due > 0 {
                let time_ns = clock.time_ns(sluice_firelens::now_ns());
                let mut made = input.events(&tag, time_ns, due);
                loop {
                    let (events, bytes): (Vec<Event>, Vec<usize>) =
                        made.by_ref().take(EVENTS_PER_DELIVERY).unzip();
                    if events.is_empty() {
                        break;
                    }
                    links.count(events.len(), bytes.iter().sum());
                    if !links.deliver(events).await {
                        return;
                    }
                }
            }
            let Some(next) = clock.next_at() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = links.shutdown.changed() => return,
            }
        }
    })
}

/// When generations are due, and their times: no I/O, the time passed in.
#[derive(Debug)]
struct Generations {
    interval: Duration,
    samples: Option<u64>,
    /// When the input started, and the wall clock then (ns).
    started: Instant,
    started_ns: i64,
    /// Timer ticks passed so far.
    ticks: u64,
    /// Generations due and not made yet (`Flush_on_startup`'s first).
    owed: u64,
    made: u64,
    /// The wall clock (ns) at the first generation.
    first_ns: Option<i64>,
    start_ns: Option<i64>,
    fixed: bool,
}

impl Generations {
    fn new(input: &DummyInput, started: Instant, started_ns: i64) -> Generations {
        Generations {
            interval: input.interval.max(Duration::from_nanos(1)),
            samples: input.samples,
            started,
            started_ns,
            ticks: 0,
            owed: u64::from(input.flush_on_startup),
            made: 0,
            first_ns: None,
            start_ns: input.start_ns,
            fixed: input.fixed_timestamp,
        }
    }

    /// How many generations to make now: the ticks passed since the last
    /// call (at most [`MAX_GENERATIONS_AT_ONCE`] owed, as Fluent Bit's
    /// timer coalesces the ticks it missed), within `Samples`.
    fn take_due(&mut self, now: Instant) -> u64 {
        let passed =
            now.saturating_duration_since(self.started).as_nanos() / self.interval.as_nanos();
        let passed = u64::try_from(passed).unwrap_or(u64::MAX);
        self.owed = self
            .owed
            .saturating_add(passed.saturating_sub(self.ticks))
            .min(MAX_GENERATIONS_AT_ONCE);
        self.ticks = self.ticks.max(passed);
        let left = self.samples.map_or(u64::MAX, |n| n - self.made);
        let due = self.owed.min(left);
        self.owed = 0;
        self.made += due;
        due
    }

    /// The records' time for a generation made at `now_ns`.
    fn time_ns(&mut self, now_ns: i64) -> i64 {
        let first_ns = *self.first_ns.get_or_insert(now_ns);
        match (self.start_ns, self.fixed) {
            (Some(start), true) => start,
            (None, true) => self.started_ns,
            (Some(start), false) => start.saturating_add(now_ns - first_ns),
            (None, false) => now_ns,
        }
    }

    /// When the next tick is due; `None` once every sample is made.
    fn next_at(&self) -> Option<Instant> {
        if self.samples.is_some_and(|n| self.made >= n) {
            return None;
        }
        let nanos = self.interval.as_nanos() * u128::from(self.ticks.saturating_add(1));
        // An interval past what a clock can hold: a year stands for it
        // (the input never makes a record before Sluice stops).
        let year = Duration::from_secs(365 * 86_400);
        let after = u64::try_from(nanos).map_or(year, Duration::from_nanos);
        Some(
            self.started
                .checked_add(after)
                .unwrap_or_else(|| self.started + year),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::plugin_metrics::InputCounts;
    use crate::input_links::tests::links;

    fn section(entries: &[(&str, &str)]) -> Section {
        use crate::fluentbit::classic::SectionKind;
        crate::fluentbit::tests::section(SectionKind::Input, "t.conf:1", &[], entries)
    }

    fn from(entries: &[(&str, &str)]) -> (Result<DummyInput, String>, Vec<String>) {
        let mut all = vec![("Name", "dummy")];
        all.extend_from_slice(entries);
        let mut notes = Vec::new();
        (
            DummyInput::from_section(&section(&all), 3, &mut notes),
            notes,
        )
    }

    fn json(input: &DummyInput) -> Vec<String> {
        input
            .records
            .iter()
            .map(|(map, _)| Json::Object(map.clone()).to_string())
            .collect()
    }

    #[test]
    fn options_as_in_dummy_reads_them() {
        let (input, notes) = from(&[]);
        let input = input.unwrap();
        assert_eq!(input.tag, "dummy.3");
        assert_eq!(json(&input), [r#"{"message":"dummy"}"#]);
        // Its bytes as Fluent Bit v5.1.1 counts them (28 a record).
        assert_eq!(input.records[0].1, 28);
        assert_eq!(input.interval, Duration::from_secs(1));
        assert_eq!(
            (input.copies, input.samples, input.start_ns),
            (1, None, None)
        );
        assert!(notes.is_empty());

        // Each object of Dummy is a record; other values are skipped.
        let (input, _) = from(&[
            ("Dummy", r#"{"a":1} {"b":{"c":null}}[3]"#),
            ("Tag", "probe"),
            ("Rate", "4"),
            ("Copies", "2"),
            ("Samples", "5"),
            ("Start_time_sec", "1000"),
        ]);
        let input = input.unwrap();
        assert_eq!(json(&input), [r#"{"a":1}"#, r#"{"b":{"c":null}}"#]);
        assert_eq!(input.tag, "probe");
        assert_eq!(input.interval, Duration::from_millis(250));
        assert_eq!(input.copies, 2);
        assert_eq!(input.samples, Some(5));
        assert_eq!(input.start_ns, Some(1_000_000_000_000));

        // An interval wins over a rate; a negative one is none.
        for (entries, want) in [
            (
                vec![("Rate", "4"), ("Interval_Sec", "2")],
                Duration::from_secs(2),
            ),
            (
                vec![("Rate", "4"), ("Interval_NSec", "500")],
                Duration::from_nanos(500),
            ),
            (
                vec![("Rate", "4"), ("Interval_Sec", "-1")],
                Duration::from_millis(250),
            ),
            (vec![("Rate", "0")], Duration::from_secs(1)),
        ] {
            assert_eq!(from(&entries).0.unwrap().interval, want, "{entries:?}");
        }
        assert_eq!(
            from(&[("Start_time_nsec", "5")]).0.unwrap().start_ns,
            Some(5)
        );
    }

    #[test]
    fn what_fluent_bit_would_not_take_as_meant_is_noted_or_refused() {
        let (input, notes) = from(&[("Dummy", r#"{"a":1"#), ("Metadata", r#"{"m":1}"#)]);
        assert_eq!(json(&input.unwrap()), [r#"{"message":"dummy"}"#]);
        assert_eq!(
            notes,
            [
                "t.conf:1: [INPUT] dummy Metadata does not apply: Sluice's records carry no metadata, and CloudWatch outputs send none",
                r#"t.conf:1: [INPUT] dummy Dummy is not JSON: its records are the default, {"message":"dummy"}, as in Fluent Bit"#,
            ]
        );
        let (input, notes) = from(&[("Dummy", r#""just a string""#)]);
        assert!(input.unwrap().records.is_empty());
        assert_eq!(
            notes,
            ["t.conf:1: [INPUT] dummy Dummy holds no JSON object: the input makes no records, as in Fluent Bit"]
        );
        assert_eq!(
            from(&[("Rate", "fast")]).0.unwrap_err(),
            r#"[INPUT] dummy Rate "fast" is not a whole number"#
        );
        assert_eq!(
            from(&[("Fixed_timestamp", "sometimes")]).0.unwrap_err(),
            r#"[INPUT] dummy Fixed_timestamp "sometimes" is not On or Off"#
        );
        assert!(from(&[("Test_hang_on_exit", "on")])
            .0
            .unwrap_err()
            .starts_with("[INPUT] dummy has no option Test_hang_on_exit Sluice serves"));
    }

    fn clock(entries: &[(&str, &str)]) -> (Generations, Instant) {
        let start = Instant::now();
        let input = from(entries).0.unwrap();
        (Generations::new(&input, start, 5_000_000_000), start)
    }

    #[test]
    fn generations_fall_due_every_interval_within_samples() {
        let (mut gens, start) = clock(&[("Rate", "4"), ("Samples", "5")]);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(gens.take_due(at(0)), 0);
        assert_eq!(gens.next_at(), Some(at(250)));
        assert_eq!(gens.take_due(at(249)), 0);
        assert_eq!(gens.take_due(at(250)), 1);
        assert_eq!(gens.next_at(), Some(at(500)));
        // Behind: the ticks passed are made at once.
        assert_eq!(gens.take_due(at(1010)), 3);
        assert_eq!(gens.next_at(), Some(at(1250)));
        // Samples 5: one more, then no more.
        assert_eq!(gens.take_due(at(5000)), 1);
        assert_eq!(gens.next_at(), None);

        // Flush_on_startup: one at once, then the timer's.
        let (mut gens, start) = clock(&[("Flush_on_startup", "on")]);
        assert_eq!(gens.take_due(start), 1);
        assert_eq!(gens.take_due(start + Duration::from_millis(999)), 0);
        assert_eq!(gens.take_due(start + Duration::from_secs(1)), 1);

        // Far behind: at most MAX_GENERATIONS_AT_ONCE, the rest dropped as
        // Fluent Bit's timer drops the ticks it missed.
        let (mut gens, start) = clock(&[("Interval_NSec", "1000")]);
        assert_eq!(
            gens.take_due(start + Duration::from_secs(10)),
            MAX_GENERATIONS_AT_ONCE
        );
        assert_eq!(gens.take_due(start + Duration::from_secs(10)), 0);
    }

    #[test]
    fn times_are_now_or_from_the_start_time() {
        // Started at 5 s on the wall clock.
        let (mut now, _) = clock(&[]);
        assert_eq!((now.time_ns(7_000), now.time_ns(9_000)), (7_000, 9_000));
        let (mut from_start, _) = clock(&[("Start_time_sec", "1000")]);
        assert_eq!(from_start.time_ns(7_000), 1_000_000_000_000);
        assert_eq!(from_start.time_ns(9_000), 1_000_000_002_000);
        let (mut fixed, _) = clock(&[("Start_time_nsec", "5"), ("Fixed_timestamp", "on")]);
        assert_eq!((fixed.time_ns(7_000), fixed.time_ns(9_000)), (5, 5));
        let (mut fixed_now, _) = clock(&[("Fixed_timestamp", "on")]);
        assert_eq!(fixed_now.time_ns(9_000), 5_000_000_000);
    }

    /// Many copies are handed on in steps of at most
    /// [`EVENTS_PER_DELIVERY`] records.
    #[tokio::test(start_paused = true)]
    async fn many_copies_are_delivered_in_steps() {
        let (links, mut rx, _stop) = links(16, None);
        let input = from(&[("Copies", "2500"), ("Samples", "1")]).0.unwrap();
        let task = spawn(input, links);
        let mut sizes = Vec::new();
        while let Some(delivery) = rx.recv().await {
            sizes.push(delivery.events.len());
        }
        task.await.unwrap();
        assert_eq!(sizes, [1000, 1000, 500]);
    }

    /// The input runs on the runtime's clock: each generation is one
    /// delivery of its copies, until the last sample.
    #[tokio::test(start_paused = true)]
    async fn the_input_delivers_its_samples_and_ends() {
        let input = from(&[
            ("Dummy", r#"{"n":1}{"n":2}"#),
            ("Copies", "2"),
            ("Samples", "3"),
            ("Rate", "10"),
        ])
        .0
        .unwrap();
        let counts = Arc::new(InputCounts::default());
        let (links, mut rx, _stop) = links(16, Some(counts.clone()));
        let task = spawn(input, links);
        let mut seen = Vec::new();
        while let Some(delivery) = rx.recv().await {
            let records: Vec<String> = delivery
                .events
                .iter()
                .map(|e| {
                    assert_eq!(&*e.tag, "dummy.3");
                    Json::Object(e.record.to_json()).to_string()
                })
                .collect();
            seen.push(records);
        }
        task.await.unwrap();
        let one = [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":1}"#, r#"{"n":2}"#];
        assert_eq!(seen, [one, one, one]);
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        // As Fluent Bit v5.1.1 counted this input: 204 bytes for 12 records.
        assert_eq!((load(&counts.records), load(&counts.bytes)), (12, 204));
    }
}
