//! `START_TIME` values: Envoy's default ISO 8601 form and `%START_TIME(fmt)%`
//! strftime-style forms, read into milliseconds since the Unix epoch.

use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::one_of;
use nom::combinator::{eof, opt};
use nom::{IResult, Parser};

/// Reads `2018-04-03T23:06:09.123Z` (Envoy's default START_TIME) and the ISO
/// 8601 variants near it: any number of fraction digits, `T` or a space,
/// `Z`, `+hh:mm`, `+hhmm` or no zone (read as UTC).
pub fn parse_iso8601(s: &str) -> Option<i64> {
    if let Some(ms) = envoy_default_time(s.as_bytes()) {
        return Some(ms);
    }
    iso8601(s).ok().map(|(_, ms)| ms)
}

/// The exact layout Envoy prints by default, `2018-04-03T23:06:09.123Z`,
/// read eight bytes at a time: this runs once per access line. Anything
/// else (or an invalid date in this layout) goes to the general grammar.
fn envoy_default_time(b: &[u8]) -> Option<i64> {
    let b: &[u8; 24] = b.try_into().ok()?;
    let mut values = [0u64; 3];
    for (i, value) in values.iter_mut().enumerate() {
        let mut word = [0; 8];
        word.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *value = layout_digits(u64::from_le_bytes(word), LAYOUT_WORDS[i], DIGIT_BYTES[i])?;
    }
    let digit = |i: usize| ((values[i / 8] >> (8 * (i % 8))) & 0xff) as u32;
    let two = |i: usize| digit(i) * 10 + digit(i + 1);
    CivilTime {
        year: i64::from(two(0) * 100 + two(2)),
        month: two(5),
        day: two(8),
        hour: two(11),
        minute: two(14),
        second: two(17),
        millis: digit(20) * 100 + two(21),
        offset_minutes: 0,
    }
    .epoch_ms()
}

/// Envoy's default START_TIME layout: `0` where a digit goes.
const LAYOUT: &[u8; 24] = b"0000-00-00T00:00:00.000Z";
/// The layout as three little-endian words.
const LAYOUT_WORDS: [u64; 3] = layout_words(false);
/// 0xff in each byte of the layout's words that holds a digit.
const DIGIT_BYTES: [u64; 3] = layout_words(true);

const fn layout_words(digit_mask: bool) -> [u64; 3] {
    let mut words = [0u64; 3];
    let mut i = 0;
    while i < 24 {
        let byte = match (digit_mask, LAYOUT[i]) {
            (true, b'0') => 0xff,
            (true, _) => 0,
            (false, b) => b as u64,
        };
        words[i / 8] |= byte << (8 * (i % 8));
        i += 1;
    }
    words
}

/// Eight bytes of a timestamp checked against eight bytes of the layout:
/// the separators must be equal and the digit bytes ASCII digits. Returns
/// the digits' values, one per byte (the separators' bytes zero).
fn layout_digits(word: u64, layout: u64, digit_bytes: u64) -> Option<u64> {
    const HIGH_NIBBLES: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    let zeros = layout & digit_bytes;
    let digits = word & digit_bytes;
    // A digit is 0x30..=0x39: its high nibble is 3, and adding 6 does not
    // carry into the high nibble (nor out of the byte: at most 0x3f + 6).
    let valid = word & !digit_bytes == layout & !digit_bytes
        && digits & HIGH_NIBBLES == zeros
        && (digits + (SIXES & digit_bytes)) & HIGH_NIBBLES == zeros;
    // Every digit byte is at least 0x30, so nothing borrows.
    valid.then(|| digits - zeros)
}

