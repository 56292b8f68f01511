//! `[FILTER] throttle`, as `plugins/filter_throttle` (v5.1.1) applies it.
//!
//! The filter keeps a ring of `Window` panes, each counting the records it
//! kept during one `Interval`. A record is dropped when the panes' total,
//! divided by the number of panes, has reached `Rate`; otherwise it is
//! kept and counted in the newest pane. Every `Interval` the oldest pane is
//! emptied and becomes the newest. The panes start empty, so a fresh filter
//! keeps `Rate × Window` records before it drops any, as Fluent Bit's does.
//!
//! Fluent Bit moves the window from a ticker thread. Here the ticks are
//! counted from the filter's start when a record comes, which gives the
//! same panes without a thread; `Print_Status` logs the window then, once
//! per interval that saw records, not on every tick.
//!
//! A dropped record is counted with the other filters' drops
//! (`sluice_firelens_filtered_total`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::classic::Section;
use crate::config::layer::fluent_bool;

#[derive(Debug)]
pub struct Throttle {
    /// `Rate`: the records an interval may keep, on average over the window.
    pub rate: f64,
    /// `Window`: how many intervals the average is taken over.
    pub window: usize,
    /// `Interval`: how long a pane counts.
    pub interval: Duration,
    print_status: bool,
    panes: Mutex<Panes>,
}

#[derive(Debug)]
struct Panes {
    counts: Vec<u64>,
    /// The newest pane's index in `counts`.
    newest: usize,
    total: u64,
    /// When the first pane began.
    start: Instant,
    /// Ticks taken so far: the newest pane began at `start + ticks × interval`.
    ticks: u64,
}

impl Panes {
    /// Empties the oldest panes until the newest is the one `now` falls in.
    fn tick_to(&mut self, now: Instant, interval: Duration) -> bool {
        let due = (now.saturating_duration_since(self.start).as_nanos() / interval.as_nanos())
            .min(u64::MAX as u128) as u64;
        if due <= self.ticks {
            return false;
        }
        // More ticks than panes empty them all, once each.
        for _ in 0..(due - self.ticks).min(self.counts.len() as u64) {
            self.newest = (self.newest + 1) % self.counts.len();
            self.total -= self.counts[self.newest];
            self.counts[self.newest] = 0;
        }
        self.ticks = due;
        true
    }
}

impl Throttle {
    /// Reads the section's options, as Fluent Bit's config map reads them,
    /// but refusing what it would silently read as something else.
    pub fn from_section(section: &Section, notes: &mut Vec<String>) -> Result<Throttle, String> {
        let (mut rate, mut window, mut interval) = (1.0, 5, Duration::from_secs(1));
        let mut print_status = false;
        for (key, value) in &section.entries {
            match key.to_ascii_lowercase().as_str() {
                "name" | "match" | "match_regex" | "alias" => {}
                "rate" => {
                    rate = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0)
                        .ok_or_else(|| {
                            format!("[FILTER] throttle Rate {value:?} is not a number above 0")
                        })?;
                    if rate < 1.0 {
                        notes.push(format!(
                            "{}: [FILTER] throttle Rate {value} is taken as 1, as Fluent Bit takes a rate below 1",
                            section.at
                        ));
                        rate = 1.0;
                    }
                }
                "window" => {
                    window = value.trim().parse::<usize>().ok().filter(|w| *w > 0).ok_or_else(|| {
                        format!("[FILTER] throttle Window {value:?} is not a whole number above 0")
                    })?;
                    if window == 1 {
                        notes.push(format!(
                            "{}: [FILTER] throttle Window 1 is taken as 5, as Fluent Bit takes it",
                            section.at
                        ));
                        window = 5;
                    }
                }
                "interval" => interval = parse_interval(value, &section.at, notes)?,
                "print_status" => {
                    print_status = fluent_bool(value).ok_or_else(|| {
                        format!("[FILTER] throttle Print_Status {value:?} is not true or false")
                    })?
                }
                _ => {
                    return Err(format!(
                        "[FILTER] throttle has no option {key}; it takes Rate, Window, Interval, Print_Status"
                    ))
                }
            }
        }
        Ok(Throttle::new(
            rate,
            window,
            interval,
            print_status,
            Instant::now(),
        ))
    }

    fn new(
        rate: f64,
        window: usize,
        interval: Duration,
        print_status: bool,
        start: Instant,
    ) -> Throttle {
        Throttle {
            rate,
            window,
            interval,
            print_status,
            panes: Mutex::new(Panes {
                counts: vec![0; window],
                newest: 0,
                total: 0,
                start,
                ticks: 0,
            }),
        }
    }

    /// Whether a record that comes `now` is kept (and counted).
    pub fn keeps(&self, now: Instant) -> bool {
        let mut panes = self.panes.lock().unwrap_or_else(|e| e.into_inner());
        if panes.tick_to(now, self.interval) && self.print_status {
            tracing::info!(
                limit = self.rate,
                interval_ms = self.interval.as_millis() as u64,
                window = self.window,
                current_rate = panes.total / self.window as u64,
                "[FILTER] throttle: the limit per interval, and the average the window holds"
            );
        }
        if panes.total as f64 / self.window as f64 >= self.rate {
            return false;
        }
        let newest = panes.newest;
        panes.counts[newest] += 1;
        panes.total += 1;
        true
    }
}

