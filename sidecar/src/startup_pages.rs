//! Giving back the pages of the executable that only start-up used.
//!
//! Once Sluice listens, most of its resident memory is the executable's
//! own code and read-only data, mapped from the file: 7-8 MiB of an idle
//! 11-12, nearly all of it run once (parsing the configuration, the AWS
//! SDK's credential and endpoint set-up, TLS roots, clap). An idle sidecar
//! runs a few hundred KiB of it (timers, epoll).
//!
//! `madvise(MADV_PAGEOUT)` on those mappings asks the kernel to reclaim
//! their pages now: clean pages of the file, which it would drop on its
//! own under memory pressure and read back from the file the same way when
//! touched again. Nothing changes but when that happens: the code the event
//! path needs comes back on its first use (one page fault per 64 KiB), and
//! the task's memory shows what the sidecar holds while it idles, not what
//! it needed to start. Writable mappings are left alone (without swap,
//! reclaiming them does nothing, and with it they would be written out).

/// Asks the kernel to reclaim the resident pages of the executable's
/// read-only mappings (code, constants). Returns how many bytes of mappings
/// it was asked about; an error only says why it was not asked (no
/// `/proc`, a kernel older than 5.4): the process goes on either way.
#[cfg(target_os = "linux")]
pub fn release() -> std::io::Result<usize> {
    use std::os::unix::fs::MetadataExt;

    let exe = std::fs::read_link("/proc/self/exe")?;
    let inode = std::fs::metadata("/proc/self/exe")?.ino();
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut asked = 0;
    for mapping in maps.lines().filter_map(Mapping::parse) {
        if mapping.inode != inode || mapping.path != exe.as_os_str() || mapping.writable {
            continue;
        }
        let len = mapping.end - mapping.start;
        // SAFETY: the range is one of this process's own mappings, read
        // from /proc/self/maps, and read-only. MADV_PAGEOUT neither unmaps
        // nor changes it: it reclaims pages as the kernel's own reclaim
        // may at any time under memory pressure, and the next access
        // faults them back in the same way.
        let done =
            unsafe { libc::madvise(mapping.start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
        asked += len;
    }
    Ok(asked)
}

#[cfg(not(target_os = "linux"))]
pub fn release() -> std::io::Result<usize> {
    Ok(0)
}

/// One line of `/proc/self/maps`:
/// `start-end perms offset dev inode path`.
#[derive(Debug, PartialEq)]
struct Mapping<'a> {
    start: usize,
    end: usize,
    writable: bool,
    inode: u64,
    path: &'a str,
}

impl<'a> Mapping<'a> {
    fn parse(line: &'a str) -> Option<Mapping<'a>> {
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        let _offset = fields.next()?;
        let _device = fields.next()?;
        let inode = fields.next()?.parse().ok()?;
        // The path is padded with spaces to a column, and may hold spaces.
        let path = fields.next().unwrap_or("").trim_start();
        Some(Mapping {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            writable: perms.as_bytes().get(1) == Some(&b'w'),
            inode,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_anonymous_mappings() {
        let code = "5581c1a00000-5581c2345000 r-xp 00a3c000 103:02 2621563                   /usr/local/bin/sluice";
        assert_eq!(
            Mapping::parse(code),
            Some(Mapping {
                start: 0x5581c1a00000,
                end: 0x5581c2345000,
                writable: false,
                inode: 2621563,
                path: "/usr/local/bin/sluice",
            })
        );
        let data =
            "5581c2400000-5581c2410000 rw-p 00f00000 103:02 2621563 /opt/my app/sluice (deleted)";
        let parsed = Mapping::parse(data).unwrap();
        assert!(parsed.writable);
        assert_eq!(parsed.path, "/opt/my app/sluice (deleted)");
        let heap = "7f0e5c000000-7f0e5c021000 rw-p 00000000 00:00 0 ";
        assert_eq!(Mapping::parse(heap).unwrap().path, "");
        assert_eq!(Mapping::parse("not a mapping"), None);
    }

    #[test]
    fn release_leaves_the_process_running_its_code() {
        let asked = release().unwrap();
        // The test binary's code is one of the mappings asked about; this
        // test returning is the code running on from reclaimed pages.
        assert!(asked > 0);
    }
}