fn iso8601(i: &str) -> IResult<&str, i64> {
    let (i, year) = digits(4, 4)(i)?;
    let (i, _) = tag("-")(i)?;
    let (i, month) = digits(2, 2)(i)?;
    let (i, _) = tag("-")(i)?;
    let (i, day) = digits(2, 2)(i)?;
    let (i, _) = one_of("T ")(i)?;
    let (i, hour) = digits(2, 2)(i)?;
    let (i, _) = tag(":")(i)?;
    let (i, minute) = digits(2, 2)(i)?;
    let (i, _) = tag(":")(i)?;
    let (i, second) = digits(2, 2)(i)?;
    let (i, frac) = opt((tag("."), fraction_ms)).parse(i)?;
    let (i, offset) = zone_offset(i)?;
    let (i, _) = eof(i)?;
    let date = CivilTime {
        year: year as i64,
        month,
        day,
        hour,
        minute,
        second,
        millis: frac.map_or(0, |(_, ms)| ms),
        offset_minutes: offset,
    };
    match date.epoch_ms() {
        Some(ms) => Ok((i, ms)),
        None => Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        ))),
    }
}

/// `Z`, `+hh:mm`, `+hhmm`, `+hh`, or nothing: the offset east of UTC in minutes.
fn zone_offset(i: &str) -> IResult<&str, i32> {
    if let Some(rest) = i.strip_prefix('Z') {
        return Ok((rest, 0));
    }
    let (i, sign) = opt(one_of("+-")).parse(i)?;
    let Some(sign) = sign else {
        return Ok((i, 0));
    };
    let (i, hours) = digits(2, 2)(i)?;
    let (i, _) = opt(tag(":")).parse(i)?;
    let (i, minutes) = opt(digits(2, 2)).parse(i)?;
    let total = (hours * 60 + minutes.unwrap_or(0)) as i32;
    Ok((i, if sign == '-' { -total } else { total }))
}

/// 1 to 9 fraction digits, as milliseconds (truncated, as Envoy truncates).
fn fraction_ms(i: &str) -> IResult<&str, u32> {
    let (rest, text) = take_while_m_n(1, 9, |c: char| c.is_ascii_digit())(i)?;
    let ms = text
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    Ok((rest, ms))
}

/// Between `min` and `max` ASCII digits, as a number.
fn digits(min: usize, max: usize) -> impl Fn(&str) -> IResult<&str, u32> {
    move |i| {
        let (rest, text) = take_while_m_n(min, max, |c: char| c.is_ascii_digit())(i)?;
        let n = text
            .bytes()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        Ok((rest, n))
    }
}

/// A calendar time read from a timestamp, before conversion to epoch time.
#[derive(Debug, Default)]
struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    offset_minutes: i32,
}

impl CivilTime {
    /// Epoch milliseconds of a real date and time, in the zone read.
    fn epoch_ms(&self) -> Option<i64> {
        if self.day > days_in_month(self.year, self.month) {
            return None;
        }
        Some(self.wall_ms(false)? - i64::from(self.offset_minutes) * 60_000)
    }