/// `Interval`: a number with an optional unit, `s` (the default), `m`,
/// `h` or `d`. Fluent Bit's ticker sleeps whole seconds: a fraction is cut
/// off, and below a second its panes change with the clock's second.
fn parse_interval(value: &str, at: &str, notes: &mut Vec<String>) -> Result<Duration, String> {
    let text = value.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let multiplier = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => f64::NAN,
    };
    let seconds = number.parse::<f64>().map(|n| n * multiplier);
    match seconds {
        Ok(s) if s.is_finite() && s > 0.0 => {
            let whole = s.trunc().max(1.0);
            if whole != s {
                notes.push(format!(
                    "{at}: [FILTER] throttle Interval {value} is taken as {whole} s: Fluent Bit's window moves in whole seconds"
                ));
            }
            Ok(Duration::from_secs_f64(whole))
        }
        _ => Err(format!(
            "[FILTER] throttle Interval {value:?} is not a time above 0 (a number, with s, m, h or d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fluentbit::classic::SectionKind;

    fn read(entries: &[(&str, &str)]) -> Result<(Throttle, Vec<String>), String> {
        let section = crate::fluentbit::tests::section(
            SectionKind::Filter,
            "t.conf:1",
            &[("Name", "throttle"), ("Match", "*")],
            entries,
        );
        let mut notes = Vec::new();
        Throttle::from_section(&section, &mut notes).map(|t| (t, notes))
    }

    /// How many of `n` records coming at `at` the filter keeps.
    fn kept(t: &Throttle, n: usize, at: Instant) -> usize {
        (0..n).filter(|_| t.keeps(at)).count()
    }

    #[test]
    fn the_window_keeps_rate_times_window_then_what_each_tick_frees() {
        let start = Instant::now();
        let s = Duration::from_secs(1);
        let t = Throttle::new(10.0, 3, s, false, start);
        // Empty panes: 30 records before the average reaches 10.
        assert_eq!(kept(&t, 100, start), 30);
        // Within the same interval, nothing more.
        assert_eq!(kept(&t, 5, start + s / 2), 0);
        // The next two ticks empty panes that counted nothing.
        assert_eq!(kept(&t, 10, start + s), 0);
        assert_eq!(kept(&t, 10, start + s * 2 + s / 2), 0);
        // The third empties the first pane, which holds all 30.
        assert_eq!(kept(&t, 100, start + s * 3), 30);
        assert_eq!(kept(&t, 1, start + s * 4), 0);
    }

    #[test]
    fn a_steady_rate_below_the_limit_is_all_kept_and_one_above_is_cut_to_it() {
        let start = Instant::now();
        let s = Duration::from_secs(1);
        let t = Throttle::new(10.0, 5, s, false, start);
        let below: usize = (0..20).map(|i| kept(&t, 9, start + s * i)).sum();
        assert_eq!(below, 9 * 20);
        let t = Throttle::new(10.0, 5, s, false, start);
        let per_tick: Vec<usize> = (0..12).map(|i| kept(&t, 25, start + s * i)).collect();
        // The first two intervals fill the empty window (25 + 25 = 50),
        // then each tick frees what its oldest pane held.
        assert_eq!(per_tick, [25, 25, 0, 0, 0, 25, 25, 0, 0, 0, 25, 25]);
        // Over the window, the average is the rate.
        assert_eq!(per_tick.iter().sum::<usize>(), 150);
    }

    #[test]
    fn a_long_silence_empties_every_pane() {
        let start = Instant::now();
        let t = Throttle::new(2.0, 4, Duration::from_secs(60), false, start);
        assert_eq!(kept(&t, 20, start), 8);
        assert_eq!(
            kept(&t, 20, start + Duration::from_secs(3600 * 24 * 365)),
            8
        );
    }

    #[test]
    fn options_read_as_fluent_bit_reads_them() {
        let (t, notes) = read(&[]).unwrap();
        assert_eq!(
            (t.rate, t.window, t.interval),
            (1.0, 5, Duration::from_secs(1))
        );
        assert!(notes.is_empty());
        let (t, notes) = read(&[
            ("Rate", "800"),
            ("Window", "300"),
            ("Interval", "1m"),
            ("Print_Status", "true"),
        ])
        .unwrap();
        assert_eq!(
            (t.rate, t.window, t.interval, t.print_status),
            (800.0, 300, Duration::from_secs(60), true)
        );
        assert!(notes.is_empty());
        for (value, secs) in [("2", 2), ("2s", 2), ("1.5h", 5400), ("1d", 86400)] {
            assert_eq!(
                read(&[("Interval", value)]).unwrap().0.interval.as_secs(),
                secs
            );
        }
        let (t, notes) = read(&[("Rate", "0.5"), ("Window", "1"), ("Interval", "2.5")]).unwrap();
        assert_eq!(
            (t.rate, t.window, t.interval),
            (1.0, 5, Duration::from_secs(2))
        );
        assert_eq!(
            notes,
            [
                "t.conf:1: [FILTER] throttle Rate 0.5 is taken as 1, as Fluent Bit takes a rate below 1",
                "t.conf:1: [FILTER] throttle Window 1 is taken as 5, as Fluent Bit takes it",
                "t.conf:1: [FILTER] throttle Interval 2.5 is taken as 2 s: Fluent Bit's window moves in whole seconds",
            ]
        );
        assert_eq!(
            read(&[("Interval", "0.2s")]).unwrap().0.interval,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn wrong_values_are_refused_naming_the_option() {
        for (entry, message) in [
            (("Rate", "fast"), "[FILTER] throttle Rate \"fast\" is not a number above 0"),
            (("Rate", "0"), "[FILTER] throttle Rate \"0\" is not a number above 0"),
            (("Window", "-3"), "[FILTER] throttle Window \"-3\" is not a whole number above 0"),
            (("Window", "0"), "[FILTER] throttle Window \"0\" is not a whole number above 0"),
            (("Interval", "1w"), "[FILTER] throttle Interval \"1w\" is not a time above 0 (a number, with s, m, h or d)"),
            (("Interval", "0"), "[FILTER] throttle Interval \"0\" is not a time above 0 (a number, with s, m, h or d)"),
            (("Interval", "1 s"), "[FILTER] throttle Interval \"1 s\" is not a time above 0 (a number, with s, m, h or d)"),
            (("Print_Status", "maybe"), "[FILTER] throttle Print_Status \"maybe\" is not true or false"),
            (("Burst", "9"), "[FILTER] throttle has no option Burst; it takes Rate, Window, Interval, Print_Status"),
        ] {
            assert_eq!(read(&[entry]).unwrap_err(), message);
        }
    }
}
