//! A parser's `Time_Zone`: an IANA zone (`Europe/Berlin`), read from the
//! system's time zone database (`$TZDIR`, else `/usr/share/zoneinfo`) as
//! Fluent Bit v5.1.1's `flb_parser.c` reads it: the UTC times at which the
//! zone's offset changes, from the TZif file's 64-bit part (its 32-bit
//! part in a version 1 file), and the offset of each local time type.
//!
//! As in Fluent Bit, the rule at the end of a TZif file is not read: past
//! the last transition (2037 in Debian's files, which list every
//! transition up to then) the last offset holds, and before the first one
//! the file's first standard-time type does.

use std::io::Read;
use std::path::Path;

/// One zone's offsets over time.
#[derive(Debug, PartialEq)]
pub struct TimeZone {
    /// When the offset changes, in seconds since the epoch, ascending.
    transitions: Vec<i64>,
    /// The local time type in force from each transition on.
    types_from: Vec<u8>,
    /// Each local time type's offset east of UTC, in seconds.
    offsets: Vec<i64>,
    /// The type before the first transition: the first type that is not
    /// daylight-saving time.
    before_first: usize,
}

/// The largest zone file read; real ones are a few KiB.
const MAX_FILE: u64 = 1 << 20;

impl TimeZone {
    /// The zone `name` of the system's database. `Err` says why it cannot
    /// be used.
    pub fn load(name: &str) -> Result<TimeZone, String> {
        let dir = std::env::var_os("TZDIR")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "/usr/share/zoneinfo".into());
        TimeZone::load_from(Path::new(&dir), name)
    }

    /// The zone `name` of the database in `dir`.
    pub fn load_from(dir: &Path, name: &str) -> Result<TimeZone, String> {
        if !is_zone_name(name) {
            return Err(format!(
                "{name:?} is not a time zone name (an IANA name such as Europe/Berlin)"
            ));
        }
        let path = dir.join(name);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("{name:?}: cannot read {}: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(format!("{name:?}: {} is not a zone file", path.display()));
        }
        TimeZone::from_tzif(&bytes)
            .ok_or_else(|| format!("{name:?}: {} is not a zone file", path.display()))
    }

    /// A TZif file (RFC 8536), as `tzif_load` reads it: the 64-bit part
    /// of a version 2 or later file, else the 32-bit part. `None` when it
    /// is not one.
    fn from_tzif(bytes: &[u8]) -> Option<TimeZone> {
        let header = Header::read(bytes)?;
        if matches!(bytes[4], b'2'..=b'4') {
            // The 64-bit part, after the first part's header and data.
            TimeZone::from_part(bytes.get(HEADER + header.data_len(4)?..)?, 8)
        } else {
            TimeZone::from_part(bytes, 4)
        }
    }

    /// One part of a TZif file: its header and the data after it, with
    /// transition times of `time_size` bytes.
    fn from_part(part: &[u8], time_size: usize) -> Option<TimeZone> {
        let header = Header::read(part)?;
        if header.typecnt == 0 {
            return None;
        }
        let mut at = HEADER;
        let mut take = |len: usize| {
            let taken = part.get(at..at.checked_add(len)?)?;
            at += len;
            Some(taken)
        };
        let transitions = take(header.timecnt.checked_mul(time_size)?)?
            .chunks_exact(time_size)
            .map(|t| match time_size {
                8 => i64::from_be_bytes(t.try_into().expect("8 bytes")),
                _ => i64::from(i32::from_be_bytes(t.try_into().expect("4 bytes"))),
            })
            .collect();
        let types_from = take(header.timecnt)?.to_vec();
        let types: Vec<(i64, bool)> = take(header.typecnt.checked_mul(6)?)?
            .chunks_exact(6)
            .map(|t| {
                let offset = i32::from_be_bytes(t[..4].try_into().expect("4 bytes"));
                (i64::from(offset), t[4] != 0)
            })
            .collect();
        if types_from.iter().any(|&t| usize::from(t) >= types.len()) {
            return None;
        }
        Some(TimeZone {
            transitions,
            types_from,
            before_first: types.iter().position(|&(_, dst)| !dst).unwrap_or(0),
            offsets: types.into_iter().map(|(offset, _)| offset).collect(),
        })
    }

    /// The offset east of UTC, in seconds, at `utc` seconds since the
    /// epoch.
    fn offset_at(&self, utc: i64) -> i64 {
        // The transitions at or before `utc`; the last of them rules.
        let passed = self.transitions.partition_point(|&t| t <= utc);
        let kind = match passed {
            0 => self.before_first,
            n => usize::from(self.types_from[n - 1]),
        };
        self.offsets[kind]
    }

    /// The offset east of UTC at `epoch_ms`, in milliseconds.
    pub fn offset_ms_at(&self, epoch_ms: i64) -> i64 {
        self.offset_at(epoch_ms.div_euclid(1000)) * 1000
    }

    /// Epoch milliseconds of a wall-clock time in this zone, given as the
    /// milliseconds that time would be in UTC (the fields a time format
    /// read). As `tzif_tm2time` places it: with the first of the file's
    /// offsets that is in force at the time it gives (so a time a change
    /// repeats takes the earlier type of the file's list), else, for a
    /// time a change skips, with the offset in force at the wall time
    /// read as UTC.
    pub fn wall_clock_to_epoch_ms(&self, wall_ms: i64) -> i64 {
        let wall = wall_ms.div_euclid(1000);
        let offset = self
            .offsets
            .iter()
            .copied()
            .find(|&offset| self.offset_at(wall - offset) == offset)
            .unwrap_or_else(|| self.offset_at(wall));
        wall_ms - offset * 1000
    }
}