    /// The fields as milliseconds of a UTC wall clock, the zone not
    /// applied, with any day from 1 to 31 in any month, a day past the
    /// month's last counting on into the next, as strptime's fields go
    /// through `timegm` (Fluent Bit reads `31/Feb/2018` as 3 March). With
    /// `day_zero`, day 0 is the day before the 1st, as `timegm` takes the
    /// zeroed day of a time strptime gave up on before its day.
    fn wall_ms(&self, day_zero: bool) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || (self.day == 0 && !day_zero)
            || self.day > 31
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(secs * 1000 + i64::from(self.millis))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar date (year, month, day) of a time in ms since the epoch
/// (Howard Hinnant's `civil_from_days`, the inverse of [`days_from_civil`]).
pub fn utc_date(ms: i64) -> (i64, u32, u32) {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A compiled `%START_TIME(...)%` argument: the strftime subset Envoy users
/// write. A format with a conversion this reader does not know still
/// matches any value; it just yields no epoch time.
#[derive(Clone, Debug)]
pub(crate) struct TimeFormat {
    items: Vec<TimeItem>,
    /// A conversion we cannot read back was seen.
    opaque: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum TimeItem {
    /// Text to match exactly (never whitespace: see `Space`).
    Literal(String),
    /// Whitespace in the format: any run of whitespace in the value, or
    /// none, as strptime reads it.
    Space,
    Year,
    Month,
    MonthAbbr,
    Day,
    Hour,
    Minute,
    Second,
    /// `%f` (9 digits), `%3f`, `%E3S` fractions: any digit count is accepted.
    Fraction,
    Epoch,
    /// `%z`: `+hhmm`.
    Zone,
}

impl TimeFormat {
    pub(crate) fn compile(spec: &str) -> TimeFormat {
        let mut items = Vec::new();
        let mut opaque = false;
        let mut literal = String::new();
        let mut chars = spec.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_ascii_whitespace() {
                if !literal.is_empty() {
                    items.push(TimeItem::Literal(std::mem::take(&mut literal)));
                }
                if items.last() != Some(&TimeItem::Space) {
                    items.push(TimeItem::Space);
                }
                continue;
            }
            if c != '%' {
                literal.push(c);
                continue;
            }
            // `%3f`, `%E3S`: an optional `E` and digit count before the letter.
            let mut modifier = String::new();
            while let Some(&m) = chars.peek() {
                if m == 'E' || m.is_ascii_digit() {
                    modifier.push(m);
                    chars.next();
                } else {
                    break;
                }
            }
            let Some(conv) = chars.next() else {
                opaque = true;
                break;
            };
            let push = |item: TimeItem, literal: &mut String, items: &mut Vec<TimeItem>| {
                if !literal.is_empty() {
                    items.push(TimeItem::Literal(std::mem::take(literal)));
                }
                items.push(item);
            };
            match conv {
                '%' => literal.push('%'),
                'Y' => push(TimeItem::Year, &mut literal, &mut items),
                'm' => push(TimeItem::Month, &mut literal, &mut items),
                'b' | 'B' => push(TimeItem::MonthAbbr, &mut literal, &mut items),
                'd' => push(TimeItem::Day, &mut literal, &mut items),
                // The day, space-padded (`Nov  5`): strptime takes a space
                // before it.
                'e' => {
                    push(TimeItem::Space, &mut literal, &mut items);
                    items.push(TimeItem::Day);
                }
                'H' => push(TimeItem::Hour, &mut literal, &mut items),
                'M' => push(TimeItem::Minute, &mut literal, &mut items),
                'S' => {
                    push(TimeItem::Second, &mut literal, &mut items);
                    if modifier.starts_with('E') && modifier.len() > 1 {
                        literal.push('.');
                        push(TimeItem::Fraction, &mut literal, &mut items);
                    }
                }
                'f' => push(TimeItem::Fraction, &mut literal, &mut items),
                's' => push(TimeItem::Epoch, &mut literal, &mut items),
                'z' => push(TimeItem::Zone, &mut literal, &mut items),
                'Z' => literal.push_str("UTC"),
                'F' => {
                    for item in [
                        TimeItem::Year,
                        TimeItem::Literal("-".into()),
                        TimeItem::Month,
                        TimeItem::Literal("-".into()),
                        TimeItem::Day,
                    ] {
                        push(item, &mut literal, &mut items);
                    }
                }
                'T' => {
                    for item in [
                        TimeItem::Hour,
                        TimeItem::Literal(":".into()),
                        TimeItem::Minute,
                        TimeItem::Literal(":".into()),
                        TimeItem::Second,
                    ] {
                        push(item, &mut literal, &mut items);
                    }
                }
                _ => opaque = true,
            }
        }
        if !literal.is_empty() {
            items.push(TimeItem::Literal(literal));
        }
        TimeFormat { items, opaque }
    }

    /// Whether `value` is a time of this format (all of it), and its epoch
    /// milliseconds when the format carries a full date and time.
    pub(crate) fn read(&self, value: &str) -> Option<Option<i64>> {
        if self.opaque {
            return (!value.is_empty()).then_some(None);
        }
        let mut t = CivilTime::default();
        let (mut has_date, mut epoch) = (0u8, None::<i64>);
        let mut i = value;
        for item in &self.items {
            i = read_item(item, i, &mut t, &mut has_date, &mut epoch, false)?;
        }
        if !i.is_empty() {
            return None;
        }
        if let Some(ms) = epoch {
            return Some(Some(ms + i64::from(t.millis)));
        }
        if has_date == 7 {
            // A format that names the date must hold a real one.
            return t.epoch_ms().map(Some);
        }
        Some(None)
    }
}

/// Reads one item of a format at the start of `i` into `t` (and
/// `has_date`'s bits: 1 year, 2 month, 4 day; `epoch` for `%s`), giving
/// what follows it; `None` when `i` does not start with it. With
/// `in_range`, a field outside strptime's range (a 13th month, a 24th
/// hour) does not read either.
fn read_item<'v>(
    item: &TimeItem,
    i: &'v str,
    t: &mut CivilTime,
    has_date: &mut u8,
    epoch: &mut Option<i64>,
    in_range: bool,
) -> Option<&'v str> {
    let number = |i: &'v str, range: std::ops::RangeInclusive<u32>| {
        let (rest, n) = digits(1, 2)(i).ok()?;
        (!in_range || range.contains(&n)).then_some((rest, n))
    };
    Some(match item {
        TimeItem::Literal(l) => i.strip_prefix(l.as_str())?,
        TimeItem::Space => i.trim_start_matches(|c: char| c.is_ascii_whitespace()),
        TimeItem::Year => {
            let (r, n) = digits(4, 4)(i).ok()?;
            t.year = i64::from(n);
            *has_date |= 1;
            r
        }
        TimeItem::Month => {
            let (r, n) = number(i, 1..=12)?;
            t.month = n;
            *has_date |= 2;
            r
        }
        TimeItem::MonthAbbr => {
            let abbr = i.get(..3)?;
            let n = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(abbr))?;
            t.month = n as u32 + 1;
            *has_date |= 2;
            // The full name reads too (`%b` is also `%B`).
            let rest = &i[3..];
            let full = &MONTH_NAMES[n][3..];
            match rest.get(..full.len()) {
                Some(tail) if tail.eq_ignore_ascii_case(full) => &rest[full.len()..],
                _ => rest,
            }
        }
        TimeItem::Day => {
            let (r, n) = number(i, 1..=31)?;
            t.day = n;
            *has_date |= 4;
            r
        }
        TimeItem::Hour => {
            let (r, n) = number(i, 0..=23)?;
            t.hour = n;
            r
        }
        TimeItem::Minute => {
            let (r, n) = number(i, 0..=59)?;
            t.minute = n;
            r
        }
        TimeItem::Second => {
            let (r, n) = number(i, 0..=60)?;
            t.second = n;
            r
        }
        TimeItem::Fraction => {
            let (r, ms) = fraction_ms(i).ok()?;
            t.millis = ms;
            r
        }
        TimeItem::Epoch => {
            let (r, n) = take_while_m_n::<_, _, nom::error::Error<&str>>(1, 12, |c: char| {
                c.is_ascii_digit()
            })(i)
            .ok()?;
            *epoch = Some(n.parse::<i64>().ok()? * 1000);
            r
        }
        TimeItem::Zone => {
            // `%z` always prints a zone; an empty one is no match.
            if !i.starts_with(['+', '-', 'Z']) {
                return None;
            }
            let (r, off) = zone_offset(i).ok()?;
            t.offset_minutes = off;
            r
        }
    })
}

