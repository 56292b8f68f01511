//! The system's time zone, for a parser's `Time_System_Timezone On`: the C
//! library's `mktime` and `localtime_r`, as Fluent Bit calls them, so that
//! the zone is the one `TZ` or `/etc/localtime` names (a POSIX `TZ` string
//! such as `<+03>-3` needs no zone files).

/// Epoch milliseconds of a wall-clock time in the system's zone, given as
/// the milliseconds that time would be in UTC (the fields a time format
/// read, with no zone applied). A time a daylight-saving change skips or
/// repeats is placed as `mktime` places it with `tm_isdst = -1`. `None`
/// when the C library cannot place it.
pub fn wall_clock_to_epoch_ms(wall_ms: i64) -> Option<i64> {
    // time_t is 64 bits on the platforms Sluice is built for.
    let secs: libc::time_t = wall_ms.div_euclid(1000);
    // SAFETY: `tm` is plain data that gmtime_r fills; both calls get
    // valid pointers to locals.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::gmtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        tm.tm_isdst = -1;
        let local = libc::mktime(&mut tm);
        // -1 is mktime's error (and a second before 1970, which no log
        // line this reads is from).
        if local == -1 {
            return None;
        }
        Some(local * 1000 + wall_ms.rem_euclid(1000))
    }
}

/// How far the system's zone is ahead of UTC at `epoch_ms`, in
/// milliseconds (0 when the C library cannot tell).
pub fn offset_ms_at(epoch_ms: i64) -> i64 {
    let secs: libc::time_t = epoch_ms.div_euclid(1000);
    // SAFETY: as above; localtime_r fills the local `tm`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the test machine's zone, a wall time and its offset agree:
    /// the epoch time is the wall time less the zone's offset there.
    #[test]
    fn a_wall_time_less_its_offset() {
        // 2021-03-09T17:32:02.136 and 2021-07-01T12:00:00.000 as UTC wall
        // clocks (one in winter and one in summer, north).
        for wall in [1_615_311_122_136_i64, 1_625_140_800_000] {
            let epoch = wall_clock_to_epoch_ms(wall).unwrap();
            assert_eq!(epoch, wall - offset_ms_at(epoch));
        }
    }
}