/// A TZif header's length.
const HEADER: usize = 44;

/// The counts of a TZif header.
struct Header {
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

impl Header {
    fn read(part: &[u8]) -> Option<Header> {
        if part.len() < HEADER || !part.starts_with(b"TZif") {
            return None;
        }
        let count = |at: usize| {
            let be = u32::from_be_bytes(part[at..at + 4].try_into().expect("4 bytes"));
            usize::try_from(be).ok()
        };
        Some(Header {
            isutcnt: count(20)?,
            isstdcnt: count(24)?,
            leapcnt: count(28)?,
            timecnt: count(32)?,
            typecnt: count(36)?,
            charcnt: count(40)?,
        })
    }

    /// The length of the data after this header, with transition times of
    /// `time_size` bytes.
    fn data_len(&self, time_size: usize) -> Option<usize> {
        [
            self.timecnt.checked_mul(time_size)?,
            self.timecnt,
            self.typecnt.checked_mul(6)?,
            self.charcnt,
            self.leapcnt.checked_mul(time_size + 4)?,
            self.isstdcnt,
            self.isutcnt,
        ]
        .into_iter()
        .try_fold(0usize, usize::checked_add)
    }
}

/// Whether `name` reads as a zone's name and names a file under the
/// database, not beside it: parts of letters, digits, `_`, `+` and `-`
/// between slashes (`America/Argentina/Buenos_Aires`, `Etc/GMT+5`).
fn is_zone_name(name: &str) -> bool {
    name.split('/').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-'))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A version 2 TZif file: `transitions` (UTC seconds, and the index
    /// of the type in force from then) over `types` (offset, DST). The
    /// 32-bit part holds nothing, so a reader that used it would find
    /// no transitions.
    pub(crate) fn tzif(transitions: &[(i64, u8)], types: &[(i32, bool)]) -> Vec<u8> {
        let header = |timecnt: usize, typecnt: usize, charcnt: usize| {
            let mut h = b"TZif2".to_vec();
            h.resize(20, 0);
            for count in [0, 0, 0, timecnt, typecnt, charcnt] {
                h.extend_from_slice(&(count as u32).to_be_bytes());
            }
            h
        };
        // The first part: one type, no transitions, one abbreviation byte.
        let mut file = header(0, 1, 1);
        file.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        file.extend(header(transitions.len(), types.len(), 1));
        for (at, _) in transitions {
            file.extend_from_slice(&at.to_be_bytes());
        }
        file.extend(transitions.iter().map(|&(_, kind)| kind));
        for &(offset, dst) in types {
            file.extend_from_slice(&offset.to_be_bytes());
            file.extend_from_slice(&[u8::from(dst), 0]);
        }
        file.push(0);
        file.extend_from_slice(b"\n\n");
        file
    }

    /// Central Europe in 2021: CET (+1) then CEST (+2) from 28 March 01:00
    /// UTC, back to CET on 31 October 01:00 UTC. The file lists the DST
    /// type first, so its first standard type is the second.
    pub(crate) fn berlin_2021() -> Vec<u8> {
        tzif(
            &[(1_616_893_200, 0), (1_635_642_000, 1)],
            &[(7200, true), (3600, false)],
        )
    }

    #[test]
    fn offsets_change_at_the_transitions() {
        let zone = TimeZone::from_tzif(&berlin_2021()).unwrap();
        // Before the first transition: the first standard type (+1), not
        // the file's first type.
        assert_eq!(zone.offset_at(1_600_000_000), 3600);
        assert_eq!(zone.offset_at(1_616_893_199), 3600);
        assert_eq!(zone.offset_at(1_616_893_200), 7200);
        assert_eq!(zone.offset_at(1_635_641_999), 7200);
        // After the last: the last one's type holds.
        assert_eq!(zone.offset_at(1_635_642_000), 3600);
        assert_eq!(zone.offset_at(4_000_000_000), 3600);
        assert_eq!(zone.offset_ms_at(1_625_140_800_000), 7_200_000);
    }

    #[test]
    fn wall_clocks_are_placed_as_fluent_bit_places_them() {
        let zone = TimeZone::from_tzif(&berlin_2021()).unwrap();
        // (wall clock as if UTC, its epoch time), in ms.
        let cases = [
            // 2021-07-01 12:00:00.250 CEST.
            (1_625_140_800_250, 1_625_133_600_250),
            // 2021-01-15 12:00 CET.
            (1_610_712_000_000, 1_610_708_400_000),
            // 2021-03-28 02:30, which the change skips: placed with the
            // offset in force at 02:30 UTC (+2), so 00:30 UTC.
            (1_616_898_600_000, 1_616_891_400_000),
            // 2021-10-31 02:30, which the change repeats: the file's first
            // type that fits is CEST (+2), so the earlier 00:30 UTC.
            (1_635_647_400_000, 1_635_640_200_000),
        ];
        for (wall, epoch) in cases {
            assert_eq!(zone.wall_clock_to_epoch_ms(wall), epoch, "{wall}");
        }
    }

    #[test]
    fn a_version_1_file_is_read_from_its_32_bit_part() {
        let mut file = b"TZif\0".to_vec();
        file.resize(20, 0);
        for count in [0u32, 0, 0, 1, 2, 1] {
            file.extend_from_slice(&count.to_be_bytes());
        }
        file.extend_from_slice(&1_000_000_000i32.to_be_bytes());
        file.push(1);
        file.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        file.extend_from_slice(&(-18_000i32).to_be_bytes());
        file.extend_from_slice(&[0, 0, 0]);
        let zone = TimeZone::from_tzif(&file).unwrap();
        assert_eq!(zone.offset_at(999_999_999), 0);
        assert_eq!(zone.offset_at(1_000_000_000), -18_000);
    }

    #[test]
    fn broken_files_are_not_zones() {
        let good = berlin_2021();
        assert!(TimeZone::from_tzif(&good).is_some());
        // Cut anywhere in the second part's data, or a type out of range.
        for len in [0, 4, 43, 44, 60, good.len() - 20] {
            assert!(TimeZone::from_tzif(&good[..len]).is_none(), "{len}");
        }
        let bad_type = tzif(&[(0, 2)], &[(3600, false), (7200, true)]);
        assert!(TimeZone::from_tzif(&bad_type).is_none());
        let no_types = tzif(&[], &[]);
        assert!(TimeZone::from_tzif(&no_types).is_none());
        let mut not_tzif = good.clone();
        not_tzif[0] = b'X';
        assert!(TimeZone::from_tzif(&not_tzif).is_none());
    }

    #[test]
    fn zones_are_read_from_the_database_directory_only() {
        let tmp = tempfile::Builder::new()
            .prefix("sluice-zoneinfo-")
            .tempdir()
            .unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("Europe")).unwrap();
        std::fs::write(dir.join("Europe/Berlin"), berlin_2021()).unwrap();
        std::fs::write(dir.join("Europe/Broken"), b"TZif2 cut").unwrap();
        let zone = TimeZone::load_from(dir, "Europe/Berlin").unwrap();
        assert_eq!(zone.offset_at(1_625_140_800), 7200);
        let at = dir.display();
        for (name, error) in [
            (
                "../Berlin",
                r#""../Berlin" is not a time zone name (an IANA name such as Europe/Berlin)"#
                    .to_string(),
            ),
            (
                "/etc/passwd",
                r#""/etc/passwd" is not a time zone name (an IANA name such as Europe/Berlin)"#
                    .to_string(),
            ),
            (
                "Europe/Paris",
                format!(
                    r#""Europe/Paris": cannot read {at}/Europe/Paris: No such file or directory (os error 2)"#
                ),
            ),
            (
                "Europe/Broken",
                format!(r#""Europe/Broken": {at}/Europe/Broken is not a zone file"#),
            ),
        ] {
            assert_eq!(TimeZone::load_from(dir, name).unwrap_err(), error);
        }
        assert!(is_zone_name("America/Argentina/Buenos_Aires"));
        assert!(is_zone_name("Etc/GMT+5"));
        assert!(!is_zone_name(""));
        assert!(!is_zone_name("Europe//Berlin"));
        assert!(!is_zone_name("Europe/Berlin/"));
    }
}