/// A time a [`StrpTime`] read: the fields it gave as the milliseconds they
/// would be in UTC, and the zone, when the value gave one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRead {
    /// The fields read, as a UTC wall clock (no zone applied).
    pub wall_ms: i64,
    /// How far the value's zone is ahead of UTC, in milliseconds, when the
    /// format gives a zone (`%z`, a literal `Z`, or `%s`, which is UTC)
    /// and the value got that far.
    pub zone_ms: Option<i64>,
    /// Whether the whole format was read (always, unless leniently).
    pub whole: bool,
}

impl TimeRead {
    /// Epoch milliseconds: the wall clock less the zone it gave, or less
    /// `offset_ms` when it gave none.
    pub fn epoch_ms(&self, offset_ms: i64) -> i64 {
        self.wall_ms - self.zone_ms.unwrap_or(offset_ms)
    }
}

/// A Fluent Bit parser's `Time_Format`, read as its strptime reads it,
/// for the conversions log timestamps use: `%Y %m %d %e %b %B %H %M %S %z
/// %s %F %T`, `%f` and Fluent Bit's `%L` (fraction digits), `%Z` (`UTC`);
/// whitespace in the format takes any run of whitespace in the value.
#[derive(Clone, Debug)]
pub struct StrpTime {
    format: TimeFormat,
    /// The format gives no year (syslog's `%b %d %H:%M:%S`): the value
    /// is read in the year of the time it is read at, as Fluent Bit's
    /// `flb_parser_time_lookup` reads it.
    year_less: bool,
    /// Whether the format gives the zone, as Fluent Bit decides it (`%z`,
    /// `%Z`, `%SZ`, `%S.%LZ` in the text): a parser's `Time_Offset`
    /// applies to the others.
    with_zone: bool,
}

impl StrpTime {
    /// `Err` names what cannot be read: a conversion outside the subset, or
    /// a format with a year but not a whole date (strptime would leave the
    /// month or the day at 0).
    pub fn new(spec: &str) -> Result<StrpTime, String> {
        let format = TimeFormat::compile(&spec.replace("%L", "%f"));
        if format.opaque {
            return Err(format!(
                "{spec:?} has a conversion Sluice cannot read (it reads %Y %m %d %e %b %B %H %M %S %L %f %z %Z %s %F %T)"
            ));
        }
        let has = |item: TimeItem| format.items.contains(&item);
        let epoch = has(TimeItem::Epoch);
        let year_less = !epoch && !has(TimeItem::Year);
        let date = (has(TimeItem::Month) || has(TimeItem::MonthAbbr)) && has(TimeItem::Day);
        if !epoch && !year_less && !date {
            return Err(format!(
                "{spec:?} does not give a whole date (%m or %b, and %d, with its %Y)"
            ));
        }
        let with_zone = ["%z", "%Z", "%SZ", "%S.%LZ"]
            .iter()
            .any(|z| spec.contains(z))
            || epoch;
        Ok(StrpTime {
            format,
            year_less,
            with_zone,
        })
    }

    /// Milliseconds since the epoch, or `None` when `value` does not start
    /// with a time of this format (what follows it is not read, as in
    /// Fluent Bit: `2019-01-01T10:00:00.123+0000` is a time of
    /// `%Y-%m-%dT%H:%M:%S.%L`). `now_ms` is when it is read: a format
    /// without a year takes that time's year (UTC), and its month and day
    /// unless it gives them.
    pub fn epoch_ms(&self, value: &str, now_ms: i64) -> Option<i64> {
        self.read(value, now_ms, false).map(|read| read.epoch_ms(0))
    }

    /// The time `value` starts with, as [`StrpTime::epoch_ms`] reads it,
    /// without applying a zone. `lenient` reads as Fluent Bit's
    /// `Time_Strict Off`: strptime stops at the first part of the format
    /// the value does not match (or holds out of range), and the time is
    /// what it read before, the rest left as in a zeroed `struct tm` (the
    /// year 1900, January, day 0, midnight) or, for a format without a
    /// year, the year, month and day of `now_ms`.
    pub fn read(&self, value: &str, now_ms: i64, lenient: bool) -> Option<TimeRead> {
        let mut t = CivilTime::default();
        if self.year_less {
            (t.year, t.month, t.day) = utc_date(now_ms);
        } else if lenient {
            (t.year, t.month, t.day) = (1900, 1, 0);
        }
        let (mut has_date, mut epoch) = (0u8, None::<i64>);
        let (mut zone_read, mut whole) = (false, true);
        let mut i = value;
        for item in &self.format.items {
            match read_item(item, i, &mut t, &mut has_date, &mut epoch, lenient) {
                Some(rest) => {
                    zone_read |= *item == TimeItem::Zone;
                    i = rest;
                }
                None if lenient => {
                    whole = false;
                    break;
                }
                None => return None,
            }
        }
        if let Some(ms) = epoch {
            return Some(TimeRead {
                wall_ms: ms + i64::from(t.millis),
                zone_ms: Some(0),
                whole,
            });
        }
        let zone_ms = if zone_read {
            Some(i64::from(t.offset_minutes) * 60_000)
        } else {
            // A literal zone (`%Z`, `%SZ`) is UTC once the value got there.
            (self.with_zone && whole).then_some(0)
        };
        Some(TimeRead {
            wall_ms: t.wall_ms(lenient)?,
            zone_ms,
            whole,
        })
    }

    /// Whether the format gives no year, so that a value is read in the
    /// year (and date) of the time it is read at.
    pub fn is_year_less(&self) -> bool {
        self.year_less
    }

    /// Whether a time of this format says its zone (or is seconds since
    /// the epoch, which need none).
    pub fn has_zone(&self) -> bool {
        self.with_zone
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_default_start_time() {
        // Envoy's own test: epoch ms 1522796769123 prints as this.
        assert_eq!(
            parse_iso8601("2018-04-03T23:06:09.123Z"),
            Some(1522796769123)
        );
        assert_eq!(parse_iso8601("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_iso8601("1999-01-01T00:00:00.000Z"),
            Some(915148800000)
        );
    }

    #[test]
    fn default_layout_agrees_with_the_general_grammar_byte_by_byte() {
        let good = *b"2018-04-03T23:06:09.123Z";
        assert_eq!(envoy_default_time(&good), Some(1522796769123));
        // Every byte replaced by each byte value: the fast path never reads
        // a value the general grammar reads otherwise, and leaves it only
        // what it does not know.
        for i in 0..good.len() {
            for b in 0..=255u8 {
                let mut time = good;
                time[i] = b;
                let general = std::str::from_utf8(&time)
                    .ok()
                    .and_then(|s| iso8601(s).ok())
                    .map(|(_, ms)| ms);
                let fast = envoy_default_time(&time);
                let shown = String::from_utf8_lossy(&time);
                if fast.is_some() {
                    assert_eq!(fast, general, "{shown:?}");
                }
                // What only the general grammar reads: a space for the
                // `T`, a fourth fraction digit with no zone.
                let general_only = (i == 10 && b == b' ') || (i == 23 && b.is_ascii_digit());
                assert_eq!(
                    fast.is_none() && general.is_some(),
                    general_only,
                    "{shown:?}"
                );
            }
        }
    }

    #[test]
    fn iso_variants() {
        let ms = Some(1522796769123);
        for s in [
            "2018-04-03T23:06:09.123456789Z",
            "2018-04-03 23:06:09.123Z",
            "2018-04-03T23:06:09.123",
            "2018-04-04T01:06:09.123+02:00",
            "2018-04-03T22:06:09.123-0100",
        ] {
            assert_eq!(parse_iso8601(s), ms, "{s}");
        }
        assert_eq!(parse_iso8601("2018-04-03T23:06:09Z"), Some(1522796769000));
        assert_eq!(parse_iso8601("2018-04-03T23:06:09.1Z"), Some(1522796769100));
    }

    #[test]
    fn rejects_non_times() {
        for s in [
            "",
            "2025-11-04 06:49:07.518][1][info][main",
            "2018-13-03T23:06:09.123Z",
            "2019-02-29T00:00:00Z",
            "2018-04-03T24:00:00Z",
            "2018-04-03T23:06:09.123Zjunk",
            "10/Oct/2000:13:55:36 -0700",
        ] {
            assert_eq!(parse_iso8601(s), None, "{s}");
        }
        assert_eq!(parse_iso8601("2020-02-29T00:00:00Z"), Some(1582934400000));
    }

    #[test]
    fn utc_dates_round_trip() {
        assert_eq!(utc_date(0), (1970, 1, 1));
        assert_eq!(utc_date(1_522_796_769_123), (2018, 4, 3));
        assert_eq!(utc_date(-1), (1969, 12, 31));
        for (y, m, d) in [(2000, 2, 29), (2024, 12, 31), (1999, 1, 1)] {
            let ms = days_from_civil(y, m, d) * 86_400_000;
            assert_eq!(utc_date(ms), (y, m, d));
        }
    }

    #[test]
    fn strftime_formats() {
        let f = TimeFormat::compile("%Y-%m-%dT%H:%M:%S%z");
        assert_eq!(
            f.read("2018-04-03T23:06:09+0000"),
            Some(Some(1522796769000))
        );
        assert_eq!(f.read("2018-04-03T23:06:09"), None);
        let f = TimeFormat::compile("%s.%3f");
        assert_eq!(f.read("1522796769.123"), Some(Some(1522796769123)));
        let f = TimeFormat::compile("%d/%b/%Y:%H:%M:%S %z");
        assert_eq!(
            f.read("03/Apr/2018:23:06:09 +0000"),
            Some(Some(1522796769000))
        );
        let f = TimeFormat::compile("%F %T.%E3S");
        assert!(f.read("2018-04-03 23:06:09.123").is_none());
        let f = TimeFormat::compile("%F %E3S");
        // A date without hours and minutes reads as that date's midnight.
        assert_eq!(f.read("2018-04-03 09.123"), Some(Some(1522713609123)));
        let f = TimeFormat::compile("%H:%M:%S");
        assert_eq!(f.read("23:06:09"), Some(None));
        let f = TimeFormat::compile("%F %H:%M:%E3S");
        assert_eq!(f.read("2018-04-03 23:06:09.123"), Some(Some(1522796769123)));
        // Unknown conversions: any non-empty value, no epoch.
        let f = TimeFormat::compile("%a %Y");
        assert_eq!(f.read("Tue 2018"), Some(None));
        assert_eq!(f.read(""), None);
    }

    #[test]
    fn fluent_bit_time_formats() {
        // Fluent Bit's `json` parser (conf/parsers.conf).
        let json = StrpTime::new("%d/%b/%Y:%H:%M:%S %z").unwrap();
        assert_eq!(
            json.epoch_ms("03/Apr/2018:23:06:09 +0000", 0),
            Some(1522796769000)
        );
        assert_eq!(
            json.epoch_ms("04/Apr/2018:01:06:09 +0200", 0),
            Some(1522796769000)
        );
        assert_eq!(json.epoch_ms("2018-04-03T23:06:09Z", 0), None);
        // What follows the time is not read, as Fluent Bit does not read it.
        assert_eq!(
            json.epoch_ms("03/Apr/2018:23:06:09 +0000 and more", 0),
            Some(1522796769000)
        );
        // A day past the month's last counts on, as timegm counts it:
        // Fluent Bit v5.1.1 reads this as 2018-03-03T23:06:09Z.
        assert_eq!(
            json.epoch_ms("31/Feb/2018:23:06:09 +0000", 0),
            Some(1520118369000)
        );
        assert_eq!(json.epoch_ms("32/Jan/2018:23:06:09 +0000", 0), None);
        assert_eq!(json.epoch_ms("00/Jan/2018:23:06:09 +0000", 0), None);
        // Its `docker` parser: `%L` is the fraction.
        let docker = StrpTime::new("%Y-%m-%dT%H:%M:%S.%L").unwrap();
        assert_eq!(
            docker.epoch_ms("2018-04-03T23:06:09.123456789", 0),
            Some(1522796769123)
        );
        assert_eq!(
            StrpTime::new("%s").unwrap().epoch_ms("1522796769", 0),
            Some(1522796769000)
        );
        assert_eq!(
            StrpTime::new("%Y %H:%M:%S").unwrap_err(),
            "\"%Y %H:%M:%S\" does not give a whole date (%m or %b, and %d, with its %Y)"
        );
        assert!(StrpTime::new("%Y-%m-%d %a").is_err());
    }

    #[test]
    fn a_format_without_a_year_takes_the_year_it_is_read_in() {
        // Syslog's (RFC 3164) time, as Fluent Bit's syslog parsers read it:
        // the year of the time it is read at, in UTC.
        let syslog = StrpTime::new("%b %d %H:%M:%S").unwrap();
        assert!(!syslog.has_zone());
        let in_2018 = 1522796769123; // 2018-04-03T23:06:09.123Z
        assert_eq!(
            syslog.epoch_ms("Apr  3 23:06:09", in_2018),
            Some(1522796769000)
        );
        // A padded day, a single space, `%e`, a full month name: the same.
        assert_eq!(
            syslog.epoch_ms("Apr 3 23:06:09", in_2018),
            Some(1522796769000)
        );
        let padded = StrpTime::new("%b %e %H:%M:%S").unwrap();
        assert_eq!(
            padded.epoch_ms("Apr  3 23:06:09", in_2018),
            Some(1522796769000)
        );
        assert_eq!(
            syslog.epoch_ms("April 3 23:06:09", in_2018),
            Some(1522796769000)
        );
        // December read in January is the coming December, as Fluent Bit
        // reads it.
        let new_year = 1514764800000; // 2018-01-01T00:00:00Z
        assert_eq!(
            syslog.epoch_ms("Dec 31 23:59:59", new_year),
            Some(1546300799000)
        );
        // 29 February of 2018 is 1 March, as Fluent Bit reads it.
        assert_eq!(
            syslog.epoch_ms("Feb 29 00:00:00", in_2018),
            Some(1519862400000)
        );
        assert_eq!(syslog.epoch_ms("Foo  3 23:06:09", in_2018), None);
        // Without month and day too: today's.
        let clock = StrpTime::new("%H:%M:%S").unwrap();
        assert_eq!(clock.epoch_ms("01:00:00", in_2018), Some(1522717200000));
    }

    mod strptime_properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A date and time, the `Time_Format` it is written in, and it
        /// written so, with `spaces` blanks wherever the format has one.
        fn written(
            (year, month, day): (i64, u32, u32),
            (hour, minute, second, millis): (u32, u32, u32, u32),
            layout: usize,
            spaces: usize,
        ) -> (String, String) {
            let mon = MONTHS[month as usize - 1];
            let (format, value) = match layout {
                0 => (
                    "%Y-%m-%dT%H:%M:%S.%L%z".to_string(),
                    format!(
                        "{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z"
                    ),
                ),
                1 => (
                    "%d/%b/%Y:%H:%M:%S %z".to_string(),
                    format!("{day:02}/{mon}/{year}:{hour:02}:{minute:02}:{second:02} +0000"),
                ),
                2 => (
                    "%b %e %Y %H:%M:%S.%L".to_string(),
                    format!("{mon} {day:>2} {year} {hour:02}:{minute:02}:{second:02}.{millis:03}"),
                ),
                _ => (
                    "%Y/%m/%d %H:%M:%S".to_string(),
                    format!("{year}/{month:02}/{day:02} {hour:02}:{minute:02}:{second:02}"),
                ),
            };
            (format, value.replace(' ', &" ".repeat(spaces)))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

            /// A time written in a format reads back as itself, however
            /// many blanks stand for the format's one, with anything after it.
            #[test]
            fn written_times_read_back(
                date in (1971i64..2100, 1u32..=12, 1u32..=28),
                time in (0u32..24, 0u32..60, 0u32..60, 0u32..1000),
                layout in 0usize..4,
                spaces in 1usize..4,
                tail in "( [a-z]{0,5})?",
            ) {
                let (format, value) = written(date, time, layout, spaces);
                let strp = StrpTime::new(&format).unwrap();
                let (year, month, day) = date;
                let (hour, minute, second, millis) = time;
                let has_millis = format.contains("%L");
                let expected = days_from_civil(year, month, day) * 86_400_000
                    + i64::from(hour * 3600 + minute * 60 + second) * 1000
                    + if has_millis { i64::from(millis) } else { 0 };
                prop_assert_eq!(strp.epoch_ms(&value, 0), Some(expected), "{} {}", format, value);
                let followed = format!("{value}{tail}");
                prop_assert_eq!(strp.epoch_ms(&followed, 0), Some(expected));
            }

            /// Any text, under any of these formats (with and without a
            /// year), gives a time or none, and never a panic.
            #[test]
            fn any_text_reads_or_not(value in "\\PC{0,40}", layout in 0usize..6) {
                let format = ["%Y-%m-%dT%H:%M:%S.%L%z", "%d/%b/%Y:%H:%M:%S %z", "%b %e %H:%M:%S", "%B %d %Y", "%s", "%H:%M"][layout];
                let _ = StrpTime::new(format).unwrap().epoch_ms(&value, 1_522_796_769_123);
            }
        }
    }
}
